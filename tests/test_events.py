"""Admission-time Events on the workload a person will `kubectl describe`, against kmock's API emulator."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import TODAY, make_pod
from ddcompat.events import EventSink
from ddcompat.kube import KubeClient
from ddcompat.policy import load_policy
from ddcompat.review import Reviewer
from ddcompat.store import PolicyStore
from server_helpers import admission_review

VERBS = {"get", "list", "create", "patch"}
DENIED = dict(ddtrace="2.20.0", python="3.12", capabilities="iast")


async def test_events_go_to_the_top_owner_once_and_never_for_dry_run(kmock: Any) -> None:
    for resource in ("v1/events", "apps/v1/replicasets", "batch/v1/jobs"):
        kmock.resources[resource] = {"namespaced": True, "verbs": VERBS}
    kube = KubeClient(str(kmock.url))
    await kube.request(
        "POST",
        "/apis/apps/v1/namespaces/shop/replicasets",
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-7d9",
                "namespace": "shop",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": "d",
                        "controller": True,
                    }
                ],
            },
        },
    )
    await kube.request(
        "POST",
        "/apis/batch/v1/namespaces/shop/jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "nightly-290",
                "namespace": "shop",
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": "nightly",
                        "uid": "c",
                        "controller": True,
                    }
                ],
            },
        },
    )
    reviewer = Reviewer(PolicyStore(load_policy(), default_mode="enforce"), today=lambda: TODAY)
    sink = EventSink(kube, per_second=1000)
    task = asyncio.create_task(sink.run())

    def pod_of(kind: str, name: str) -> dict[str, Any]:
        pod = make_pod(owner=True, **DENIED)
        pod["metadata"]["name"] = f"{name}-x"
        pod["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1" if kind == "ReplicaSet" else "batch/v1",
                "kind": kind,
                "name": name,
                "uid": "u",
                "controller": True,
            }
        ]
        return pod

    reviews = [
        admission_review(pod_of("ReplicaSet", "web-7d9")),
        admission_review(pod_of("ReplicaSet", "web-7d9")),  # the next replica: same finding, no new Event
        admission_review(pod_of("Job", "nightly-290")),
        admission_review(
            make_pod(kind="Deployment", **DENIED) | {"metadata": {"name": "api", "namespace": "shop"}},
            dry_run=True,
        ),  # dry-run: no side effects
        admission_review(make_pod(kind="StatefulSet", ddtrace="4.16.0", python="3.12")),  # allowed: nothing
    ]
    for review in reviews:
        sink.offer(await reviewer.review(review))
    for _ in range(50):
        await asyncio.sleep(0.05)
        if sink.queue.empty():
            break
    await asyncio.sleep(0.1)
    task.cancel()
    events = await kube.list("/api/v1/namespaces/shop/events")
    got = sorted((e["involvedObject"]["kind"], e["involvedObject"]["name"], e["reason"]) for e in events)
    assert got == [("CronJob", "nightly", "DDCompatWarning"), ("Deployment", "web", "DDCompatWarning")]
    assert all("CAPABILITY_UNSUPPORTED" in e["message"] and e["type"] == "Warning" for e in events)
    await kube.close()

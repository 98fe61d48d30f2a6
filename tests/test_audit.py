"""The background audit against kmock's Kubernetes API emulator: PolicyReports per namespace, one Event per
new finding (not per cycle), results following pods as they change and go, and the clock moving 3.x to EOL."""

from __future__ import annotations

import datetime
from typing import Any

from conftest import make_pod
from ddcompat.audit import Auditor
from ddcompat.kube import KubeClient
from ddcompat.policy import load_policy
from ddcompat.review import Reviewer
from ddcompat.store import PolicyStore

VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
REPORT = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/ddcompat"


def running(pod: dict[str, Any], name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    pod["metadata"]["name"] = name
    pod["metadata"]["uid"] = f"uid-{name}"
    if owner:
        pod["metadata"]["ownerReferences"] = [{**owner, "controller": True}]
    pod["status"] = {"phase": "Running"}
    return pod


async def test_audit_reports_and_events(kmock: Any) -> None:
    for resource, namespaced in (
        ("v1/pods", True),
        ("apps/v1/replicasets", True),
        ("batch/v1/jobs", True),
        ("v1/events", True),
        ("wgpolicyk8s.io/v1alpha2/policyreports", True),
    ):
        kmock.resources[resource] = {"namespaced": namespaced, "verbs": VERBS}
    kmock.resources["ddcompat.io/v1alpha1/compatibilitypolicies"] = {
        "namespaced": False,
        "verbs": VERBS,
        "subresources": {"status"},
    }
    kube = KubeClient(str(kmock.url))
    today = [datetime.date(2026, 5, 1)]
    reviewer = Reviewer(PolicyStore(load_policy(), default_mode="warn"), today=lambda: today[0])
    auditor = Auditor(reviewer, kube)
    policy = {
        "apiVersion": "ddcompat.io/v1alpha1",
        "kind": "CompatibilityPolicy",
        "metadata": {"name": "all"},
        "spec": {"mode": "warn"},
    }
    await kube.request("POST", "/apis/ddcompat.io/v1alpha1/compatibilitypolicies", policy)
    reviewer.store.set_compatibility_policy("all", policy["spec"])

    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web"}
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "web-7d9",
            "namespace": "shop",
            "uid": "uid-rs",
            "ownerReferences": [{**deployment, "controller": True}],
        },
        "spec": {},
    }
    await kube.request("POST", "/apis/apps/v1/namespaces/shop/replicasets", rs)
    rs_ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9", "uid": "uid-rs"}
    for i in range(3):  # three replicas: one workload, judged once
        await kube.request(
            "POST",
            "/api/v1/namespaces/shop/pods",
            running(make_pod(ddtrace="3.10.0", python="3.12"), f"web-7d9-{i}", rs_ref),
        )
    tool = running(make_pod(ddtrace="2.20.0", python="3.12", env={"DD_IAST_ENABLED": "true"}), "tool")
    await kube.request("POST", "/api/v1/namespaces/shop/pods", tool)
    fine = running(make_pod(ddtrace="4.16.0", python="3.12"), "fine")
    await kube.request("POST", "/api/v1/namespaces/shop/pods", fine)

    async def events() -> list[tuple[str, str]]:
        return sorted(
            (e["involvedObject"]["name"], e["message"].split(":")[1].strip())
            for e in await kube.list("/api/v1/namespaces/shop/events")
        )

    # spring: 3.x is in maintenance
    await auditor.run_once()
    report = await kube.get(REPORT)
    assert report is not None and report["summary"] == {
        "pass": 1,
        "fail": 1,
        "warn": 1,
        "error": 0,
        "skip": 0,
    }
    rows = sorted(
        (r["resources"][0]["kind"], r["resources"][0]["name"], r["rule"], r["result"])
        for r in report["results"]
    )
    assert rows == [
        ("Deployment", "web", "RELEASE_MAINTENANCE", "warn"),
        ("Pod", "tool", "CAPABILITY_UNSUPPORTED", "fail"),
        ("Pod", "tool", "RELEASE_EOL", "warn"),
    ]
    assert len(await events()) == 2
    status = await kube.get("/apis/ddcompat.io/v1alpha1/compatibilitypolicies/all")
    assert status is not None and status["status"]["summary"] | {"lastAudit": ""} == {
        "allow": 1,
        "warn": 1,
        "deny": 1,
        "lastAudit": "",
        "policyVersion": "2026.11.24",
    }

    # the clock passes 2026-05-31: the Deployment's result becomes RELEASE_EOL, with one Event ...
    today[0] = datetime.date(2026, 6, 1)
    await auditor.run_once()
    report = await kube.get(REPORT)
    assert ("Deployment", "web", "RELEASE_EOL") in {
        (r["resources"][0]["kind"], r["resources"][0]["name"], r["rule"]) for r in report["results"]
    }  # type: ignore[index]
    assert [e for e in await events() if e[0] == "web"] == [
        ("web", "new finding(s) RELEASE_EOL"),
        ("web", "new finding(s) RELEASE_MAINTENANCE"),
    ]
    # ... and not one per cycle
    await auditor.run_once()
    await auditor.run_once()
    assert len(await events()) == 3

    # a pod changes (its tracer upgraded, IAST still on): its results follow
    fixed = running(make_pod(ddtrace="4.16.0", python="3.12"), "tool")
    await kube.request(
        "PATCH",
        "/api/v1/namespaces/shop/pods/tool",
        {"metadata": fixed["metadata"]},
        content_type="application/merge-patch+json",
    )
    await auditor.run_once()
    report = await kube.get(REPORT)
    assert {(r["resources"][0]["name"], r["rule"]) for r in report["results"]} == {  # type: ignore[index]
        ("web", "RELEASE_EOL"),
        ("tool", "CAPABILITY_PREVIEW"),
    }

    # the workload is gone: its results are removed, and with nothing left, the report too
    for name in ("web-7d9-0", "web-7d9-1", "web-7d9-2", "tool", "fine"):
        await kube.delete(f"/api/v1/namespaces/shop/pods/{name}")
    await auditor.run_once()
    assert await kube.get(REPORT) is None
    await kube.close()

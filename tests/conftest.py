"""Shared builders: manifests the way users write them, judged through the real request path."""

from __future__ import annotations

import asyncio
import datetime
import os
from pathlib import Path
from typing import Any

import pytest

from ddcompat.evaluate import Finding
from ddcompat.facts import workload_from_object
from ddcompat.policy import Policy, load_policy
from ddcompat.review import Judgement, Reviewer
from ddcompat.store import PolicyStore

# Test this checkout, whatever an editable install elsewhere points at: pytest's `pythonpath` puts
# operator/ first for this process; subprocesses (the CLI, the server) inherit it through PYTHONPATH.
_SOURCE = str(Path(__file__).resolve().parent.parent / "operator")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE, os.environ.get("PYTHONPATH")) if p)

TODAY = datetime.date(2026, 11, 24)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()


def make_pod(
    *,
    ddtrace: str | None = None,
    python: str | None = None,
    capabilities: str | None = None,
    frameworks: str | None = None,
    agent: str | None = None,
    env: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    container: str = "web",
    kind: str = "Pod",
    extra_containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    owner: bool = False,
) -> dict[str, Any]:
    ann = dict(annotations or {})
    for key, value in (
        ("ddtrace-version", ddtrace),
        ("python-version", python),
        ("capabilities", capabilities),
        ("frameworks", frameworks),
        ("agent-version", agent),
    ):
        if value is not None:
            ann[f"ddcompat.io/{container}.{key}"] = value
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": container,
                "image": "registry.example/app:1",
                "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            }
        ]
        + list(extra_containers or []),
    }
    if init_containers:
        spec["initContainers"] = init_containers
    if node_selector:
        spec["nodeSelector"] = node_selector
    meta: dict[str, Any] = {"name": "app", "namespace": "shop", "annotations": ann}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-1", "uid": "u", "controller": True}
        ]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    if kind == "Pod":
        return pod
    template = {"metadata": {"annotations": ann, "labels": {"app": "x"}}, "spec": spec}
    group = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    body: dict[str, Any] = {
        "apiVersion": group,
        "kind": kind,
        "metadata": {"name": "app", "namespace": "shop"},
    }
    if kind == "CronJob":
        body["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        body["spec"] = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
    return body


def judge(
    obj: dict[str, Any], policy: Policy, *, mode: str = "enforce", today: datetime.date = TODAY
) -> Judgement:
    reviewer = Reviewer(PolicyStore(policy, default_mode=mode), today=lambda: today)
    return asyncio.run(reviewer.judge(workload_from_object(obj)))


def findings(obj: dict[str, Any], policy: Policy, **kw: Any) -> list[Finding]:
    return list(judge(obj, policy, **kw).findings)


def codes(obj: dict[str, Any], policy: Policy, **kw: Any) -> set[str]:
    return {f.code for f in findings(obj, policy, **kw)}

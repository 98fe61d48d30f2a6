"""The background audit: running workloads re-judged on a schedule, because compatibility changes with
time (3.x left maintenance on 2026-05-31: what was fine in spring runs an end-of-life tracer today).

Each cycle lists the running pods, judges each top-level workload (Pod → ReplicaSet → Deployment,
Job → CronJob) through the same `Reviewer` as admission, writes one `wgpolicyk8s.io/v1alpha2` PolicyReport
per namespace (the format Kyverno and Policy Reporter read), and posts one Event when a workload shows a
finding it did not have in the previous report — once, not once per cycle, and across restarts, since the
previous state is read back from the report itself. Only the replica that holds the Lease audits; every
replica keeps serving admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .evaluate import Finding
from .facts import NotAWorkload, workload_from_object
from .kube import KubeClient, KubeError
from .owners import Owner, controller_ref, top_owner
from .review import Reviewer
from .store import selector_matches

REPORT_NAME: Final = "ddcompat"
POLICIES: Final = "/apis/ddcompat.io/v1alpha1/compatibilitypolicies"
REPORTS: Final = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports"
EVENT_REASON: Final = "DDCompatNewFinding"
logger = logging.getLogger("ddcompat.audit")


def build_report(
    namespace: str, judged: Mapping[Owner, tuple[str, tuple[Finding, ...]]], now: datetime.datetime
) -> dict[str, Any]:
    """One PolicyReport for a namespace: a result per finding, a summary over workloads."""
    results = []
    summary = {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}
    for owner, (decision, findings) in sorted(judged.items(), key=lambda kv: (kv[0].kind, kv[0].name)):
        summary["pass" if decision == "allow" else "fail" if decision == "deny" else "warn"] += 1
        for f in findings:
            results.append(
                {
                    "source": "ddcompat",
                    "policy": "ddtrace-compatibility",
                    "rule": f.code,
                    "result": "fail" if f.severity == "deny" else "warn",
                    "severity": "high" if f.severity == "deny" else "medium",
                    "message": f"{f.container}: {f.message}",
                    "properties": {
                        "container": f.container,
                        **({"capability": f.capability} if f.capability else {}),
                    },
                    "resources": [owner.ref()],
                    "timestamp": {"seconds": int(now.timestamp()), "nanos": 0},
                }
            )
    return {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "ddcompat"},
        },
        "scope": {"kind": "Namespace", "name": namespace},
        "summary": summary,
        "results": results,
    }


def _known(report: Mapping[str, Any] | None) -> set[tuple[str, str, str]]:
    """(kind, name, code) of every result in a report: what was already said."""
    out = set()
    for result in (report or {}).get("results") or []:
        for res in result.get("resources") or []:
            out.add((res.get("kind", ""), res.get("name", ""), result.get("rule", "")))
    return out


class Auditor:
    def __init__(
        self, reviewer: Reviewer, kube: KubeClient, *, interval: float = 600.0, gauge: Any = None
    ) -> None:
        self.reviewer, self.kube, self.interval, self.gauge = reviewer, kube, interval, gauge
        self.wake = asyncio.Event()  # set when the policy or a CompatibilityPolicy changes: audit at once

    async def run_once(self) -> dict[str, dict[str, Any]]:
        pods = await self.kube.list("/api/v1/pods")
        owners: dict[tuple[str, str, str], Mapping[str, Any]] = {}
        for path, kind in (("/apis/apps/v1/replicasets", "ReplicaSet"), ("/apis/batch/v1/jobs", "Job")):
            for obj in await self.kube.list(path):
                meta = obj.get("metadata") or {}
                owners[(kind, meta.get("namespace", ""), meta.get("name", ""))] = obj
        by_namespace: dict[str, dict[Owner, tuple[str, tuple[Finding, ...]]]] = {}

        async def listed(kind: str, ns: str, name: str) -> Mapping[str, Any] | None:
            return owners.get((kind, ns, name))

        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            meta = pod.get("metadata") or {}
            start = Owner("v1", "Pod", meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))
            owner = await top_owner(start, controller_ref(meta), listed)
            judged = by_namespace.setdefault(owner.namespace, {})
            if owner in judged:
                continue  # one verdict per workload, from its first running pod
            try:
                workload = workload_from_object({**pod, "kind": "Pod", "apiVersion": "v1"})
            except NotAWorkload:
                continue
            if self.reviewer.store.is_exempt(workload.namespace):
                continue
            judgement = await self.reviewer.judge(workload)
            if judgement.effective.mode == "off":
                continue
            decision = (
                "deny"
                if any(f.severity == "deny" for f in judgement.findings)
                else "warn"
                if judgement.findings
                else "allow"
            )
            judged[owner] = (decision, judgement.findings)
        now = datetime.datetime.now(datetime.UTC)
        reports = {}
        namespaces = set(by_namespace) | set(await self._namespaces_with_reports())
        for ns in sorted(namespaces):
            collection = REPORTS.format(ns=ns)
            previous = await self.kube.get(f"{collection}/{REPORT_NAME}")
            judged = by_namespace.get(ns, {})
            if not judged:
                await self.kube.delete(f"{collection}/{REPORT_NAME}")
                continue
            report = build_report(ns, judged, now)
            await self.kube.upsert(collection, report)
            reports[ns] = report
            await self._events_for_new_findings(previous, judged)
        await self._policy_status(by_namespace, now)
        if self.gauge is not None:
            counts = {"allow": 0, "warn": 0, "deny": 0}
            for judged in by_namespace.values():
                for decision, _ in judged.values():
                    counts[decision] += 1
            for decision, count in counts.items():
                self.gauge.labels(decision).set(count)
        return reports

    async def _policy_status(
        self,
        by_namespace: Mapping[str, Mapping[Owner, tuple[str, tuple[Finding, ...]]]],
        now: datetime.datetime,
    ) -> None:
        """A summary on each CompatibilityPolicy: workloads in the namespaces it selects, by decision."""
        store = self.reviewer.store
        for name, spec in list(store.policies.items()):
            counts = {"allow": 0, "warn": 0, "deny": 0}
            for ns, judged in by_namespace.items():
                if selector_matches(spec.selector, store.namespace_labels.get(ns, {})):
                    for decision, _ in judged.values():
                        counts[decision] += 1
            status = {
                "status": {
                    "summary": {
                        **counts,
                        "lastAudit": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "policyVersion": store.policy.version,
                    }
                }
            }
            try:
                await self.kube.request(
                    "PATCH", f"{POLICIES}/{name}/status", status, content_type="application/merge-patch+json"
                )
            except KubeError as exc:
                logger.warning("status of CompatibilityPolicy %s not updated: %s", name, exc)

    async def _namespaces_with_reports(self) -> Iterable[str]:
        try:
            items = await self.kube.list("/apis/wgpolicyk8s.io/v1alpha2/policyreports")
        except KubeError:
            return []
        return [i["metadata"]["namespace"] for i in items if i.get("metadata", {}).get("name") == REPORT_NAME]

    async def _events_for_new_findings(
        self, previous: Mapping[str, Any] | None, judged: Mapping[Owner, tuple[str, tuple[Finding, ...]]]
    ) -> None:
        known = _known(previous)
        for owner, (_, findings) in judged.items():
            new = [f for f in findings if (owner.kind, owner.name, f.code) not in known]
            if not new:
                continue
            codes = ", ".join(sorted({f.code for f in new}))
            message = f"ddcompat audit: new finding(s) {codes}: {new[0].container}: {new[0].message}"
            try:
                await self.kube.post_event(owner.ref(), EVENT_REASON, message)
            except KubeError as exc:
                logger.warning("event for %s/%s not posted: %s", owner.namespace, owner.name, exc)

    async def run(self, is_leader: Any = None) -> None:
        """Audit every `interval` seconds, or at once when `wake` is set; only while `is_leader()` says so."""
        while True:
            started = time.monotonic()
            try:
                if is_leader is None or await is_leader():
                    await self.run_once()
            except (KubeError, OSError, TimeoutError) as exc:
                logger.warning("audit cycle failed: %s", exc)
            except Exception:
                logger.exception("audit cycle failed")
            self.wake.clear()
            remaining = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=remaining)

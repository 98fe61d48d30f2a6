"""Events where a person looks: on the workload a denied or warned object belongs to.

`kubectl describe deployment web` should say why its pods carry warnings, so a Pod's finding is posted on its
top-level owner (Pod → ReplicaSet → Deployment, Job → CronJob, followed through the API). The request path
only enqueues (never waits on the API); a background task posts. Deduplicated per (workload, codes) for
`dedupe_seconds`, rate-limited, bounded (dropped and counted past `queue_size`), never for dry-run requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .kube import KubeClient, KubeError
from .owners import Owner, top_owner
from .review import Outcome

REASONS: Final = {"deny": "DDCompatDenied", "warn": "DDCompatWarning"}
OWNER_PATHS: Final = {
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
}
API_VERSIONS: Final = {
    "Pod": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}
logger = logging.getLogger("ddcompat.events")


@dataclass(frozen=True)
class _Pending:
    namespace: str
    kind: str
    name: str
    owner_refs: tuple[tuple[str, str, str], ...]  # (apiVersion, kind, name) of controller owners
    reason: str
    codes: str
    message: str


class EventSink:
    def __init__(
        self,
        kube: KubeClient,
        *,
        dedupe_seconds: float = 600.0,
        per_second: float = 5.0,
        queue_size: int = 1000,
        dropped: Any = None,
    ) -> None:
        self.kube = kube
        self.dedupe_seconds, self.per_second = dedupe_seconds, per_second
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self.dropped = dropped  # a prometheus Counter, optional
        self._seen: dict[tuple[str, str, str, str], float] = {}

    def offer(self, outcome: Outcome) -> None:
        """Called on the request path: O(1), never blocks, never raises."""
        if outcome.dry_run or outcome.decision not in REASONS or outcome.workload is None:
            return
        workload = outcome.workload
        first = outcome.findings[0] if outcome.findings else None
        message = f"{first.code} {first.container}: {first.message}" if first else outcome.decision
        if len(outcome.findings) > 1:
            message += f" (+{len(outcome.findings) - 1} more: {', '.join(outcome.codes)})"
        pending = _Pending(
            outcome.namespace or workload.namespace,
            workload.kind,
            outcome.name or workload.name,
            workload.owner_refs,
            REASONS[outcome.decision],
            ",".join(outcome.codes),
            message,
        )
        try:
            self.queue.put_nowait(pending)
        except asyncio.QueueFull:
            if self.dropped is not None:
                self.dropped.inc()

    async def run(self) -> None:
        interval = 1.0 / self.per_second if self.per_second > 0 else 0.0
        while True:
            pending = await self.queue.get()
            try:
                if await self._post(pending):
                    await asyncio.sleep(interval)
            except (KubeError, OSError, TimeoutError) as exc:
                logger.warning(
                    "event for %s %s/%s not posted: %s", pending.kind, pending.namespace, pending.name, exc
                )

    async def _post(self, p: _Pending) -> bool:
        kind, name, api_version = await self._top_owner(p)
        key = (p.namespace, kind, name, p.codes)
        now = time.monotonic()
        if self._seen.get(key, 0.0) > now:
            return False
        self._seen[key] = now + self.dedupe_seconds
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        involved = {"apiVersion": api_version, "kind": kind, "name": name, "namespace": p.namespace}
        await self.kube.post_event(involved, p.reason, p.message)
        return True

    async def _top_owner(self, p: _Pending) -> tuple[str, str, str]:
        async def read(kind: str, ns: str, name: str) -> Mapping[str, Any] | None:
            path = OWNER_PATHS.get(kind)
            if path is None:
                return None
            with contextlib.suppress(KubeError):
                return await self.kube.get(path.format(ns=ns, name=name))
            return None

        start = Owner(API_VERSIONS.get(p.kind, "v1"), p.kind, p.namespace, p.name)
        first = (
            {"apiVersion": p.owner_refs[0][0], "kind": p.owner_refs[0][1], "name": p.owner_refs[0][2]}
            if p.owner_refs
            else None
        )
        owner = await top_owner(start, first, read, depth=3)
        return owner.kind, owner.name, owner.api_version

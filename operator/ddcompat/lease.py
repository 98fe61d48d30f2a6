"""One auditor at a time: a `coordination.k8s.io/v1` Lease, so every replica keeps serving admission (no kopf
peering, kopf #820) while only the holder writes PolicyReports and Events."""

from __future__ import annotations

import datetime
from typing import Any

from .kube import KubeClient, KubeError


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self, kube: KubeClient, namespace: str, name: str, identity: str, duration: int = 60
    ) -> None:
        self.kube, self.namespace, self.name, self.identity, self.duration = (
            kube,
            namespace,
            name,
            identity,
            duration,
        )
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    async def __call__(self) -> bool:
        """Acquire or renew; False when another live holder has it (or the API says no)."""
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "renewTime": _stamp(now),
        }
        try:
            lease = await self.kube.get(f"{self.collection}/{self.name}")
            if lease is None:
                await self.kube.request(
                    "POST",
                    self.collection,
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace},
                        "spec": {**spec, "acquireTime": _stamp(now)},
                    },
                )
                return True
            current: dict[str, Any] = lease.get("spec") or {}
            holder = current.get("holderIdentity")
            if holder not in (None, "", self.identity) and not self._expired(current, now):
                return False
            patch: dict[str, Any] = {
                "metadata": {"resourceVersion": lease["metadata"].get("resourceVersion")},
                "spec": spec if holder == self.identity else {**spec, "acquireTime": _stamp(now)},
            }
            await self.kube.request(
                "PATCH", f"{self.collection}/{self.name}", patch, content_type="application/merge-patch+json"
            )
            return True
        except KubeError:
            return False  # a conflict means another replica renewed first

    def _expired(self, spec: dict[str, Any], now: datetime.datetime) -> bool:
        renew = spec.get("renewTime")
        if not isinstance(renew, str):
            return True
        try:
            renewed = datetime.datetime.fromisoformat(renew.replace("Z", "+00:00"))
        except ValueError:
            return True
        return now > renewed + datetime.timedelta(
            seconds=int(spec.get("leaseDurationSeconds") or self.duration)
        )

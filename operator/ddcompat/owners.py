"""The workload a person looks at: follow controller ownerReferences up (Pod → ReplicaSet → Deployment,
Job → CronJob). The audit follows them through objects it listed; admission Events through API reads —
one walk, two ways to fetch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

# (kind, namespace, name) → the object, or None when it is not known (the walk stops there)
Fetch = Callable[[str, str, str], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class Owner:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    def ref(self) -> dict[str, str]:
        out = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.uid:
            out["uid"] = self.uid
        return out


def controller_ref(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in metadata.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


async def top_owner(start: Owner, ref: Mapping[str, Any] | None, fetch: Fetch, depth: int = 4) -> Owner:
    """From `start` (whose controller reference is `ref`) up to the last controller we can see."""
    current = start
    for _ in range(depth):
        if ref is None:
            break
        current = Owner(
            str(ref.get("apiVersion", "")),
            str(ref.get("kind", "")),
            start.namespace,
            str(ref.get("name", "")),
            str(ref.get("uid", "")),
        )
        parent = await fetch(current.kind, current.namespace, current.name)
        if parent is None:
            break
        ref = controller_ref(parent.get("metadata") or {})
    return current

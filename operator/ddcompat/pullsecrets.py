"""Registry credentials of a pod, read the way the kubelet would: the pod's ``imagePullSecrets`` and its
ServiceAccount's, only Secrets of type ``kubernetes.io/dockerconfigjson``, only in the pod's namespace.

Secrets are cached for a minute (rotation shows up within it) and never logged; the identity returned names
the namespace, the secrets and a hash of their content, so caches keyed by it never mix namespaces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any, Final

from .facts import Workload
from .kube import KubeClient
from .registry import Credentials, credentials_from_dockerconfig

DOCKERCONFIGJSON: Final = "kubernetes.io/dockerconfigjson"


class PullSecretReader:
    def __init__(self, kube: KubeClient, ttl: float = 60.0) -> None:
        self.kube, self.ttl = kube, ttl
        self._cache: dict[tuple[str, str, str], tuple[Any, float]] = {}

    async def _get(self, kind: str, namespace: str, name: str) -> Any:
        key = (kind, namespace, name)
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        value = await self.kube.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = (value, time.monotonic() + self.ttl)
        return value

    async def __call__(self, workload: Workload) -> tuple[str, Credentials | None]:
        ns = workload.namespace
        names = _names(workload.pod_spec.get("imagePullSecrets"))
        account = workload.pod_spec.get("serviceAccountName") or "default"
        sa = await self._get("serviceaccounts", ns, str(account))
        if isinstance(sa, Mapping):
            names += [n for n in _names(sa.get("imagePullSecrets")) if n not in names]
        if not names:
            return "", None
        auths: dict[str, Any] = {}
        digest = hashlib.sha256()
        used = []
        for name in names:
            secret = await self._get("secrets", ns, name)
            if not isinstance(secret, Mapping) or secret.get("type") != DOCKERCONFIGJSON:
                continue  # only registry credentials are read: never an Opaque secret's content
            raw = (secret.get("data") or {}).get(".dockerconfigjson")
            try:
                config = json.loads(base64.b64decode(raw)) if isinstance(raw, str) else {}
            except ValueError:
                continue
            for host, entry in (config.get("auths") or {}).items():
                auths.setdefault(host, entry)  # the first secret naming a registry wins, as in the kubelet
            digest.update(base64.b64decode(raw) if isinstance(raw, str) else b"")
            used.append(name)
        if not auths:
            return "", None
        return f"{ns}/{','.join(used)}#{digest.hexdigest()[:16]}", credentials_from_dockerconfig(
            {"auths": auths}
        )


def _names(refs: Any) -> list[str]:
    return [str(r["name"]) for r in refs or [] if isinstance(r, dict) and r.get("name")]

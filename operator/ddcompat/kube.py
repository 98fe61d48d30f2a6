"""A small async Kubernetes API client (aiohttp) for the operator's writes: PolicyReports, Events, a Lease.

kopf does the watching; this does the few writes kopf has no API for. It never blocks the event loop (the
`kubernetes` package's client is synchronous); it uses the credentials kopf logged in with.
"""

from __future__ import annotations

import datetime
import secrets
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class KubeClient:
    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        ca_path: str | None = None,
        insecure: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.ssl: ssl.SSLContext | bool
        if self.server.startswith("https"):
            self.ssl = ssl.create_default_context(cafile=ca_path) if not insecure else False
        else:
            self.ssl = False
        self._session = session

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        headers = {**self.headers, "Content-Type": content_type}
        async with self.session.request(
            method, self.server + path, json=body, headers=headers, ssl=self.ssl
        ) as resp:
            data = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status >= 400:
                message = data.get("message", "") if isinstance(data, Mapping) else ""
                raise KubeError(resp.status, message or resp.reason or "")
            return data

    async def list(self, path: str) -> list[dict[str, Any]]:
        data = await self.request("GET", path)
        return list(data.get("items") or []) if isinstance(data, Mapping) else []

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            data = await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(data) if isinstance(data, Mapping) else None

    async def upsert(self, collection: str, obj: dict[str, Any]) -> None:
        """Create the object, or merge-patch it when it exists (lists such as `results` are replaced)."""
        name = obj["metadata"]["name"]
        if await self.get(f"{collection}/{name}") is None:
            await self.request("POST", collection, obj)
            return
        await self.request("PATCH", f"{collection}/{name}", obj, content_type="application/merge-patch+json")

    async def delete(self, path: str) -> None:
        try:
            await self.request("DELETE", path)
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def post_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        component: str = "ddcompat",
        now: datetime.datetime | None = None,
    ) -> None:
        now = now or datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved.get('name', 'ddcompat')}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": dict(involved),
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        await self.request("POST", f"/api/v1/namespaces/{namespace}/events", event)

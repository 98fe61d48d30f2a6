"""`ddcompat serve` in cluster mode, a real kopf operator, against kmock's Kubernetes API emulator.

The operator runs as a subprocess with a kubeconfig pointing at kmock; the test changes cluster state over
HTTP like kubectl would, and watches verdicts change on the operator's own HTTPS /validate.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.test_utils
import pytest
from aiohttp import web

from conftest import make_pod
from ddcompat import certs
from server_helpers import ROOT, admission_review, free_port

DENIED = dict(ddtrace="2.20.0", python="3.12", capabilities="iast")
CRD = "ddcompat.io/v1alpha1/compatibilitypolicies"


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "kmock", "user": {"token": "test-token"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "kmock", "namespace": "default"},
                    }
                ],
            }
        )
    )
    return path


class NamespaceShim:
    """kmock 0.8 cannot parse ``/api/v1/namespaces`` (it reads ``namespaces`` as a namespace prefix), so this
    thin HTTP front serves the Namespace list/watch from a dict and forwards every other request to kmock."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.watchers: list[asyncio.Queue[dict[str, Any]]] = []
        self.version = 1
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    def put(self, name: str, labels: dict[str, str]) -> None:
        kind = "MODIFIED" if name in self.namespaces else "ADDED"
        self.version += 1
        obj = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": labels,
                "uid": f"uid-{name}",
                "resourceVersion": str(self.version),
            },
        }
        self.namespaces[name] = obj
        for queue in self.watchers:
            queue.put_nowait({"type": kind, "object": obj})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/api/v1/namespaces":
            if request.query.get("watch") in ("true", "1"):
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                await response.prepare(request)
                queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                self.watchers.append(queue)
                timeout = float(request.query.get("timeoutSeconds", "60"))
                try:
                    while True:
                        event = await asyncio.wait_for(queue.get(), timeout)
                        await response.write(json.dumps(event).encode() + b"\n")
                except TimeoutError:
                    pass
                finally:
                    self.watchers.remove(queue)
                return response
            return web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "NamespaceList",
                    "metadata": {"resourceVersion": str(self.version)},
                    "items": list(self.namespaces.values()),
                }
            )
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + str(request.rel_url),
                data=await request.read(),
                headers={
                    k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
                },
                timeout=aiohttp.ClientTimeout(total=None),
            ) as upstream,
        ):
            response = web.StreamResponse(
                status=upstream.status, headers={"Content-Type": upstream.headers.get("Content-Type", "")}
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            return response


async def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met in {timeout} s (last: {last!r})")


# kmock's server otherwise waits 60 s per open watch stream at teardown
@pytest.mark.kmock(server_cls=functools.partial(aiohttp.test_utils.RawTestServer, shutdown_timeout=0.5))
async def test_policy_and_namespace_label_flip_verdicts(kmock: Any, tmp_path: Path) -> None:
    verbs = {"get", "list", "watch", "create", "patch", "update", "delete"}
    kmock.resources["v1/namespaces"] = {"kind": "Namespace", "namespaced": False, "verbs": verbs}
    kmock.resources[CRD] = {"kind": "CompatibilityPolicy", "namespaced": False, "verbs": verbs}
    for resource in (
        "v1/pods",
        "apps/v1/replicasets",
        "batch/v1/jobs",
        "v1/events",
        "coordination.k8s.io/v1/leases",
        "wgpolicyk8s.io/v1alpha2/policyreports",
    ):
        kmock.resources[resource] = {"namespaced": True, "verbs": verbs}
    shim = NamespaceShim(str(kmock.url).rstrip("/"))
    runner = web.AppRunner(shim.app, shutdown_timeout=0.5)
    await runner.setup()
    shim_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", shim_port).start()
    api = f"http://127.0.0.1:{shim_port}"
    for ns in ("shop", "ddcompat-system"):
        shim.put(ns, {})
    api_gone = False
    async with aiohttp.ClientSession() as kube:
        paths = certs.generate(tmp_path / "tls", ["127.0.0.1"])
        port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", api)),
            "PYTHONUNBUFFERED": "1",
            "DDCOMPAT_WATCH_TIMEOUT": "2",
        }  # kmock holds a watch open until its timeout, even at teardown
        log = (tmp_path / "operator.log").open("w")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ddcompat.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--tls-cert",
            str(paths.cert),
            "--tls-key",
            str(paths.key),
            "--namespace",
            "ddcompat-system",
            "--now",
            "2026-11-24",
            "--audit-interval",
            "1",
            "--offline",
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        ssl_ctx = __import__("ssl").create_default_context(cafile=str(paths.ca))
        url = f"https://127.0.0.1:{port}"

        async def review(namespace: str = "shop") -> dict[str, Any]:
            async with kube.post(
                f"{url}/validate", ssl=ssl_ctx, json=admission_review(make_pod(**DENIED), namespace=namespace)
            ) as resp:
                assert resp.status == 200
                return dict((await resp.json())["response"])

        async def ready() -> bool:
            try:
                async with kube.get(f"{url}/readyz", ssl=ssl_ctx) as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        try:
            await wait_for(ready, 30)
            first = await review()
            assert first["allowed"] is True and first["auditAnnotations"]["mode"] == "warn"
            assert first["warnings"][0].startswith("[would deny]")

            # creating a CompatibilityPolicy flips the verdict
            async with kube.post(
                f"{api}/apis/{CRD}",
                json={
                    "apiVersion": "ddcompat.io/v1alpha1",
                    "kind": "CompatibilityPolicy",
                    "metadata": {"name": "shops-enforce"},
                    "spec": {"mode": "enforce", "namespaceSelector": {}},
                },
            ) as resp:
                assert resp.status < 300

            async def denied() -> bool:
                return (await review())["allowed"] is False

            await wait_for(denied)

            # editing it back to warn flips it again
            async with kube.patch(
                f"{api}/apis/{CRD}/shops-enforce",
                json={"spec": {"mode": "warn"}},
                headers={"Content-Type": "application/merge-patch+json"},
            ) as resp:
                assert resp.status < 300

            async def allowed() -> bool:
                return (await review())["allowed"] is True

            await wait_for(allowed)

            # a namespace label beats the policy
            shim.put("shop", {"ddcompat.io/mode": "enforce"})
            await wait_for(denied)
            assert (await review())["auditAnnotations"]["mode"] == "enforce"

            # the webhook's own namespace passes without evaluation
            own = await review("ddcompat-system")
            assert own["allowed"] is True and own["auditAnnotations"]["mode"] == "exempt"

            # the background audit (this replica holds the Lease) reports a running pod in a PolicyReport
            pod = make_pod(**DENIED)
            pod["metadata"].update({"name": "legacy", "uid": "uid-legacy"})
            pod["status"] = {"phase": "Running"}
            async with kube.post(f"{api}/api/v1/namespaces/shop/pods", json=pod) as resp:
                assert resp.status < 300
            report_url = f"{api}/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/ddcompat"

            async def reported() -> list[str]:
                async with kube.get(report_url) as r:
                    if r.status != 200:
                        return []
                    return sorted(res["rule"] for res in (await r.json()).get("results", []))

            assert await wait_for(reported) == ["CAPABILITY_UNSUPPORTED", "RELEASE_EOL"]
            async with kube.get(f"{api}/apis/coordination.k8s.io/v1/namespaces/ddcompat-system/leases") as r:
                assert (await r.json())["items"][0]["metadata"]["name"] == "ddcompat-auditor"

            # the Kubernetes API goes away mid-run: the webhook keeps answering from what it knows
            await runner.cleanup()
            api_gone = True
            for _ in range(3):
                gone = await review()
                assert gone["allowed"] is False and gone["auditAnnotations"]["mode"] == "enforce"
                await asyncio.sleep(0.5)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
            log.close()
            if not api_gone:
                await runner.cleanup()
            print((tmp_path / "operator.log").read_text()[-3000:])

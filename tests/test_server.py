"""The real HTTPS webhook (`ddcompat serve --local`) driven like kube-apiserver drives it."""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from conftest import make_pod
from ddcompat import certs
from server_helpers import Server, admission_review, running_server, serve_once

DENIED = dict(ddtrace="2.20.0", python="3.12", capabilities="iast")  # deny: IAST needs 2.21.0
WARNED = dict(ddtrace="4.2.0", python="3.12", capabilities="threat-detection", frameworks="tornado=6.4")
FINE = dict(ddtrace="4.16.0", python="3.12", capabilities="threat-detection")
KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]


@pytest.fixture(scope="module")
def enforce_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_server(
        tmp_path_factory.mktemp("enforce"), "--mode", "enforce", "--now", "2026-11-24"
    ) as server:
        yield server


async def post(
    server: Server, body: Any, *, raw: bytes | None = None, session: aiohttp.ClientSession | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.post(
            f"{server.url}/validate?timeout=5s",
            data=data,
            ssl=server.ssl_context(),
            headers={"Content-Type": "application/json"},
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
    finally:
        if own:
            await session.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_allow_warn_deny_for_every_kind(enforce_server: Server, kind: str) -> None:
    for spec, allowed, decision in ((DENIED, False, "deny"), (WARNED, True, "warn"), (FINE, True, "allow")):
        review = admission_review(make_pod(kind=kind, **spec))
        status, body = await post(enforce_server, review)
        response = body["response"]
        assert status == 200 and response["uid"] == review["request"]["uid"]
        assert response["allowed"] is allowed, (kind, decision, response)
        assert response["auditAnnotations"]["decision"] == decision
        assert response["auditAnnotations"]["mode"] == "enforce"
        if decision == "deny":
            assert response["status"]["code"] == 403
            assert "CAPABILITY_UNSUPPORTED web:" in response["status"]["message"]
        if decision == "warn":
            assert any("FRAMEWORK_UNSUPPORTED" in w for w in response["warnings"])
        if decision == "allow":
            assert "warnings" not in response and response["auditAnnotations"]["codes"] == ""


async def test_controller_pod_is_warned_not_denied_and_dry_run_same_verdict(enforce_server: Server) -> None:
    _, body = await post(enforce_server, admission_review(make_pod(owner=True, **DENIED)))
    assert body["response"]["allowed"] is True and body["response"]["warnings"][0].startswith("[would deny]")
    _, dry = await post(enforce_server, admission_review(make_pod(**DENIED), dry_run=True))
    assert dry["response"]["allowed"] is False and dry["response"]["auditAnnotations"]["decision"] == "deny"


async def test_update_judged_only_when_the_template_changes(enforce_server: Server) -> None:
    old = make_pod(kind="Deployment", **DENIED)
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    scaled["metadata"]["labels"] = {"team": "pay"}
    _, body = await post(enforce_server, admission_review(scaled, operation="UPDATE", old=old))
    assert body["response"]["allowed"] is True and "warnings" not in body["response"]
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/app:2"
    _, body = await post(enforce_server, admission_review(changed, operation="UPDATE", old=old))
    assert body["response"]["allowed"] is False


async def test_exempt_namespace_and_unknown_kind_and_delete(enforce_server: Server) -> None:
    pod = make_pod(**DENIED)
    _, body = await post(enforce_server, admission_review(pod, namespace="kube-system"))
    assert body["response"]["allowed"] is True and body["response"]["auditAnnotations"]["mode"] == "exempt"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "shop"}, "spec": {}}
    _, body = await post(enforce_server, admission_review(svc))
    assert body["response"]["allowed"] is True and body["response"]["auditAnnotations"]["decision"] == "allow"
    _, body = await post(enforce_server, admission_review(pod, operation="DELETE"))
    assert body["response"]["allowed"] is True


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {}}}
            ).encode(),
            "request.uid",
        ),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}
            ).encode(),
            "apiVersion",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "x", "operation": "CREATE", "kind": {"kind": "Pod", "version": "v1"}},
                }
            ).encode(),
            "request.object",
        ),
    ],
)
async def test_malformed_reviews_get_400_with_a_reason(
    enforce_server: Server, raw: bytes, reason: str
) -> None:
    status, body = await post(enforce_server, None, raw=raw)
    assert status == 400 and reason in body["error"]


async def test_two_mib_object_is_answered_and_oversized_is_refused(enforce_server: Server) -> None:
    pod = make_pod(**DENIED)
    pod["metadata"]["annotations"]["padding"] = "x" * (2 * 1024 * 1024)
    status, body = await post(enforce_server, admission_review(pod))
    assert status == 200 and body["response"]["allowed"] is False
    pod["metadata"]["annotations"]["padding"] = "x" * (4 * 1024 * 1024)
    status, _ = await post(enforce_server, admission_review(pod))
    assert status == 413


async def test_200_concurrent_reviews(enforce_server: Server) -> None:
    reviews = [
        admission_review(make_pod(kind=KINDS[i % 7], **(DENIED if i % 2 else FINE))) for i in range(200)
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        results = await asyncio.gather(*(post(enforce_server, r, session=session) for r in reviews))
    for i, (review, (status, body)) in enumerate(zip(reviews, results, strict=True)):
        assert status == 200 and body["response"]["uid"] == review["request"]["uid"]
        assert body["response"]["allowed"] is (i % 2 == 0)


async def test_health_ready_and_metrics(enforce_server: Server) -> None:
    await post(enforce_server, admission_review(make_pod(**DENIED)))
    async with aiohttp.ClientSession() as session:
        ctx = enforce_server.ssl_context()
        for path in ("/healthz", "/readyz"):
            async with session.get(enforce_server.url + path, ssl=ctx) as resp:
                assert resp.status == 200
        async with session.get(enforce_server.url + "/metrics", ssl=ctx) as resp:
            text = await resp.text()
    assert (
        'ddcompat_admission_requests_total{decision="deny",kind="Pod",mode="enforce",operation="CREATE"}'
        in text
    )
    assert "ddcompat_admission_duration_seconds_bucket" in text
    assert 'ddcompat_findings_total{code="CAPABILITY_UNSUPPORTED",severity="deny"}' in text
    assert 'ddcompat_policy_info{version="2026.11.24"} 1.0' in text


async def test_tls_below_1_2_is_refused(enforce_server: Server) -> None:
    ctx = enforce_server.ssl_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as session, session.get(enforce_server.url + "/healthz", ssl=ctx):
            pass


def test_decision_log_line_is_one_json_object_per_request(tmp_path: Path) -> None:
    with running_server(tmp_path, "--mode", "enforce") as server:
        review = admission_review(make_pod(**DENIED))
        asyncio.run(post(server, review))
        server.proc.send_signal(signal.SIGTERM)
        out = server.wait_output()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    decisions = [line for line in lines if line.get("msg") == "admission"]
    assert len(decisions) == 1
    assert decisions[0]["uid"] == review["request"]["uid"] and decisions[0]["decision"] == "deny"
    assert decisions[0]["codes"] == ["CAPABILITY_UNSUPPORTED", "RELEASE_EOL"] and decisions[0]["user"]


def test_cert_rotation_under_load_fails_no_request(tmp_path: Path) -> None:
    with running_server(tmp_path, env={"DDCOMPAT_RELOAD_INTERVAL": "0.2"}) as server:
        new_dir = tmp_path / "rotated"
        new = certs.generate(new_dir, ["127.0.0.1", "localhost"])

        async def load() -> tuple[int, int]:
            ok = failed = 0
            ctx = server.ssl_context(new.ca)  # the caBundle carries old and new CA during a rotation
            end = time.monotonic() + 3.0
            rotated = False
            while time.monotonic() < end:
                if not rotated and time.monotonic() > end - 2.0:
                    for name in ("tls.key", "tls.crt"):
                        (server.cert_dir / name).write_bytes((new_dir / name).read_bytes())
                    rotated = True
                async with aiohttp.ClientSession() as session:  # a new connection: a new handshake
                    try:
                        async with session.post(
                            f"{server.url}/validate", ssl=ctx, json=admission_review(make_pod(**FINE))
                        ) as resp:
                            ok += resp.status == 200
                    except aiohttp.ClientError:
                        failed += 1
            return ok, failed

        ok, failed = asyncio.run(load())
        # the new certificate serves now: a client trusting only the new CA gets through, only the old fails
        only_new = ssl.create_default_context(cafile=str(new.ca))
        with (
            socket.create_connection(("127.0.0.1", server.port)) as raw,
            only_new.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with (
            pytest.raises(ssl.SSLCertVerificationError),
            socket.create_connection(("127.0.0.1", server.port)) as raw,
        ):
            server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
    assert failed == 0 and ok > 20


def test_sigterm_drains_requests_in_flight(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:

        async def burst() -> list[int]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
                # open 32 keep-alive connections first, as kube-apiserver holds them
                await asyncio.gather(
                    *(post(server, admission_review(make_pod(**FINE)), session=session) for _ in range(32))
                )
                tasks = [
                    asyncio.create_task(post(server, admission_review(make_pod(**DENIED)), session=session))
                    for _ in range(300)
                ]
                await asyncio.sleep(0.01)
                server.proc.send_signal(signal.SIGTERM)
                results = await asyncio.gather(*tasks, return_exceptions=True)
            return [r[0] if isinstance(r, tuple) else -1 for r in results]

        started = time.monotonic()
        statuses = asyncio.run(burst())
        server.proc.wait(10)
        assert time.monotonic() - started < 10
    assert statuses == [200] * 300  # every request sent before and during the drain is answered
    assert server.proc.returncode == 0


def test_expired_certificate_stops_start_up_with_a_reason(tmp_path: Path) -> None:
    import datetime

    old = certs.generate(
        tmp_path / "old",
        ["127.0.0.1"],
        days=1,
        now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30),
    )
    proc = serve_once("--tls-cert", str(old.cert), "--tls-key", str(old.key))
    assert proc.returncode == 2 and "expired" in proc.stderr


def test_broken_policy_override_stops_start_up_and_reload_keeps_last_good(tmp_path: Path) -> None:
    override = tmp_path / "policy"
    override.mkdir()
    (override / "lines.yaml").write_text("version: 'bad'\nrelease_lines: 7\n")
    proc = serve_once("--policy-dir", str(override))
    assert proc.returncode == 2 and "lines.yaml" in proc.stderr and "release_lines" in proc.stderr

    (override / "lines.yaml").write_text("version: 'acme-1'\ninjection: {init_image: x, default_tag: v3}\n")
    with running_server(
        tmp_path, "--policy-dir", str(override), "--mode", "enforce", env={"DDCOMPAT_RELOAD_INTERVAL": "0.2"}
    ) as server:

        async def under_load() -> list[tuple[int, Any]]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
                tasks = []
                for i in range(400):
                    if i == 100:  # the policy file is replaced with garbage while requests flow
                        (override / "lines.yaml").write_text("version: [garbage\n")
                    tasks.append(
                        asyncio.create_task(
                            post(server, admission_review(make_pod(**DENIED)), session=session)
                        )
                    )
                    await asyncio.sleep(0.005)
                return await asyncio.gather(*tasks)

        results = asyncio.run(under_load())
        time.sleep(0.5)
        assert all(status == 200 and body["response"]["allowed"] is False for status, body in results)
        assert {body["response"]["auditAnnotations"]["policy-version"] for _, body in results} == {"acme-1"}

        async def metrics() -> str:
            async with (
                aiohttp.ClientSession() as s,
                s.get(server.url + "/metrics", ssl=server.ssl_context()) as r,
            ):
                return await r.text()

        assert "ddcompat_policy_reload_failures_total 1.0" in asyncio.run(metrics())

"""Image metadata from a real registry (Debian's docker-registry on loopback): versions with no annotations,
indexes and platforms, digests verified, auth, and the budget that keeps admission fast when it misbehaves."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from conftest import make_pod
from ddcompat import certs
from ddcompat.facts import workload_from_object
from ddcompat.registry import ImageLookup, RegistryClient, credentials_from_dockerconfig, make_lookup
from registry_helpers import Registry, running_registry
from server_helpers import ROOT, free_port

PY314_DDTRACE_2 = {
    "env": ["PATH=/usr/local/bin", "PYTHON_VERSION=3.14.1"],
    "labels": {"com.datadoghq.ddtrace.version": "2.20.0"},
}


def plain_pod(
    image: str, *, env: dict[str, str] | None = None, arch: str | None = None, **kw: Any
) -> dict[str, Any]:
    pod = make_pod(env=env, node_selector={"kubernetes.io/arch": arch} if arch else None, **kw)
    pod["spec"]["containers"][0]["image"] = image
    return pod


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_registry(tmp_path_factory.mktemp("registry")) as (proc, port):
        reg = Registry(f"127.0.0.1:{port}", "http")
        reg.push_image("shop/web", "1.0", **PY314_DDTRACE_2)
        # the same two-platform image as an OCI index and as a Docker manifest list
        for repo, tag, docker in (("shop/multi", "oci", False), ("shop/dmulti", "list", True)):
            entries = []
            for arch, variant, python in (("amd64", None, "3.12.1"), ("arm64", "v8", "3.8.10")):
                pushed = reg.push_image(
                    repo,
                    None,
                    env=[f"PYTHON_VERSION={python}"],
                    labels={"com.datadoghq.ddtrace.version": "4.1.0"},
                    arch=arch,
                    docker=docker,
                )
                entries.append((arch, variant, pushed))
            reg.push_index(repo, tag, entries, docker=docker)
        reg.push_image("shop/sidecar", "1", env=["PATH=/bin"])
        yield reg, proc


def check(host: str, pod: dict[str, Any], *extra: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddcompat.cli",
            "check",
            "-o",
            "json",
            "--now",
            "2026-11-24",
            "--insecure-registry",
            host,
            *extra,
            "-",
        ],
        input=json.dumps(pod),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)["results"][0], time.monotonic() - started


def by_code(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in result["findings"]}


def test_versions_come_from_the_image_with_no_annotations(registry: Any) -> None:
    reg, _ = registry
    result, _ = check(reg.host, plain_pod(f"{reg.host}/shop/web:1.0", env={"DD_IAST_ENABLED": "true"}))
    found = by_code(result)
    assert result["decision"] == "deny"
    assert set(found) == {"CAPABILITY_UNSUPPORTED", "PYTHON_UNSUPPORTED", "RELEASE_EOL"}
    assert "label com.datadoghq.ddtrace.version" in found["CAPABILITY_UNSUPPORTED"]["message"]
    assert "env PYTHON_VERSION" in found["PYTHON_UNSUPPORTED"]["message"]


def test_image_label_alone_is_a_tracer_signal(registry: Any) -> None:
    reg, _ = registry
    result, _ = check(reg.host, plain_pod(f"{reg.host}/shop/web:1.0"))
    assert set(by_code(result)) == {"PYTHON_UNSUPPORTED", "RELEASE_EOL"}


@pytest.mark.parametrize("tag", ["shop/multi:oci", "shop/dmulti:list"])
def test_index_platform_follows_the_pods_arch(registry: Any, tag: str) -> None:
    reg, _ = registry
    image = f"{reg.host}/{tag}"
    arm, _ = check(reg.host, plain_pod(image, arch="arm64"))
    assert "PYTHON_UNSUPPORTED" in by_code(arm) and "3.8" in by_code(arm)["PYTHON_UNSUPPORTED"]["message"]
    default, _ = check(reg.host, plain_pod(image))  # no arch: the configured default (amd64) entry
    assert default["decision"] == "allow" and default["findings"] == []


def test_annotations_beat_image_metadata(registry: Any) -> None:
    reg, _ = registry
    result, _ = check(reg.host, plain_pod(f"{reg.host}/shop/web:1.0", ddtrace="4.2.0", python="3.12"))
    assert result["findings"] == []


def test_offline_reads_no_image(registry: Any) -> None:
    reg, _ = registry
    result, _ = check(
        reg.host, plain_pod(f"{reg.host}/shop/web:1.0", env={"DD_IAST_ENABLED": "true"}), "--offline"
    )
    assert set(by_code(result)) == {"VERSION_UNKNOWN"}


def test_registry_down_fails_open_fast_and_sidecars_stay_quiet(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens here
    pod = plain_pod(
        f"{host}/shop/web:1.0",
        env={"DD_APPSEC_ENABLED": "true"},
        extra_containers=[{"name": "envoy", "image": f"{host}/envoy:1"}],
    )
    result, elapsed = check(host, pod)
    found = by_code(result)
    assert result["decision"] == "warn" and found["IMAGE_METADATA_UNAVAILABLE"]["container"] == "web"
    assert {f["container"] for f in result["findings"]} == {"web"}
    assert elapsed < 8


# --- misbehaving registries, in process ---------------------------------------------------------------------


@pytest.fixture
async def proxy(registry: Any) -> AsyncIterator[Any]:
    """A proxy in front of the registry whose behaviour a test sets: pass, tamper, stall."""
    reg, _ = registry
    state = {"mode": "pass"}

    async def handle(request: web.Request) -> web.StreamResponse:
        if state["mode"] == "stall":
            await asyncio.sleep(30)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                f"http://{reg.host}{request.rel_url}",
                headers={
                    k: v for k, v in request.headers.items() if k.lower() in ("accept", "authorization")
                },
                allow_redirects=False,
            ) as upstream,
        ):
            body = await upstream.read()
            if state["mode"] == "tamper" and b"PYTHON_VERSION" in body:
                body = body.replace(b"3.14.1", b"3.11.1")  # same size, different bytes
            headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() in ("content-type", "docker-content-digest", "location")
            }
            return web.Response(status=upstream.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"127.0.0.1:{port}", state
    await runner.cleanup()


async def lookup_web(lookup: ImageLookup, host: str, **kw: Any) -> Any:
    pod = plain_pod(f"{host}/shop/web:1.0", **kw)
    image = pod["spec"]["containers"][0]["image"]
    return (await lookup(workload_from_object(pod), [image]))[image]


async def test_tampered_config_is_not_trusted(proxy: Any) -> None:
    host, state = proxy
    state["mode"] = "tamper"
    lookup = make_lookup(insecure=[host], budget=2.0)
    facts = await lookup_web(lookup, host)
    await lookup.close()
    assert facts.python is None and facts.unavailable and "not trusted" in facts.unavailable


async def test_stalled_registry_the_budget_holds(proxy: Any) -> None:
    host, state = proxy
    state["mode"] = "stall"
    lookup = make_lookup(insecure=[host], budget=0.5)
    started = time.monotonic()
    facts = await lookup_web(lookup, host)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 and facts.unavailable and "within 0.5 s" in facts.unavailable
    # other requests don't wait on it: a second lookup joins the one in flight, within the budget again
    started = time.monotonic()
    await lookup_web(lookup, host)
    assert time.monotonic() - started < 1.0
    await lookup.close()


async def test_warm_cache_answers_without_the_registry(registry: Any, proxy: Any) -> None:
    host, state = proxy
    lookup = make_lookup(insecure=[host], budget=2.0)
    cold = await lookup_web(lookup, host)
    assert cold.ddtrace is not None and str(cold.ddtrace.value) == "2.20.0"
    state["mode"] = "stall"  # the registry is gone as far as we can tell; the cache still answers
    started = time.perf_counter()
    warm = await lookup_web(lookup, host)
    assert time.perf_counter() - started < 0.05 and warm == cold
    assert lookup.stats.hits == 1 and lookup.stats.misses == 1
    await lookup.close()


async def test_htpasswd_tls_registry_with_a_pull_secret(tmp_path: Path) -> None:
    tls = certs.generate(tmp_path / "tls", ["127.0.0.1"])
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"puller:{bcrypt.hashpw(b's3cret', bcrypt.gensalt(rounds=4)).decode()}\n")
    with running_registry(tmp_path, htpasswd=htpasswd, tls=(tls.cert, tls.key)) as (_, port):
        host = f"127.0.0.1:{port}"
        reg = Registry(host, "https", auth=("puller", "s3cret"), cafile=tls.ca)
        await asyncio.to_thread(reg.push_image, "team/api", "2", **PY314_DDTRACE_2)
        secret = {"auths": {host: {"auth": base64.b64encode(b"puller:s3cret").decode()}}}
        lookup = make_lookup(
            budget=3.0, ca_bundle=str(tls.ca), credentials=credentials_from_dockerconfig(secret)
        )
        pod = plain_pod(f"{host}/team/api:2")
        facts = (await lookup(workload_from_object(pod), [f"{host}/team/api:2"]))[f"{host}/team/api:2"]
        await lookup.close()
        assert facts.python is not None and str(facts.python.value) == "3.14.1"
        anonymous = make_lookup(budget=3.0, ca_bundle=str(tls.ca))
        denied = (await anonymous(workload_from_object(pod), [f"{host}/team/api:2"]))[f"{host}/team/api:2"]
        await anonymous.close()
        assert denied.unavailable and "credentials" in denied.unavailable
        untrusted = make_lookup(budget=3.0)  # system CAs only: our test CA is not trusted, TLS is verified
        refused = (await untrusted(workload_from_object(pod), [f"{host}/team/api:2"]))[f"{host}/team/api:2"]
        await untrusted.close()
        assert refused.unavailable is not None


async def test_bearer_token_flow(registry: Any) -> None:
    """A registry that challenges with Bearer: the client fetches a token (Basic creds) and retries."""
    reg, _ = registry
    seen: dict[str, Any] = {}

    async def token(request: web.Request) -> web.Response:
        seen["token_auth"] = request.headers.get("Authorization")
        seen["scope"] = request.query.get("scope")
        return web.json_response({"token": "t0k3n", "expires_in": 300})

    async def storage(request: web.Request) -> web.StreamResponse:
        """Blob storage on another host (ECR → S3): it must never see the registry token."""
        seen.setdefault("storage_auth", []).append(request.headers.get("Authorization"))
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://{reg.host}/v2/{request.match_info['tail']}") as up,
        ):
            return web.Response(body=await up.read())

    async def api(request: web.Request) -> web.StreamResponse:
        if "/blobs/" in request.path and request.headers.get("Authorization") == "Bearer t0k3n":
            tail = request.path.removeprefix("/v2/")
            raise web.HTTPTemporaryRedirect(f"http://localhost:{port}/storage/{tail}")
        if request.headers.get("Authorization") != "Bearer t0k3n":
            return web.Response(
                status=401,
                headers={
                    "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token",service="test",scope="repository:shop/web:pull"'
                },
            )
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                f"http://{reg.host}{request.rel_url}",
                headers={"Accept": request.headers.get("Accept", "")},
            ) as up,
        ):
            body = await up.read()
            hdrs = {
                k: v for k, v in up.headers.items() if k.lower() in ("content-type", "docker-content-digest")
            }
            return web.Response(status=up.status, body=body, headers=hdrs)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/storage/{tail:.*}", storage)
    app.router.add_route("*", "/v2/{tail:.*}", api)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        host = f"127.0.0.1:{port}"
        creds = credentials_from_dockerconfig({"auths": {host: {"username": "u", "password": "p"}}})
        async with aiohttp.ClientSession() as session:
            client = RegistryClient(session, insecure=[host], credentials=creds)
            from ddcompat.registry import parse_reference

            meta = await client.metadata(parse_reference(f"{host}/shop/web:1.0"), "amd64")
        assert meta.env["PYTHON_VERSION"] == "3.14.1"
        assert seen["scope"] == "repository:shop/web:pull"
        assert seen["token_auth"] == "Basic " + base64.b64encode(b"u:p").decode()
        assert seen["storage_auth"] == [None]  # the config blob came through the redirect, without our token
    finally:
        await runner.cleanup()


def test_stalled_registry_does_not_hold_up_other_admissions(tmp_path: Path) -> None:
    """A registry that accepts connections and never answers: lookups fail open at the budget, and reviews
    that need no image facts are answered meanwhile without waiting on it."""
    from server_helpers import running_server

    async def scenario() -> None:
        stalled: list[asyncio.StreamWriter] = []

        async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stalled.append(writer)  # hold the connection open, say nothing

        black_hole = await asyncio.start_server(accept, "127.0.0.1", 0)
        host = f"127.0.0.1:{black_hole.sockets[0].getsockname()[1]}"
        with running_server(
            tmp_path, "--mode", "enforce", "--insecure-registry", host, "--registry-budget", "1"
        ) as server:
            ctx = server.ssl_context()
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

                async def timed(pod: dict[str, Any]) -> tuple[float, dict[str, Any]]:
                    from server_helpers import admission_review

                    started = time.monotonic()
                    async with session.post(
                        f"{server.url}/validate", json=admission_review(pod), ssl=ctx
                    ) as r:
                        body = await r.json()
                    return time.monotonic() - started, body["response"]

                slow = [
                    plain_pod(f"{host}/shop/img{i}:1", env={"DD_APPSEC_ENABLED": "true"}) for i in range(8)
                ]
                fast = [plain_pod(f"{host}/shop/web:1", ddtrace="4.16.0", python="3.12") for _ in range(100)]
                results = await asyncio.gather(*(timed(p) for p in slow + fast))
                async with session.get(f"{server.url}/metrics", ssl=ctx) as r:
                    metrics = await r.text()
        assert 'ddcompat_registry_requests_total{result="timeout"} 8.0' in metrics
        assert "ddcompat_registry_cache_misses_total 8.0" in metrics
        black_hole.close()
        for writer in stalled:
            writer.close()
        slow_results, fast_results = results[:8], results[8:]
        for elapsed, response in slow_results:
            assert (
                0.9 < elapsed < 3.0 and "IMAGE_METADATA_UNAVAILABLE" in response["auditAnnotations"]["codes"]
            )
            assert response["allowed"] is True  # a warning, not a denial: fail-open
        assert max(elapsed for elapsed, _ in fast_results) < 0.9  # never waited on the registry
        assert all(r["allowed"] and r["auditAnnotations"]["decision"] == "allow" for _, r in fast_results)

    asyncio.run(scenario())


def tar_gz(files: dict[str, bytes]) -> bytes:
    import gzip
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


async def test_ddtrace_found_in_the_layers_when_no_label_says(registry: Any) -> None:
    reg, _ = registry
    site = "usr/local/lib/python3.12/site-packages"
    base = tar_gz({"usr/bin/python3.12": b"\x7fELF" + b"0" * 4096})
    app = tar_gz(
        {
            f"{site}/ddtrace/__init__.py": b"",
            f"{site}/" + "deeply/" * 20 + "nested.py": b"",  # a GNU long name on the way
            f"{site}/ddtrace-2.20.0.dist-info/METADATA": b"Name: ddtrace\nVersion: 2.20.0\n",
            f"{site}/ddtrace-2.20.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nTag: cp312-cp312-linux\n",
        }
    )
    await asyncio.to_thread(reg.push_image, "shop/unlabelled", "1", env=["PATH=/usr/bin"], layers=[base, app])
    image = f"{reg.host}/shop/unlabelled:1"
    lookup = make_lookup(insecure=[reg.host], budget=2.0)
    pod = plain_pod(image, env={"DD_IAST_ENABLED": "true"})
    first = (await lookup(workload_from_object(pod), [image]))[image]
    assert first.ddtrace is None and first.pending == "image analysis pending"
    for _ in range(100):  # the scan runs in the background
        await asyncio.sleep(0.05)
        if not lookup._scans:
            break
    known = (await lookup(workload_from_object(pod), [image]))[image]
    await lookup.close()
    assert known.ddtrace is not None and str(known.ddtrace.value) == "2.20.0"
    assert "layers: ddtrace-2.20.0.dist-info" in known.ddtrace.source
    assert known.python is not None and str(known.python.value) == "3.12"


async def test_pull_secrets_read_through_the_api(kmock: Any, tmp_path: Path) -> None:
    """The pod's and its ServiceAccount's dockerconfigjson secrets unlock a private registry, in their own
    namespace only; an Opaque secret is never read as credentials."""
    from ddcompat.kube import KubeClient
    from ddcompat.pullsecrets import PullSecretReader

    for resource in ("v1/secrets", "v1/serviceaccounts"):
        kmock.resources[resource] = {"namespaced": True, "verbs": {"get", "create"}}
    kube = KubeClient(str(kmock.url))
    tls = certs.generate(tmp_path / "tls", ["127.0.0.1"])
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"puller:{bcrypt.hashpw(b's3cret', bcrypt.gensalt(rounds=4)).decode()}\n")
    with running_registry(tmp_path, htpasswd=htpasswd, tls=(tls.cert, tls.key)) as (_, port):
        host = f"127.0.0.1:{port}"
        reg = Registry(host, "https", auth=("puller", "s3cret"), cafile=tls.ca)
        await asyncio.to_thread(reg.push_image, "team/api", "2", **PY314_DDTRACE_2)
        config = base64.b64encode(
            json.dumps({"auths": {host: {"auth": base64.b64encode(b"puller:s3cret").decode()}}}).encode()
        ).decode()
        for ns, name, kind in (
            ("team", "regcred", "kubernetes.io/dockerconfigjson"),
            ("team", "sa-cred", "kubernetes.io/dockerconfigjson"),
            ("other", "regcred", "Opaque"),
        ):
            await kube.request(
                "POST",
                f"/api/v1/namespaces/{ns}/secrets",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": kind,
                    "metadata": {"name": name, "namespace": ns},
                    "data": {".dockerconfigjson": config},
                },
            )
        await kube.request(
            "POST",
            "/api/v1/namespaces/team/serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "builder", "namespace": "team"},
                "imagePullSecrets": [{"name": "sa-cred"}],
            },
        )
        lookup = make_lookup(budget=3.0, ca_bundle=str(tls.ca))
        lookup.pull_secrets = PullSecretReader(kube)
        image = f"{host}/team/api:2"

        async def facts_for(ns: str, **spec: Any) -> Any:
            pod = plain_pod(image)
            pod["metadata"]["namespace"] = ns
            pod["spec"].update(spec)
            return (await lookup(workload_from_object(pod), [image]))[image]

        by_pod = await facts_for("team", imagePullSecrets=[{"name": "regcred"}])
        assert by_pod.python is not None and str(by_pod.python.value) == "3.14.1"
        by_account = await facts_for("team", serviceAccountName="builder")
        assert by_account.python is not None
        other = await facts_for("other", imagePullSecrets=[{"name": "regcred"}])  # Opaque: not credentials
        assert other.python is None and other.unavailable and "credentials" in other.unavailable
        await lookup.close()
    await kube.close()


def _jwt(claims: dict[str, Any], key: Any, cert_der: bytes) -> str:
    """An ES256 JWT the way docker-registry's token auth wants it: the signing certificate in `x5c`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(cert_der).decode()]}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


async def test_token_auth_registry_with_a_token_server(tmp_path: Path) -> None:
    """docker-registry's own token auth (`auth.token`), with a small token server in the test that checks
    Basic credentials and signs a JWT the registry verifies against its root certificate bundle."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ddcompat-test-token-signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    bundle = tmp_path / "token-root.crt"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    der = cert.public_bytes(serialization.Encoding.DER)
    issued: list[str] = []

    async def token(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic " + base64.b64encode(b"ci:pw").decode():
            return web.Response(status=401)
        access = []
        for scope in request.query.getall("scope", []):
            kind, repo, actions = scope.split(":")
            access.append({"type": kind, "name": repo, "actions": actions.split(",")})
            issued.append(scope)
        t = int(time.time())
        claims = {
            "iss": "ddcompat-test",
            "sub": "ci",
            "aud": request.query.get("service"),
            "exp": t + 300,
            "nbf": t - 10,
            "iat": t,
            "jti": str(t),
            "access": access,
        }
        return web.json_response({"token": _jwt(claims, key, der), "expires_in": 300})

    app = web.Application()
    app.router.add_get("/token", token)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    token_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", token_port).start()
    realm = f"http://127.0.0.1:{token_port}/token"
    try:
        with running_registry(
            tmp_path,
            token={
                "realm": realm,
                "service": "ddcompat-registry",
                "issuer": "ddcompat-test",
                "rootcertbundle": str(bundle),
            },
        ) as (_, port):
            host = f"127.0.0.1:{port}"
            async with (
                aiohttp.ClientSession() as s,
                s.get(
                    realm,
                    params={"service": "ddcompat-registry", "scope": "repository:team/svc:pull,push"},
                    headers={"Authorization": "Basic " + base64.b64encode(b"ci:pw").decode()},
                ) as r,
            ):
                push_token = (await r.json())["token"]
            await asyncio.to_thread(
                Registry(host, "http", bearer=push_token).push_image, "team/svc", "1", **PY314_DDTRACE_2
            )
            secret = {"auths": {host: {"username": "ci", "password": "pw"}}}
            lookup = make_lookup(
                insecure=[host], budget=3.0, credentials=credentials_from_dockerconfig(secret)
            )
            image = f"{host}/team/svc:1"
            facts = (await lookup(workload_from_object(plain_pod(image)), [image]))[image]
            await lookup.close()
            assert facts.ddtrace is not None and str(facts.ddtrace.value) == "2.20.0"
            assert "repository:team/svc:pull" in issued  # the client asked for pull only
    finally:
        await runner.cleanup()

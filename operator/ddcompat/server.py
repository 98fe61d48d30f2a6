"""The HTTPS admission server: one lean request path, shared by ``serve --local`` and the cluster operator.

Every route is served by one aiohttp application on one port: ``POST /validate`` (any supported kind),
``GET /healthz``, ``GET /readyz``, ``GET /metrics``. ``/validate`` hands the parsed body straight to
`Reviewer.review` — the function ``ddcompat review`` uses — and adds nothing but the log line and metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import web
from cryptography import x509

from . import certs
from .cli import image_lookup
from .metrics import Metrics
from .policy import PolicyError, load_policy
from .review import BadReview, Outcome, Reviewer
from .store import PolicyStore

MAX_BODY: Final = int(3.5 * 1024 * 1024)  # an object may be 1.5 MiB, and an UPDATE carries two
logger = logging.getLogger("ddcompat.server")
decision_log = logging.getLogger("ddcompat.decision")


class WebhookApp:
    """Routes and the request path. `ready` is a callable so the cluster can add "indexes synced"."""

    def __init__(
        self, reviewer: Reviewer, metrics: Metrics | None = None, ready: Callable[[], bool] | None = None
    ) -> None:
        self.reviewer = reviewer
        self.metrics = metrics or Metrics()
        self.metrics.set_policy(reviewer.store.policy.version)
        stats = getattr(reviewer.images, "stats", None)
        if stats is not None:
            self.metrics.attach_lookup(stats)
        self.ready = ready or (lambda: True)
        self.on_outcome: Callable[[Outcome], None] | None = None  # e.g. `EventSink.offer` in the cluster
        self.draining = False
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes(
            [
                web.post("/validate", self.validate),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics_route),
            ]
        )

    async def validate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.metrics.bad_requests.inc()
            raise
        try:
            body = orjson.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self.metrics.bad_requests.inc()
            return _bad_request(f"body is not JSON: {exc}")
        try:
            outcome = await self.reviewer.review(body)
        except BadReview as exc:
            self.metrics.bad_requests.inc()
            return _bad_request(f"not an AdmissionReview: {exc}")
        except Exception:  # never crash, never lose a verdict: fail open, loudly
            logger.exception("review failed; answering allowed")
            self.metrics.errors.inc()
            return _internal_error_allowed(body)
        elapsed = time.perf_counter() - started
        self.metrics.observe(outcome, elapsed)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if decision_log.isEnabledFor(logging.INFO):
            decision_log.info(_log_line(outcome, elapsed))
        return web.Response(body=orjson.dumps(outcome.response), content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.Response(status=503, text="draining\n")
        if not self.ready():
            return web.Response(status=503, text="not ready: policies or indexes not loaded\n")
        return web.Response(text="ready\n")

    async def metrics_route(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400, reason="Bad Request")


def _internal_error_allowed(body: Any) -> web.Response:
    uid = body.get("request", {}).get("uid", "") if isinstance(body, dict) else ""
    response = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": True,
            "warnings": ["ddcompat: internal error, workload not checked"],
            "auditAnnotations": {"decision": "error", "codes": "", "mode": ""},
        },
    }
    return web.json_response(response)


def _log_line(outcome: Outcome, elapsed: float) -> str:
    """The one structured line per decision, serialised once."""
    return orjson.dumps(
        {
            "msg": "admission",
            "uid": outcome.uid,
            "user": outcome.user,
            "namespace": outcome.namespace,
            "kind": outcome.kind,
            "name": outcome.name,
            "operation": outcome.operation,
            "mode": outcome.mode,
            "decision": outcome.decision,
            "codes": list(outcome.codes),
            "dry_run": outcome.dry_run,
            "duration_ms": round(elapsed * 1000, 3),
        }
    ).decode()


# --------------------------------------------------------------------------------------------------
# TLS: TLS ≥ 1.2 from files, reloaded in place on rotation (no listener restart, no failed request)


class _FilePoller:
    """Polls files every `interval` seconds: cheap (a few stats), and it works on every volume type,
    including the symlink swaps kubelet does for Secret and ConfigMap volumes, where inotify misses them."""

    interval: float

    def reload_if_changed(self) -> bool:
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.reload_if_changed()


class CertReloader(_FilePoller):
    """Watches the cert/key files and loads a new chain into the live SSLContext.

    Loading into the same context affects new handshakes only; connections in flight keep theirs.
    A bad or expired new pair is rejected and the previous certificate keeps serving.
    """

    def __init__(self, cert: Path, key: Path, metrics: Metrics, interval: float | None = None) -> None:
        interval = (
            interval if interval is not None else float(os.environ.get("DDCOMPAT_RELOAD_INTERVAL", "2"))
        )
        self.cert, self.key, self.metrics, self.interval = cert, key, metrics, interval
        check_certificate(cert)
        self.context = certs.server_context(cert, key)
        self._stamp = self._mtimes()

    def _mtimes(self) -> tuple[float, float]:
        try:
            return (self.cert.stat().st_mtime, self.key.stat().st_mtime)
        except OSError:
            return (0.0, 0.0)

    def reload_if_changed(self) -> bool:
        stamp = self._mtimes()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            check_certificate(self.cert)
            certs.server_context(self.cert, self.key)  # validate the pair on a scratch context first
            self.context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.metrics.tls_reload_failures.inc()
            logger.error("TLS certificate reload rejected (%s); the previous certificate keeps serving", exc)
            return False
        logger.info("TLS certificate reloaded from %s", self.cert)
        return True


class CertificateError(ValueError):
    pass


def check_certificate(path: Path, now: datetime.datetime | None = None) -> None:
    """Refuse an unreadable, not-yet-valid or expired serving certificate with a clear message."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise CertificateError(f"{path}: {exc.strerror or exc}") from None
    except ValueError:
        raise CertificateError(f"{path}: not a PEM certificate") from None
    now = now or datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        raise CertificateError(
            f"{path}: certificate expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "renew it (cert-manager, or re-run the chart upgrade)"
        )
    if cert.not_valid_before_utc > now:
        raise CertificateError(
            f"{path}: certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )


# --------------------------------------------------------------------------------------------------
# Policy hot reload


class PolicyReloader(_FilePoller):
    """Re-reads the override directory when it changes; a broken file keeps the last good policy."""

    def __init__(
        self, path: str, store: PolicyStore, metrics: Metrics, interval: float | None = None
    ) -> None:
        interval = (
            interval if interval is not None else float(os.environ.get("DDCOMPAT_RELOAD_INTERVAL", "5"))
        )
        self.path, self.store, self.metrics, self.interval = Path(path), store, metrics, interval
        self._stamp = self._fingerprint()

    def _fingerprint(self) -> tuple[tuple[str, float, int], ...]:
        paths = [self.path] if self.path.is_file() else sorted(self.path.glob("*"))
        out = []
        for p in paths:
            with contextlib.suppress(OSError):
                st = p.stat()
                out.append((str(p), st.st_mtime, st.st_size))
        return tuple(out)

    def reload_if_changed(self) -> bool:
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.metrics.policy_reload_failures.inc()
            logger.error("policy reload rejected, keeping policy %s: %s", self.store.policy.version, exc)
            return False
        self.store.set_policy(policy)
        self.metrics.set_policy(policy.version)
        logger.info("policy %s loaded from %s", policy.version, self.path)
        return True


# --------------------------------------------------------------------------------------------------
# Running


async def serve_forever(
    webhook: WebhookApp,
    host: str,
    port: int,
    context: ssl.SSLContext,
    stop: asyncio.Event,
    background: list[Callable[[], Any]] = (),  # type: ignore[assignment]
    grace: float = 25.0,
    on_started: Callable[[int], None] | None = None,
    drain_delay: float | None = None,
) -> None:
    """Serve until `stop` is set, then drain, the way a Kubernetes endpoint should.

    1. readiness fails at once, so the Service stops routing new connections here;
    2. for `drain_delay` seconds we keep answering, on open keep-alive connections too (kube-apiserver
       and kube-proxy learn of the change with a delay);
    3. the listener closes, and requests in flight get up to `grace` seconds to finish.
    """
    if drain_delay is None:
        drain_delay = float(os.environ.get("DDCOMPAT_DRAIN_SECONDS", "2"))
    runner = web.AppRunner(webhook.app, handle_signals=False, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, backlog=1024)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    if on_started:
        on_started(bound)
    tasks = [asyncio.create_task(fn()) for fn in background]
    try:
        await stop.wait()
        webhook.draining = True
        logger.info("draining: readiness off, answering for %.1f s more", drain_delay)
        await asyncio.sleep(drain_delay)
    finally:
        webhook.draining = True
        for task in tasks:
            task.cancel()
        await runner.cleanup()  # stops listening, then waits up to `grace` for handlers in flight


def setup_logging() -> None:
    """JSON-ish lines on stdout: decision lines verbatim, everything else with level and logger."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("DDCOMPAT_LOG_LEVEL", "INFO"))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == "ddcompat.decision":
            return record.getMessage()
        line = {"level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def run_serve(args: argparse.Namespace) -> int:
    setup_logging()
    if not args.local:
        from .cluster import run_cluster

        return run_cluster(args)
    return asyncio.run(_serve_local(args))


async def _serve_local(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy_dir)
    store = PolicyStore(
        policy, default_mode=args.mode, exempt_namespaces=(args.namespace, *args.exempt_namespace)
    )
    now = args.now
    reviewer = Reviewer(store, today=(lambda: now) if now else None, images=image_lookup(args))
    metrics = Metrics()
    webhook = WebhookApp(reviewer, metrics)
    host = args.host or "127.0.0.1"
    if args.tls_cert and args.tls_key:
        cert, key, ca = Path(args.tls_cert), Path(args.tls_key), None
    else:
        directory = Path(args.cert_dir) if args.cert_dir else Path(tempfile.mkdtemp(prefix="ddcompat-certs-"))
        paths = certs.CertPaths(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
        if not certs.usable(paths):
            paths = certs.generate(directory, [host, "localhost", "127.0.0.1"])
        cert, key, ca = paths.cert, paths.key, paths.ca
    try:
        reloader = CertReloader(cert, key, metrics)
    except (CertificateError, ssl.SSLError) as exc:
        print(f"ddcompat: TLS: {exc}", file=sys.stderr)
        return 2
    background: list[Callable[[], Any]] = [reloader.run]
    if args.policy_dir:
        background.append(PolicyReloader(args.policy_dir, store, metrics).run)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def started(port: int) -> None:
        url = f"https://{host}:{port}"
        cacert = f"--cacert {ca}" if ca else "-k"
        print(
            f"ddcompat {policy.version}: admission webhook on {url}/validate (mode {args.mode}, no cluster)\n"
            f"  CA certificate: {ca or '(given)'}\n"
            f"  send an example review:\n"
            f"    curl -s {cacert} -H 'Content-Type: application/json' "
            f"--data-binary @examples/reviews/deny-deployment-iast.json {url}/validate\n"
            f"  health: {url}/healthz  ready: {url}/readyz  metrics: {url}/metrics\n"
            f"  stop with Ctrl-C or SIGTERM (in-flight requests finish first)",
            flush=True,
        )

    await serve_forever(webhook, host, args.port, reloader.context, stop, background, on_started=started)
    logger.info("stopped")
    return 0

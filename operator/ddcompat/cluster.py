"""``ddcompat serve`` in the cluster: kopf runs the operator around our own request path.

kopf does login, watches `CompatibilityPolicy` objects and Namespaces into the `PolicyStore`, and hosts
our server through `DdcompatWebhookServer` (a `kopf.WebhookServer` subclass whose route is our
`/validate`, not kopf's generic admission machinery). The chart owns the ValidatingWebhookConfiguration
(`settings.admission.managed = None`): kopf's managed configs have a fixed 30 s timeout and no
namespaceSelector. Every replica runs standalone (no peering): each serves webhooks and keeps its own
watches live (kopf #820: passive peers stop watching but keep serving, with a stale store).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kopf

from .audit import Auditor
from .cli import image_lookup
from .events import EventSink
from .kube import KubeClient
from .lease import LeaseElector
from .metrics import Metrics
from .policy import load_policy
from .pullsecrets import PullSecretReader
from .registry import ImageLookup
from .review import Reviewer
from .server import CertReloader, PolicyReloader, WebhookApp, serve_forever
from .store import InvalidPolicySpec, PolicyStore

GROUP, VERSION, PLURAL = "ddcompat.io", "v1alpha1", "compatibilitypolicies"
logger = logging.getLogger("ddcompat.cluster")


class DdcompatWebhookServer(kopf.WebhookServer):
    """kopf's server protocol (an async generator of client configs) serving our own aiohttp app."""

    def __init__(
        self,
        webhook: WebhookApp,
        reloader: CertReloader,
        *,
        addr: str,
        port: int,
        background: list[Callable[[], Any]],
    ) -> None:
        super().__init__(addr=addr, port=port, certfile=str(reloader.cert), pkeyfile=str(reloader.key))
        self.webhook, self.reloader, self.background = webhook, reloader, background

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve_forever(
                self.webhook,
                self.addr or "0.0.0.0",
                self.port or 8443,
                self.reloader.context,
                stop,
                self.background,
            )
        )
        try:
            yield {"url": f"https://{self.addr}:{self.port}/validate"}
            await task
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=30)


def build_registry(
    store: PolicyStore,
    synced: asyncio.Event | None = None,
    on_login: Callable[[kopf.ConnectionInfo], None] | None = None,
    on_policy_change: Callable[[], None] | None = None,
) -> kopf.OperatorRegistry:
    """Handlers that keep the store current. Pure callbacks into `store`; no API calls of their own."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In-cluster ServiceAccount or kubeconfig, through the `kubernetes` package (run once, at start)."""
        info = kopf.login_via_client(**kwargs)
        if info is not None and on_login is not None:
            on_login(info)
        return info

    # async handlers: they run on the event loop, so the store is never written from a thread
    @kopf.index(GROUP, VERSION, PLURAL, id="policy_index", registry=registry)
    async def policy_index(name: str, spec: Any, **_: Any) -> dict[str, Any]:
        return {name: dict(spec or {})}

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def policy_event(type: str | None, name: str, spec: Any, logger: kopf.Logger, **_: Any) -> None:
        if type == "DELETED":
            store.delete_compatibility_policy(name)
            logger.info("CompatibilityPolicy %s removed", name)
        else:
            try:
                store.set_compatibility_policy(name, dict(spec or {}))
            except InvalidPolicySpec as exc:
                logger.error("%s", exc)
        if on_policy_change is not None:
            on_policy_change()  # the audit runs at once on a policy change

    @kopf.on.event("", "v1", "namespaces", registry=registry)  # type: ignore[arg-type]
    async def namespace_event(
        type: str | None, name: str, labels: Any, policy_index: kopf.Index[str, Any], **_: Any
    ) -> None:
        if type == "DELETED":
            store.delete_namespace(name)
        else:
            store.set_namespace(name, dict(labels or {}))
        if not store.synced:
            # kopf calls handlers only after every index is filled from the initial listing:
            # from here on the store holds every CompatibilityPolicy that existed at start.
            for policy_name, specs in policy_index.items():
                for spec in specs:
                    with contextlib.suppress(InvalidPolicySpec):  # logged by the store
                        store.set_compatibility_policy(policy_name, spec)
            store.synced = True
            if synced is not None:
                synced.set()
            logger.info("policy store synced: %d CompatibilityPolicies", len(store.policies))

    return registry


def run_cluster(args: argparse.Namespace) -> int:
    if not (args.tls_cert and args.tls_key):
        print(
            "ddcompat: serve needs --tls-cert and --tls-key (or DDCOMPAT_TLS_CERT/_KEY); "
            "use --local to run without a cluster",
            flush=True,
        )
        return 2
    policy = load_policy(args.policy_dir)
    store = PolicyStore(
        policy, default_mode=args.mode, exempt_namespaces=(args.namespace, *args.exempt_namespace)
    )
    store.synced = False
    metrics = Metrics()
    reviewer = Reviewer(store, today=(lambda: args.now) if args.now else None, images=image_lookup(args))
    webhook = WebhookApp(reviewer, metrics, ready=lambda: store.synced)
    reloader = CertReloader(Path(args.tls_cert), Path(args.tls_key), metrics)
    background: list[Callable[[], Any]] = [reloader.run]
    if args.policy_dir:
        background.append(PolicyReloader(args.policy_dir, store, metrics).run)
    auditor_box: dict[str, Auditor] = {}

    def on_login(info: kopf.ConnectionInfo) -> None:
        """The first login gives the auditor its API client; it starts with the server, after the login."""
        if auditor_box:
            return
        ca_path = os.fsdecode(info.ca_path) if info.ca_path is not None else None
        if ca_path is None and info.ca_data:
            ca_file = Path(tempfile.mkdtemp(prefix="ddcompat-ca-")) / "ca.crt"
            data = info.ca_data
            ca_file.write_bytes(data.encode() if isinstance(data, str) else data)
            ca_path = str(ca_file)
        client = KubeClient(info.server, token=info.token, ca_path=ca_path, insecure=bool(info.insecure))
        auditor = auditor_box["a"] = Auditor(
            reviewer, client, interval=args.audit_interval, gauge=metrics.audit_workloads
        )
        elector = LeaseElector(
            client,
            args.namespace or "default",
            "ddcompat-auditor",
            os.environ.get("HOSTNAME") or socket.gethostname(),
        )
        if args.audit_interval > 0:
            background.append(lambda: auditor.run(is_leader=elector))
            store.policy_listeners.append(auditor.wake.set)  # a reloaded policy file re-audits at once
        if args.read_pull_secrets and isinstance(reviewer.images, ImageLookup):
            reviewer.images.pull_secrets = PullSecretReader(client)
        sink = EventSink(client, dropped=metrics.events_dropped)
        webhook.on_outcome = sink.offer
        background.append(sink.run)

    registry = build_registry(
        store,
        on_login=on_login,
        on_policy_change=lambda: auditor_box["a"].wake.set() if auditor_box else None,
    )
    server = DdcompatWebhookServer(
        webhook, reloader, addr=args.host or "0.0.0.0", port=args.port, background=background
    )

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = server
        settings.admission.managed = None
        settings.posting.level = logging.WARNING
        # a watch is re-established this often (the API server's timeoutSeconds)
        settings.watching.server_timeout = float(os.environ.get("DDCOMPAT_WATCH_TIMEOUT", "300"))
        settings.networking.request_timeout = 30

    kopf.run(registry=registry, standalone=True, clusterwide=True)
    return 0

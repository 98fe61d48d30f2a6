"""Image metadata from the registry: an aiohttp OCI distribution client of our own, and the cached,
budgeted, fail-open lookup the request path uses.

Why our own client: the async registry libraries on PyPI don't verify digests or ship unsafe defaults
(TLS verification off), and the clean ones are sync. What it does: reference normalisation, ``HEAD`` for
tag → digest (Docker Hub doesn't count HEADs against pull limits), manifests with all four media types,
platform choice from an index, config blob, every digest and size verified, redirects followed without
forwarding ``Authorization`` to another host, Bearer token flow (anonymous or Basic), Basic realm,
system CAs plus an optional bundle, plain HTTP only for registries named insecure.

Admission never waits on it past the budget: containers whose lookup did not finish get
``IMAGE_METADATA_UNAVAILABLE`` (fail-open); the lookup keeps running to warm the cache for the next request.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from yarl import URL

from .facts import Fact, ImageFacts, Workload
from .layers import LayerFinding, LayerStream
from .versions import InvalidVersion, Version, parse_version

logger = logging.getLogger("ddcompat.registry")

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT: Final = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
INDEX_TYPES: Final = (OCI_INDEX, DOCKER_LIST)
MAX_MANIFEST: Final = 4 * 1024 * 1024
MAX_CONFIG: Final = 8 * 1024 * 1024
DEFAULT_LABELS: Final = {"ddtrace": ("com.datadoghq.ddtrace.version",), "python": ("org.python.version",)}

Credentials = Callable[[str], tuple[str, str] | None]  # registry host → (username, password)
# workload → (identity of the credentials, e.g. "ns/secret-a,secret-b#<hash>", and the credentials)
PullSecrets = Callable[[Workload], Awaitable[tuple[str, Credentials | None]]]


class RegistryError(Exception):
    """Something the registry said or did that we can't use (the reason is shown in the finding)."""


@dataclass(frozen=True)
class ImageRef:
    registry: str  # as written (docker.io for Docker Hub)
    repository: str
    tag: str | None
    digest: str | None

    @property
    def endpoint(self) -> str:
        """Where the API lives: Docker Hub's API host is not its name."""
        return "registry-1.docker.io" if self.registry == "docker.io" else self.registry

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        tail = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return f"{self.registry}/{self.repository}{tail}"


def parse_reference(image: str) -> ImageRef:
    """``python`` → ``docker.io/library/python:latest``; with ``@sha256:…`` the digest wins over the tag."""
    if not image or image != image.strip() or " " in image:
        raise RegistryError(f"not an image reference: {image!r}")
    rest, _, digest = image.partition("@")
    if digest and not digest.startswith("sha256:"):
        raise RegistryError(f"unsupported digest in {image!r}")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "docker.io", rest
    tag = None
    colon = path.rfind(":")
    if colon > path.rfind("/"):
        path, tag = path[:colon], path[colon + 1 :]
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
        if "/" not in path:
            path = f"library/{path}"
    if not path or path != path.lower():
        raise RegistryError(f"not an image reference: {image!r}")
    return ImageRef(registry, path, tag or (None if digest else "latest"), digest or None)


@dataclass(frozen=True)
class ImageMetadata:
    """What we read from one image's config: ``Env`` and ``Labels`` (and where its layers are)."""

    digest: str
    env: Mapping[str, str]
    labels: Mapping[str, str]
    layers: tuple[tuple[str, int], ...] = ()  # (digest, size), bottom to top


def _verify(body: bytes, digest: str, what: str) -> None:
    algo, _, expected = digest.partition(":")
    if algo != "sha256":
        raise RegistryError(f"{what}: unsupported digest algorithm {algo!r}")
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise RegistryError(f"{what}: digest mismatch (content not trusted)")


class RegistryClient:
    """One registry protocol client; share one per process (it holds the token cache and the session)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        insecure: Sequence[str] = (),
        credentials: Credentials | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        self.session = session
        self.insecure = frozenset(insecure)
        self.credentials = credentials
        self.ssl: ssl.SSLContext = ssl.create_default_context()
        if ca_bundle:
            self.ssl.load_verify_locations(cafile=ca_bundle)
        self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def with_credentials(self, credentials: Credentials | None) -> RegistryClient:
        """The same session and TLS settings with other credentials and a token cache of their own, so a
        token fetched with one namespace's pull secret never serves another's request."""
        clone = RegistryClient(self.session, insecure=sorted(self.insecure), credentials=credentials)
        clone.ssl = self.ssl
        return clone

    def _base(self, ref: ImageRef) -> str:
        scheme = "http" if ref.registry in self.insecure or ref.endpoint in self.insecure else "https"
        return f"{scheme}://{ref.endpoint}/v2/{ref.repository}"

    @contextlib.asynccontextmanager
    async def _follow(
        self, method: str, url: str, ref: ImageRef, auth: str | None, accept: str | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The final response after redirects, followed by hand.

        ``Authorization`` goes only to the registry host itself: a redirect to blob storage (ECR → S3)
        carries its own signature, and must never receive our token.
        """
        for _hop in range(6):
            headers = {"Accept": accept} if accept else {}
            if auth and URL(url).host == ref.endpoint.split(":")[0]:
                headers["Authorization"] = auth
            async with self.session.request(
                method,
                url,
                headers=headers,
                allow_redirects=False,
                ssl=self.ssl if url.startswith("https") else False,
            ) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    url = str(resp.url.join(URL(resp.headers["Location"])))
                    continue
                yield resp
                return
        raise RegistryError(f"{ref}: too many redirects")

    async def _request(
        self, method: str, url: str, ref: ImageRef, *, accept: str | None = None, limit: int = MAX_MANIFEST
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A bounded request with the auth challenge answered (once) and redirects followed."""
        scope = f"repository:{ref.repository}:pull"
        auth = self._cached_auth(ref.endpoint, scope)
        for attempt in range(2):
            async with self._follow(method, url, ref, auth, accept) as resp:
                if resp.status == 401 and attempt == 0:
                    auth = await self._authenticate(ref, resp.headers.get("WWW-Authenticate", ""), scope)
                    continue
                body = b""
                if method != "HEAD":
                    size = int(resp.headers.get("Content-Length") or 0)
                    if size > limit:
                        raise RegistryError(f"{ref}: response of {size} bytes is over the {limit}-byte limit")
                    body = await resp.content.read(limit + 1)
                    if len(body) > limit:
                        raise RegistryError(f"{ref}: response over the {limit}-byte limit")
                return resp.status, dict(resp.headers), body
        raise RegistryError(f"{ref}: unauthorized (check the pull secret)")

    def _cached_auth(self, endpoint: str, scope: str) -> str | None:
        cached = self._tokens.get((endpoint, scope))
        if cached and cached[1] > time.monotonic():
            return cached[0]
        return None

    async def _authenticate(self, ref: ImageRef, challenge: str, scope: str) -> str:
        scheme, _, params = challenge.partition(" ")
        fields = dict(_challenge_fields(params))
        creds = self.credentials(ref.registry) if self.credentials else None
        if scheme.lower() == "basic":
            if not creds:
                raise RegistryError(f"{ref}: registry needs credentials (no pull secret for {ref.registry})")
            value = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            self._tokens[(ref.endpoint, scope)] = (value, time.monotonic() + 3600)
            return value
        if scheme.lower() != "bearer" or "realm" not in fields:
            raise RegistryError(f"{ref}: unsupported authentication challenge")
        query = {"scope": fields.get("scope", scope)}
        if "service" in fields:
            query["service"] = fields["service"]
        headers = {}
        if creds:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        realm = fields["realm"]
        async with self.session.get(
            realm, params=query, headers=headers, ssl=self.ssl if realm.startswith("https") else False
        ) as resp:
            if resp.status != 200:
                raise RegistryError(f"{ref}: token service answered {resp.status}")
            data = await resp.json(content_type=None)
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise RegistryError(f"{ref}: token service gave no token")
        expires = data.get("expires_in", 60)
        ttl = max(10.0, float(expires) - 10) if isinstance(expires, int | float) else 50.0
        value = f"Bearer {token}"
        self._tokens[(ref.endpoint, query["scope"])] = (value, time.monotonic() + ttl)
        return value

    async def resolve(self, ref: ImageRef) -> str:
        """Tag → digest with ``HEAD`` (falls back to ``GET`` when the registry omits the digest header)."""
        if ref.digest:
            return ref.digest
        status, headers, _ = await self._request(
            "HEAD", f"{self._base(ref)}/manifests/{ref.reference}", ref, accept=ACCEPT
        )
        if status == 404:
            raise RegistryError(f"{ref}: not found")
        if status != 200:
            raise RegistryError(f"{ref}: registry answered {status}")
        digest = headers.get("Docker-Content-Digest")
        if digest:
            return digest
        status, headers, body = await self._request(
            "GET", f"{self._base(ref)}/manifests/{ref.reference}", ref, accept=ACCEPT
        )
        if status != 200:
            raise RegistryError(f"{ref}: registry answered {status}")
        return "sha256:" + hashlib.sha256(body).hexdigest()

    async def manifest(self, ref: ImageRef, digest: str) -> tuple[str, dict[str, Any]]:
        status, headers, body = await self._request(
            "GET", f"{self._base(ref)}/manifests/{digest}", ref, accept=ACCEPT
        )
        if status != 200:
            raise RegistryError(f"{ref}: manifest {digest[:19]} answered {status}")
        _verify(body, digest, f"{ref} manifest")
        try:
            data = json.loads(body)
        except ValueError:
            raise RegistryError(f"{ref}: manifest is not JSON") from None
        media = data.get("mediaType") or headers.get("Content-Type", "").split(";")[0]
        return str(media), data

    async def metadata(self, ref: ImageRef, arch: str, variant: str | None = None) -> ImageMetadata:
        """Config ``Env``/``Labels`` of the image for `arch` (from an index) or of the single manifest."""
        digest = await self.resolve(ref)
        media, manifest = await self.manifest(ref, digest)
        if media in INDEX_TYPES or "manifests" in manifest:
            chosen = choose_platform(manifest.get("manifests") or [], arch, variant)
            if chosen is None:
                raise RegistryError(f"{ref}: no linux/{arch} image in the index")
            digest = chosen
            media, manifest = await self.manifest(ref, digest)
        config = manifest.get("config") or {}
        config_digest, size = config.get("digest"), config.get("size")
        if not isinstance(config_digest, str):
            raise RegistryError(f"{ref}: manifest has no config")
        if isinstance(size, int) and size > MAX_CONFIG:
            raise RegistryError(f"{ref}: config of {size} bytes is over the limit")
        status, _, body = await self._request(
            "GET", f"{self._base(ref)}/blobs/{config_digest}", ref, limit=MAX_CONFIG
        )
        if status != 200:
            raise RegistryError(f"{ref}: config blob answered {status}")
        if isinstance(size, int) and len(body) != size:
            raise RegistryError(f"{ref}: config size mismatch (content not trusted)")
        _verify(body, config_digest, f"{ref} config")
        try:
            cfg = json.loads(body).get("config") or {}
        except (ValueError, AttributeError):
            raise RegistryError(f"{ref}: config is not JSON") from None
        env = {}
        for item in cfg.get("Env") or []:
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
        labels = {k: v for k, v in (cfg.get("Labels") or {}).items() if isinstance(v, str)}
        layers = tuple(
            (str(layer.get("digest")), int(layer.get("size") or 0))
            for layer in manifest.get("layers") or []
            if isinstance(layer, dict) and layer.get("digest")
        )
        return ImageMetadata(digest, env, labels, layers)

    async def scan_layers(
        self, ref: ImageRef, layers: Sequence[tuple[str, int]], budget: int
    ) -> LayerFinding:
        """Stream layers (top first) through the tar-header scanner, within `budget` compressed bytes.

        A finding is trusted only from a layer read to its end whose digest matched.
        """
        spent = 0
        for digest, size in reversed(layers):
            if spent + size > budget:
                continue
            spent += size
            stream = LayerStream(budget)
            hasher = hashlib.sha256()
            url = f"{self._base(ref)}/blobs/{digest}"
            status, _, _ = await self._request("HEAD", url, ref)  # answers the auth challenge first
            if status != 200:
                continue
            auth = self._cached_auth(ref.endpoint, f"repository:{ref.repository}:pull")
            async with self._follow("GET", url, ref, auth) as resp:
                if resp.status != 200:
                    continue
                scanning = True
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    hasher.update(chunk)
                    if scanning:
                        scanning = stream.feed(chunk)
            if "sha256:" + hasher.hexdigest() != digest:
                logger.warning("image %s: layer %s digest mismatch, not trusted", ref, digest[:19])
                continue
            if stream.scanner.found.ddtrace:
                return stream.scanner.found
        return LayerFinding()


def _challenge_fields(params: str) -> list[tuple[str, str]]:
    out = []
    for part in params.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            out.append((key.strip(), value.strip().strip('"')))
    return out


def choose_platform(manifests: Sequence[Any], arch: str, variant: str | None = None) -> str | None:
    """The linux entry for `arch` (``arm64`` matches ``v8`` or no variant), skipping attestation entries."""
    best = None
    for entry in manifests:
        if not isinstance(entry, Mapping):
            continue
        platform = entry.get("platform") or {}
        if platform.get("os") not in (None, "linux") or platform.get("architecture") != arch:
            continue
        if (entry.get("annotations") or {}).get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        entry_variant = platform.get("variant")
        if variant is None or entry_variant == variant or (arch == "arm64" and entry_variant in (None, "v8")):
            digest = entry.get("digest")
            if isinstance(digest, str) and (best is None or entry_variant == variant):
                best = digest
    return best


def facts_from_metadata(
    meta: ImageMetadata, image: str, label_keys: Mapping[str, Sequence[str]] = DEFAULT_LABELS
) -> ImageFacts:
    """Python from ``PYTHON_VERSION`` env (official images) or a label; ddtrace from a label."""
    candidates: dict[str, list[tuple[str, str]]] = {
        "python": [(meta.env.get("PYTHON_VERSION", ""), "env PYTHON_VERSION")],
        "ddtrace": [],
    }
    for what in ("python", "ddtrace"):
        candidates[what] += [(meta.labels.get(key, ""), f"label {key}") for key in label_keys.get(what, ())]
    found: dict[str, Fact[Version]] = {}
    for what, options in candidates.items():
        for raw, where in options:
            if not raw:
                continue
            try:
                found[what] = Fact(parse_version(raw.strip()), f"image {image} ({where})")
                break
            except InvalidVersion:
                continue
    return ImageFacts(python=found.get("python"), ddtrace=found.get("ddtrace"))


class _TTLCache:
    def __init__(self, ttl: float, size: int) -> None:
        self.ttl, self.size = ttl, size
        self.items: OrderedDict[Any, tuple[Any, float]] = OrderedDict()

    def get(self, key: Any) -> Any | None:
        hit = self.items.get(key)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            del self.items[key]
            return None
        self.items.move_to_end(key)
        return hit[0]

    def put(self, key: Any, value: Any, ttl: float | None = None) -> None:
        self.items[key] = (value, time.monotonic() + (self.ttl if ttl is None else ttl))
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


@dataclass
class LookupStats:
    hits: int = 0
    misses: int = 0
    ok: int = 0
    failures: int = 0
    timeouts: int = 0


@dataclass
class ImageLookup:
    """Cached, single-flight, budgeted image facts for the request path (`Reviewer.images`)."""

    client_factory: Callable[[], Awaitable[RegistryClient]]
    budget: float = 2.0
    scan_bytes: int = 256 * 1024 * 1024  # layers read per image to find ddtrace's dist-info (0: never)
    default_arch: str = "amd64"
    label_keys: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    stats: LookupStats = field(default_factory=LookupStats)
    pull_secrets: PullSecrets | None = None  # in the cluster: the pod's and its ServiceAccount's secrets

    def __post_init__(self) -> None:
        # keys are (image, arch, credentials identity): what one namespace's secret unlocks stays its own
        self._facts = _TTLCache(ttl=60.0, size=4096)  # → ImageFacts; tags move, so 60 s
        self._failures = _TTLCache(ttl=30.0, size=4096)  # → reason
        self._inflight: dict[tuple[str, str, str], asyncio.Task[ImageFacts]] = {}
        self._scans: dict[str, asyncio.Task[None]] = {}  # by manifest digest: one layer scan at a time
        self._scanned: dict[str, LayerFinding] = {}  # by manifest digest (immutable): bounded below
        self._client: RegistryClient | None = None
        self._clients: dict[str, RegistryClient] = {}  # by credentials identity

    async def _get_client(self, ident: str = "", credentials: Credentials | None = None) -> RegistryClient:
        if self._client is None:
            self._client = await self.client_factory()
        if not ident:
            return self._client
        client = self._clients.get(ident)
        if client is None:
            if len(self._clients) > 1024:
                self._clients.clear()
            client = self._clients[ident] = self._client.with_credentials(credentials)
        return client

    async def __call__(self, workload: Workload, images: Sequence[str]) -> Mapping[str, ImageFacts]:
        arch = _pod_arch(workload) or self.default_arch
        started = time.monotonic()
        ident, credentials = "", None
        if self.pull_secrets is not None:
            try:
                ident, credentials = await asyncio.wait_for(
                    self.pull_secrets(workload), timeout=self.budget / 2
                )
            except Exception as exc:  # a missing or unreadable secret: look up anonymously
                logger.warning(
                    "pull secrets of %s/%s not read: %s",
                    workload.namespace,
                    workload.name,
                    type(exc).__name__,
                )
        result: dict[str, ImageFacts] = {}
        pending: dict[str, asyncio.Task[ImageFacts]] = {}
        for image in dict.fromkeys(images):
            key = (image, arch, ident)
            cached = self._facts.get(key)
            if cached is not None:
                self.stats.hits += 1
                result[image] = cached
                continue
            failed = self._failures.get(key)
            if failed is not None:
                self.stats.hits += 1
                result[image] = ImageFacts(unavailable=failed)
                continue
            self.stats.misses += 1
            task = self._inflight.get(key)
            if task is None:
                task = asyncio.create_task(self._fetch(image, arch, ident, credentials))
                self._inflight[key] = task
                task.add_done_callback(lambda _t, key=key: self._inflight.pop(key, None))  # type: ignore[misc]
            pending[image] = task
        if pending:
            remaining = max(0.05, self.budget - (time.monotonic() - started))
            done, _ = await asyncio.wait([asyncio.shield(t) for t in pending.values()], timeout=remaining)
            del done
            for image, task in pending.items():
                if task.done() and not task.cancelled() and task.exception() is None:
                    result[image] = task.result()
                else:
                    self.stats.timeouts += 1
                    result[image] = ImageFacts(
                        unavailable=f"registry did not answer within {self.budget:g} s"
                    )
        return result

    async def _fetch(
        self, image: str, arch: str, ident: str = "", credentials: Credentials | None = None
    ) -> ImageFacts:
        key = (image, arch, ident)
        try:
            ref = parse_reference(image)
            client = await self._get_client(ident, credentials)
            meta = await client.metadata(ref, arch)
        except (RegistryError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, aiohttp.ClientError | OSError):
                reason = f"registry unreachable: {type(exc).__name__}"
            self.stats.failures += 1
            self._failures.put(key, reason)
            logger.warning("image %s: %s", image, reason)
            return ImageFacts(unavailable=reason)
        facts = facts_from_metadata(meta, image, self.label_keys)
        self.stats.ok += 1
        if facts.ddtrace is None and meta.layers and self.scan_bytes > 0:
            facts = self._with_layers(facts, image, ref, meta, key, client)
        self._facts.put(key, facts)
        return facts

    def _with_layers(
        self,
        facts: ImageFacts,
        image: str,
        ref: ImageRef,
        meta: ImageMetadata,
        key: tuple[str, str, str],
        client: RegistryClient,
    ) -> ImageFacts:
        """Layer facts when this image was scanned already; else start the scan and say it is pending."""
        found = self._scanned.get(meta.digest)
        if found is not None:
            return _merge_layer_facts(facts, found, image)
        if meta.digest not in self._scans:
            self._scans[meta.digest] = asyncio.create_task(self._scan(image, ref, meta, key, facts, client))
        return ImageFacts(python=facts.python, ddtrace=None, pending="image analysis pending")

    async def _scan(
        self,
        image: str,
        ref: ImageRef,
        meta: ImageMetadata,
        key: tuple[str, str, str],
        facts: ImageFacts,
        client: RegistryClient,
    ) -> None:
        try:
            found = await client.scan_layers(ref, meta.layers, self.scan_bytes)
        except (RegistryError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning("image %s: layer scan failed: %s", image, exc)
            found = LayerFinding()
        finally:
            self._scans.pop(meta.digest, None)
        if len(self._scanned) > 4096:
            self._scanned.clear()
        self._scanned[meta.digest] = found
        self._facts.put(key, _merge_layer_facts(facts, found, image))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.session.close()


def _merge_layer_facts(facts: ImageFacts, found: LayerFinding, image: str) -> ImageFacts:
    ddtrace = facts.ddtrace
    python = facts.python
    where = found.path.split("site-packages/")[-1].split("/")[0] if found.path else ""
    if ddtrace is None and found.ddtrace:
        with contextlib.suppress(InvalidVersion):
            ddtrace = Fact(parse_version(found.ddtrace), f"image {image} (layers: {where})")
    if python is None and found.python:
        with contextlib.suppress(InvalidVersion):
            python = Fact(parse_version(found.python), f"image {image} (layers: {where}/WHEEL tag)")
    return ImageFacts(python=python, ddtrace=ddtrace)


def _pod_arch(workload: Workload) -> str | None:
    selector = workload.pod_spec.get("nodeSelector")
    if isinstance(selector, Mapping):
        arch = selector.get("kubernetes.io/arch")
        if isinstance(arch, str):
            return arch
    return None


def make_lookup(
    *,
    insecure: Sequence[str] = (),
    budget: float = 2.0,
    ca_bundle: str | None = None,
    credentials: Credentials | None = None,
) -> ImageLookup:
    async def factory() -> RegistryClient:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=budget), trust_env=True
        )
        return RegistryClient(session, insecure=insecure, credentials=credentials, ca_bundle=ca_bundle)

    return ImageLookup(factory, budget=budget)


def credentials_from_dockerconfig(data: Mapping[str, Any]) -> Credentials:
    """A ``kubernetes.io/dockerconfigjson`` payload → lookup by registry host (never logged)."""
    auths = data.get("auths") or {}
    table: dict[str, tuple[str, str]] = {}
    for host, entry in auths.items():
        if not isinstance(entry, Mapping):
            continue
        user, password = entry.get("username"), entry.get("password")
        if (not user or not password) and isinstance(entry.get("auth"), str):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        if user and password:
            name = host.split("://")[-1].rstrip("/").removesuffix("/v1").removesuffix("/v2")
            table[name] = (str(user), str(password))
            if name in ("index.docker.io", "registry-1.docker.io"):
                table["docker.io"] = (str(user), str(password))
    return table.get

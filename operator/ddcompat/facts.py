"""What a container runs, read from the pod (template) alone: each fact with the source it came from.

Sources, highest precedence first (DESIGN "Inputs"): ddcompat annotations (container, then pod level),
Datadog library injection, container env, and image metadata from the registry (`ImageFacts`, filled in
by the caller: this module does no I/O). Values that cannot be read are kept as `Invalid` so the
evaluator can name the key and the value; values that cannot be known (``valueFrom``) are recorded as
unresolved and never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from .policy import CAPABILITY_IDS, Policy
from .versions import InvalidVersion, Version, parse_version

T = TypeVar("T")

ANNOTATION_PREFIX: Final = "ddcompat.io/"
ANNOTATION_KEYS: Final = ("python-version", "ddtrace-version", "capabilities", "frameworks", "agent-version")
CANONICAL_VERSION: Final = "internal.apm.datadoghq.com/python-canonical-version"
LIB_VERSION: Final = "admission.datadoghq.com/python-lib.version"
LIB_VERSION_CONTAINER: Final = "admission.datadoghq.com/{container}.python-lib.version"
TRACER_CONFIGS: Final = "admission.datadoghq.com/apm-inject.tracer-configs"
ARCH_KEYS: Final = ("kubernetes.io/arch", "beta.kubernetes.io/arch")
OS_KEYS: Final = ("kubernetes.io/os", "beta.kubernetes.io/os")
TRUE_INTENT: Final = frozenset({"1", "true", "yes", "on"})
_FLOATING_MAJOR = re.compile(r"^[vV]?(\d+)$")

# kind → (API group, path to the pod template inside the object)
WORKLOAD_KINDS: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "Pod": ("", ()),
    "Deployment": ("apps", ("spec", "template")),
    "StatefulSet": ("apps", ("spec", "template")),
    "DaemonSet": ("apps", ("spec", "template")),
    "ReplicaSet": ("apps", ("spec", "template")),
    "Job": ("batch", ("spec", "template")),
    "CronJob": ("batch", ("spec", "jobTemplate", "spec", "template")),
}


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value and where it was read, shown in every message (``ddtrace 2.10.0 from annotation …``)."""

    value: T
    source: str


@dataclass(frozen=True)
class Invalid:
    """An annotation that holds something that is not a version / capability id / framework spec."""

    key: str
    value: str
    reason: str


@dataclass(frozen=True)
class EnvValue:
    name: str
    value: str
    source: str


@dataclass(frozen=True)
class ImageFacts:
    """What the registry said about one image (the seam for `registry`); `None` fields were not found."""

    python: Fact[Version] | None = None
    ddtrace: Fact[Version] | None = None
    unavailable: str | None = None  # why the registry could not be read within the budget
    pending: str | None = None  # the layer scan for this image has not finished yet


@dataclass
class ContainerFacts:
    name: str
    image: str
    ddtrace: Fact[Version] | None = None
    ddtrace_unresolved: str | None = None
    python: Fact[Version] | None = None
    python_unresolved: str | None = None
    agent: Fact[Version] | None = None
    capabilities: dict[str, str] = field(default_factory=dict)  # capability id → source
    env: dict[str, EnvValue] = field(default_factory=dict)  # DD_* settings that were read
    frameworks: list[Fact[tuple[str, Version]]] = field(default_factory=list)
    injected: bool = False
    invalid: list[Invalid] = field(default_factory=list)
    unresolved_env: list[str] = field(default_factory=list)
    image_unavailable: str | None = None

    @property
    def evaluated(self) -> bool:
        """A tracer signal: a ddtrace version, a capability, library injection, or a bad annotation."""
        return bool(self.ddtrace or self.capabilities or self.injected or self.invalid)


@dataclass(frozen=True)
class Platform:
    os: Fact[str]
    arch: tuple[Fact[str], ...]  # empty: not known, the platform is not judged


@dataclass
class PodFacts:
    platform: Platform
    containers: list[ContainerFacts]


@dataclass(frozen=True)
class Workload:
    """A Pod or pod controller reduced to what we judge: its pod template."""

    kind: str
    api_version: str
    namespace: str
    name: str
    template_metadata: Mapping[str, Any]
    pod_spec: Mapping[str, Any]
    controlled: bool  # a Pod owned by a controller: judged, never denied
    owner_refs: tuple[tuple[str, str, str], ...] = ()  # controller owners: (apiVersion, kind, name)


class NotAWorkload(ValueError):
    """The object is not one of the kinds we judge, or has no pod template."""


def workload_from_object(obj: Mapping[str, Any], namespace: str | None = None) -> Workload:
    """Reduce a Pod or controller object to its pod template; `NotAWorkload` for anything else."""
    if not isinstance(obj, dict):
        raise NotAWorkload("object is not a mapping")
    kind = obj.get("kind")
    if not isinstance(kind, str) or kind not in WORKLOAD_KINDS:
        raise NotAWorkload(f"kind {kind!r} is not judged")
    group, path = WORKLOAD_KINDS[kind]
    api_version = obj.get("apiVersion")
    api_version = api_version if isinstance(api_version, str) else ""
    obj_group = api_version.rpartition("/")[0] if "/" in api_version else ""
    if api_version and obj_group != group:
        raise NotAWorkload(f"{api_version} {kind} is not judged")
    metadata = _mapping(obj.get("metadata"))
    node: Any = obj
    for key in path:
        node = _mapping(node.get(key)) if isinstance(node, dict) else {}
    template = node if path else obj
    template_metadata = _mapping(template.get("metadata"))
    spec = _mapping(template.get("spec"))
    owners = metadata.get("ownerReferences")
    controlled = (
        kind == "Pod"
        and isinstance(owners, list)
        and any(isinstance(ref, dict) and ref.get("controller") is True for ref in owners)
    )
    ns = metadata.get("namespace") if isinstance(metadata.get("namespace"), str) else None
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else metadata.get("generateName")
    return Workload(
        kind=kind,
        api_version=api_version or ("v1" if not group else f"{group}/v1"),
        namespace=ns or namespace or "default",
        name=name if isinstance(name, str) else "",
        template_metadata=template_metadata,
        pod_spec=spec,
        controlled=controlled,
        owner_refs=tuple(
            (str(r.get("apiVersion", "")), str(r.get("kind", "")), str(r.get("name", "")))
            for r in owners
            if isinstance(r, dict) and r.get("controller") is True
        )
        if isinstance(owners, list)
        else (),
    )


def extract_pod_facts(
    workload: Workload,
    policy: Policy,
    images: Mapping[str, ImageFacts] | None = None,
) -> PodFacts:
    """Facts of every (non-init) container of the pod template. `images` holds registry facts by image."""
    annotations = {
        k: v
        for k, v in _mapping(workload.template_metadata.get("annotations")).items()
        if isinstance(k, str) and isinstance(v, str)
    }
    spec = workload.pod_spec
    containers = [c for c in _list(spec.get("containers")) if isinstance(c, dict)]
    init_containers = [c for c in _list(spec.get("initContainers")) if isinstance(c, dict)]
    injection = _pod_injection(annotations, init_containers, policy)
    tracer_env, tracer_env_invalid = _tracer_configs(annotations)
    result = []
    for container in containers:
        facts = _container_facts(container, annotations, injection, tracer_env, policy)
        facts.invalid.extend(tracer_env_invalid)
        if images is not None:
            _apply_image_facts(facts, images.get(facts.image))
        result.append(facts)
    return PodFacts(platform=_platform(spec), containers=result)


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Injection:
    pod_signal: bool
    version: Fact[Version] | None
    unresolved: str | None
    invalid: tuple[Invalid, ...]


def resolve_injection_tag(tag: str, policy: Policy) -> tuple[Version | None, str]:
    """A library-injection tag → (version, how it was resolved). ``None``: a floating tag we can't place.

    Raises `InvalidVersion` when the tag is not a tag form at all.
    """
    if tag == "default":
        version, _ = resolve_injection_tag(policy.default_tag, policy)
        return version, f"default = {policy.default_tag}" + (f" = {version}" if version else "")
    if tag == "latest":
        newest = policy.newest_ga()
        return newest, f"latest = {newest}"
    match = _FLOATING_MAJOR.match(tag)
    if match:
        newest_in_major = policy.newest_in_major(int(match.group(1)))
        return (
            newest_in_major,
            f"{tag} = {newest_in_major}" if newest_in_major else f"{tag} is not a known line",
        )
    return parse_version(tag), ""


def _pod_injection(
    annotations: Mapping[str, str], init_containers: Sequence[Mapping[str, Any]], policy: Policy
) -> _Injection:
    invalid: list[Invalid] = []
    canonical = annotations.get(CANONICAL_VERSION)
    if canonical is not None:
        try:
            version = parse_version(canonical.strip())
            return _Injection(True, Fact(version, f"annotation {CANONICAL_VERSION}"), None, ())
        except InvalidVersion:
            invalid.append(Invalid(CANONICAL_VERSION, canonical, "not a version"))
    lib = annotations.get(LIB_VERSION)
    if lib is not None:
        fact, unresolved, bad = _tag_fact(lib, f"annotation {LIB_VERSION}", LIB_VERSION, policy)
        if bad:
            invalid.append(bad)
        else:
            return _Injection(True, fact, unresolved, tuple(invalid))
    for init in init_containers:
        image = init.get("image")
        if not isinstance(image, str):
            continue
        repo, tag, digest = split_image(image)
        if repo.rsplit("/", 1)[-1] != policy.init_image:
            continue
        if tag is None and digest is not None:
            return _Injection(True, None, f"init image {image} is pinned by digest only", tuple(invalid))
        fact, unresolved, bad = _tag_fact(tag or "latest", f"init image {image}", None, policy)
        if bad:
            return _Injection(
                True, None, f"init image tag {tag!r} is not a version or known tag", tuple(invalid)
            )
        return _Injection(True, fact, unresolved, tuple(invalid))
    return _Injection(bool(invalid), None, None, tuple(invalid))


def _tag_fact(
    tag: str, source: str, key: str | None, policy: Policy
) -> tuple[Fact[Version] | None, str | None, Invalid | None]:
    try:
        version, how = resolve_injection_tag(tag.strip(), policy)
    except InvalidVersion:
        return None, None, Invalid(key or source, tag, "not a version or library-injection tag")
    if version is None:
        return None, f"{source}: {how}", None
    return Fact(version, f"{source} ({how})" if how else source), None, None


def _tracer_configs(annotations: Mapping[str, str]) -> tuple[dict[str, str], list[Invalid]]:
    """Env from ``apm-inject.tracer-configs``: a JSON list of ``{name, value}`` (or a name → value map)."""
    raw = annotations.get(TRACER_CONFIGS)
    if raw is None:
        return {}, []
    try:
        data = json.loads(raw)
    except ValueError:
        return {}, [Invalid(TRACER_CONFIGS, raw, "not JSON")]
    env: dict[str, str] = {}
    if isinstance(data, dict):
        items: list[Any] = [{"name": k, "value": v} for k, v in data.items()]
    elif isinstance(data, list):
        items = data
    else:
        return {}, [Invalid(TRACER_CONFIGS, raw, "expected a JSON list of {name, value}")]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item.get("value") is not None:
            env[item["name"]] = str(item["value"])
    return env, []


def _container_facts(
    container: Mapping[str, Any],
    annotations: Mapping[str, str],
    injection: _Injection,
    tracer_env: Mapping[str, str],
    policy: Policy,
) -> ContainerFacts:
    name = container.get("name") if isinstance(container.get("name"), str) else ""
    image = container.get("image") if isinstance(container.get("image"), str) else ""
    facts = ContainerFacts(name=str(name), image=str(image))

    def annotation(key: str) -> tuple[str, str] | None:
        for full in (f"{ANNOTATION_PREFIX}{name}.{key}", f"{ANNOTATION_PREFIX}{key}"):
            if full in annotations:
                return full, annotations[full]
        return None

    # 1. ddcompat annotations
    for key, attr in (
        ("ddtrace-version", "ddtrace"),
        ("python-version", "python"),
        ("agent-version", "agent"),
    ):
        found = annotation(key)
        if found:
            full, raw = found
            try:
                setattr(facts, attr, Fact(parse_version(raw.strip()), f"annotation {full}"))
            except InvalidVersion:
                facts.invalid.append(Invalid(full, raw, "not a version"))
    found = annotation("capabilities")
    if found:
        full, raw = found
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            if item in CAPABILITY_IDS:
                facts.capabilities.setdefault(item, f"annotation {full}")
            else:
                facts.invalid.append(Invalid(full, raw, f"{item!r} is not a capability id"))
    found = annotation("frameworks")
    if found:
        full, raw = found
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            fname, sep, fversion = item.partition("=")
            try:
                if not sep or not fname.strip():
                    raise InvalidVersion(item)
                version = parse_version(fversion.strip())
                facts.frameworks.append(Fact((fname.strip().lower(), version), f"annotation {full}"))
            except InvalidVersion:
                facts.invalid.append(Invalid(full, raw, f"{item!r} is not name=version"))

    # 2. library injection
    own_key = LIB_VERSION_CONTAINER.format(container=name)
    own = annotations.get(own_key)
    if own is not None:
        facts.injected = True
        fact, unresolved, bad = _tag_fact(own, f"annotation {own_key}", own_key, policy)
        if bad:
            facts.invalid.append(bad)
        canonical = (
            injection.version if injection.version and CANONICAL_VERSION in injection.version.source else None
        )
        if facts.ddtrace is None:
            facts.ddtrace = canonical or fact
            facts.ddtrace_unresolved = None if facts.ddtrace else unresolved
    if injection.pod_signal:
        facts.injected = True
        facts.invalid.extend(injection.invalid)
        if facts.ddtrace is None:
            facts.ddtrace = injection.version
            facts.ddtrace_unresolved = None if injection.version else injection.unresolved

    # 3. env: injected tracer configs, then the container's own env
    env: dict[str, EnvValue] = {}
    for item in _list(container.get("env")):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        ename = item["name"]
        if "value" in item and item["value"] is not None:
            env[ename] = EnvValue(ename, str(item["value"]), f"env {ename}")
        elif item.get("valueFrom") is not None:
            facts.unresolved_env.append(ename)
    for ename, raw_value in tracer_env.items():
        env[ename] = EnvValue(ename, raw_value, f"env {ename} from annotation {TRACER_CONFIGS}")
    if _list(container.get("envFrom")):
        facts.unresolved_env.append("envFrom")
    if facts.python is None:
        if "PYTHON_VERSION" in env:
            raw = env["PYTHON_VERSION"].value
            try:
                facts.python = Fact(parse_version(raw.strip()), env["PYTHON_VERSION"].source)
            except InvalidVersion:
                facts.python_unresolved = f"env PYTHON_VERSION={raw!r} is not a version"
        elif "PYTHON_VERSION" in facts.unresolved_env:
            facts.python_unresolved = "env PYTHON_VERSION is set from valueFrom (unresolved)"
    for ename, value in env.items():
        setting = policy.settings_by_env.get(ename)
        if setting is not None or ename.startswith("DD_"):
            facts.env[ename] = value
        if setting is not None and requests(setting.values, value.value):
            facts.capabilities.setdefault(setting.capability, value.source)
    return facts


def requests(values: str | frozenset[str], raw: str) -> bool:
    """Whether an env value asks for its capability (read as intent, at any version)."""
    value = raw.strip().lower()
    if values == "boolean":
        return value in TRUE_INTENT
    if values == "nonempty":
        return bool(value)
    return value in values


def _apply_image_facts(facts: ContainerFacts, image: ImageFacts | None) -> None:
    """Registry facts fill only what no higher source gave."""
    if image is None:
        return
    if facts.ddtrace is None and facts.ddtrace_unresolved is None and image.ddtrace is not None:
        facts.ddtrace = image.ddtrace
    if facts.ddtrace is None and facts.ddtrace_unresolved is None and image.pending:
        facts.ddtrace_unresolved = image.pending
    if facts.python is None and facts.python_unresolved is None and image.python is not None:
        facts.python = image.python
    if image.unavailable and (facts.ddtrace is None or facts.python is None):
        facts.image_unavailable = image.unavailable


def _platform(spec: Mapping[str, Any]) -> Platform:
    selector = _mapping(spec.get("nodeSelector"))
    os_fact: Fact[str] | None = None
    arch: list[Fact[str]] = []
    for key in OS_KEYS:
        if isinstance(selector.get(key), str):
            os_fact = Fact(selector[key], f"nodeSelector {key}")
            break
    for key in ARCH_KEYS:
        if isinstance(selector.get(key), str):
            arch = [Fact(selector[key], f"nodeSelector {key}")]
            break
    required = _mapping(
        _mapping(_mapping(spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    aff_arch: list[str] = []
    aff_os: list[str] = []
    for term in _list(required.get("nodeSelectorTerms")):
        for expr in _list(_mapping(term).get("matchExpressions")):
            expr = _mapping(expr)
            if expr.get("operator") != "In":
                continue
            values = [v for v in _list(expr.get("values")) if isinstance(v, str)]
            if expr.get("key") in ARCH_KEYS:
                aff_arch.extend(v for v in values if v not in aff_arch)
            elif expr.get("key") in OS_KEYS:
                aff_os.extend(v for v in values if v not in aff_os)
    if not arch and aff_arch:
        arch = [Fact(v, "required node affinity kubernetes.io/arch") for v in aff_arch]
    if os_fact is None and len(aff_os) == 1:
        os_fact = Fact(aff_os[0], "required node affinity kubernetes.io/os")
    return Platform(os=os_fact or Fact("linux", "default (no kubernetes.io/os)"), arch=tuple(arch))


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``reg:5000/a/b:tag@sha256:…`` → (``reg:5000/a/b``, ``tag``, ``sha256:…``)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

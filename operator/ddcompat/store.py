"""The in-memory state the request path reads: tables, CompatibilityPolicy objects, namespace labels.

kopf handlers (or the CLI) write into it; `review` only reads. Reads are plain dict lookups with no
locks: the event loop is single-threaded, and writers replace whole values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .decide import MODES, STRICTNESS, strictest
from .policy import CODES, SEVERITIES, Policy

MODE_LABEL: Final = "ddcompat.io/mode"
ALWAYS_EXEMPT: Final = ("kube-system",)
_SEVERITY_RANK: Final = {"ignore": 0, "warn": 1, "deny": 2}

logger = logging.getLogger("ddcompat.store")


@dataclass(frozen=True)
class PolicySpec:
    """A validated `CompatibilityPolicy` spec."""

    name: str
    mode: str | None
    selector: Mapping[str, Any] | None
    severities: Mapping[str, str]
    require_versions: bool


@dataclass(frozen=True)
class Effective:
    """What applies to one namespace: its mode and where the mode came from."""

    mode: str
    source: str
    severities: Mapping[str, str] = field(default_factory=dict)
    require_versions: bool = False


class InvalidPolicySpec(ValueError):
    pass


def parse_policy_spec(name: str, spec: Any) -> PolicySpec:
    if not isinstance(spec, Mapping):
        raise InvalidPolicySpec(f"CompatibilityPolicy {name}: spec must be an object")
    mode = spec.get("mode")
    if mode is not None and mode not in MODES:
        raise InvalidPolicySpec(
            f"CompatibilityPolicy {name}: spec.mode {mode!r} is not one of {', '.join(MODES)}"
        )
    selector = spec.get("namespaceSelector")
    if selector is not None and not isinstance(selector, Mapping):
        raise InvalidPolicySpec(
            f"CompatibilityPolicy {name}: spec.namespaceSelector must be a label selector"
        )
    severities = spec.get("severities") or {}
    if not isinstance(severities, Mapping):
        raise InvalidPolicySpec(f"CompatibilityPolicy {name}: spec.severities must map codes to severities")
    for code, severity in severities.items():
        if code not in CODES:
            raise InvalidPolicySpec(f"CompatibilityPolicy {name}: spec.severities: unknown code {code!r}")
        if severity not in SEVERITIES:
            raise InvalidPolicySpec(
                f"CompatibilityPolicy {name}: spec.severities.{code}: {severity!r} is not "
                f"one of {', '.join(SEVERITIES)}"
            )
    require = spec.get("requireVersions", False)
    if not isinstance(require, bool):
        raise InvalidPolicySpec(f"CompatibilityPolicy {name}: spec.requireVersions must be true or false")
    return PolicySpec(name, mode, selector, dict(severities), require)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions); empty matches all."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


class PolicyStore:
    """Tables plus the cluster's runtime policy, resolved per namespace."""

    def __init__(
        self, policy: Policy, default_mode: str = "warn", exempt_namespaces: tuple[str, ...] = ()
    ) -> None:
        if default_mode not in MODES:
            raise ValueError(f"mode {default_mode!r} is not one of {', '.join(MODES)}")
        self.policy = policy
        self.default_mode = default_mode
        self.exempt = frozenset(ALWAYS_EXEMPT + tuple(n for n in exempt_namespaces if n))
        self.policies: dict[str, PolicySpec] = {}
        self.namespace_labels: dict[str, Mapping[str, str]] = {}
        self.synced = True  # the cluster clears it until the initial listings are in (readiness)
        self.generation = 0  # bumped on every change, so caches and the auditor can tell
        self.policy_listeners: list[Callable[[], None]] = []  # told when the tables change (hot reload)

    # writers ----------------------------------------------------------------------------------------
    def set_policy(self, policy: Policy) -> None:
        self.policy = policy
        self.generation += 1
        for listener in self.policy_listeners:
            listener()

    def set_compatibility_policy(self, name: str, spec: Any) -> None:
        """Store a CompatibilityPolicy; an invalid one is dropped (and logged) rather than half-applied."""
        try:
            self.policies[name] = parse_policy_spec(name, spec)
        except InvalidPolicySpec as exc:
            logger.warning("%s; it is not applied", exc)
            self.policies.pop(name, None)
            raise
        finally:
            self.generation += 1

    def delete_compatibility_policy(self, name: str) -> None:
        self.policies.pop(name, None)
        self.generation += 1

    def set_namespace(self, name: str, labels: Mapping[str, str] | None) -> None:
        labels = dict(labels or {})
        label = labels.get(MODE_LABEL)
        if label is not None and label not in STRICTNESS:
            logger.warning(
                "namespace %s: label %s=%r is not a mode (%s); ignored",
                name,
                MODE_LABEL,
                label,
                ", ".join(MODES),
            )
        self.namespace_labels[name] = labels
        self.generation += 1

    def delete_namespace(self, name: str) -> None:
        self.namespace_labels.pop(name, None)
        self.generation += 1

    # reader -----------------------------------------------------------------------------------------
    def is_exempt(self, namespace: str) -> bool:
        return namespace in self.exempt

    def resolve(self, namespace: str) -> Effective:
        """Namespace label > matching CompatibilityPolicies (strictest wins) > the default mode."""
        labels = self.namespace_labels.get(namespace, {})
        matched = [p for p in self.policies.values() if selector_matches(p.selector, labels)]
        severities: dict[str, str] = {}
        for spec in matched:
            for code, severity in spec.severities.items():
                if code not in severities or _SEVERITY_RANK[severity] > _SEVERITY_RANK[severities[code]]:
                    severities[code] = severity
        require = any(p.require_versions for p in matched)
        label = labels.get(MODE_LABEL)
        # a bad label value was logged when the label was seen (set_namespace); the request path stays quiet
        if label is not None and label in STRICTNESS:
            return Effective(label, f"namespace label {MODE_LABEL}", severities, require)
        modes = [p.mode for p in matched if p.mode]
        if modes:
            mode = strictest(modes)
            names = ",".join(sorted(p.name for p in matched if p.mode == mode))
            return Effective(mode, f"CompatibilityPolicy {names}", severities, require)
        return Effective(self.default_mode, "default", severities, require)

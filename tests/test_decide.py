"""Modes, severity overrides, controller-owned pods and the limits of kubectl warnings."""

from __future__ import annotations

import pytest

from conftest import judge, make_pod
from ddcompat.decide import decide
from ddcompat.evaluate import Finding
from ddcompat.policy import Policy
from ddcompat.store import PolicyStore

DENIED = dict(ddtrace="2.20.0", python="3.12", capabilities="iast")  # CAPABILITY_UNSUPPORTED + RELEASE_EOL


def test_enforce_denies_with_all_deny_messages(policy: Policy) -> None:
    d = judge(make_pod(**DENIED), policy, mode="enforce").decision
    assert d.decision == "deny" and not d.allowed
    assert d.message.startswith("CAPABILITY_UNSUPPORTED web:") and any("RELEASE_EOL" in w for w in d.warnings)


def test_warn_prefixes_would_deny(policy: Policy) -> None:
    d = judge(make_pod(**DENIED), policy, mode="warn").decision
    assert d.allowed and d.decision == "warn"
    assert d.warnings[0].startswith("[would deny] CAPABILITY_UNSUPPORTED")


def test_audit_is_silent_and_off_is_not_evaluated(policy: Policy) -> None:
    audit = judge(make_pod(**DENIED), policy, mode="audit")
    assert audit.decision.allowed and audit.decision.warnings == () and audit.findings
    off = judge(make_pod(**DENIED), policy, mode="off")
    assert off.decision.decision == "allow" and off.findings == ()


def test_pod_of_a_controller_is_judged_but_never_denied(policy: Policy) -> None:
    d = judge(make_pod(**DENIED, owner=True), policy, mode="enforce").decision
    assert d.allowed and d.decision == "warn" and d.warnings[0].startswith("[would deny]")


def test_severity_override_and_ignore(policy: Policy) -> None:
    store = PolicyStore(policy, default_mode="enforce")
    store.set_namespace("shop", {})
    store.set_compatibility_policy(
        "lenient", {"severities": {"CAPABILITY_UNSUPPORTED": "warn", "RELEASE_EOL": "ignore"}}
    )
    eff = store.resolve("shop")
    from conftest import TODAY
    from ddcompat.evaluate import evaluate_pod
    from ddcompat.facts import extract_pod_facts, workload_from_object

    pod = extract_pod_facts(workload_from_object(make_pod(**DENIED)), policy)
    got = evaluate_pod(pod, policy, TODAY, eff.severities)
    assert [(f.code, f.severity) for f in got] == [("CAPABILITY_UNSUPPORTED", "warn")]


def test_require_versions_denies_unknown_versions(policy: Policy) -> None:
    store = PolicyStore(policy, default_mode="warn")
    store.set_compatibility_policy("strict", {"mode": "enforce", "requireVersions": True})
    eff = store.resolve("any")
    assert eff.mode == "enforce" and eff.require_versions
    from conftest import TODAY
    from ddcompat.evaluate import evaluate_pod
    from ddcompat.facts import extract_pod_facts, workload_from_object

    pod = extract_pod_facts(workload_from_object(make_pod(ddtrace="4.2.0")), policy)
    got = evaluate_pod(pod, policy, TODAY, eff.severities, eff.require_versions)
    assert [(f.code, f.severity) for f in got] == [("VERSION_UNKNOWN", "deny")]


def test_mode_precedence_label_then_strictest_policy_then_default(policy: Policy) -> None:
    store = PolicyStore(policy, default_mode="warn")
    store.set_namespace("a", {"team": "pay", "ddcompat.io/mode": "audit"})
    store.set_namespace("b", {"team": "pay"})
    store.set_namespace("c", {"ddcompat.io/mode": "bogus"})
    store.set_compatibility_policy(
        "p1", {"mode": "audit", "namespaceSelector": {"matchLabels": {"team": "pay"}}}
    )
    store.set_compatibility_policy(
        "p2",
        {
            "mode": "enforce",
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["pay"]}]},
        },
    )
    assert store.resolve("a").mode == "audit"
    assert store.resolve("b").mode == "enforce" and "p2" in store.resolve("b").source
    assert store.resolve("c").mode == "warn"
    with pytest.raises(ValueError):
        store.set_compatibility_policy("bad", {"mode": "strict"})
    assert "bad" not in store.policies


def test_warning_limits() -> None:
    many = [Finding("SETTING_IGNORED", "warn", "c" * 30, None, "x" * 400) for _ in range(40)]
    d = decide(many, "warn")
    assert all(len(w) <= 256 for w in d.warnings)
    assert sum(len(w.encode()) for w in d.warnings) <= 4096
    assert "more finding" in d.warnings[-1]


def test_typical_messages_are_short(policy: Policy) -> None:
    pod = make_pod(ddtrace="4.1.0", python="3.8", container="api")
    d = judge(pod, policy, mode="warn").decision
    assert d.warnings and all(len(w) <= 200 for w in d.warnings), d.warnings


def test_policy_listeners_hear_a_reload(policy: Policy) -> None:
    store = PolicyStore(policy)
    heard: list[str] = []
    store.policy_listeners.append(lambda: heard.append(store.policy.version))
    store.set_namespace("a", {})  # not a policy change
    store.set_policy(policy)
    assert heard == [policy.version]

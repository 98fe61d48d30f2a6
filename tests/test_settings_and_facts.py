"""Where facts come from (precedence, injection, env) and when ddtrace ignores a setting."""

from __future__ import annotations

import json

import pytest

from conftest import codes, findings, make_pod
from ddcompat.facts import extract_pod_facts, workload_from_object
from ddcompat.policy import Policy


def facts_of(obj: dict, policy: Policy):  # type: ignore[no-untyped-def]
    return extract_pod_facts(workload_from_object(obj), policy)


# --- settings lifecycle (SETTING_IGNORED) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "value", "version", "ignored", "capability"),
    [
        ("DD_API_SECURITY_ENABLED", "true", "2.5.0", True, "api-security"),
        ("DD_API_SECURITY_ENABLED", "true", "2.6.0", False, "api-security"),
        ("DD_EXPERIMENTAL_API_SECURITY_ENABLED", "true", "1.18.0", True, "api-security"),
        ("DD_EXPERIMENTAL_API_SECURITY_ENABLED", "true", "2.5.3", False, "api-security"),
        ("DD_EXPERIMENTAL_API_SECURITY_ENABLED", "1", "2.6.0", True, "api-security"),
        ("DD_APPSEC_SCA_ENABLED", "true", "2.8.0", True, "sca"),
        ("DD_APPSEC_SCA_ENABLED", "true", "2.9.0", False, "sca"),
        (
            "DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE",
            "identification",
            "2.10.0",
            True,
            "user-activity-tracking",
        ),
        (
            "DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE",
            "anonymization",
            "2.11.0",
            False,
            "user-activity-tracking",
        ),
        ("DD_APPSEC_AUTOMATED_USER_EVENTS_TRACKING", "safe", "1.17.0", False, "user-activity-tracking"),
        ("DD_APPSEC_AUTOMATED_USER_EVENTS_TRACKING", "extended", "2.21.0", False, "user-activity-tracking"),
        ("DD_APPSEC_AUTOMATED_USER_EVENTS_TRACKING", "safe", "3.0.0", True, "user-activity-tracking"),
        ("DD_APPSEC_ENABLED", "yes", "2.1.0", True, "threat-detection"),
        ("DD_APPSEC_ENABLED", "On", "1.9.0", True, "threat-detection"),
        ("DD_APPSEC_ENABLED", "yes", "2.2.0", False, "threat-detection"),
        ("DD_APPSEC_ENABLED", "TRUE", "2.0.0", False, "threat-detection"),
        ("DD_APPSEC_ENABLED", "1", "1.9.0", False, "threat-detection"),
    ],
)
def test_setting_lifecycle(
    policy: Policy, env: str, value: str, version: str, ignored: bool, capability: str
) -> None:
    got = findings(make_pod(ddtrace=version, python="3.11", env={env: value}), policy)
    setting = [f for f in got if f.code == "SETTING_IGNORED"]
    assert bool(setting) is ignored, got
    if ignored:
        assert env in setting[0].message and setting[0].capability == capability
    # requests are read as intent at any version
    assert (
        capability in facts_of(make_pod(ddtrace=version, env={env: value}), policy).containers[0].capabilities
    )


def test_removed_setting_names_its_replacement(policy: Policy) -> None:
    got = findings(
        make_pod(ddtrace="3.2.0", python="3.11", env={"DD_APPSEC_AUTOMATED_USER_EVENTS_TRACKING": "safe"}),
        policy,
    )
    assert "DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE" in got[-1].message


@pytest.mark.parametrize(
    ("env", "value", "cap"),
    [
        ("DD_APPSEC_ENABLED", "true", "threat-detection"),
        ("DD_APPSEC_HTTP_BLOCKED_TEMPLATE_JSON", "/etc/blocked.json", "blocking-response"),
        ("DD_APPSEC_HTTP_BLOCKED_TEMPLATE_HTML", "/etc/blocked.html", "blocking-response"),
        ("DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE", "Identification", "user-activity-tracking"),
        ("DD_API_SECURITY_ENABLED", "on", "api-security"),
        ("DD_APPSEC_SCA_ENABLED", "Yes", "sca"),
        ("DD_IAST_ENABLED", "1", "iast"),
    ],
)
def test_env_requests_capability(policy: Policy, env: str, value: str, cap: str) -> None:
    assert cap in facts_of(make_pod(env={env: value}), policy).containers[0].capabilities


@pytest.mark.parametrize("value", ["false", "0", "", "disabled"])
def test_env_off_requests_nothing(policy: Policy, value: str) -> None:
    c = facts_of(
        make_pod(env={"DD_IAST_ENABLED": value, "DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE": value}), policy
    ).containers[0]
    assert not c.capabilities and not c.evaluated


# --- tracer signal, unknown and invalid versions ---------------------------------------------------------
def test_plain_python_container_is_not_evaluated(policy: Policy) -> None:
    assert codes(make_pod(python="3.6", env={"DD_SERVICE": "x"}), policy) == set()


def test_capability_without_version_is_version_unknown(policy: Policy) -> None:
    got = findings(make_pod(env={"DD_IAST_ENABLED": "true"}), policy)
    assert [f.code for f in got] == ["VERSION_UNKNOWN"]
    assert "ddcompat.io/web.ddtrace-version" in got[0].message


def test_invalid_annotations_are_denied_with_key_and_value(policy: Policy) -> None:
    for key, value in (
        ("ddtrace-version", "two"),
        ("capabilities", "iast,telepathy"),
        ("frameworks", "django"),
        ("python-version", "3.x"),
    ):
        got = [
            f
            for f in findings(make_pod(annotations={f"ddcompat.io/web.{key}": value}), policy)
            if f.code == "VERSION_INVALID"
        ]
        assert got and got[0].severity == "deny"
        assert f"ddcompat.io/web.{key}" in got[0].message and value.split(",")[-1][:5] in got[0].message


def test_value_from_is_unresolved_not_guessed(policy: Policy) -> None:
    pod = make_pod(ddtrace="4.2.0", env={"DD_IAST_ENABLED": "true"})
    pod["spec"]["containers"][0]["env"].append(
        {"name": "PYTHON_VERSION", "valueFrom": {"configMapKeyRef": {}}}
    )
    got = findings(pod, policy)
    unknown = [f for f in got if f.code == "VERSION_UNKNOWN"]
    assert unknown and "unresolved" in unknown[0].message


# --- precedence and library injection -------------------------------------------------------------------
def test_container_annotation_beats_pod_annotation_and_is_named(policy: Policy) -> None:
    pod = make_pod(
        ddtrace="2.10.0",
        annotations={"ddcompat.io/ddtrace-version": "4.1.0"},
        env={"DD_IAST_ENABLED": "true"},
    )
    got = findings(pod, policy)
    unsupported = [f for f in got if f.code == "CAPABILITY_UNSUPPORTED"]
    assert "2.10.0" in unsupported[0].message
    assert "annotation ddcompat.io/web.ddtrace-version" in unsupported[0].message


@pytest.mark.parametrize(
    ("annotations", "init_image", "expected", "source_part"),
    [
        (
            {
                "internal.apm.datadoghq.com/python-canonical-version": "2.21.3",
                "admission.datadoghq.com/python-lib.version": "v3",
            },
            None,
            "2.21.3",
            "python-canonical-version",
        ),
        ({"admission.datadoghq.com/python-lib.version": "v2.21.0"}, None, "2.21.0", "python-lib.version"),
        ({"admission.datadoghq.com/python-lib.version": "v3"}, None, "3.19.9", "v3 = 3.19.9"),
        ({"admission.datadoghq.com/python-lib.version": "latest"}, None, "4.16.0", "latest = 4.16.0"),
        ({"admission.datadoghq.com/python-lib.version": "default"}, None, "3.19.9", "default = v3"),
        (
            {"admission.datadoghq.com/web.python-lib.version": "2.9.0"},
            None,
            "2.9.0",
            "web.python-lib.version",
        ),
        ({}, "gcr.io/datadoghq/dd-lib-python-init:v2", "2.21.12", "init image"),
        ({}, "gcr.io/datadoghq/dd-lib-python-init:2.14.1", "2.14.1", "dd-lib-python-init:2.14.1"),
    ],
)
def test_library_injection(
    policy: Policy, annotations: dict[str, str], init_image: str | None, expected: str, source_part: str
) -> None:
    inits = [{"name": "datadog-lib-python-init", "image": init_image}] if init_image else None
    c = facts_of(make_pod(annotations=annotations, init_containers=inits), policy).containers[0]
    assert c.injected and c.ddtrace is not None
    assert str(c.ddtrace.value) == expected and source_part in c.ddtrace.source


def test_injection_tracer_configs_count_as_env(policy: Policy) -> None:
    configs = json.dumps([{"name": "DD_IAST_ENABLED", "value": "true"}])
    pod = make_pod(
        annotations={
            "admission.datadoghq.com/python-lib.version": "v2.20.0",
            "admission.datadoghq.com/apm-inject.tracer-configs": configs,
        }
    )
    got = findings(pod, policy)
    unsupported = [f for f in got if f.code == "CAPABILITY_UNSUPPORTED"]
    assert unsupported and "apm-inject.tracer-configs" in unsupported[0].message


def test_platform_from_required_node_affinity(policy: Policy) -> None:
    pod = make_pod(ddtrace="4.0.0", python="3.12")
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "386"]}
                        ]
                    }
                ]
            }
        }
    }
    got = [f for f in findings(pod, policy) if f.code == "PLATFORM_UNSUPPORTED"]
    assert len(got) == 1 and "386" in got[0].message and "affinity" in got[0].message


@pytest.mark.parametrize(
    "kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]
)
def test_every_kind_is_judged_through_its_template(policy: Policy, kind: str) -> None:
    got = codes(make_pod(kind=kind, ddtrace="2.20.0", python="3.12", capabilities="iast"), policy)
    assert "CAPABILITY_UNSUPPORTED" in got


def test_sidecars_and_init_containers_are_not_evaluated(policy: Policy) -> None:
    pod = make_pod(
        ddtrace="4.1.0",
        python="3.12",
        extra_containers=[{"name": "envoy", "image": "envoy:1.30"}],
        init_containers=[
            {"name": "migrate", "image": "app:1", "env": [{"name": "DD_IAST_ENABLED", "value": "true"}]}
        ],
    )
    assert codes(pod, policy) == set()

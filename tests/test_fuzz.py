"""Fuzzing the request path: whatever arrives, the answer is a 400 with a reason or a response with `allowed`
and the request's uid — never a crash, never a lost verdict."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TODAY, make_pod
from ddcompat.policy import load_policy
from ddcompat.review import BadReview, Reviewer
from ddcompat.store import PolicyStore

POLICY = load_policy()
KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Service", "Widget"]
KEYS = ["ddtrace-version", "python-version", "capabilities", "frameworks", "agent-version"]
ENV_NAMES = [
    "DD_APPSEC_ENABLED",
    "DD_IAST_ENABLED",
    "DD_APPSEC_SCA_ENABLED",
    "DD_API_SECURITY_ENABLED",
    "DD_EXPERIMENTAL_API_SECURITY_ENABLED",
    "DD_APPSEC_AUTO_USER_INSTRUMENTATION_MODE",
    "DD_APPSEC_AUTOMATED_USER_EVENTS_TRACKING",
    "DD_REMOTE_CONFIGURATION_ENABLED",
    "PYTHON_VERSION",
    "DD_APPSEC_HTTP_BLOCKED_TEMPLATE_JSON",
]

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
versionish = st.one_of(
    st.from_regex(r"v?[0-9]{1,2}(\.[0-9]{1,2}){0,3}(rc[0-9])?", fullmatch=True),
    st.sampled_from(["latest", "default", "v3", "", " 2.0", "x", "4.0.0+local", "1!2.0"]),
    st.text(max_size=12),
)
annotation_values = st.one_of(
    versionish, st.sampled_from(["iast,sca", "django=4.2,flask", "=", ",,", "tornado=6.4"])
)


def reviewer(mode: str = "enforce") -> Reviewer:
    return Reviewer(PolicyStore(POLICY, default_mode=mode), today=lambda: TODAY)


def check_response(body: Any, outcome_response: dict[str, Any]) -> None:
    response = outcome_response["response"]
    assert isinstance(response["allowed"], bool)
    assert response["uid"] == body["request"]["uid"]
    assert all(len(w) <= 256 for w in response.get("warnings", []))
    assert sum(len(w.encode()) for w in response.get("warnings", [])) <= 4096
    json.dumps(outcome_response)  # serialisable


def review_or_refuse(body: Any) -> None:
    """The webhook's contract: a refusal with a reason (HTTP 400), or a well-formed response."""
    try:
        outcome = asyncio.run(reviewer().review(body))
    except BadReview as exc:
        assert str(exc)
        return
    check_response(body, outcome.response)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_value)
def test_arbitrary_json_is_answered_or_refused_with_a_reason(body: Any) -> None:
    review_or_refuse(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "bogus"]),
    annotations=st.dictionaries(
        st.builds(
            lambda scope, key: f"ddcompat.io/{scope}{key}",
            st.sampled_from(["", "web."]),
            st.sampled_from(KEYS),
        ),
        annotation_values,
        max_size=5,
    ),
    injection=st.dictionaries(
        st.sampled_from(
            [
                "admission.datadoghq.com/python-lib.version",
                "admission.datadoghq.com/web.python-lib.version",
                "internal.apm.datadoghq.com/python-canonical-version",
                "admission.datadoghq.com/apm-inject.tracer-configs",
            ]
        ),
        st.one_of(versionish, st.just('[{"name":"DD_IAST_ENABLED","value":"true"}]'), st.just("{")),
        max_size=3,
    ),
    env=st.dictionaries(st.sampled_from(ENV_NAMES), st.text(max_size=12), max_size=5),
    node=st.dictionaries(
        st.sampled_from(["kubernetes.io/arch", "kubernetes.io/os"]),
        st.sampled_from(["amd64", "arm64", "386", "s390x", "linux", "windows", "darwin", ""]),
        max_size=2,
    ),
    mode=st.sampled_from(["enforce", "warn", "audit", "off"]),
    garbage=json_value,
)
def test_workloads_with_any_annotations_and_env_always_get_a_verdict(
    kind: str,
    operation: str,
    annotations: dict[str, str],
    injection: dict[str, str],
    env: dict[str, str],
    node: dict[str, str],
    mode: str,
    garbage: Any,
) -> None:
    workload_kind = kind if kind not in ("Service", "Widget") else "Pod"
    obj = make_pod(kind=workload_kind, annotations={**annotations, **injection}, env=env, node_selector=node)
    obj["kind"] = kind
    obj["spec"]["garbage"] = garbage
    group, _, version = obj["apiVersion"].rpartition("/")
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz-uid",
            "kind": {"group": group, "version": version, "kind": kind},
            "operation": operation,
            "namespace": "shop",
            "object": obj,
            "oldObject": make_pod(kind=workload_kind) if operation == "UPDATE" else None,
        },
    }
    outcome = asyncio.run(reviewer(mode).review(body))
    check_response(body, outcome.response)
    annotations_out = outcome.response["response"]["auditAnnotations"]
    assert annotations_out["decision"] in ("allow", "warn", "deny")
    if mode != "enforce":
        assert outcome.response["response"]["allowed"] is True


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["spec", "metadata", "kind", "apiVersion"]), json_value, max_size=4))
def test_broken_objects_in_a_valid_review(obj: dict[str, Any]) -> None:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "operation": "CREATE",
            "namespace": "shop",
            "object": obj,
        },
    }
    review_or_refuse(body)

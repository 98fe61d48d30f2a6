"""Every row of every table in the two seed documents, with expectations written from the seed text.

The literals below are copied from the seeds (not read from `policies/`), so a typo in the YAML fails here.
"""

from __future__ import annotations

import datetime

import pytest

from conftest import codes, findings, make_pod
from ddcompat.policy import Policy

# --- "App and API Protection capabilities support" and "Code Security capabilities support" -----------------
CAPABILITY_MINIMUMS = [
    # capability id, seed name, minimum version from the seed, a version just below it
    ("threat-detection", "Threat Detection", "1.9.0", "1.8.9"),
    ("threat-protection", "Threat Protection", "1.10.0", "1.9.9"),
    ("blocking-response", "Customize response to blocked requests", "1.19.0", "1.18.9"),
    ("user-activity-tracking", "Automatic user activity event tracking", "1.17.0", "1.16.9"),
    ("api-security", "API Security Inventory", "2.6.0", "2.5.9"),
    ("sca", "Runtime Software Composition Analysis (SCA)", "1.5.0", "1.4.9"),
    ("iast", "Runtime Code Analysis (IAST)", "2.21.0", "2.20.9"),
]


@pytest.mark.parametrize(("cap", "name", "minimum", "below"), CAPABILITY_MINIMUMS)
def test_capability_minimum_tracer_version(
    policy: Policy, cap: str, name: str, minimum: str, below: str
) -> None:
    assert policy.capabilities[cap].name == name
    ok = findings(make_pod(ddtrace=minimum, python="3.9", capabilities=cap), policy)
    assert "CAPABILITY_UNSUPPORTED" not in {f.code for f in ok}
    bad = [
        f
        for f in findings(make_pod(ddtrace=below, python="3.9", capabilities=cap), policy)
        if f.code == "CAPABILITY_UNSUPPORTED"
    ]
    assert len(bad) == 1 and bad[0].capability == cap and bad[0].severity == "deny"
    assert f">={minimum}" in bad[0].message and below in bad[0].message


def test_iast_is_preview_from_2_21_0(policy: Policy) -> None:
    at = findings(make_pod(ddtrace="2.21.0", python="3.11", capabilities="iast"), policy)
    assert [f.code for f in at if f.capability == "iast"] == ["CAPABILITY_PREVIEW"]
    assert [f.severity for f in at if f.code == "CAPABILITY_PREVIEW"] == ["warn"]
    later = codes(make_pod(ddtrace="4.3.0", python="3.12", capabilities="iast"), policy)
    assert "CAPABILITY_PREVIEW" in later


def test_threat_protection_requires_remote_configuration(policy: Policy) -> None:
    base = dict(ddtrace="4.1.0", python="3.12", capabilities="threat-protection")
    assert "CAPABILITY_PREREQUISITE" not in codes(make_pod(**base), policy)
    assert "CAPABILITY_PREREQUISITE" not in codes(
        make_pod(**base, env={"DD_REMOTE_CONFIGURATION_ENABLED": "1"}), policy
    )
    for off in ("false", "0", "yes"):  # ddtrace reads only 1/true as true: "yes" turns it off
        got = findings(make_pod(**base, env={"DD_REMOTE_CONFIGURATION_ENABLED": off}), policy)
        pre = [f for f in got if f.code == "CAPABILITY_PREREQUISITE"]
        assert len(pre) == 1 and pre[0].severity == "deny" and "Remote Configuration" in pre[0].message


# --- "Supported deployment types" tables ----------------------------------------------------------------
DEPLOYMENT_ROWS = {
    # 000: Threat Detection support; 003 first table: Threat Detection, SCA; 003 second table: SCA, IAST
    "Docker": {"threat-detection": "supported", "sca": "supported", "iast": "preview"},
    "Kubernetes": {"threat-detection": "supported", "sca": "supported", "iast": "preview"},
    "Amazon ECS": {"threat-detection": "supported", "sca": "supported", "iast": "preview"},
    "AWS Fargate": {"threat-detection": "supported", "sca": "supported", "iast": "preview"},
    "AWS Lambda": {"threat-detection": "supported", "sca": "unspecified", "iast": "unspecified"},
}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENT_ROWS))
def test_deployment_type_rows(policy: Policy, deployment: str) -> None:
    for cap, support in DEPLOYMENT_ROWS[deployment].items():
        assert policy.capabilities[cap].deployment[deployment] == support


# --- "Two release branches are supported" ---------------------------------------------------------------
def test_release_4x_general_availability(policy: Policy) -> None:
    got = codes(make_pod(ddtrace="4.0.0", python="3.12"), policy)
    assert not got & {"RELEASE_EOL", "RELEASE_MAINTENANCE", "RELEASE_UNKNOWN"}
    assert "AGENT_UNSUPPORTED" in codes(make_pod(ddtrace="4.0.0", python="3.12", agent="7.27.0"), policy)
    assert "AGENT_UNSUPPORTED" not in codes(make_pod(ddtrace="4.0.0", python="3.12", agent="7.28"), policy)


def test_release_3x_maintenance_until_may_31_2026(policy: Policy) -> None:
    pod = make_pod(ddtrace="3.12.0", python="3.12")
    during = findings(pod, policy, today=datetime.date(2026, 5, 31))
    assert [f.code for f in during] == ["RELEASE_MAINTENANCE"]
    assert "2026-05-31" in during[0].message and during[0].severity == "warn"
    after = findings(pod, policy, today=datetime.date(2026, 6, 1))
    assert [f.code for f in after] == ["RELEASE_EOL"]
    assert "AGENT_UNSUPPORTED" in codes(make_pod(ddtrace="3.0.0", python="3.12", agent="7.27"), policy)


@pytest.mark.parametrize("version", ["2.0.0", "2.21.12"])
def test_release_2x_end_of_life(policy: Policy, version: str) -> None:
    assert codes(make_pod(ddtrace=version, python="3.12"), policy) == {"RELEASE_EOL"}
    assert "AGENT_UNSUPPORTED" in codes(make_pod(ddtrace=version, python="3.12", agent="7.27.9"), policy)


@pytest.mark.parametrize("version", ["1.20.19", "0.60.0"])
def test_release_below_2_end_of_life_without_agent_minimum(policy: Policy, version: str) -> None:
    assert codes(make_pod(ddtrace=version, python="3.8"), policy) == {"RELEASE_EOL"}
    assert "AGENT_UNSUPPORTED" not in codes(make_pod(ddtrace=version, python="3.8", agent="6.0.0"), policy)


def test_prerelease_belongs_to_its_major(policy: Policy) -> None:
    assert codes(make_pod(ddtrace="4.0.0rc1", python="3.12"), policy) == set()
    assert codes(make_pod(ddtrace="5.0.0", python="3.12"), policy) == {"RELEASE_UNKNOWN"}


# --- "The library supports the following runtimes" --------------------------------------------------------
# (seed OS, kubernetes.io/os, seed CPUs as Kubernetes arches, ddtrace in the row's range,
#  Pythons inside the row's "Runtime version", Pythons outside it)
RUNTIME_ROWS = [
    ("Linux", "linux", ["amd64", "arm64"], "4.16.0", ["3.9", "3.12.1", "3.14"], ["3.8", "2.7"]),
    ("MacOS", "darwin", ["amd64", "arm64"], "4.0.0", ["3.9.0", "3.13"], ["3.8.18"]),
    ("Windows", "windows", ["amd64", "386"], "4.2.0", ["3.9", "3.11"], ["3.7"]),
    ("Linux", "linux", ["amd64", "386", "arm64"], "3.19.9", ["3.8", "3.13"], ["3.7.17", "2.7"]),
    ("MacOS", "darwin", ["amd64", "arm64"], "3.0.0", ["3.8"], ["3.7"]),
    ("Windows", "windows", ["amd64", "386"], "3.4.0", ["3.8", "3.12"], ["3.6"]),
    ("Linux", "linux", ["amd64", "386", "arm64"], "2.21.0", ["3.7", "3.13.5"], ["3.6", "3.14"]),
    ("MacOS", "darwin", ["amd64", "arm64"], "2.0.0", ["3.7.0", "3.13"], ["3.14.0"]),
    ("Windows", "windows", ["amd64", "386"], "2.9.0", ["3.10"], ["3.14", "3.6"]),
    ("Linux", "linux", ["amd64", "386", "arm64"], "1.20.0", ["2.7", "3.5", "3.11.9"], ["3.12", "3.4", "2.6"]),
    ("MacOS", "darwin", ["amd64", "arm64"], "1.0.0", ["2.7.18", "3.11"], ["3.12"]),
    ("Windows", "windows", ["amd64", "386"], "0.50.0", ["3.5"], ["3.12"]),
]


@pytest.mark.parametrize(
    ("seed_os", "os_", "arches", "ddtrace", "good", "bad"),
    RUNTIME_ROWS,
    ids=[f"{r[0]}-{r[3]}" for r in RUNTIME_ROWS],
)
def test_runtime_rows(
    policy: Policy, seed_os: str, os_: str, arches: list[str], ddtrace: str, good: list[str], bad: list[str]
) -> None:
    for arch in arches:
        for py in good:
            got = codes(
                make_pod(
                    ddtrace=ddtrace,
                    python=py,
                    node_selector={"kubernetes.io/os": os_, "kubernetes.io/arch": arch},
                ),
                policy,
            )
            assert not got & {"PYTHON_UNSUPPORTED", "PLATFORM_UNSUPPORTED"}, (seed_os, arch, py, got)
        for py in bad:
            got = findings(
                make_pod(
                    ddtrace=ddtrace,
                    python=py,
                    node_selector={"kubernetes.io/os": os_, "kubernetes.io/arch": arch},
                ),
                policy,
            )
            unsupported = [f for f in got if f.code == "PYTHON_UNSUPPORTED"]
            assert len(unsupported) == 1 and unsupported[0].severity == "deny", (seed_os, arch, py)
    for arch in {"amd64", "arm64", "386", "s390x"} - set(arches):
        got = codes(
            make_pod(
                ddtrace=ddtrace,
                python=good[0],
                node_selector={"kubernetes.io/os": os_, "kubernetes.io/arch": arch},
            ),
            policy,
        )
        assert "PLATFORM_UNSUPPORTED" in got, (seed_os, arch)


def test_4x_has_no_i686(policy: Policy) -> None:
    got = findings(
        make_pod(ddtrace="4.1.0", python="3.12", node_selector={"kubernetes.io/arch": "386"}), policy
    )
    msg = [f.message for f in got if f.code == "PLATFORM_UNSUPPORTED"]
    assert msg and "3.x" in msg[0]  # the fix names a line that still runs on 386


def test_missing_os_means_linux_and_missing_arch_is_not_judged(policy: Policy) -> None:
    assert codes(make_pod(ddtrace="4.1.0", python="3.12"), policy) == set()


# --- "Supported frameworks" (AAP) and IAST frameworks ---------------------------------------------------
AAP_FRAMEWORKS = [
    ("django", "2.2", "2.1"),
    ("fastapi", "0.86", "0.85"),
    ("flask", "1.1", "1.0"),
    ("tornado", "6.3", "6.2"),
]
IAST_FRAMEWORKS = [("django", "2.2", "2.1.15"), ("fastapi", "0.86", "0.85.2"), ("flask", "1.1", "1.0.4")]


@pytest.mark.parametrize(("name", "minimum", "older"), AAP_FRAMEWORKS)
@pytest.mark.parametrize("cap", ["threat-detection", "threat-protection"])
def test_aap_frameworks(policy: Policy, name: str, minimum: str, older: str, cap: str) -> None:
    ok = codes(
        make_pod(ddtrace="4.4.0", python="3.12", capabilities=cap, frameworks=f"{name}={minimum}"), policy
    )
    assert "FRAMEWORK_UNSUPPORTED" not in ok
    bad = findings(
        make_pod(ddtrace="4.4.0", python="3.12", capabilities=cap, frameworks=f"{name}={older}"), policy
    )
    fw = [f for f in bad if f.code == "FRAMEWORK_UNSUPPORTED"]
    assert len(fw) == 1 and fw[0].severity == "warn" and minimum in fw[0].message


def test_tornado_needs_ddtrace_4_4(policy: Policy) -> None:
    pod = make_pod(ddtrace="4.3.9", python="3.12", capabilities="threat-detection", frameworks="tornado=6.4")
    fw = [f for f in findings(pod, policy) if f.code == "FRAMEWORK_UNSUPPORTED"]
    assert len(fw) == 1 and "4.4" in fw[0].message


@pytest.mark.parametrize(("name", "minimum", "older"), IAST_FRAMEWORKS)
def test_iast_frameworks(policy: Policy, name: str, minimum: str, older: str) -> None:
    ok = codes(
        make_pod(ddtrace="4.4.0", python="3.12", capabilities="iast", frameworks=f"{name}={minimum}"), policy
    )
    assert "FRAMEWORK_UNSUPPORTED" not in ok
    bad = codes(
        make_pod(ddtrace="4.4.0", python="3.12", capabilities="iast", frameworks=f"{name}={older}"), policy
    )
    assert "FRAMEWORK_UNSUPPORTED" in bad


def test_iast_on_tornado_is_unsupported(policy: Policy) -> None:
    got = findings(
        make_pod(ddtrace="4.4.0", python="3.12", capabilities="iast", frameworks="tornado=6.4"), policy
    )
    fw = [f for f in got if f.code == "FRAMEWORK_UNSUPPORTED"]
    assert len(fw) == 1 and fw[0].capability == "iast"


def test_sca_is_supported_on_all_frameworks(policy: Policy) -> None:
    got = codes(
        make_pod(
            ddtrace="4.4.0", python="3.12", capabilities="sca", frameworks="tornado=5.0,django=1.0,flask=0.1"
        ),
        policy,
    )
    assert got == set()


def test_unlisted_frameworks_raise_nothing(policy: Policy) -> None:
    got = codes(
        make_pod(
            ddtrace="4.4.0",
            python="3.12",
            capabilities="threat-detection,iast,user-activity-tracking",
            frameworks="celery=5.3,pyramid=2.0",
        ),
        policy,
    )
    assert "FRAMEWORK_UNSUPPORTED" not in got and "USER_AUTH_FRAMEWORK_UNSUPPORTED" not in got


# --- "User Authentication Frameworks compatibility": Django 1.11, 2.2, 3.2, >= 4.0 -----------------------
@pytest.mark.parametrize(
    "version", ["1.11", "1.11.29", "2.2", "2.2.28", "3.2", "3.2.25", "4.0", "4.2", "5.1"]
)
def test_user_auth_django_supported(policy: Policy, version: str) -> None:
    got = codes(
        make_pod(
            ddtrace="4.4.0",
            python="3.12",
            capabilities="user-activity-tracking",
            frameworks=f"django={version}",
        ),
        policy,
    )
    assert "USER_AUTH_FRAMEWORK_UNSUPPORTED" not in got


@pytest.mark.parametrize("version", ["1.10", "2.0", "2.1", "3.0", "3.1.14"])
def test_user_auth_django_unsupported_reported_with_one_code(policy: Policy, version: str) -> None:
    got = findings(
        make_pod(
            ddtrace="4.4.0",
            python="3.12",
            capabilities="user-activity-tracking",
            frameworks=f"django={version}",
        ),
        policy,
    )
    assert [f.code for f in got] == ["USER_AUTH_FRAMEWORK_UNSUPPORTED"]


def test_user_auth_other_framework(policy: Policy) -> None:
    got = codes(
        make_pod(
            ddtrace="4.4.0", python="3.12", capabilities="user-activity-tracking", frameworks="flask=3.0"
        ),
        policy,
    )
    assert got == {"USER_AUTH_FRAMEWORK_UNSUPPORTED"}


# --- Notes of the seeds ---------------------------------------------------------------------------------
def test_notes_are_kept(policy: Policy) -> None:
    texts = " ".join(n.text for n in policy.notes)
    assert "all databases" in texts and "PEP 249" in texts and "all frameworks" in texts
    assert "app.ddog-gov.com" in texts

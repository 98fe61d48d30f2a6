"""The CompatibilityPolicy CRD agrees with what the store accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ddcompat.decide import MODES
from ddcompat.policy import CODES
from ddcompat.store import InvalidPolicySpec, parse_policy_spec

CRD = Path(__file__).resolve().parent.parent / "charts" / "ddcompat" / "crds" / "compatibilitypolicy.yaml"


def schema() -> dict:  # type: ignore[type-arg]
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["group"] == "ddcompat.io"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Mode", "Age"}
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]  # type: ignore[no-any-return]


def test_crd_enums_match_the_code() -> None:
    spec = schema()
    assert spec["mode"]["enum"] == list(MODES)
    assert set(spec["severities"]["properties"]) == set(CODES)
    for prop in spec["severities"]["properties"].values():
        assert prop["enum"] == ["deny", "warn", "ignore"]


def test_store_rejects_what_the_schema_rejects() -> None:
    parse_policy_spec(
        "ok", {"mode": "enforce", "severities": {"RELEASE_EOL": "ignore"}, "requireVersions": True}
    )
    for bad in (
        {"mode": "strict"},
        {"severities": {"NOPE": "deny"}},
        {"severities": {"RELEASE_EOL": "fatal"}},
        {"requireVersions": "yes"},
    ):
        with pytest.raises(InvalidPolicySpec):
            parse_policy_spec("bad", bad)

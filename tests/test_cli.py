"""The `ddcompat` command as a CI job runs it: real subprocesses, real files, every exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from conftest import make_pod

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ddcompat.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def check_json(*args: str, stdin: str | None = None) -> tuple[int, dict[str, Any]]:
    proc = run("check", "-o", "json", "--offline", "--now", "2026-11-24", *args, stdin=stdin)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_examples_verdicts() -> None:
    code, out = check_json(str(EXAMPLES))
    assert code == 1
    by_name = {r["object"]["name"]: r for r in out["results"]}
    assert set(by_name) == {"checkout", "accounts", "streams", "nightly-report", "catalog"}  # Service skipped
    assert by_name["checkout"]["decision"] == "deny"
    assert by_name["nightly-report"]["decision"] == "deny"
    assert by_name["accounts"]["decision"] == "warn"
    assert by_name["streams"]["decision"] == "warn"
    assert by_name["catalog"] == {
        "object": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "catalog"},
        "decision": "allow",
        "findings": [],
    }
    f = by_name["checkout"]["findings"][1]
    assert set(f) == {"code", "severity", "container", "capability", "message"}
    assert {x["container"] for x in by_name["checkout"]["findings"]} == {"checkout"}  # envoy sidecar: nothing


def test_exit_0_when_nothing_denies_and_fail_on_warn() -> None:
    path = str(EXAMPLES / "django-user-tracking.yaml")
    assert run("check", "--offline", path).returncode == 0
    assert run("check", "--offline", "--fail-on-warn", path).returncode == 1
    assert run("check", "--offline", "--fail-on-warn", str(EXAMPLES / "fine.yaml")).returncode == 0


def test_mode_warn_and_audit_never_deny() -> None:
    path = str(EXAMPLES / "deployment-injection-iast.yaml")
    for mode in ("warn", "audit"):
        code, out = check_json("--mode", mode, path)
        assert code == 0 and out["results"][0]["decision"] == "warn"
    code, out = check_json("--mode", "off", path)
    assert code == 0 and out["results"][0] == {**out["results"][0], "decision": "allow", "findings": []}


def test_now_moves_release_lifecycle() -> None:
    pod = yaml.safe_dump(make_pod(ddtrace="3.10.0", python="3.12"))
    spring = json.loads(run("check", "-o", "json", "--now", "2026-05-31", "-", stdin=pod).stdout)
    summer = json.loads(run("check", "-o", "json", "--now", "2026-06-01", "-", stdin=pod).stdout)
    assert [f["code"] for f in spring["results"][0]["findings"]] == ["RELEASE_MAINTENANCE"]
    assert [f["code"] for f in summer["results"][0]["findings"]] == ["RELEASE_EOL"]


def test_stdin_list_and_json_and_helm_style_stream() -> None:
    items = [
        make_pod(ddtrace="2.20.0", python="3.12", capabilities="iast"),
        make_pod(kind="Job", ddtrace="4.0.0"),
    ]
    as_list = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    code, out = check_json("-", stdin=as_list)
    assert code == 1 and [r["object"]["kind"] for r in out["results"]] == ["Pod", "Job"]
    stream = (
        "---\n# Source: chart/templates/x.yaml\n"
        + "\n---\n".join(yaml.safe_dump(i) for i in items)
        + "\n---\n"
    )
    code2, out2 = check_json(stdin=stream)
    assert code2 == 1 and len(out2["results"]) == 2


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n")
    proc = run("check", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:4" in proc.stderr or f"{bad}:5" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_file_and_bad_usage() -> None:
    proc = run("check", "/nonexistent/deploy.yaml")
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert run("check", "--mode", "strict", "x").returncode == 2
    assert run("check", "--now", "tomorrow", "x").returncode == 2


def test_document_without_kind_is_an_input_error_and_unknown_kinds_are_skipped() -> None:
    proc = run("check", "-", stdin="apiVersion: v1\nmetadata: {name: x}\n")
    assert proc.returncode == 2 and "has no kind" in proc.stderr
    code, out = check_json("-", stdin="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert code == 0 and out == {"results": []}


def test_invalid_annotation_is_denied() -> None:
    pod = make_pod(annotations={"ddcompat.io/web.ddtrace-version": "latest-and-greatest"})
    code, out = check_json("-", stdin=json.dumps(pod))
    f = out["results"][0]["findings"][0]
    assert code == 1 and f["code"] == "VERSION_INVALID" and "latest-and-greatest" in f["message"]


def test_text_output_is_readable() -> None:
    proc = run("check", "--now", "2026-11-24", str(EXAMPLES / "cronjob-python314.yaml"))
    assert proc.returncode == 1
    assert "DENY" in proc.stdout and "PYTHON_UNSUPPORTED" in proc.stdout and "1 deny" in proc.stdout
    assert "\033[" not in proc.stdout  # no colour when not a TTY


def test_review_prints_a_response_and_exit_2_on_garbage(tmp_path: Path) -> None:
    proc = run("review", str(EXAMPLES / "reviews" / "deny-deployment-iast.json"))
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert out["response"]["allowed"] is False and out["response"]["status"]["code"] == 403
    assert out["response"]["uid"] == "5f1c7a52-0001-4c1e-9d3e-000000000001"
    assert (
        run("review", "--mode", "warn", str(EXAMPLES / "reviews" / "deny-deployment-iast.json")).returncode
        == 0
    )
    garbage = run("review", "-", stdin="{not json")
    assert garbage.returncode == 2 and "not JSON" in garbage.stderr and "Traceback" not in garbage.stderr
    no_uid = run(
        "review",
        "-",
        stdin=json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}),
    )
    assert no_uid.returncode == 2 and "uid" in no_uid.stderr


def test_explain_shows_rows() -> None:
    proc = run(
        "explain", "--ddtrace", "2.10.0", "--python", "3.12", "--capability", "iast", "--now", "2026-11-24"
    )
    assert proc.returncode == 1
    assert "CAPABILITY_UNSUPPORTED" in proc.stdout and "release line 2.x" in proc.stdout
    assert "CPython 3.7-3.13" in proc.stdout
    assert run("explain", "--ddtrace", "x", "--python", "3.12").returncode == 2


def test_policy_validate(tmp_path: Path) -> None:
    assert run("policy", "validate", str(ROOT / "policies")).returncode == 0
    bad = tmp_path / "override.yaml"
    bad.write_text("version: '1'\nrelease_lines:\n  - name: 4.x\n    versions: '>=4.0,<'\n")
    proc = run("policy", "validate", str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "release_lines[0]" in proc.stderr and "Traceback" not in proc.stderr

"""Policy loading errors (file, path, reason) and the version/range logic under hypothesis."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddcompat.policy import PolicyError, load_policy
from ddcompat.versions import InvalidVersion, in_range, parse_range, parse_version

releases = st.tuples(st.integers(0, 9), st.integers(0, 40), st.integers(0, 30))


@given(releases, st.booleans())
def test_parse_version_accepts_leading_v(parts: tuple[int, int, int], v: bool) -> None:
    text = ".".join(map(str, parts))
    assert parse_version(("v" if v else "") + text).release[:3] == parts


@given(st.text(alphabet="abcxyz -_/", min_size=1, max_size=8))
def test_parse_version_rejects_words(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(text)


@given(releases, st.sampled_from(["", "rc1", "a2", "b1", ".dev0"]))
def test_every_version_has_exactly_one_line_by_major(parts: tuple[int, int, int], pre: str) -> None:
    policy = load_policy()
    version = parse_version(".".join(map(str, parts)) + pre)
    line = policy.line_of(version)
    if parts[0] >= 5:
        assert line is None
    else:
        assert line is not None
        assert line.name == ("1.x" if parts[0] < 2 else f"{parts[0]}.x")
        assert sum(1 for ln in policy.release_lines if ln.contains(version)) == 1


@given(st.integers(0, 20), st.integers(0, 20))
def test_python_range_inclusive_of_patch_releases(minor_: int, patch: int) -> None:
    spec = parse_range(">=3.7,<3.14")
    assert in_range(parse_version(f"3.{minor_}.{patch}"), spec) == (7 <= minor_ <= 13)
    assert in_range(parse_version(f"3.{minor_}"), spec) == (7 <= minor_ <= 13)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "override.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("version: '2'\nseverities: {RELEASE_EOL: panic}\n", "severities.RELEASE_EOL", "not one of"),
        ("version: '2'\nrelease_lines: {}\n", "release_lines", "expected a list"),
        (
            "version: '2'\nrelease_lines:\n  - {name: 4.x, versions: '>=4', support: ga}\n",
            "release_lines[0].support",
            "not one of",
        ),
        (
            "version: '2'\ncapabilities:\n"
            "  iast: {name: IAST, min_ddtrace: two, frameworks: iast, source: [cs]}\n",
            "capabilities.iast.min_ddtrace",
            "not a version",
        ),
        ("version: '2'\nbogus: 1\n", "bogus", "unknown section"),
        ("release_lines: []\n", "version", "own version"),
        ("version: '2'\nnotes: [\n", "line", "invalid YAML"),
        ("version: '2'\ninjection: {init_image: x}\n", "injection.default_tag", "missing"),
    ],
)
def test_broken_policy_names_file_path_and_reason(tmp_path: Path, text: str, where: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.file == str(path) and where in err.value.path and reason in err.value.reason
    assert str(path) in str(err.value)


def test_override_replaces_a_section(tmp_path: Path) -> None:
    path = write(
        tmp_path, "version: 'acme-7'\ninjection: {init_image: dd-lib-python-init, default_tag: v4}\n"
    )
    policy = load_policy(path)
    assert policy.version == "acme-7" and policy.default_tag == "v4"
    assert len(policy.runtimes) == 12  # untouched sections stay


def test_missing_override_dir(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "nope")

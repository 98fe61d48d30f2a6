"""The compatibility tables as typed, validated data.

The YAML under ``policies/`` is parsed once per load into frozen objects whose versions and ranges are
already `packaging` objects, so the request path never parses a table value. Every error names the file,
the path inside it and the reason, because a policy override is written by hand and mounted from a
ConfigMap: "invalid policy" alone would leave the on-call engineer guessing.
"""

from __future__ import annotations

import datetime
import importlib.resources
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from .versions import (
    InvalidSpecifier,
    InvalidVersion,
    SpecifierSet,
    Version,
    in_any,
    in_range,
    parse_range,
    parse_version,
)

CODES: Final = (
    "PYTHON_UNSUPPORTED",
    "PLATFORM_UNSUPPORTED",
    "CAPABILITY_UNSUPPORTED",
    "CAPABILITY_PREVIEW",
    "CAPABILITY_PREREQUISITE",
    "RELEASE_EOL",
    "RELEASE_MAINTENANCE",
    "RELEASE_UNKNOWN",
    "FRAMEWORK_UNSUPPORTED",
    "USER_AUTH_FRAMEWORK_UNSUPPORTED",
    "AGENT_UNSUPPORTED",
    "SETTING_IGNORED",
    "VERSION_UNKNOWN",
    "VERSION_INVALID",
    "IMAGE_METADATA_UNAVAILABLE",
)
SEVERITIES: Final = ("deny", "warn", "ignore")
CAPABILITY_IDS: Final = (
    "threat-detection",
    "threat-protection",
    "blocking-response",
    "user-activity-tracking",
    "api-security",
    "sca",
    "iast",
)
SUPPORT_LEVELS: Final = ("general-availability", "maintenance", "end-of-life")
FRAMEWORK_TABLES: Final = ("aap", "iast", "user-auth", "any")
DEPLOYMENT_SUPPORT: Final = ("supported", "preview", "unspecified")


class PolicyError(ValueError):
    """A policy file that cannot be used: which file, where in it, and why."""

    def __init__(self, file: str, path: str, reason: str) -> None:
        super().__init__(f"{file}: {path or '<top>'}: {reason}")
        self.file = file
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class ReleaseLine:
    name: str
    versions: SpecifierSet
    support: str
    support_text: str
    min_agent: Version | None
    newest: Version
    maintenance_until: datetime.date | None
    source: tuple[str, ...]

    def contains(self, version: Version) -> bool:
        """Pre-releases belong to their major's line: ``4.0.0rc1`` is 4.x."""
        return in_range(Version(version.base_version), self.versions)

    def is_eol(self, today: datetime.date) -> bool:
        if self.support == "end-of-life":
            return True
        return self.maintenance_until is not None and today > self.maintenance_until


@dataclass(frozen=True)
class RuntimeRow:
    os: str
    os_text: str
    arch: tuple[str, ...]
    cpu_text: str
    runtime: str
    python: tuple[SpecifierSet, ...]
    python_text: str
    ddtrace: SpecifierSet
    ddtrace_text: str
    source: tuple[str, ...]


@dataclass(frozen=True)
class Capability:
    id: str
    name: str
    min_ddtrace: Version
    preview: bool
    frameworks: str
    requires: tuple[str, ...]
    deployment: Mapping[str, str]
    source: tuple[str, ...]


@dataclass(frozen=True)
class Prerequisite:
    id: str
    name: str
    env: str
    true_values: frozenset[str]
    default: bool
    source: tuple[str, ...]


@dataclass(frozen=True)
class FrameworkRow:
    table: str
    name: str
    display: str
    min_version: Version
    supports: tuple[str, ...]
    min_ddtrace: Version | None
    source: tuple[str, ...]


@dataclass(frozen=True)
class UserAuthRow:
    name: str
    display: str
    versions: tuple[SpecifierSet, ...]
    versions_text: str
    source: tuple[str, ...]


@dataclass(frozen=True)
class TrueValues:
    ddtrace: SpecifierSet
    values: frozenset[str]


@dataclass(frozen=True)
class Setting:
    env: str
    capability: str
    values: str | frozenset[str]  # "boolean", "nonempty" or the accepted values (lower case)
    introduced: Version | None
    removed: Version | None
    true_values: tuple[TrueValues, ...]
    source: tuple[str, ...]

    def lifecycle_text(self) -> str:
        if self.introduced and self.removed:
            return f"read by ddtrace {self.introduced}–<{self.removed}"
        if self.introduced:
            return f"read from ddtrace {self.introduced}"
        if self.removed:
            return f"removed in ddtrace {self.removed}"
        return "read by every ddtrace"


@dataclass(frozen=True)
class Note:
    id: str
    text: str
    source: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    version: str
    files: tuple[str, ...]
    documents: Mapping[str, Mapping[str, Any]]
    release_lines: tuple[ReleaseLine, ...]
    runtimes: tuple[RuntimeRow, ...]
    capabilities: Mapping[str, Capability]
    prerequisites: Mapping[str, Prerequisite]
    frameworks: Mapping[str, tuple[FrameworkRow, ...]]
    user_auth_frameworks: tuple[UserAuthRow, ...]
    notes: tuple[Note, ...]
    settings: tuple[Setting, ...]
    init_image: str
    default_tag: str
    severities: Mapping[str, str]
    settings_by_env: Mapping[str, Setting] = field(default_factory=dict)
    known_frameworks: frozenset[str] = frozenset()
    # derived once per load so the request path never evaluates a range for a table lookup
    rows_by_line: Mapping[str, tuple[RuntimeRow, ...]] = field(default_factory=dict)
    _line_cache: dict[Version, ReleaseLine | None] = field(default_factory=dict, compare=False, repr=False)
    _python_cache: dict[tuple[Version, tuple[RuntimeRow, ...]], bool] = field(
        default_factory=dict, compare=False, repr=False
    )
    _cite_cache: dict[tuple[str, ...], str] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, version: Version) -> ReleaseLine | None:
        """The release line of `version` (memoised: few distinct versions run in one cluster)."""
        try:
            return self._line_cache[version]
        except KeyError:
            pass
        found = next((line for line in self.release_lines if line.contains(version)), None)
        if len(self._line_cache) < 4096:
            self._line_cache[version] = found
        return found

    def python_supported(self, python: Version, rows: tuple[RuntimeRow, ...]) -> bool:
        """Whether any of `rows` runs `python` (memoised: few distinct Pythons and row sets per cluster)."""
        key = (python, rows)
        hit = self._python_cache.get(key)
        if hit is None:
            hit = any(in_any(python, row.python) for row in rows)
            if len(self._python_cache) < 4096:
                self._python_cache[key] = hit
        return hit

    def newest_in_major(self, major: int) -> Version | None:
        for line in self.release_lines:
            if line.newest.major == major:
                return line.newest
        return None

    def newest_ga(self) -> Version:
        ga = [line.newest for line in self.release_lines if line.support == "general-availability"]
        return max(ga) if ga else max(line.newest for line in self.release_lines)

    def cite(self, sources: tuple[str, ...]) -> str:
        """``("aap#supported-frameworks",)`` → ``AAP framework table``: the row's origin, briefly."""
        hit = self._cite_cache.get(sources)
        if hit is None:
            hit = self._cite_cache[sources] = self._cite(sources)
        return hit

    def _cite(self, sources: tuple[str, ...]) -> str:
        if not sources:
            return "policy"
        doc, _, section = sources[0].partition("#")
        if doc == "implied":
            return "ddtrace settings"
        document = self.documents.get(doc, {})
        label = (document.get("sections") or {}).get(section, section)
        return f"{document.get('short', doc)} {label}".strip()


# --------------------------------------------------------------------------------------------------
# Loading

TOP_LEVEL: Final = (
    "version",
    "documents",
    "release_lines",
    "runtimes",
    "capabilities",
    "prerequisites",
    "frameworks",
    "user_auth_frameworks",
    "notes",
    "settings",
    "injection",
    "severities",
)


def bundled_policy_dir() -> Path:
    """The policy shipped inside the package (a link to the repository's ``policies/`` in a checkout)."""
    return Path(str(importlib.resources.files("ddcompat").joinpath("policies")))


def load_policy(override_dir: str | os.PathLike[str] | None = None) -> Policy:
    """Load the bundled tables, then let each YAML file of `override_dir` replace whole sections.

    Replacing a section (not merging rows) keeps the result predictable: what the override says for
    `release_lines` is exactly the release-line table in force.
    """
    bundled = sorted(bundled_policy_dir().glob("*.yaml"))
    if not bundled:
        raise PolicyError(str(bundled_policy_dir()), "", "no bundled policy file found")
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    files: list[str] = []
    for path in bundled:
        _merge(path, _read_yaml(path), merged, origin, replace=False)
        files.append(str(path))
    if override_dir is not None:
        override = Path(override_dir)
        paths = (
            [override]
            if override.is_file()
            else sorted(p for p in override.glob("*.y*ml") if not p.name.startswith("."))
        )
        if not override.exists():
            raise PolicyError(str(override), "", "no such file or directory")
        for path in paths:
            data = _read_yaml(path)
            if "version" not in data:
                raise PolicyError(str(path), "version", "an override must carry its own version")
            _merge(path, data, merged, origin, replace=True)
            files.append(str(path))
    return _build(merged, origin, tuple(files))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), "", exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise PolicyError(str(path), "", "not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(str(path), where, f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise PolicyError(str(path), "", "must be a mapping of sections")
    return data


def _merge(
    path: Path, data: dict[str, Any], merged: dict[str, Any], origin: dict[str, str], *, replace: bool
) -> None:
    for key, value in data.items():
        if key not in TOP_LEVEL:
            raise PolicyError(
                str(path), str(key), f"unknown section (expected one of: {', '.join(TOP_LEVEL)})"
            )
        if key in merged and not replace and key != "version":
            raise PolicyError(str(path), str(key), f"section already defined in {origin[key]}")
        merged[key] = value
        origin[key] = str(path)


class _Reader:
    """Typed access to one YAML node that knows where it is, so errors can say so."""

    def __init__(self, file: str, path: str, node: Any) -> None:
        self.file, self.path, self.node = file, path, node

    def fail(self, reason: str, sub: str = "") -> PolicyError:
        return PolicyError(self.file, f"{self.path}{sub}", reason)

    def mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.node, dict):
            raise self.fail(f"expected a mapping, got {type(self.node).__name__}")
        return self.node

    def sequence(self) -> Sequence[Any]:
        if not isinstance(self.node, list):
            raise self.fail(f"expected a list, got {type(self.node).__name__}")
        return self.node

    def child(self, key: str | int) -> _Reader:
        if isinstance(key, int):
            return _Reader(self.file, f"{self.path}[{key}]", self.sequence()[key])
        node = self.mapping()
        if key not in node:
            raise self.fail("required key is missing", f".{key}")
        return _Reader(self.file, f"{self.path}.{key}" if self.path else key, node[key])

    def opt(self, key: str) -> _Reader | None:
        node = self.mapping()
        if node.get(key) is None:
            return None
        return self.child(key)

    def items(self) -> list[_Reader]:
        return [self.child(i) for i in range(len(self.sequence()))]

    def text(self) -> str:
        if isinstance(self.node, bool) or not isinstance(self.node, str | int | float):
            raise self.fail(f"expected text, got {type(self.node).__name__}")
        return str(self.node)

    def texts(self) -> tuple[str, ...]:
        if isinstance(self.node, str):
            return (self.node,)
        return tuple(item.text() for item in self.items())

    def version(self) -> Version:
        try:
            return parse_version(self.text())
        except InvalidVersion:
            raise self.fail(f"not a version: {self.node!r}") from None

    def range(self) -> SpecifierSet:
        try:
            return parse_range(self.text())
        except InvalidSpecifier:
            raise self.fail(f"not a version range: {self.node!r}") from None

    def choice(self, allowed: Sequence[str]) -> str:
        value = self.text()
        if value not in allowed:
            raise self.fail(f"{value!r} is not one of: {', '.join(allowed)}")
        return value

    def date(self) -> datetime.date:
        if isinstance(self.node, datetime.date):
            return self.node
        try:
            return datetime.date.fromisoformat(self.text())
        except ValueError:
            raise self.fail(f"not a date (YYYY-MM-DD): {self.node!r}") from None

    def boolean(self) -> bool:
        if not isinstance(self.node, bool):
            raise self.fail(f"expected true or false, got {self.node!r}")
        return self.node


def _build(data: dict[str, Any], origin: dict[str, str], files: tuple[str, ...]) -> Policy:
    def section(key: str) -> _Reader:
        file = origin.get(key, files[-1] if files else "<policy>")
        if key not in data:
            raise PolicyError(file, key, "required section is missing")
        return _Reader(file, key, data[key])

    version = section("version").text()
    documents: dict[str, Mapping[str, Any]] = {}
    for key in section("documents").mapping():
        node = section("documents").child(key)
        node.child("file").text()
        node.child("short").text()
        sections = node.opt("sections")
        if sections is not None:
            sections.mapping()
        documents[str(key)] = dict(node.mapping())

    def sources(node: _Reader) -> tuple[str, ...]:
        values = node.child("source").texts()
        for value in values:
            doc = value.partition("#")[0]
            if doc == "implied":
                continue
            if doc not in documents:
                raise node.fail(f"unknown document {doc!r}", ".source")
            section_id = value.partition("#")[2]
            if section_id and section_id not in (documents[doc].get("sections") or {}):
                raise node.fail(f"unknown section {section_id!r} of document {doc!r}", ".source")
        return values

    lines = []
    for node in section("release_lines").items():
        until = node.opt("maintenance_until")
        support = node.child("support").choice(SUPPORT_LEVELS)
        if support == "maintenance" and until is None:
            raise node.fail("a maintenance line needs maintenance_until", ".maintenance_until")
        agent = node.opt("min_agent")
        line = ReleaseLine(
            name=node.child("name").text(),
            versions=node.child("versions").range(),
            support=support,
            support_text=node.child("support_text").text(),
            min_agent=agent.version() if agent else None,
            newest=node.child("newest").version(),
            maintenance_until=until.date() if until else None,
            source=sources(node),
        )
        if not line.contains(line.newest):
            raise node.fail(f"newest {line.newest} is outside {line.versions}", ".newest")
        lines.append(line)

    runtimes = []
    for node in section("runtimes").items():
        runtimes.append(
            RuntimeRow(
                os=node.child("os").choice(("linux", "darwin", "windows")),
                os_text=node.child("os_text").text(),
                arch=node.child("arch").texts(),
                cpu_text=node.child("cpu_text").text(),
                runtime=node.child("runtime").text(),
                python=tuple(item.range() for item in node.child("python").items()),
                python_text=node.child("python_text").text(),
                ddtrace=node.child("ddtrace").range(),
                ddtrace_text=node.child("ddtrace").text(),
                source=sources(node),
            )
        )

    prerequisites = {}
    for key, _ in section("prerequisites").mapping().items():
        node = section("prerequisites").child(key)
        prerequisites[key] = Prerequisite(
            id=key,
            name=node.child("name").text(),
            env=node.child("env").text(),
            true_values=frozenset(v.lower() for v in node.child("true_values").texts()),
            default=node.child("default").boolean(),
            source=sources(node),
        )

    capabilities = {}
    for key in section("capabilities").mapping():
        node = section("capabilities").child(key)
        if key not in CAPABILITY_IDS:
            raise node.fail(f"unknown capability id (expected one of: {', '.join(CAPABILITY_IDS)})")
        requires = node.opt("requires")
        deployment = node.opt("deployment")
        status = node.opt("status")
        capabilities[key] = Capability(
            id=key,
            name=node.child("name").text(),
            min_ddtrace=node.child("min_ddtrace").version(),
            preview=(status.choice(("ga", "preview")) == "preview") if status else False,
            frameworks=node.child("frameworks").choice(FRAMEWORK_TABLES),
            requires=requires.texts() if requires else (),
            deployment={
                str(k): deployment.child(str(k)).choice(DEPLOYMENT_SUPPORT) for k in deployment.mapping()
            }
            if deployment
            else {},
            source=sources(node),
        )
        for req in capabilities[key].requires:
            if req not in prerequisites:
                raise node.fail(f"unknown prerequisite {req!r}", ".requires")

    frameworks: dict[str, tuple[FrameworkRow, ...]] = {}
    for table in section("frameworks").mapping():
        tnode = section("frameworks").child(table)
        if table not in FRAMEWORK_TABLES:
            raise tnode.fail(f"unknown framework table (expected one of: {', '.join(FRAMEWORK_TABLES)})")
        rows = []
        for node in tnode.items():
            mdd = node.opt("min_ddtrace")
            rows.append(
                FrameworkRow(
                    table=table,
                    name=node.child("name").text().lower(),
                    display=node.child("display").text(),
                    min_version=node.child("min_version").version(),
                    supports=node.child("supports").texts(),
                    min_ddtrace=mdd.version() if mdd else None,
                    source=sources(node),
                )
            )
        frameworks[table] = tuple(rows)

    user_auth = tuple(
        UserAuthRow(
            name=node.child("name").text().lower(),
            display=node.child("display").text(),
            versions=tuple(item.range() for item in node.child("versions").items()),
            versions_text=node.child("versions_text").text(),
            source=sources(node),
        )
        for node in section("user_auth_frameworks").items()
    )

    notes = tuple(
        Note(id=node.child("id").text(), text=node.child("text").text(), source=sources(node))
        for node in section("notes").items()
    )

    settings = []
    for node in section("settings").items():
        values_node = node.child("values")
        values: str | frozenset[str]
        if isinstance(values_node.node, list):
            values = frozenset(v.lower() for v in values_node.texts())
        else:
            values = values_node.choice(("boolean", "nonempty"))
        capability = node.child("capability").text()
        if capability not in capabilities:
            raise node.fail(f"unknown capability {capability!r}", ".capability")
        intro, removed, tv = node.opt("introduced"), node.opt("removed"), node.opt("true_values")
        settings.append(
            Setting(
                env=node.child("env").text(),
                capability=capability,
                values=values,
                introduced=intro.version() if intro else None,
                removed=removed.version() if removed else None,
                true_values=tuple(
                    TrueValues(
                        ddtrace=t.child("ddtrace").range(), values=frozenset(t.child("values").texts())
                    )
                    for t in (tv.items() if tv else [])
                ),
                source=sources(node),
            )
        )

    injection = section("injection")
    default_tag = injection.child("default_tag").text()
    severities_node = section("severities")
    severities = {}
    for code in severities_node.mapping():
        if code not in CODES:
            raise severities_node.fail(f"unknown finding code {code!r}", f".{code}")
        severities[code] = severities_node.child(code).choice(SEVERITIES)
    for code in CODES:
        if code not in severities:
            raise severities_node.fail("no default severity for this code", f".{code}")

    known = frozenset(row.name for rows in frameworks.values() for row in rows) | {r.name for r in user_auth}
    return Policy(
        version=version,
        files=files,
        documents=documents,
        release_lines=tuple(lines),
        runtimes=tuple(runtimes),
        capabilities=capabilities,
        prerequisites=prerequisites,
        frameworks=frameworks,
        user_auth_frameworks=user_auth,
        notes=notes,
        settings=tuple(settings),
        init_image=injection.child("init_image").text(),
        default_tag=default_tag,
        severities=severities,
        settings_by_env={s.env: s for s in settings},
        known_frameworks=known,
        rows_by_line={
            line.name: tuple(r for r in runtimes if in_range(line.newest, r.ddtrace)) for line in lines
        },
    )

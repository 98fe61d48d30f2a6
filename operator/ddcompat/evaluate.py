"""Facts × policy → findings. Pure: no I/O, no clock (``today`` is passed in), no kopf.

Each finding's message says what is wrong (the value and where it was read), why (the table row and its
document) and the fix, in one line a developer can act on from ``kubectl apply`` output.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .facts import ContainerFacts, Fact, Platform, PodFacts, requests
from .policy import CAPABILITY_IDS, Capability, Policy, ReleaseLine, RuntimeRow
from .versions import Version, in_any, in_range, minor


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # deny | warn (after the policy's overrides; "ignore" findings are dropped)
    container: str
    capability: str | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "severity": self.severity,
            "container": self.container,
            "capability": self.capability,
            "message": self.message,
        }


def evaluate_pod(
    pod: PodFacts,
    policy: Policy,
    today: datetime.date,
    severities: Mapping[str, str] | None = None,
    require_versions: bool = False,
) -> list[Finding]:
    """Findings for every evaluated container, with severities after `severities` overrides."""
    findings: list[Finding] = []
    for container in pod.containers:
        if container.evaluated or (container.image_unavailable and container.injected):
            findings.extend(evaluate_container(container, pod.platform, policy, today, require_versions))
    effective = dict(policy.severities)
    if severities:
        effective.update(severities)
    if require_versions:
        effective["VERSION_UNKNOWN"] = "deny"
    result = []
    for finding in findings:
        severity = effective.get(finding.code, finding.severity)
        if severity == "ignore":
            continue
        result.append(finding if severity == finding.severity else _with_severity(finding, severity))
    return result


def _with_severity(finding: Finding, severity: str) -> Finding:
    return Finding(finding.code, severity, finding.container, finding.capability, finding.message)


def evaluate_container(
    facts: ContainerFacts,
    platform: Platform,
    policy: Policy,
    today: datetime.date,
    require_versions: bool = False,
) -> list[Finding]:
    out: list[Finding] = []
    name = facts.name

    def add(code: str, message: str, capability: str | None = None) -> None:
        out.append(Finding(code, policy.severities[code], name, capability, message))

    for bad in facts.invalid:
        add("VERSION_INVALID", f"annotation {bad.key}={_clip(bad.value)}: {bad.reason}; fix the annotation")

    ddtrace = facts.ddtrace
    line = policy.line_of(ddtrace.value) if ddtrace else None
    if ddtrace and line is None:
        known = ", ".join(line.name for line in policy.release_lines)
        add(
            "RELEASE_UNKNOWN",
            f"{_tracer(ddtrace)} is in no release line of policy {policy.version} "
            f"(known: {known}); use ddtrace {policy.newest_ga()}",
        )
    if ddtrace and line:
        _release(add, ddtrace, line, facts, policy, today)
    rows = _runtime_rows(policy, line, platform) if line else []
    if ddtrace and line:
        _platform_check(add, ddtrace, line, platform, policy)
    if ddtrace and line and facts.python and rows:
        _python_check(add, ddtrace, line, facts.python, rows, platform, policy)

    requested = [cap for cap in CAPABILITY_IDS if cap in facts.capabilities]
    unknown = [what for what, fact in (("ddtrace", facts.ddtrace), ("Python", facts.python)) if fact is None]
    if unknown and (requested or require_versions):
        notes = [n for n in (facts.ddtrace_unresolved, facts.python_unresolved) if n]
        why = f" ({'; '.join(notes)})" if notes else ""
        asks = f" but requests {', '.join(requested)}" if requested else ""
        hint = " and ".join(
            f"ddcompat.io/{name}.{'ddtrace' if w == 'ddtrace' else 'python'}-version" for w in unknown
        )
        add("VERSION_UNKNOWN", f"{' and '.join(unknown)} version unknown{why}{asks}; annotate {hint}")

    for cap_id in requested:
        cap = policy.capabilities[cap_id]
        source = facts.capabilities[cap_id]
        if ddtrace:
            if ddtrace.value < cap.min_ddtrace:
                add(
                    "CAPABILITY_UNSUPPORTED",
                    f"{cap_id} ({source}) needs ddtrace >={cap.min_ddtrace} [{policy.cite(cap.source)}], "
                    f"{_tracer(ddtrace)}; use ddtrace >={cap.min_ddtrace}",
                    cap_id,
                )
            elif cap.preview:
                add(
                    "CAPABILITY_PREVIEW",
                    f"{cap_id} is Preview in ddtrace >={cap.min_ddtrace} [{policy.cite(cap.source)}]; "
                    "expect changes, not for production guarantees",
                    cap_id,
                )
        _prerequisites(add, cap, facts, policy)
    _frameworks(add, requested, facts, policy)
    _settings(add, facts, policy)

    if facts.image_unavailable:
        add(
            "IMAGE_METADATA_UNAVAILABLE",
            f"image {_clip(facts.image, 60)} metadata unavailable ({facts.image_unavailable}); "
            "versions not checked, annotate them",
        )
    return out


# --------------------------------------------------------------------------------------------------


def _tracer(fact: Fact[Version]) -> str:
    return f"has {fact.value} ({fact.source})"


def _release(
    add: _Add,
    ddtrace: Fact[Version],
    line: ReleaseLine,
    facts: ContainerFacts,
    policy: Policy,
    today: datetime.date,
) -> None:
    cite = policy.cite(line.source)  # cached per source tuple
    newest = policy.newest_ga()
    if line.is_eol(today):
        ended = f"; maintenance ended {line.maintenance_until}" if line.maintenance_until else ""
        add(
            "RELEASE_EOL",
            f"ddtrace {ddtrace.value} ({ddtrace.source}): {line.name} is End of Life{ended} "
            f"[{cite}]; upgrade to ddtrace {newest}",
        )
    elif line.support == "maintenance":
        add(
            "RELEASE_MAINTENANCE",
            f"ddtrace {ddtrace.value}: {line.name} is in maintenance until "
            f"{line.maintenance_until} [{cite}]; plan the move to ddtrace {newest}",
        )
    agent = facts.agent
    if agent and line.min_agent and agent.value < line.min_agent:
        add(
            "AGENT_UNSUPPORTED",
            f"Datadog Agent {agent.value} ({agent.source}) is older than {line.min_agent}, "
            f"the minimum for ddtrace {line.name} [{cite}]; upgrade the Agent",
        )


def _runtime_rows(policy: Policy, line: ReleaseLine, platform: Platform) -> list[RuntimeRow]:
    """Rows of the runtime table for this line on the pod's OS (and arch, when it is known)."""
    rows = [r for r in policy.rows_by_line[line.name] if r.os == platform.os.value]
    if platform.arch:
        rows = [r for r in rows if any(a.value in r.arch for a in platform.arch)]
    return rows


def _platform_check(
    add: _Add, ddtrace: Fact[Version], line: ReleaseLine, platform: Platform, policy: Policy
) -> None:
    os_rows = [r for r in policy.rows_by_line[line.name] if r.os == platform.os.value]
    if not os_rows:
        add(
            "PLATFORM_UNSUPPORTED",
            f"OS {platform.os.value} ({platform.os.source}) is not supported by "
            f"ddtrace {line.name} (runtime table); use linux nodes",
        )
        return
    for arch in platform.arch:
        if not any(arch.value in r.arch for r in os_rows):
            supported = sorted({a for r in os_rows for a in r.arch})
            others = [
                ln.name
                for ln in policy.release_lines
                if any(
                    r.os == platform.os.value and arch.value in r.arch and in_range(ln.newest, r.ddtrace)
                    for r in policy.runtimes
                )
            ]
            fix = f"use ddtrace {' or '.join(others)}" if others else "use a supported architecture"
            add(
                "PLATFORM_UNSUPPORTED",
                f"{platform.os.value}/{arch.value} ({arch.source}) is not supported by ddtrace {line.name} "
                f"[{policy.cite(os_rows[0].source)}: {'/'.join(supported)}]; "
                f"schedule on {'/'.join(supported)} or {fix}",
            )


def _python_check(
    add: _Add,
    ddtrace: Fact[Version],
    line: ReleaseLine,
    python: Fact[Version],
    rows: list[RuntimeRow],
    platform: Platform,
    policy: Policy,
) -> None:
    if policy.python_supported(python.value, tuple(rows)):
        return
    row = rows[0]
    lines_ok = [
        ln.name
        for ln in policy.release_lines
        if any(
            r.os == platform.os.value and in_range(ln.newest, r.ddtrace) and in_any(python.value, r.python)
            for r in policy.runtimes
        )
    ]
    alt = f" or ddtrace {lines_ok[0]}" if lines_ok else ""  # the newest line that runs this Python
    add(
        "PYTHON_UNSUPPORTED",
        f"Python {minor(python.value)} ({python.source}) is unsupported by ddtrace {line.name} "
        f"[{policy.cite(row.source)}: CPython {row.python_text}]; use Python {row.python_text}{alt}",
    )


def _prerequisites(add: _Add, cap: Capability, facts: ContainerFacts, policy: Policy) -> None:
    for req_id in cap.requires:
        req = policy.prerequisites[req_id]
        env = facts.env.get(req.env)
        enabled = req.default if env is None else env.value.strip().lower() in req.true_values
        if not enabled and env is not None:
            add(
                "CAPABILITY_PREREQUISITE",
                f"{cap.id} requires {req.name}, turned off by {env.source}={_clip(env.value, 20)} "
                f"[{policy.cite(req.source)}]; set {req.env}=true or remove it",
                cap.id,
            )


def _frameworks(add: _Add, requested: Sequence[str], facts: ContainerFacts, policy: Policy) -> None:
    seen: set[tuple[str, str]] = set()
    for cap_id in requested:
        table = policy.capabilities[cap_id].frameworks
        if table == "any":
            continue
        for fw in facts.frameworks:
            fname, fversion = fw.value
            if fname not in policy.known_frameworks or (table, fname) in seen:
                continue
            seen.add((table, fname))
            if table == "user-auth":
                auth = next((r for r in policy.user_auth_frameworks if r.name == fname), None)
                if auth is None:
                    names = ", ".join(r.display for r in policy.user_auth_frameworks)
                    add(
                        "USER_AUTH_FRAMEWORK_UNSUPPORTED",
                        f"{fname} {fversion} ({fw.source}) has no automatic user activity tracking "
                        f"[{policy.cite(policy.user_auth_frameworks[0].source)}: {names}]",
                        cap_id,
                    )
                elif not in_any(fversion, auth.versions):
                    add(
                        "USER_AUTH_FRAMEWORK_UNSUPPORTED",
                        f"{auth.display} {fversion} ({fw.source}) is outside the user-auth table "
                        f"[{policy.cite(auth.source)}: {auth.versions_text}]; use a listed version",
                        cap_id,
                    )
                continue
            row = next((r for r in policy.frameworks.get(table, ()) if r.name == fname), None)
            if row is None:
                listed = ", ".join(r.display for r in policy.frameworks.get(table, ()))
                add(
                    "FRAMEWORK_UNSUPPORTED",
                    f"{fname} {fversion} is not supported for {cap_id} "
                    f"[{_table_cite(policy, table)}: {listed}]",
                    cap_id,
                )
            elif fversion < row.min_version:
                add(
                    "FRAMEWORK_UNSUPPORTED",
                    f"{row.display} {fversion} ({fw.source}) is older than {row.min_version}, "
                    f"the supported version for {cap_id} [{policy.cite(row.source)}]; "
                    f"use {row.display} >={row.min_version}",
                    cap_id,
                )
            elif row.min_ddtrace and facts.ddtrace and facts.ddtrace.value < row.min_ddtrace:
                add(
                    "FRAMEWORK_UNSUPPORTED",
                    f"{row.display} support starts in ddtrace {row.min_ddtrace} "
                    f"[{policy.cite(row.source)}], has {facts.ddtrace.value}; "
                    f"use ddtrace >={row.min_ddtrace}",
                    cap_id,
                )


def _table_cite(policy: Policy, table: str) -> str:
    rows = policy.frameworks.get(table, ())
    return policy.cite(rows[0].source) if rows else "policy"


def _settings(add: _Add, facts: ContainerFacts, policy: Policy) -> None:
    if facts.ddtrace is None:
        return
    version = facts.ddtrace.value
    for env in facts.env.values():
        setting = policy.settings_by_env.get(env.name)
        if setting is None or not requests(setting.values, env.value):
            continue
        reason = None
        if setting.introduced and version < setting.introduced:
            reason = f"ddtrace {version} ignores it (read from {setting.introduced})"
        elif setting.removed and version >= setting.removed:
            reason = f"ddtrace {version} ignores it (removed in {setting.removed})"
        else:
            for tv in setting.true_values:
                if in_range(version, tv.ddtrace) and env.value.strip().lower() not in tv.values:
                    reason = (
                        f"ddtrace {version} reads only {'/'.join(sorted(tv.values))} as true, "
                        f"so {env.value!r} leaves it off"
                    )
                    break
        if reason is None:
            continue
        alternatives = [
            s.env
            for s in policy.settings
            if s.capability == setting.capability
            and s is not setting
            and (s.introduced is None or version >= s.introduced)
            and (s.removed is None or version < s.removed)
        ]
        if setting.true_values:
            fix = f"set {env.name}=true"
        elif alternatives:
            fix = f"use {alternatives[0]}"
        else:
            fix = f"upgrade ddtrace to >={setting.introduced}" if setting.introduced else "remove it"
        add("SETTING_IGNORED", f"{env.source}: {reason}; {fix}", setting.capability)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Add(Protocol):
    """The `add` callback each check reports through."""

    def __call__(self, code: str, message: str, capability: str | None = None) -> None: ...

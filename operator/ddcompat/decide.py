"""Findings × mode → what the API server is told: allowed or not, the denial message, the warnings.

Limits come from how kubectl shows warnings: one line each, aim for ≤ 120 characters, never over 256,
at most 4 KiB together (the API server truncates beyond that; we would rather say how many were left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from .evaluate import Finding

MODES: Final = ("enforce", "warn", "audit", "off")
STRICTNESS: Final = {"off": 0, "audit": 1, "warn": 2, "enforce": 3}
WARNING_MAX: Final = 256
WARNINGS_TOTAL_MAX: Final = 4096
WOULD_DENY: Final = "[would deny] "


@dataclass(frozen=True)
class Decision:
    decision: str  # allow | warn | deny
    allowed: bool
    message: str = ""  # response.status.message when denied
    warnings: tuple[str, ...] = field(default_factory=tuple)


def finding_line(finding: Finding, prefix: str = "") -> str:
    """One kubectl warning line: ``CODE container: message``, clipped at 256 characters."""
    line = f"{prefix}{finding.code} {finding.container}: {finding.message}"
    return line if len(line) <= WARNING_MAX else line[: WARNING_MAX - 1] + "…"


def decide(findings: Sequence[Finding], mode: str, controlled: bool = False) -> Decision:
    """The mode's effect on the findings. A controller's Pod is never denied (its template was judged)."""
    if mode == "off" or not findings:
        return Decision("allow", True)
    if mode == "audit":
        return Decision("warn", True)
    denies = [f for f in findings if f.severity == "deny"]
    warns = [f for f in findings if f.severity != "deny"]
    if mode == "enforce" and denies and not controlled:
        return Decision(
            "deny",
            False,
            message="\n".join(finding_line(f) for f in denies),
            warnings=_bounded([finding_line(f) for f in warns]),
        )
    lines = [finding_line(f, WOULD_DENY) for f in denies] + [finding_line(f) for f in warns]
    return Decision("warn", True, warnings=_bounded(lines))


def _bounded(lines: list[str]) -> tuple[str, ...]:
    """Keep whole lines within 4 KiB; the last one says how many were left out."""
    out: list[str] = []
    total = 0
    for i, line in enumerate(lines):
        size = len(line.encode())
        if total + size > WARNINGS_TOTAL_MAX - 64:
            out.append(f"… {len(lines) - i} more finding(s): run `ddcompat check` on the manifest for all")
            break
        out.append(line)
        total += size
    return tuple(out)


def strictest(modes: Sequence[str]) -> str:
    return max(modes, key=lambda m: STRICTNESS[m])

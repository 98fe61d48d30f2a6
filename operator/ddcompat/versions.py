"""Version and range logic, on top of `packaging` (never re-parse versions by hand).

Two quirks of the field are handled here and nowhere else: a leading ``v`` (image tags such as
``v2.21.0``) and pre-releases, which belong to their major's line (``4.0.0rc1`` is 4.x) and must match
ranges that `packaging` would otherwise exclude from them by default.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = [
    "InvalidSpecifier",
    "InvalidVersion",
    "SpecifierSet",
    "Version",
    "in_any",
    "in_range",
    "parse_range",
    "parse_version",
]


@functools.lru_cache(maxsize=4096)
def parse_version(text: str) -> Version:
    """Parse ``2.21.0``, ``v2.21.0`` or ``3.11``; raise `InvalidVersion` for anything else.

    Unlike `packaging` alone, surrounding blanks are not accepted silently from annotations:
    the caller strips what it reads, so that what we show is what was written.
    Memoised: a cluster runs few distinct versions, and `Version` objects are immutable.
    """
    if not isinstance(text, str) or not text or text != text.strip():
        raise InvalidVersion(f"not a version: {text!r}")
    body = text[1:] if text[:1] in ("v", "V") else text
    if not body[:1].isdigit():
        raise InvalidVersion(f"not a version: {text!r}")
    version = Version(body)
    if version.local is not None or version.epoch:
        raise InvalidVersion(f"not a release version: {text!r}")
    return version


def parse_range(text: str) -> SpecifierSet:
    """Parse a PEP 440 range such as ``>=4,<5``; raise `InvalidSpecifier` when it is not one."""
    if not isinstance(text, str):
        raise InvalidSpecifier(f"not a version range: {text!r}")
    return SpecifierSet(text)


def in_range(version: Version, spec: SpecifierSet) -> bool:
    """Whether `version` is in `spec`, pre-releases included (``3.14.0rc1`` is a 3.14)."""
    return spec.contains(version, prereleases=True)


def in_any(version: Version, specs: Iterable[SpecifierSet]) -> bool:
    return any(in_range(version, spec) for spec in specs)


def minor(version: Version) -> str:
    """``3.11.7`` → ``3.11``: how the tables and messages name a Python."""
    return ".".join(str(part) for part in version.release[:2])

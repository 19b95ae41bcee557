"""Semantic versions (SemVer 2.0.0) and their precedence, for `orderBy: "semver"`.

A version is `MAJOR.MINOR.PATCH`, each a number without leading zeros, optionally followed by
`-` and dot-separated pre-release identifiers (numeric ones without leading zeros) and by `+`
and build metadata. Precedence (SemVer 2.0.0, section 11): compare MAJOR, MINOR, PATCH
numerically; a version with a pre-release is lower than the same version without; pre-releases
compare identifier by identifier, numeric identifiers numerically and below alphanumeric ones,
alphanumeric ones in ASCII order, and a shorter list of equal identifiers is lower. Build
metadata does not take part (`1.0.0+a` and `1.0.0+b` have equal precedence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = r"0|[1-9][0-9]*"
_IDENTIFIER = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_IDENTIFIER}(?:\.{_IDENTIFIER})*))?"
    rf"(?:\+(?P<build>{_IDENTIFIER}(?:\.{_IDENTIFIER})*))?",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed version; `key` orders versions by precedence (equal keys: equal precedence)."""

    text: str
    key: tuple[int, int, int, tuple[tuple[int, int, str], ...]]

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key


# The last part of the key is the pre-release as (kind, number, text) per identifier: numbers
# (kind 0) before words (kind 1), and a shorter list of equal identifiers first. A release is
# `((2, 0, ""),)`, after every pre-release of the same MAJOR.MINOR.PATCH.
_RELEASE = ((2, 0, ""),)
# Tags are at most 128 characters; this bounds the numbers int() is asked to read.
_MAX_LENGTH = 256


def parse(text: str) -> Version | None:
    """`text` as a SemVer 2.0 version, or None when it is not one (`1.2`, `01.2.3`, `1.2.3-01`)."""
    match = _SEMVER.fullmatch(text) if len(text) <= _MAX_LENGTH else None
    if match is None:
        return None
    pre = match.group("pre")
    release: tuple[tuple[int, int, str], ...] = _RELEASE
    if pre is not None:
        parts: list[tuple[int, int, str]] = []
        for identifier in pre.split("."):
            if identifier.isdigit():
                if len(identifier) > 1 and identifier[0] == "0":
                    return None  # numeric identifiers must not have leading zeros
                parts.append((0, int(identifier), ""))
            else:
                parts.append((1, 0, identifier))
        release = tuple(parts)
    major, minor, patch = (int(match.group(g)) for g in ("major", "minor", "patch"))
    return Version(text, (major, minor, patch, release))

"""Name patterns and durations: the small grammars a policy is written in.

Patterns (repositories and tags alike; docs/policy.md "Patterns"):

- a glob, matched against the whole name: `*` is any run of characters except `/`, `**` is any
  run including `/`, `?` is one character except `/`; every other character stands for itself.
  `***` is rejected as ambiguous, and so is any character a name can never contain (such as `[`
  or a space), because a pattern that can never match silently disables the rule it sits in.
- `regex:` followed by a Python regular expression that must match the whole name.

Durations: a whole number followed by one unit, `s`, `m` (minutes), `h`, `d` or `w`, such as
`90s`, `30m`, `1h`, `7d`, `2w`; at most 100 years. Nothing else is accepted (no `1.5h`, no
`1h30m`, no `-1d`, no months or years, which have no fixed length).

Everything raises `PatternError`, whose message says what is allowed; `acr_core.planning.policy`
adds the rule and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum


class PatternError(ValueError):
    """A pattern or a duration that does not follow the grammar above."""


class NameKind(Enum):
    """What a pattern is matched against: the characters each can contain differ."""

    REPOSITORY = "repository"
    TAG = "tag"


# Repository names are lowercase letters, digits, `.`, `_`, `-` and `/` (OCI distribution spec,
# "name" grammar); tags are letters, digits, `_`, `.` and `-` (OCI distribution spec, "tag"
# grammar: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}).
_NAME_CHARS = {
    NameKind.REPOSITORY: frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/"),
    NameKind.TAG: frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"),
}
_ALLOWED_TEXT = {
    NameKind.REPOSITORY: "lowercase letters, digits, '.', '_', '-' and '/'",
    NameKind.TAG: "letters, digits, '.', '_' and '-'",
}
REGEX_PREFIX = "regex:"


def glob_to_regex(glob: str, kind: NameKind) -> str:
    """Translate a glob into an equivalent regular expression (without anchors)."""
    if not glob:
        raise PatternError("an empty pattern matches nothing; write a name, a glob or 'regex:...'")
    if "***" in glob:
        raise PatternError(
            f"{glob!r}: '***' is ambiguous; use '*' (stops at '/') or '**' (crosses '/')"
        )
    allowed = _NAME_CHARS[kind]
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char in allowed:
            out.append(re.escape(char))
        elif kind is NameKind.REPOSITORY and char.isupper():
            raise PatternError(
                f"{glob!r}: ACR repository names are lowercase, so {char!r} never matches; "
                "write the pattern in lowercase"
            )
        else:
            raise PatternError(
                f"{glob!r}: {char!r} can never appear in a {kind.value} name; a glob may contain "
                f"{_ALLOWED_TEXT[kind]}, '*', '**' and '?' (for anything else write 'regex:...')"
            )
        i += 1
    return "".join(out)


def pattern_to_regex(pattern: str, kind: NameKind) -> str:
    """The regular expression (unanchored source) for one pattern, validated."""
    if pattern.startswith(REGEX_PREFIX):
        source = pattern[len(REGEX_PREFIX) :]
        if not source:
            raise PatternError(f"{pattern!r}: 'regex:' must be followed by a regular expression")
        try:
            re.compile(source)
        except re.error as exc:
            raise PatternError(f"{pattern!r}: not a valid regular expression ({exc})") from None
        return source
    return glob_to_regex(pattern, kind)


@dataclass(frozen=True, slots=True)
class PatternSet:
    """Several patterns; a name matches the set when it matches any one of them.

    Each pattern is compiled on its own: joined into one alternation, a regex's inline flags
    (`(?i)`) or named groups would not compile, and its back-references (`\\1`) would point at
    another pattern's groups and silently match something else. An empty set matches nothing.
    """

    patterns: tuple[str, ...]
    kind: NameKind
    _compiled: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, patterns: Iterable[str], kind: NameKind) -> PatternSet:
        """Validate and compile; raises `PatternError` naming the first bad pattern."""
        items = tuple(patterns)
        return cls(items, kind, tuple(re.compile(pattern_to_regex(p, kind)) for p in items))

    def matches(self, name: str) -> bool:
        return self.first_match(name) is not None

    def first_match(self, name: str) -> str | None:
        """The first pattern (as written) that matches `name`, for a reason a user can read."""
        for pattern, compiled in zip(self.patterns, self._compiled, strict=True):
            if compiled.fullmatch(name) is not None:
                return pattern
        return None


_DURATION = re.compile(r"(0|[1-9][0-9]*)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `30m`, `1h`, `7d`, `2w`: one whole number and one unit, at most 100 years."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise PatternError(
            f"{text!r} is not a duration; write a whole number and one unit: "
            "s (seconds), m (minutes), h (hours), d (days) or w (weeks), such as '30m' or '7d'"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise PatternError(f"{text!r} is longer than 100 years (36500d), the longest allowed")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of `value` in the duration grammar (for reasons and docs)."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

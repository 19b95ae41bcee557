"""Name patterns and durations: the small grammars a policy is written in.

Patterns (repositories and tags alike; docs/policy.md "Patterns"):

- a glob, matched against the whole name: `*` is any run of characters except `/`, `**` is any
  run including `/`, `?` is one character except `/`; every other character stands for itself.
  `***` is rejected as ambiguous, and so is any character a name can never contain (such as `[`
  or a space), because a pattern that can never match silently disables the rule it sits in.
- `regex:` followed by a regular expression in RE2 syntax (the dialect of `acr purge`'s Go
  regexp) that must match the whole name. RE2 matches in time linear in the name, so no pattern
  can stall a run (a backtracking `(a+)+$` doubles its time with every character); what it
  cannot express (backreferences, lookaround, possessive quantifiers, `\\Z`) is rejected.

Durations: a whole number followed by one unit, `s`, `m` (minutes), `h`, `d` or `w`, such as
`90s`, `30m`, `1h`, `7d`, `2w`; at most 100 years. Nothing else is accepted (no `1.5h`, no
`1h30m`, no `-1d`, no months or years, which have no fixed length).

Everything raises `PatternError`, whose message says what is allowed; `acr_core.planning.policy`
adds the rule and the field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Protocol

import re2


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
# How much of a pattern or duration a message quotes: enough to find it in the policy, not a
# flood of a megabyte when that is what the policy holds.
_MAX_QUOTED = 80


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quoted(text: str) -> str:
    """`text` as a message quotes it: repr, and bounded (repr writes some characters as ten)."""
    return _cut(repr(text[: _MAX_QUOTED + 1]), _MAX_QUOTED)


def glob_to_regex(glob: str, kind: NameKind) -> str:
    """Translate a glob into an equivalent regular expression (without anchors)."""
    if not glob:
        raise PatternError("an empty pattern matches nothing; write a name, a glob or 'regex:...'")
    if "***" in glob:
        raise PatternError(
            f"{_quoted(glob)}: '***' is ambiguous; use '*' (stops at '/') or '**' (crosses '/')"
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
                f"{_quoted(glob)}: ACR repository names are lowercase, so {char!r} never matches; "
                "write the pattern in lowercase"
            )
        else:
            raise PatternError(
                f"{_quoted(glob)}: {char!r} can never appear in a {kind.value} name; a glob may "
                f"contain {_ALLOWED_TEXT[kind]}, '*', '**' and '?' (for anything else write "
                "'regex:...')"
            )
        i += 1
    return "".join(out)


def pattern_to_regex(pattern: str, kind: NameKind) -> str:
    """The regular expression (unanchored RE2 source) for one pattern, validated."""
    if pattern.startswith(REGEX_PREFIX):
        source = pattern[len(REGEX_PREFIX) :]
        if not source:
            raise PatternError(
                f"{_quoted(pattern)}: 'regex:' must be followed by a regular expression"
            )
        _check(source, pattern)
        return source
    return glob_to_regex(pattern, kind)


class _Matcher(Protocol):
    """What `PatternSet` uses of a compiled `re2.Set` (google-re2 ships no type hints)."""

    def Match(self, text: str) -> list[int] | None: ...


# google-re2 logs every parse error to stderr by default; the error is raised as well.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _check(source: str, pattern: str) -> None:
    """Raise `PatternError` unless RE2 compiles `source`; `pattern` (as written) names it."""
    try:
        re2.compile(source, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else "rejected"
        raise PatternError(_rejection(source, pattern, _cut(reason, 2 * _MAX_QUOTED))) from None
    except UnicodeEncodeError:
        raise PatternError(
            f"{_quoted(pattern)}: contains a lone surrogate, which is not text"
        ) from None


def _rejection(source: str, pattern: str, reason: str) -> str:
    try:
        re.compile(source)
    except (re.error, RecursionError, OverflowError):  # Python's parser recurses per group
        return f"{_quoted(pattern)}: not a valid regular expression ({reason})"
    # Python's engine would take it, so the pattern uses a feature only a backtracking engine has.
    return (
        f"{_quoted(pattern)}: RE2, the regex dialect of policies (and of acr purge), cannot "
        f"express this ({reason}); it has no backreferences, lookaround or possessive "
        "quantifiers, and writes \\Z as \\z: rewrite the pattern without them, or list the "
        "names as globs"
    )


def _matcher(sources: tuple[str, ...]) -> _Matcher | None:
    """One RE2 set of already checked expressions, each anchored at both ends on its own.

    A set is one automaton for all of them (several times faster than matching each), and its
    members stay separate: a regex's inline flags (`(?i)`) or group names do not reach another.
    """
    if not sources:
        return None
    matcher = re2.Set.FullMatchSet(_RE2_OPTIONS)
    try:
        for source in sources:
            matcher.Add(source)
        matcher.Compile()
    except re2.error:
        # Each source compiled alone; together they outgrew RE2's memory budget (8 MiB).
        raise PatternError(
            f"{len(sources)} patterns together are too large to compile; use fewer or simpler ones"
        ) from None
    compiled: _Matcher = matcher
    return compiled


@dataclass(frozen=True, slots=True)
class PatternSet:
    """Several patterns; a name matches the set when it matches any one of them.

    An empty set matches nothing. Two sets are equal when they list the same patterns.
    """

    patterns: tuple[str, ...]
    kind: NameKind
    _matcher: _Matcher | None = field(default=None, compare=False, repr=False)
    # Set when every pattern is a glob without `*` or `?`: each matches only its own text, so
    # a dictionary answers (name -> the first such pattern) without running RE2.
    _literals: Mapping[str, str] | None = field(default=None, compare=False, repr=False)
    # Answers already given: a plan asks about the same tag in several stages (protection,
    # competition, `lockTags` locks), and RE2's Python binding costs microseconds a call.
    _known: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def compile(cls, patterns: Iterable[str], kind: NameKind) -> PatternSet:
        """Validate and compile; raises `PatternError` naming the first bad pattern."""
        items = tuple(patterns)
        sources = tuple(pattern_to_regex(p, kind) for p in items)
        literals = None
        if all(not p.startswith(REGEX_PREFIX) and "*" not in p and "?" not in p for p in items):
            # Reversed, so the first of two equal patterns is the one kept.
            literals = {p: p for p in reversed(items)}
        return cls(items, kind, _matcher(sources), literals)

    def matches(self, name: str) -> bool:
        return self.first_match(name) is not None

    def first_match(self, name: str) -> str | None:
        """The first pattern (as written) that matches `name`, for a reason a user can read."""
        if self._literals is not None:
            return self._literals.get(name)
        known = self._known
        if name in known:
            return known[name]
        if len(known) >= _KNOWN_NAMES:
            known.clear()  # bounded: a warm worker plans many repositories
        found = known[name] = self._match(name)
        return found

    def _match(self, name: str) -> str | None:
        if self._matcher is None:
            return None
        try:
            hits = self._matcher.Match(name)
        except UnicodeEncodeError:
            # RE2 matches UTF-8; a name with a lone surrogate (JSON can carry one) is no name.
            return None
        return self.patterns[min(hits)] if hits else None


# The most answers a `PatternSet` remembers: more than the tags of a 100,000-manifest repository.
_KNOWN_NAMES = 1 << 18


class _Regex(Protocol):
    """What `capture` uses of a compiled RE2 expression (google-re2 ships no type hints)."""

    groupindex: dict[str, int]

    def fullmatch(self, text: str) -> _Match | None: ...


class _Match(Protocol):
    def group(self, name: str) -> str | None: ...


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> _Regex | None:
    """The compiled `regex:` pattern (already validated), or None for a glob."""
    if not pattern.startswith(REGEX_PREFIX):
        return None
    compiled: _Regex = re2.compile(pattern[len(REGEX_PREFIX) :], _RE2_OPTIONS)
    return compiled


def named_groups(pattern: str) -> frozenset[str]:
    """The named groups of a `regex:` pattern (`(?P<name>...)`); a glob has none."""
    regex = _regex(pattern)
    return frozenset(regex.groupindex) if regex is not None else frozenset()


def capture(pattern: str, name: str, group: str) -> str | None:
    """The text `group` of `pattern` matched in `name` (matched whole), or None when the pattern
    does not match, has no such group, or the group did not take part in the match."""
    regex = _regex(pattern)
    if regex is None or group not in regex.groupindex:
        return None
    try:
        match = regex.fullmatch(name)
    except UnicodeEncodeError:
        return None
    return None if match is None else match.group(group)


_DURATION = re.compile(r"(0|[1-9][0-9]*)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `30m`, `1h`, `7d`, `2w`: one whole number and one unit, at most 100 years."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise PatternError(
            f"{_quoted(text)} is not a duration; write a whole number and one unit: "
            "s (seconds), m (minutes), h (hours), d (days) or w (weeks), such as '30m' or '7d'"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise PatternError(
            f"{_quoted(text)} is longer than 100 years (36500d), the longest allowed"
        )
    return Duration(seconds, text)


class Duration(timedelta):
    """A `timedelta` that remembers how the policy wrote it, so that reasons say `14d` where the
    policy says `14d` (not `2w`). It compares, hashes and computes as the `timedelta` it is."""

    __slots__ = ("written",)
    written: str

    def __new__(cls, seconds: int, written: str) -> Duration:
        duration = super().__new__(cls, seconds=seconds)
        duration.written = written
        return duration

    def __reduce__(self) -> tuple[type[Duration], tuple[int, str]]:
        return (Duration, (int(self.total_seconds()), self.written))


def format_duration(value: timedelta) -> str:
    """`value` as the policy wrote it, or else its shortest exact spelling in the duration
    grammar (for reasons and docs)."""
    if isinstance(value, Duration):
        return value.written
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

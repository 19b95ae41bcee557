"""The cleanup policy: its model, its parser, and validation that names what is wrong.

A policy is JSON, version 1 or 2 (docs/policy.md; the JSON Schema is `policy.schema.json` next
to this file). Both versions load into one model (`Rule` with keep clauses, `delete` and
referrer rules, `acr_core.planning.rules`); a v1 rule is mapped onto it as issue 13 says.
`load_policy` turns text or a parsed mapping into a frozen `Policy`, or raises one
`PolicyError` listing every problem found, each naming the rule (by name and index) and the
field, and saying what is allowed. Unknown fields are errors: a misspelt `keepTag` must not
quietly turn a protection off.
"""

from __future__ import annotations

import contextlib
import json
import json.decoder
import json.scanner
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeGuard

from acr_core.planning.patterns import (
    REGEX_PREFIX,
    NameKind,
    PatternError,
    PatternSet,
    named_groups,
    parse_duration,
)
from acr_core.planning.rules import (
    MAX_PREVIOUS_DIGESTS,
    Delete,
    KeepClause,
    KeepEntry,
    OrderBy,
    PreviousDigests,
    ReferrerRule,
)

__all__ = [
    "Delete",
    "KeepClause",
    "KeepEntry",
    "OrderBy",
    "Policy",
    "PolicyError",
    "PreviousDigests",
    "ReferrerRule",
    "Rule",
    "Safety",
    "load_policy",
]

POLICY_VERSION = 1  # the version a Policy built without one has
POLICY_VERSIONS = (1, 2)
DEFAULT_MIN_AGE = timedelta(hours=1)
DEFAULT_MAX_DELETES_PER_REPOSITORY = 1000
DEFAULT_MAX_DELETE_FRACTION = 0.9
# Not a registry limit: counts are bounded so that a digit typed once too often, or a hostile
# 5,000-digit number, is an error rather than a rule that silently keeps everything. A million
# is far above the tag count of any real repository.
MAX_COUNT = 1_000_000
# Integer literals longer than this never become ints: no field takes one, and past 4300 digits
# (sys.get_int_max_str_digits) Python's int() raises ValueError from inside json.loads.
_MAX_INT_DIGITS = 20
_MAX_SHOWN = 80

_TOP_FIELDS = frozenset({"$schema", "version", "description", "rules", "safety"})
_COMMON_RULE_FIELDS = frozenset({"name", "description", "repositories", "lockTags", "minAge"})
_RULE_FIELDS = {
    1: _COMMON_RULE_FIELDS | {"keepLatest", "keepTags", "untagged"},
    2: _COMMON_RULE_FIELDS | {"keep", "delete", "referrers"},
}
# What a field of the other version is called here, for the message that refuses it.
_OTHER_VERSION_HINTS = {
    2: {
        "keepLatest": 'in version 2 write "keep": [{"newest": N}] and "delete": {"tagged": {}}',
        "keepTags": 'in version 2 write "keep": [{"tags": [...]}]',
        "untagged": 'in version 2 write "delete": {"untagged": {"olderThan": "7d"}}',
    },
    1: {
        "keep": 'keep clauses need "version": 2',
        "delete": '"delete" needs "version": 2',
        "referrers": 'referrer rules need "version": 2',
    },
}
_UNTAGGED_FIELDS = frozenset({"olderThan"})
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_KEEP_FIELDS = frozenset({"tags", "newest", "per", "orderBy", "pushedWithin"})
_DELETE_FIELDS = frozenset({"tagged", "untagged"})
_REFERRER_FIELDS = frozenset({"artifactType", "keepNewest", "olderThan"})
_SAFETY_FIELDS = frozenset({"maxDeletesPerRepository", "maxDeleteFraction"})


class PolicyError(ValueError):
    """The policy cannot be used. `problems` holds one sentence per mistake found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            text = f"invalid cleanup policy: {self.problems[0]}"
        else:
            text = "invalid cleanup policy:\n" + "\n".join(f"- {p}" for p in self.problems)
        super().__init__(text)


def _no_tags() -> PatternSet:
    return PatternSet.compile((), NameKind.TAG)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: which repositories it governs and what it keeps, deletes and locks.

    `version` is the policy version the rule was written in; it changes only the wording of
    the plan's reasons (a v1 rule's plan reads as v1 plans always did).
    """

    name: str
    index: int
    repositories: PatternSet
    keep: tuple[KeepEntry, ...] = ()
    delete: Delete = field(default_factory=Delete)
    lock_tags: PatternSet = field(default_factory=_no_tags)
    min_age: timedelta = DEFAULT_MIN_AGE
    referrers: tuple[ReferrerRule, ...] = ()
    version: int = POLICY_VERSION
    description: str | None = None

    # The v1 fields, read back from the model (for v1 rules they are what the policy says).

    @property
    def keep_latest(self) -> int | None:
        """The count of the first counting clause without filters (v1's `keepLatest`)."""
        for clause in self.keep:
            plain = isinstance(clause, KeepClause) and clause.pushed_within is None
            if plain and clause.counting and clause.tags is None:
                return clause.newest
        return None

    @property
    def keep_tags(self) -> PatternSet:
        """The tag patterns of the first protecting clause with only tags (v1's `keepTags`)."""
        for clause in self.keep:
            plain = isinstance(clause, KeepClause) and clause.pushed_within is None
            if plain and not clause.counting and clause.tags is not None:
                return clause.tags
        return _no_tags()

    @property
    def previous_digests(self) -> tuple[PreviousDigests, ...]:
        """The rule's `previousDigests` clauses: they need the tag history to plan."""
        return tuple(c for c in self.keep if isinstance(c, PreviousDigests))

    @property
    def untagged_older_than(self) -> timedelta | None:
        return self.delete.untagged


@dataclass(frozen=True, slots=True)
class Safety:
    """Per-repository limits; a plan over either is reported as blocked and not applied.

    `None` switches a limit off.
    """

    max_deletes_per_repository: int | None = DEFAULT_MAX_DELETES_PER_REPOSITORY
    max_delete_fraction: float | None = DEFAULT_MAX_DELETE_FRACTION


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy; `version` is the format it was written in (1 or 2)."""

    rules: tuple[Rule, ...]
    safety: Safety = field(default_factory=Safety)
    version: int = POLICY_VERSION
    description: str | None = None

    def rule_for(self, repository: str) -> Rule | None:
        """The first rule whose `repositories` match; `None`: the repository is never touched."""
        for rule in self.rules:
            if rule.repositories.matches(repository):
                return rule
        return None

    def covers(self, repository: str) -> bool:
        return self.rule_for(repository) is not None


def load_policy(source: str | Mapping[str, object]) -> Policy:
    """Parse and validate a policy given as JSON text or as an already parsed mapping."""
    if isinstance(source, str):
        # Editors on Windows may save UTF-8 with a byte order mark; it is no part of the JSON.
        source = source.removeprefix("\ufeff")
        try:
            data: object = json.loads(
                source, object_pairs_hook=_reject_duplicate_keys, parse_int=_parse_int
            )
        except _DuplicateKeyError as exc:
            raise PolicyError([_where_duplicate(source, exc)]) from None
        except json.JSONDecodeError as exc:
            raise PolicyError(
                [f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
            ) from None
        except RecursionError:
            # json gives up on deeply nested input with RecursionError, not a decode error.
            raise PolicyError(["nested too deeply to be a policy"]) from None
    else:
        data = source
    not_text = _lone_surrogates(data)
    if not_text:
        raise PolicyError(not_text)
    return _Parser().policy(data)


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json.loads keeps the last of two equal keys; a policy with two `keepTags` would then
    # silently lose one list of protections.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _where_duplicate(source: str, exc: _DuplicateKeyError) -> str:
    """The duplicate key with the line of its second occurrence, found by decoding again
    with Python's own scanner, which lets a hook see where each object starts."""
    key = str(exc.args[0])
    starts: list[int] = []
    decoder = json.JSONDecoder(object_pairs_hook=_reject_duplicate_keys, parse_int=_parse_int)

    def parse_object(
        s_and_end: tuple[str, int], *args: Any, **kwargs: Any
    ) -> tuple[dict[str, object], int]:
        starts.append(s_and_end[1])
        found: tuple[dict[str, object], int] = json.decoder.JSONObject(  # type: ignore[attr-defined]
            s_and_end, *args, **kwargs
        )
        starts.pop()
        return found

    decoder.parse_object = parse_object  # type: ignore[attr-defined]
    decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
    with contextlib.suppress(_DuplicateKeyError):
        decoder.decode(source)
    text = f"the key {_show(key)} appears twice in one object"
    if starts:
        # The object being decoded when the hook refused it: its second `"key":` is the one.
        pattern = re.compile(re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:")
        hits = [m.start() for m in pattern.finditer(source, starts[-1])]
        if len(hits) >= 2:
            text += f" (line {source.count(chr(10), 0, hits[1]) + 1})"
    return text + "; keep one"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _LongNumber:
    """An integer literal with more digits than any field allows, kept out of `int()`."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit number"


def _parse_int(text: str) -> int | _LongNumber:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= _MAX_INT_DIGITS else _LongNumber(digits)


def _show(value: object) -> str:
    """`value` for a message, bounded: a huge number or list must not flood the message, nor
    crash it (Python will not print an int of more than 4300 digits)."""
    if _is_int(value) and abs(value) >= 10**_MAX_INT_DIGITS:
        # Counted without str(), which refuses it; the estimate from the bit length can be one
        # too many.
        digits = int(abs(value).bit_length() * math.log10(2)) + 1
        digits -= abs(value) < 10 ** (digits - 1)
        return repr(_LongNumber(digits))
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a container holding such an int, or nested too deep
        return "a value too long to show"
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _lone_surrogates(data: object) -> list[str]:
    """Where `data` holds a string with a lone surrogate (JSON's `"\\ud800"` escape without its
    pair): not text, so it cannot be printed, logged or matched. Iterative: the parsed data may
    be nested as deep as json allows."""
    found: list[str] = []
    pending: list[tuple[str, object]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str) and not _is_text(value):
            found.append(f"{_show_path(where)}: {_NOT_TEXT}")
        elif isinstance(value, Mapping):
            for key, item in reversed(list(value.items())):
                if isinstance(key, str) and not _is_text(key):
                    found.append(f"{_show_path(where)}: a field name {_NOT_TEXT}")
                else:
                    pending.append((f"{where}.{key}" if where else str(key), item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(value))))
    return found


def _show_path(where: str) -> str:
    """Where a value sits, bounded: the path to a value nested 900 deep is 2,700 characters."""
    if not where:
        return "the policy"
    return where if len(where) <= _MAX_SHOWN else where[: _MAX_SHOWN - 3] + "..."


_NOT_TEXT = (
    "contains a lone surrogate (a \\ud800-\\udfff escape without its other half), which is "
    "not text; write the character itself"
)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _guess_version(rules: object) -> int:
    """The version rules without a valid `version` look written in: 1 if any uses a v1 field."""
    v1_only = _RULE_FIELDS[1] - _RULE_FIELDS[2]
    if isinstance(rules, list) and any(
        isinstance(rule, Mapping) and v1_only & set(rule) for rule in rules
    ):
        return 1
    return 2


class _Parser:
    """Collects every problem rather than stopping at the first, so one run shows them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.version: int = POLICY_VERSION

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def policy(self, data: object) -> Policy:
        if not isinstance(data, Mapping):
            raise PolicyError(["the policy must be a JSON object with 'version' and 'rules'"])
        self.unknown_fields("the policy", data, _TOP_FIELDS)
        version = data.get("version")
        if version is None:
            self.fail("version", 'missing; write "version": 2 (or 1 for the first format)')
        elif not _is_int(version) or version not in POLICY_VERSIONS:
            self.fail(
                "version", f"{_show(version)} is not supported; the policy versions are 1 and 2"
            )
        # With a bad version the rules are still checked, in the version they look written in.
        if _is_int(version) and version in POLICY_VERSIONS:
            self.version = version
        else:
            self.version = _guess_version(data.get("rules"))
        rules = self.rules(data.get("rules"))
        safety = self.safety(data.get("safety", {}))
        if self.problems:
            raise PolicyError(self.problems)
        description = data.get("description")
        return Policy(
            rules=rules,
            safety=safety,
            version=self.version,
            description=description if isinstance(description, str) else None,
        )

    def unknown_fields(
        self,
        where: str,
        data: Mapping[str, object],
        known: frozenset[str],
        hints: Mapping[str, str] | None = None,
    ) -> None:
        for key in sorted(set(data) - known):
            hint = (hints or {}).get(key)
            self.fail(
                where,
                f"unknown field {_show(key)}; "
                + (f"{hint}; " if hint else "")
                + f"the fields allowed here are {', '.join(sorted(known))}",
            )

    def rules(self, value: object) -> tuple[Rule, ...]:
        if not isinstance(value, list) or not value:
            self.fail("rules", "must be a non-empty list of rules")
            return ()
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            rule = self.rule(index, item)
            if rule is None:
                continue
            if rule.name in seen:
                self.fail(
                    f"rules[{index}].name",
                    f"{_show(rule.name)} is already the name of rules[{seen[rule.name]}]; "
                    "rule names must be unique",
                )
            seen[rule.name] = index
            rules.append(rule)
        return tuple(rules)

    def rule(self, index: int, data: object) -> Rule | None:
        where = f"rules[{index}]"
        if not isinstance(data, Mapping):
            self.fail(where, "must be an object with at least 'repositories'")
            return None
        name = data.get("name", where)
        if not isinstance(name, str) or not name.strip():
            self.fail(f"{where}.name", "must be a non-empty string")
            name = where
        elif "name" in data:
            where = f"{where} ({_show(name)})"
        before = len(self.problems)
        known = _RULE_FIELDS[self.version]
        self.unknown_fields(where, data, known, _OTHER_VERSION_HINTS[self.version])
        for key in sorted(k for k in known - {"repositories"} if k in data):
            if data[key] is None:
                self.fail(f"{where}.{key}", "null is not allowed; leave the field out instead")
        description = data.get("description")
        if "description" in data and not isinstance(description, str):
            self.fail(f"{where}.description", "must be a string")
        repositories = self.patterns(where, "repositories", data.get("repositories"), required=True)
        lock_tags = self.patterns(where, "lockTags", data.get("lockTags", []))
        min_age = self.duration(where, "minAge", data.get("minAge"))
        if self.version == 1:
            keep, delete, referrers = self.v1_parts(where, data)
        else:
            keep = self.keep(where, data.get("keep", []))
            delete = self.delete(where, data.get("delete", {}))
            referrers = self.referrers(where, data.get("referrers", []))
        if len(self.problems) > before or repositories is None:
            return None
        assert lock_tags is not None
        return Rule(
            name=name,
            index=index,
            repositories=repositories,
            keep=keep,
            delete=delete,
            lock_tags=lock_tags,
            min_age=min_age if min_age is not None else DEFAULT_MIN_AGE,
            referrers=referrers,
            version=self.version,
            description=description if isinstance(description, str) else None,
        )

    def v1_parts(
        self, where: str, data: Mapping[str, object]
    ) -> tuple[tuple[KeepEntry, ...], Delete, tuple[ReferrerRule, ...]]:
        """A v1 rule's keepTags, keepLatest and untagged as v2 keep clauses and `delete`
        (issue 13, semantics 6): keepTags is keep[0] when given, keepLatest the next."""
        keep_tags = self.patterns(where, "keepTags", data.get("keepTags", []))
        keep_latest = data.get("keepLatest")
        if keep_latest is not None and not (_is_int(keep_latest) and 0 <= keep_latest <= MAX_COUNT):
            self.fail(
                f"{where}.keepLatest",
                f"{_show(keep_latest)} is not a whole number >= 0 and at most {MAX_COUNT}",
            )
            keep_latest = None
        older_than = None
        untagged = data.get("untagged")
        if untagged is not None:
            if not isinstance(untagged, Mapping):
                self.fail(f"{where}.untagged", 'must be an object such as {"olderThan": "7d"}')
            else:
                self.unknown_fields(f"{where}.untagged", untagged, _UNTAGGED_FIELDS)
                older_than = self.duration(where, "untagged.olderThan", untagged.get("olderThan"))
                if untagged.get("olderThan") is None:
                    self.fail(
                        f"{where}.untagged.olderThan", "missing; write a duration such as '7d'"
                    )
        keep: list[KeepEntry] = []
        if keep_tags is not None and keep_tags.patterns:
            keep.append(KeepClause(index=len(keep), tags=keep_tags))
        tagged = None
        if _is_int(keep_latest):
            keep.append(KeepClause(index=len(keep), newest=keep_latest))
            tagged = parse_duration("0s")
        return tuple(keep), Delete(tagged=tagged, untagged=older_than), ()

    def keep(self, where: str, value: object) -> tuple[KeepEntry, ...]:
        if not isinstance(value, list):
            self.fail(f"{where}.keep", 'must be a list of keep clauses such as [{"newest": 10}]')
            return ()
        clauses: list[KeepEntry] = []
        for index, item in enumerate(value):
            clause = self.keep_clause(f"{where}.keep[{index}]", index, item)
            if clause is not None:
                clauses.append(clause)
        return tuple(clauses)

    def keep_clause(self, where: str, index: int, data: object) -> KeepEntry | None:
        """One keep clause; every kind of clause is told apart here (issue 14 adds one, told
        by its own field, before the filter clause below is assumed)."""
        if not isinstance(data, Mapping):
            self.fail(where, 'must be an object such as {"tags": ["latest"]} or {"newest": 10}')
            return None
        if "previousDigests" in data:
            return self.previous_digests(where, index, data)
        before = len(self.problems)
        self.unknown_fields(where, data, _KEEP_FIELDS)
        for key in sorted(k for k in _KEEP_FIELDS if data.get(k, 0) is None):
            self.fail(f"{where}.{key}", "null is not allowed; leave the field out instead")
        tags = None
        if "tags" in data and data["tags"] is not None:
            tags = self.patterns(where, "tags", data["tags"], required=True)
        pushed_within = self.duration(where, "pushedWithin", data.get("pushedWithin"))
        newest = self.count(where, "newest", data.get("newest"))
        order_by = self.order_by(where, data)
        per = self.per(where, data, tags)
        if len(self.problems) > before:
            return None
        return KeepClause(
            index=index,
            tags=tags,
            pushed_within=pushed_within,
            newest=newest,
            per=per,
            order_by=order_by,
        )

    def previous_digests(
        self, where: str, index: int, data: Mapping[str, object]
    ) -> PreviousDigests | None:
        """`{"previousDigests": {"tags": [...], "count": N}}`, alone in its clause."""
        before = len(self.problems)
        self.unknown_fields(where, data, frozenset({"previousDigests"}))
        value, at = data["previousDigests"], f"{where}.previousDigests"
        example = '{"tags": ["prod"], "count": 3}'
        if not isinstance(value, Mapping):
            self.fail(at, f"must be an object such as {example}")
            return None
        self.unknown_fields(at, value, frozenset({"tags", "count"}))
        tags = self.patterns(at, "tags", value.get("tags"), required=True)
        count = value.get("count")
        if not (_is_int(count) and 1 <= count <= MAX_PREVIOUS_DIGESTS):
            self.fail(
                f"{at}.count",
                f"{_show(count)} is not a whole number from 1 to {MAX_PREVIOUS_DIGESTS} (the "
                "digests the tag history remembers per tag)"
                if count is not None
                else f"missing; write how many earlier digests to keep per tag, as in {example}",
            )
        if len(self.problems) > before or tags is None or not _is_int(count):
            return None
        return PreviousDigests(index=index, tags=tags, count=count)

    def count(self, where: str, name: str, value: object) -> int | None:
        if value is None:
            return None
        if not (_is_int(value) and 0 <= value <= MAX_COUNT):
            self.fail(
                f"{where}.{name}",
                f"{_show(value)} is not a whole number >= 0 and at most {MAX_COUNT}",
            )
            return None
        return value

    def order_by(self, where: str, data: Mapping[str, object]) -> OrderBy:
        value = data.get("orderBy")
        if value is None:
            return OrderBy.TIME
        if value not in ("time", "semver"):
            self.fail(f"{where}.orderBy", f'{_show(value)} is not allowed; use "time" or "semver"')
            return OrderBy.TIME
        if data.get("newest") is None:
            self.fail(
                f"{where}.orderBy",
                'orders the images a clause counts, so it needs "newest"; a clause without '
                '"newest" keeps everything it selects in any order',
            )
        return OrderBy(value)

    def per(self, where: str, data: Mapping[str, object], tags: PatternSet | None) -> str | None:
        """`per`, checked against the clause's own fields: it needs `newest` and tag patterns
        that are all `regex:` patterns defining the named group."""
        value = data.get("per")
        if value is None:
            return None
        if not isinstance(value, str) or not _GROUP_NAME.fullmatch(value):
            self.fail(
                f"{where}.per",
                f"{_show(value)} is not a group name; name a group of the clause's tag regexes "
                "(letters, digits and '_', not starting with a digit), such as 'branch'",
            )
            return None
        if data.get("newest") is None:
            self.fail(f"{where}.per", 'keeps the newest N per group, so it needs "newest"')
        if "tags" not in data:
            self.fail(
                f"{where}.per",
                f"needs tags with a regex defining the group, such as "
                f'["regex:^pr-(?P<{value}>[0-9]+)-.+$"]',
            )
        elif tags is not None:
            for position, pattern in enumerate(tags.patterns):
                if value not in named_groups(pattern):
                    what = "a glob" if not pattern.startswith(REGEX_PREFIX) else "this regex"
                    self.fail(
                        f"{where}.tags[{position}]",
                        f"{_show(pattern)} is {what} without the group {_show(value)} that per "
                        f"names; write it as a regex with (?P<{value}>...)",
                    )
        return value

    def delete(self, where: str, value: object) -> Delete:
        if not isinstance(value, Mapping):
            self.fail(
                f"{where}.delete", 'must be an object such as {"untagged": {"olderThan": "7d"}}'
            )
            return Delete()
        self.unknown_fields(f"{where}.delete", value, _DELETE_FIELDS)
        found: dict[str, timedelta | None] = {"tagged": None, "untagged": None}
        for kind in ("tagged", "untagged"):
            if kind not in value:
                continue
            entry, at = value[kind], f"{where}.delete.{kind}"
            if not isinstance(entry, Mapping):
                self.fail(at, 'must be an object such as {"olderThan": "30d"} (or {} for any age)')
                continue
            self.unknown_fields(at, entry, _UNTAGGED_FIELDS)
            if "olderThan" in entry and entry["olderThan"] is None:
                self.fail(f"{at}.olderThan", "null is not allowed; leave the field out for 0s")
            older_than = self.duration(where, f"delete.{kind}.olderThan", entry.get("olderThan"))
            found[kind] = older_than if older_than is not None else parse_duration("0s")
        return Delete(tagged=found["tagged"], untagged=found["untagged"])

    def referrers(self, where: str, value: object) -> tuple[ReferrerRule, ...]:
        if not isinstance(value, list):
            self.fail(
                f"{where}.referrers",
                'must be a list such as [{"artifactType": "application/...", "keepNewest": 1}]',
            )
            return ()
        rules: list[ReferrerRule] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            rule = self.referrer_rule(f"{where}.referrers[{index}]", index, item)
            if rule is None:
                continue
            if rule.artifact_type in seen:
                self.fail(
                    f"{where}.referrers[{index}].artifactType",
                    f"{_show(rule.artifact_type)} is already the artifactType of "
                    f"referrers[{seen[rule.artifact_type]}]; give each artifact type one entry",
                )
            seen[rule.artifact_type] = index
            rules.append(rule)
        return tuple(rules)

    def referrer_rule(self, where: str, index: int, data: object) -> ReferrerRule | None:
        if not isinstance(data, Mapping):
            self.fail(where, 'must be an object such as {"artifactType": "...", "keepNewest": 1}')
            return None
        before = len(self.problems)
        self.unknown_fields(where, data, _REFERRER_FIELDS)
        artifact_type = data.get("artifactType")
        if not isinstance(artifact_type, str) or not artifact_type.strip():
            self.fail(
                f"{where}.artifactType",
                "must be a media type such as 'application/vnd.cncf.notary.signature'",
            )
        for key in ("keepNewest", "olderThan"):
            if key in data and data[key] is None:
                self.fail(f"{where}.{key}", "null is not allowed; leave the field out instead")
        keep_newest = self.count(where, "keepNewest", data.get("keepNewest"))
        older_than = self.duration(where, "olderThan", data.get("olderThan"))
        if data.get("keepNewest") is None and data.get("olderThan") is None:
            self.fail(where, "says nothing to do; give keepNewest, olderThan or both")
        if len(self.problems) > before:
            return None
        assert isinstance(artifact_type, str)
        return ReferrerRule(index, artifact_type, keep_newest, older_than)

    def patterns(
        self, where: str, name: str, value: object, *, required: bool = False
    ) -> PatternSet | None:
        kind = NameKind.REPOSITORY if name == "repositories" else NameKind.TAG
        what = "repository" if kind is NameKind.REPOSITORY else "tag"
        if value is None and required:
            self.fail(f"{where}.{name}", f'missing; list {what} patterns such as ["team/**"]')
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"{where}.{name}", f"must be a list of {what} pattern strings")
            return None
        if required and not value:
            self.fail(f"{where}.{name}", "must list at least one pattern")
            return None
        for position, pattern in enumerate(value):
            try:
                PatternSet.compile([pattern], kind)
            except PatternError as exc:
                self.fail(f"{where}.{name}[{position}]", str(exc))
        try:
            return PatternSet.compile(value, kind)
        except PatternError:
            return None

    def duration(self, where: str, name: str, value: object) -> timedelta | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(f"{where}.{name}", f"{_show(value)} is not a duration string such as '7d'")
            return None
        try:
            return parse_duration(value)
        except PatternError as exc:
            self.fail(f"{where}.{name}", str(exc))
            return None

    def safety(self, value: object) -> Safety:
        if not isinstance(value, Mapping):
            self.fail("safety", "must be an object")
            return Safety()
        self.unknown_fields("safety", value, _SAFETY_FIELDS)
        max_deletes = self.limit(
            value,
            "maxDeletesPerRepository",
            DEFAULT_MAX_DELETES_PER_REPOSITORY,
            lambda v: _is_int(v) and 1 <= v <= MAX_COUNT,
            f"a whole number >= 1 and at most {MAX_COUNT}, or null for no limit",
        )
        fraction = self.limit(
            value,
            "maxDeleteFraction",
            DEFAULT_MAX_DELETE_FRACTION,
            lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1,
            "a number greater than 0 and at most 1, or null for no limit",
        )
        return Safety(
            max_deletes_per_repository=max_deletes if isinstance(max_deletes, int) else None,
            max_delete_fraction=fraction if isinstance(fraction, int | float) else None,
        )

    def limit(
        self,
        data: Mapping[str, object],
        name: str,
        default: object,
        valid: Callable[[object], bool],
        allowed: str,
    ) -> object:
        if name not in data:
            return default
        value = data[name]
        if value is None:
            return None
        if not valid(value):
            self.fail(f"safety.{name}", f"{_show(value)} is not allowed; use {allowed}")
            return default
        return value

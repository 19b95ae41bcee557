"""The cleanup policy: its model, its parser, and validation that names what is wrong.

A policy is JSON, version 1 (docs/policy.md; the JSON Schema is `policy.schema.json` next to
this file). `load_policy` turns text or a parsed mapping into a frozen `Policy`, or raises one
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

from acr_core.planning.patterns import NameKind, PatternError, PatternSet, parse_duration

POLICY_VERSION = 1
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
_RULE_FIELDS = frozenset(
    {
        "name",
        "description",
        "repositories",
        "keepLatest",
        "keepTags",
        "lockTags",
        "minAge",
        "untagged",
    }
)
_UNTAGGED_FIELDS = frozenset({"olderThan"})
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


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: which repositories it governs and what it keeps, deletes and locks."""

    name: str
    index: int
    repositories: PatternSet
    keep_latest: int | None = None
    keep_tags: PatternSet = field(default_factory=lambda: PatternSet.compile((), NameKind.TAG))
    lock_tags: PatternSet = field(default_factory=lambda: PatternSet.compile((), NameKind.TAG))
    min_age: timedelta = DEFAULT_MIN_AGE
    untagged_older_than: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Safety:
    """Per-repository limits; a plan over either is reported as blocked and not applied.

    `None` switches a limit off.
    """

    max_deletes_per_repository: int | None = DEFAULT_MAX_DELETES_PER_REPOSITORY
    max_delete_fraction: float | None = DEFAULT_MAX_DELETE_FRACTION


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    safety: Safety = field(default_factory=Safety)
    version: int = POLICY_VERSION

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


class _Parser:
    """Collects every problem rather than stopping at the first, so one run shows them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def policy(self, data: object) -> Policy:
        if not isinstance(data, Mapping):
            raise PolicyError(["the policy must be a JSON object with 'version' and 'rules'"])
        self.unknown_fields("the policy", data, _TOP_FIELDS)
        version = data.get("version")
        if version is None:
            self.fail("version", 'missing; write "version": 1')
        elif not _is_int(version) or version != POLICY_VERSION:
            self.fail("version", f"{_show(version)} is not supported; the only policy version is 1")
        rules = self.rules(data.get("rules"))
        safety = self.safety(data.get("safety", {}))
        if self.problems:
            raise PolicyError(self.problems)
        return Policy(rules=rules, safety=safety)

    def unknown_fields(self, where: str, data: Mapping[str, object], known: frozenset[str]) -> None:
        for key in sorted(set(data) - known):
            self.fail(
                where,
                f"unknown field {_show(key)}; the fields allowed here are "
                f"{', '.join(sorted(known))}",
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
        self.unknown_fields(where, data, _RULE_FIELDS)
        for key in sorted(k for k in _RULE_FIELDS - {"repositories"} if k in data):
            if data[key] is None:
                self.fail(f"{where}.{key}", "null is not allowed; leave the field out instead")
        if "description" in data and not isinstance(data["description"], str):
            self.fail(f"{where}.description", "must be a string")
        repositories = self.patterns(where, "repositories", data.get("repositories"), required=True)
        keep_tags = self.patterns(where, "keepTags", data.get("keepTags", []))
        lock_tags = self.patterns(where, "lockTags", data.get("lockTags", []))
        keep_latest = data.get("keepLatest")
        if keep_latest is not None and not (_is_int(keep_latest) and 0 <= keep_latest <= MAX_COUNT):
            self.fail(
                f"{where}.keepLatest",
                f"{_show(keep_latest)} is not a whole number >= 0 and at most {MAX_COUNT}",
            )
            keep_latest = None
        min_age = self.duration(where, "minAge", data.get("minAge"))
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
        if len(self.problems) > before or repositories is None:
            return None
        assert keep_tags is not None
        assert lock_tags is not None
        return Rule(
            name=name,
            index=index,
            repositories=repositories,
            keep_latest=keep_latest,
            keep_tags=keep_tags,
            lock_tags=lock_tags,
            min_age=min_age if min_age is not None else DEFAULT_MIN_AGE,
            untagged_older_than=older_than,
        )

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

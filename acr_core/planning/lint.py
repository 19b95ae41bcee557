"""Warnings about a valid policy that probably does not say what its author meant.

`validate` prints them on stderr and still exits 0: the policy is usable, and each of these can
be intended. Every warning names the rule (by index and name) and the field, as errors do.

- A rule that can never govern a repository, because every one of its `repositories` patterns
  is covered by a pattern of an earlier rule (rules are tried in order, the first match wins).
  Only certain coverage is reported (`covers`): a false warning would teach people to ignore
  the others, and a missed one costs no more than today.
- A rule that deletes tagged images (v1 `keepLatest`, v2 `delete.tagged`) while nothing always
  keeps the tag `latest` (a keep clause without `newest` or `pushedWithin` that matches it, or
  `lockTags`): once the image `latest` points to is no longer among the newest, it is
  deleted, and so is the tag.
- Untagged deletion (v1 `untagged`, v2 `delete.untagged`) with `minAge` under 5 minutes: a
  multi-arch push uploads each platform's image before the index that names them, so for a
  moment a child is an untagged image; a cleaner run in that moment may delete it and leave
  the index broken. The untagged `olderThan` protects young images too, so the warning needs
  both below 5 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from acr_core.planning.patterns import REGEX_PREFIX, NameKind, PatternSet
from acr_core.planning.policy import KeepClause, KeepEntry, Policy, Rule

# A multi-arch push uploads its children first, then the index: a few seconds on a fast link,
# minutes for large images on a slow one. 5 minutes covers all but pathological pushes.
SAFE_UNTAGGED_AGE = timedelta(minutes=5)
# Pattern coverage is decided by matching one glob against another; longer patterns are not
# compared (no warning), and all comparisons of one policy share a budget of table cells (a
# name checked against a pattern counts as `_NAME_CHECK`), so a hostile policy of thousands
# of patterns cannot make validate slow: about a second at most. Real policies use a tiny part.
_MAX_COMPARED = 256
COMPARISON_BUDGET = 2_000_000
_NAME_CHECK = 200


@dataclass(frozen=True, slots=True)
class PolicyWarning:
    """One warning: `where` is the rule and field (`rules[1] ("ci").repositories`)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def lint(policy: Policy) -> list[PolicyWarning]:
    """Every warning about `policy`, in rule order."""
    found: list[PolicyWarning] = []
    budget = _Budget(COMPARISON_BUDGET)
    for rule in policy.rules:
        found += _shadowed(rule, policy.rules[: rule.index], budget)
        found += _latest(rule)
        found += _young_untagged(rule)
    return found


class _Budget:
    """Work left for pattern comparisons; once spent, coverage is "not known" (no warning)."""

    def __init__(self, units: int) -> None:
        self.units = units

    def spend(self, units: int) -> bool:
        self.units -= units
        return self.units >= 0


def where(rule: Rule, field: str | None = None) -> str:
    """A rule (and field) as errors name it: `rules[1] ("ci").minAge`."""
    named = f"rules[{rule.index}]"
    if rule.name != named:
        named += f" ({rule.name!r})"
    return f"{named}.{field}" if field else named


def _shadowed(rule: Rule, earlier: tuple[Rule, ...], budget: _Budget) -> Iterator[PolicyWarning]:
    covering: list[str] = []
    for pattern in rule.repositories.patterns:
        if budget.units <= 0:
            return
        cover = next(
            (
                (other, theirs)
                for other in earlier
                for theirs in other.repositories.patterns
                if covers(theirs, pattern, budget)
            ),
            None,
        )
        if cover is None:
            return
        covering.append(f"{pattern!r} by {where(cover[0])}'s {cover[1]!r}")
    yield PolicyWarning(
        where(rule, "repositories"),
        "this rule can never govern a repository: an earlier rule matches every name its "
        f"patterns match, and the first matching rule wins ({'; '.join(covering)}). Move it "
        "above that rule, or narrow the earlier rule's patterns",
    )


def covers(broad: str, narrow: str, budget: _Budget | None = None) -> bool:
    """True only when every repository name the pattern `narrow` matches, `broad` matches too.

    Decided for certain cases only: equal patterns; `broad` the glob `**`; `narrow` a glob
    without wildcards (it matches one name, and `broad`, a glob or a regex, is asked about
    it); and a glob against a glob, by matching `broad` against `narrow`'s own characters and
    wildcards. False means "not known", never "surely not"; so does a spent `budget`.
    """
    if broad == narrow or broad == "**":
        return True
    if narrow.startswith(REGEX_PREFIX) or max(len(broad), len(narrow)) > _MAX_COMPARED:
        return False
    budget = budget or _Budget(COMPARISON_BUDGET)
    if not budget.spend(len(broad) + len(narrow)):
        return False
    if not any(c in narrow for c in "*?"):
        return budget.spend(_NAME_CHECK) and _single(broad).matches(narrow)
    if broad.startswith(REGEX_PREFIX):
        return False
    wide, small = _tokens(broad), _tokens(narrow)
    return budget.spend((len(wide) + 1) * (len(small) + 1)) and _glob_covers(wide, small)


@lru_cache(maxsize=1024)
def _single(pattern: str) -> PatternSet:
    return PatternSet.compile([pattern], NameKind.REPOSITORY)


def _tokens(glob: str) -> tuple[str, ...]:
    """`a/**/b*` as ('a', '/', '**', '/', 'b', '*'): `**`, `*` and `?` are one token each."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        size = 2 if glob.startswith("**", i) else 1
        out.append(glob[i : i + size])
        i += size
    return tuple(out)


def _glob_covers(broad: tuple[str, ...], narrow: tuple[str, ...]) -> bool:
    """Whether `broad` accepts every expansion of `narrow`, token by token: `**` takes any run
    of `narrow`'s tokens, `*` any run without `/` and `**`, `?` one non-`/` character or `?`,
    and a character itself. Sound: each rule maps a narrow token only onto broad constructs
    that accept all of its expansions. `rest[n]` says whether broad[b:] covers narrow[n:],
    filled from the ends (one cell per pair of positions)."""
    size = len(narrow)
    rest = [n == size for n in range(size + 1)]  # b == len(broad): only the empty rest
    for part in reversed(broad):
        row = [False] * (size + 1)
        for n in range(size, -1, -1):
            here = narrow[n] if n < size else None
            if part == "**":
                row[n] = rest[n] or (here is not None and row[n + 1])
            elif part == "*":
                row[n] = rest[n] or (here not in (None, "/", "**") and row[n + 1])
            elif part == "?":
                row[n] = here not in (None, "/", "*", "**") and rest[n + 1]
            else:
                row[n] = here == part and rest[n + 1]
        rest = row
    return rest[0]


def _latest(rule: Rule) -> Iterator[PolicyWarning]:
    if rule.delete.tagged is None or rule.lock_tags.matches("latest"):
        return
    if any(_always_keeps(clause, "latest") for clause in rule.keep):
        return
    if rule.version == 1:
        yield PolicyWarning(
            where(rule, "keepTags"),
            "keepLatest deletes tagged images, and no pattern keeps the tag 'latest': the image "
            f"it points to is deleted (tag and all) once {rule.keep_latest} newer images exist. "
            "Add 'latest' to keepTags if pulls of :latest must keep working",
        )
        return
    yield PolicyWarning(
        where(rule, "keep"),
        "delete.tagged deletes tagged images, and no keep clause without newest keeps the tag "
        "'latest': the image it points to can be deleted, tag and all. Add "
        '{"tags": ["latest"]} to keep if pulls of :latest must keep working',
    )


def _always_keeps(clause: KeepEntry, tag: str) -> bool:
    """Whether the clause keeps every image carrying `tag`, whatever its age or rank (another
    kind of clause than the filter clause is not known to)."""
    if not isinstance(clause, KeepClause) or clause.counting or clause.pushed_within is not None:
        return False
    return clause.tags is None or clause.tags.matches(tag)


def _young_untagged(rule: Rule) -> Iterator[PolicyWarning]:
    older_than = rule.delete.untagged
    if older_than is None or rule.min_age >= SAFE_UNTAGGED_AGE or older_than >= SAFE_UNTAGGED_AGE:
        return
    field = "untagged.olderThan" if rule.version == 1 else "delete.untagged.olderThan"
    yield PolicyWarning(
        where(rule, "minAge"),
        f"untagged images are deleted with minAge and {field} both under 5 minutes: a "
        "multi-arch push uploads each platform's image before the index that names it, so a "
        "run during the push can delete a child and break the index. Use a minAge of at "
        "least 5m",
    )

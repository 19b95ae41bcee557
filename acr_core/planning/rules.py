"""The parts of a rule that policy version 2 added: keep clauses, `delete`, referrer rules.

A v1 rule is read into the same model (issue 13, semantics 6): `keepLatest: N` is a keep
clause `{"newest": N}` plus `delete.tagged` with `olderThan: "0s"`, `keepTags` is a keep clause
`{"tags": [...]}`, and `untagged.olderThan` is `delete.untagged.olderThan`. The planner reads
only this model; `Rule.version` only chooses the wording of reasons, so that a v1 plan reads as
it always did.

A keep clause is one of the `KeepEntry` kinds; today there is one, `KeepClause` (filters and an
optional count). A new kind (such as issue 14's `previousDigests`) is a new frozen dataclass
with an `index`, a `describe()` and a `counting` property, added to `KeepEntry`, parsed in
`acr_core.planning.policy` and selected in `acr_core.planning.protection` or `competition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from acr_core.planning.patterns import PatternSet, format_duration


class OrderBy(StrEnum):
    """How a counting clause ranks the images it selects, best first."""

    TIME = "time"  # last update (manifest or tag), then createdTime, then digest
    SEMVER = "semver"  # highest SemVer 2.0 version among the matching tags, then time


@dataclass(frozen=True, slots=True)
class KeepClause:
    """One entry of `keep`: filters (ANDed; absent: no filter) and an optional count.

    Without `newest` the clause is a protection: every manifest it selects is kept. With
    `newest` it keeps the `newest` best-ranked unprotected images it selects (per group of
    `per`, ordered by `order_by`).
    """

    index: int
    tags: PatternSet | None = None
    pushed_within: timedelta | None = None
    newest: int | None = None
    per: str | None = None
    order_by: OrderBy = OrderBy.TIME

    @property
    def counting(self) -> bool:
        """Whether the clause competes (has `newest`) rather than protects."""
        return self.newest is not None

    def describe(self) -> str:
        """`keep[2]: newest 20 with tags main-*`: the clause as reasons name it."""
        parts: list[str] = []
        if self.newest is not None:
            parts.append(f"newest {self.newest}")
            if self.per is not None:
                parts.append(f"per {self.per}")
            if self.order_by is OrderBy.SEMVER:
                parts.append("by semver")
        if self.tags is not None:
            parts.append(("with tags " if parts else "tags ") + ", ".join(self.tags.patterns))
        if self.pushed_within is not None:
            parts.append(f"pushed within {format_duration(self.pushed_within)}")
        return f"keep[{self.index}]: " + (" ".join(parts) if parts else "every manifest")


# The most digests a `previousDigests` clause may keep per tag: what the tag history remembers
# (acr_core.history.model.DEPTH, which must not be smaller).
MAX_PREVIOUS_DIGESTS = 20


@dataclass(frozen=True, slots=True)
class PreviousDigests:
    """`{"previousDigests": {"tags": [...], "count": N}}`: for each tag matching `tags`, keep
    the last `count` distinct digests it pointed to before its current one (the tag history's
    memory, acr_core.history), even when they are untagged now. A protection: it never counts
    against a clause with `newest`, and what it keeps keeps its children and referrers."""

    index: int
    tags: PatternSet
    count: int

    @property
    def counting(self) -> bool:
        return False

    def describe(self) -> str:
        """`keep[3]: previous 3 digests of prod, staging`."""
        return f"keep[{self.index}]: previous {self.count} digests of " + ", ".join(
            self.tags.patterns
        )


# Every kind of keep clause.
KeepEntry = KeepClause | PreviousDigests


@dataclass(frozen=True, slots=True)
class Delete:
    """What a rule may delete: `None` means never (tagged images, or untagged images)."""

    tagged: timedelta | None = None  # images with tags older than this are candidates
    untagged: timedelta | None = None  # images without tags older than this are candidates


@dataclass(frozen=True, slots=True)
class ReferrerRule:
    """Referrers of one `artifactType` whose subject is kept: keep the `keep_newest` newest
    unprotected ones of each subject, and delete those older than `older_than`."""

    index: int
    artifact_type: str
    keep_newest: int | None = None
    older_than: timedelta | None = None

    def describe(self) -> str:
        """`referrers[0]: application/vnd.cncf.notary.signature, keepNewest 1`."""
        parts = [self.artifact_type]
        if self.keep_newest is not None:
            parts.append(f"keepNewest {self.keep_newest}")
        if self.older_than is not None:
            parts.append(f"olderThan {format_duration(self.older_than)}")
        return f"referrers[{self.index}]: " + ", ".join(parts)

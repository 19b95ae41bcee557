"""Planning stage 4, competition: which tagged images the counting clauses keep.

A counting clause (a keep clause with `newest: N`; v1's `keepLatest`) selects, among the
unprotected, unanchored tagged images, those that pass its filters (`tags`, `pushedWithin`),
puts each in its groups (one group without `per`; under `per`, one per value of the named group
in its matching tags), ranks each group (newest first, or by SemVer precedence of its matching
tags, then newest) and keeps the N best of each group. Clauses are independent: an image two
clauses keep counts in both. An image no clause keeps is *beaten*; what happens to it then is
the candidates stage's verdict (v1: deleted; v2: deleted only when `delete.tagged` says so).

Images join the competition in rounds (the anchoring stage frees more as deletions unanchor
them), and each group keeps the best of everything seen so far: an image once beaten by N better
ones never comes back, so the rounds end where one competition over all of them would.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import chain

from acr_core.planning import reasons, semver
from acr_core.planning.graph import Graph
from acr_core.planning.patterns import capture, named_groups
from acr_core.planning.policy import Rule
from acr_core.planning.rules import KeepClause, OrderBy

Group = str | None  # the value of a clause's `per` group; None without `per`


@dataclass(frozen=True, slots=True)
class Clause:
    """One counting clause, ready to compete: keep the `newest` best of each group.

    `members` maps each image the clause selects to its groups and its position in each (0 is
    the best); an image not in `members` is not selected. `kept` is the reason given to the
    images it keeps (`{group}` is replaced by the group's value under `per`).
    """

    newest: int
    kept: str
    members: Mapping[str, Mapping[Group, int]] | None = None  # None: every image, by `rank`

    def groups(self, digest: str, rank: Mapping[str, int]) -> Mapping[Group, int]:
        if self.members is None:
            return {None: rank[digest]}
        return self.members.get(digest, {})


@dataclass(frozen=True, slots=True)
class Standing:
    """The clauses, and per clause and group the images it keeps so far (at most `newest`)."""

    clauses: tuple[Clause, ...]
    kept: tuple[Mapping[Group, frozenset[str]], ...]

    def kept_by(self, digest: str) -> str | None:
        """Why the first clause that keeps `digest` keeps it, or None."""
        return self.reasons().get(digest)

    def reasons(self) -> Mapping[str, str]:
        """Each kept image -> why the first clause (and its first group) keeping it keeps it."""
        found: dict[str, str] = {}
        for clause, groups in zip(self.clauses, self.kept, strict=True):
            for group, kept in sorted(groups.items(), key=lambda item: item[0] or ""):
                reason = clause.kept.replace("{group}", group or "")
                for digest in kept:
                    found.setdefault(digest, reason)
        return found

    def survivors(self) -> frozenset[str]:
        return frozenset[str]().union(*(k for groups in self.kept for k in groups.values()))


def clauses(rule: Rule, graph: Graph, now: datetime, rank: Mapping[str, int]) -> tuple[Clause, ...]:
    """The rule's counting clauses, their members ranked (v1: `keepLatest`, its one clause)."""
    found: list[Clause] = []
    for entry in rule.keep:
        if not isinstance(entry, KeepClause) or not entry.counting:
            continue
        assert entry.newest is not None
        if rule.version == 1:
            n = entry.newest
            found.append(Clause(n, reasons.within_keep_latest(n)))
            continue
        members = _members(entry, graph, now, rank)
        kept = reasons.kept_by_count(entry.describe(), entry.per)
        found.append(Clause(entry.newest, kept, members))
    return tuple(found)


def ranking(graph: Graph) -> Mapping[str, int]:
    """Tagged, dated manifests by position: newest lastUpdateTime first, then newest createdTime,
    then digest. Manifests with a missing timestamp are protected and never ranked."""
    tags, updated = graph.tags, graph.updated
    dated = [
        m
        for m in graph.manifests.values()
        if tags[m.digest] and updated[m.digest] is not None and m.created_on is not None
    ]
    dated.sort(key=lambda m: m.digest)
    dated.sort(key=lambda m: (updated[m.digest], m.created_on), reverse=True)
    return {m.digest: position for position, m in enumerate(dated)}


def _members(
    clause: KeepClause, graph: Graph, now: datetime, rank: Mapping[str, int]
) -> Mapping[str, Mapping[Group, int]]:
    """Each image the clause selects -> its groups -> its position in each group."""
    by_group: dict[Group, list[str]] = {}
    versions: dict[tuple[Group, str], semver.Version] = {}
    for digest in rank:
        updated = graph.updated[digest]
        within = clause.pushed_within
        if within is not None and (updated is None or now - updated >= within):
            continue
        for group, version in _tag_groups(clause, graph.tags[digest]).items():
            if clause.order_by is OrderBy.SEMVER:
                if version is None:
                    continue  # no matching tag of this group is a SemVer version
                versions[group, digest] = version
            by_group.setdefault(group, []).append(digest)  # in rank order
    members: dict[str, dict[Group, int]] = {}
    for group, digests in by_group.items():
        if clause.order_by is OrderBy.SEMVER:
            # Stable: equal versions stay in time order.
            digests.sort(key=lambda d: versions[group, d].key, reverse=True)
        for position, digest in enumerate(digests):
            members.setdefault(digest, {})[group] = position
    return members


def _tag_groups(clause: KeepClause, tags: Iterable[str]) -> dict[Group, semver.Version | None]:
    """The groups an image's tags put it in under `clause`, with the highest version among its
    matching tags of each group (for `orderBy: semver`; None when none parses)."""
    found: dict[Group, semver.Version | None] = {}
    for tag in tags:
        pattern = tag if clause.tags is None else clause.tags.first_match(tag)
        if pattern is None:
            continue
        group: Group = None
        if clause.per is not None:
            group = capture(pattern, tag, clause.per)
            if group is None:
                continue  # the group took no part in this tag's match
        version = None
        if clause.order_by is OrderBy.SEMVER:
            text = _version_text(clause, pattern, tag)
            version = None if text is None else semver.parse(text)
        best = found.get(group)
        if group not in found or (version is not None and (best is None or best < version)):
            found[group] = version
    return found


def _version_text(clause: KeepClause, pattern: str, tag: str) -> str | None:
    """A tag's version: the matching pattern's `version` group when it has one (None when the
    group took no part in the match), else the tag without one leading `v`."""
    if clause.tags is not None and "version" in named_groups(pattern):
        return capture(pattern, tag, "version")
    return tag.removeprefix("v")


def start(clauses: tuple[Clause, ...]) -> Standing:
    return Standing(clauses, tuple({} for _ in clauses))


def compete(
    standing: Standing, rank: Mapping[str, int], entrants: Iterable[str]
) -> tuple[Standing, list[str]]:
    """The standing once `entrants` join, and the images now kept by no clause.

    An image beaten in an earlier round stays beaten, so each group needs to rank only what it
    kept so far and the entrants that join it.
    """
    joining = list(entrants)
    if not joining:
        return standing, []
    kept: list[Mapping[Group, frozenset[str]]] = []
    for clause, previous in zip(standing.clauses, standing.kept, strict=True):
        positions: dict[Group, dict[str, int]] = {}
        for group, kept_before in previous.items():
            positions[group] = {d: clause.groups(d, rank)[group] for d in kept_before}
        for digest in joining:
            for group, position in clause.groups(digest, rank).items():
                positions.setdefault(group, {})[digest] = position
        kept.append(
            {
                group: frozenset(heapq.nsmallest(clause.newest, ranked, key=ranked.__getitem__))
                for group, ranked in positions.items()
            }
        )
    after = Standing(standing.clauses, tuple(kept))
    survivors = after.survivors()
    # Entrants are new to the competition, so only the images kept so far can appear twice.
    contenders_all = chain(sorted(standing.survivors()), joining)
    beaten = [digest for digest in contenders_all if digest not in survivors]
    return after, beaten

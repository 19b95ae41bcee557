"""Planning stage 4, competition: which tagged images the counting clauses keep.

A counting clause keeps the N best-ranked of the images it selects; an image no clause keeps is
deleted. Today a rule has at most one clause, `keepLatest: N`, which selects every tagged image
that is neither protected nor anchored and ranks them newest first. Images join the competition
in rounds (the anchoring stage frees more as deletions unanchor them), and the clauses keep the
best of everything seen so far: an image once beaten by N better ones never comes back, so the
rounds end where one competition over all of them would.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain

from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.policy import Rule


@dataclass(frozen=True, slots=True)
class Clause:
    """Keep the `newest` best-ranked images; the reasons say so to those kept and those not."""

    newest: int
    kept: str
    beaten: str


@dataclass(frozen=True, slots=True)
class Standing:
    """The clauses, and per clause the images it keeps so far (at most its `newest`)."""

    clauses: tuple[Clause, ...]
    kept: tuple[frozenset[str], ...]

    @property
    def beaten(self) -> str:
        """Why an image no clause keeps is deleted: the first clause says (the only one today)."""
        return self.clauses[0].beaten

    def kept_by(self, digest: str) -> str | None:
        """Why the first clause that keeps `digest` keeps it, or None."""
        for clause, kept in zip(self.clauses, self.kept, strict=True):
            if digest in kept:
                return clause.kept
        return None


def clauses(rule: Rule) -> tuple[Clause, ...]:
    if rule.keep_latest is None:
        return ()
    n = rule.keep_latest
    return (Clause(n, reasons.within_keep_latest(n), reasons.beyond_keep_latest(n)),)


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


def start(clauses: tuple[Clause, ...]) -> Standing:
    return Standing(clauses, tuple(frozenset() for _ in clauses))


def compete(
    standing: Standing, rank: Mapping[str, int], entrants: Iterable[str]
) -> tuple[Standing, list[str]]:
    """The standing once `entrants` join, and the images now kept by no clause.

    An image beaten in an earlier round stays beaten, so each clause needs to rank only what
    it kept so far and the entrants.
    """
    joining = list(entrants)
    if not joining:
        return standing, []
    clauses = standing.clauses
    kept = tuple(
        frozenset(heapq.nsmallest(clause.newest, chain(previous, joining), key=rank.__getitem__))
        for clause, previous in zip(clauses, standing.kept, strict=True)
    )
    survivors = frozenset[str]().union(*kept)
    # Entrants are new to the competition, so only the images kept so far can appear twice.
    contenders = chain(sorted(frozenset[str]().union(*standing.kept)), joining)
    beaten = [digest for digest in contenders if digest not in survivors]
    return Standing(clauses, kept), beaten

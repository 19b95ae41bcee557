"""The planner: from a snapshot of each repository, a policy and a time, the plan. Pure.

No I/O, no clock, no logging: the same input always gives the same plan, in the same order.
The semantics are written out for users in docs/policy.md. Per repository, the plan is a
pipeline of stages, each a module of this package that takes and returns immutable values:

1. `graph`: the snapshot as digests and edges (children, subjects, attached artifacts).
2. `protection`: the manifests no rule may delete, and why.
3. `candidates`: the verdict on each manifest once it is judged (compete, delete, keep), and
   on a competing image that no counting clause keeps.
4. `competition`: which tagged images the counting clauses (keep clauses with `newest`; v1's
   `keepLatest`) keep.
5. `anchoring`: what each deletion removes with it (referrers) and whom it frees (children,
   attached artifacts and pinned subjects whose last anchor it was); `referrers`: which
   referrers of kept manifests a v2 rule's `referrers` entries delete.
6. `guards`: deletions held back because the snapshot is not complete enough to allow them.
7. `safety`: limits that block the repository's deletions, and `lockTags` locks.

Stages 3 to 6 meet in a fixed point (`_decide`): judging the manifests free so far deletes some,
which frees others, which are judged in turn, until a round frees nothing. Freed tagged children
are ranked with the rest, so one run reaches the state the next run would keep. Then the referrer
rules judge the referrers of what is kept, once; what their deletions free is judged as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from acr_core.models import RepositorySnapshot
from acr_core.planning import anchoring, collector, competition, reasons, referrers, safety
from acr_core.planning.anchoring import Anchors
from acr_core.planning.candidates import Judgement, Verdict, candidates
from acr_core.planning.competition import Clause
from acr_core.planning.graph import Graph, attached_subject, build_graph, needs_inspection
from acr_core.planning.guards import Guards, guards
from acr_core.planning.plan import Action, Plan, RepositoryPlan, deletion, kept_manifest
from acr_core.planning.policy import Policy, Rule, Safety
from acr_core.planning.previous import TagHistory, previous_digests
from acr_core.planning.protection import protection

__all__ = ["attached_subject", "needs_inspection", "plan"]


def plan(
    snapshots: Sequence[RepositorySnapshot],
    policy: Policy,
    now: datetime,
    *,
    protect: Mapping[str, frozenset[str]] | None = None,
    history: Mapping[str, TagHistory] | None = None,
) -> Plan:
    """Decide, for every repository the policy covers, what to delete, lock and keep, and why.

    Repositories no rule matches are left out of the plan: they are never touched.
    `protect` maps a repository to digests that must be kept whatever the policy says.
    `history` maps a repository to its tag history, which `previousDigests` clauses read; a
    rule with such a clause deletes nothing where the history is missing or unreadable.
    """
    if now.tzinfo is None:
        # ACR's timestamps are UTC; comparing them with a naive time would raise mid-plan.
        raise ValueError("plan() needs a timezone-aware `now`, such as datetime.now(UTC)")
    protect = protect or {}
    plans: list[RepositoryPlan] = []
    with collector.paused():  # the planner builds no reference cycles
        for snapshot in sorted(snapshots, key=lambda s: s.name):
            rule = policy.rule_for(snapshot.name)
            if rule is not None:
                caller = protect.get(snapshot.name, frozenset())
                tags = (
                    history.get(snapshot.name)
                    if history is not None
                    else TagHistory(unreadable=reasons.HISTORY_NOT_GIVEN)
                )
                plans.append(_plan_repository(snapshot, rule, now, caller, policy.safety, tags))
    return Plan(tuple(plans))


@dataclass(frozen=True, slots=True)
class _Decisions:
    """What the fixed point of judging, competing and anchoring decided."""

    deleted: Mapping[str, tuple[str, tuple[str, ...]]]  # digest -> (reason, after), in order
    removed_by: Mapping[str, str]  # everything removed -> the deletion that removes it
    cascades: Mapping[str, tuple[str, ...]]
    judged_kept: Mapping[str, str]  # judged, but kept: why
    kept_by_clause: Mapping[str, str]  # kept by a counting clause: why
    referrers_kept: Mapping[str, str]  # referrers a referrer rule judged and kept: why


def _plan_repository(
    snapshot: RepositorySnapshot,
    rule: Rule,
    now: datetime,
    caller: frozenset[str],
    limits: Safety,
    history: TagHistory | None = None,
) -> RepositoryPlan:
    graph = build_graph(snapshot)
    protected = protection(graph, rule, now, caller)
    previous = previous_digests(graph, rule, history)
    if previous.protected:
        protected = {
            d: "; ".join(w for w in (protected.get(d), previous.protected.get(d)) if w)
            for d in {*protected, *previous.protected}
        }
    counting = any(c.counting for c in rule.keep)  # every kind of clause says whether it counts
    rank = competition.ranking(graph) if counting else {}
    clauses = competition.clauses(rule, graph, now, rank)
    verdicts = candidates(graph, protected, rule, now, counted=bool(clauses))
    held_up = anchoring.anchors(graph)
    state = _State(graph, verdicts, held_up, guards(graph, protected), rank, clauses)
    decided = _decide(state, rule, protected, now)
    kept = tuple(
        kept_manifest(
            graph.name,
            digest,
            graph.tags[digest],
            _why_kept(graph, protected, decided, held_up, digest),
            rule.name,
        )
        for digest in graph.digests
        if digest not in decided.removed_by
    )
    return RepositoryPlan(
        repository=graph.name,
        rule=rule.name,
        actions=(*safety.locks(graph, rule), *_deletions(graph, rule, decided)),
        kept=kept,
        blocked=previous.blocked
        or safety.blocked(graph, limits, len(decided.removed_by), len(decided.deleted)),
    )


class _State:
    """The fixed point's working state; never leaves this module."""

    def __init__(
        self,
        graph: Graph,
        verdicts: Mapping[str, Verdict],
        held_up: Anchors,
        guard: Guards,
        rank: Mapping[str, int],
        clauses: tuple[Clause, ...],
    ) -> None:
        self.graph, self.verdicts, self.held_up, self.guard = graph, verdicts, held_up, guard
        self.rank = rank
        self.removed: dict[str, str] = {}
        self.cascades: dict[str, tuple[str, ...]] = {}
        self.deleted: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.judged_kept: dict[str, str] = {}
        self.standing = competition.start(clauses)

    def rounds(self, free: Sequence[str]) -> None:
        """Judge the free manifests, round by round, until a round's deletions free no more."""
        verdicts = self.verdicts
        while free:
            entrants, wanted = _judge(free, verdicts, self.judged_kept)
            self.standing, beaten = competition.compete(self.standing, self.rank, entrants)
            going = [(d, verdicts[d].reason, verdicts[d].waits) for d in wanted]
            for digest in beaten:
                verdict = verdicts[digest]
                outcome = verdict.beaten
                assert outcome is not None  # every competing verdict says what losing means
                if outcome.judgement is Judgement.KEEP:
                    self.judged_kept[digest] = outcome.reason
                else:
                    going.append((digest, outcome.reason, verdict.waits))
            free = self.delete(going)

    def delete(self, wanted: Sequence[tuple[str, str, bool]]) -> Sequence[str]:
        """Delete `(digest, reason, waits)` unless a guard holds it; returns what that frees."""
        going: list[str] = []
        for digest, reason, waits in wanted:
            hold = self.guard.hold(digest, reason) if self.guard.active else None
            if hold is None:
                after = anchoring.after(self.held_up, self.removed, digest) if waits else ()
                self.deleted[digest] = (reason, after)
                going.append(digest)
            else:
                self.judged_kept[digest] = hold
        removal = anchoring.remove(self.graph, self.held_up, self.removed, going)
        self.removed.update(removal.removed_by)
        self.cascades.update(removal.cascades)
        return removal.freed


def _decide(state: _State, rule: Rule, protected: Mapping[str, str], now: datetime) -> _Decisions:
    """The fixed point of judging, competing and anchoring; then the referrer rules, once."""
    state.rounds(state.held_up.roots)
    referrers_kept: Mapping[str, str] = {}
    if rule.referrers:
        judged = referrers.judge(state.graph, rule, protected, state.removed, now, state.held_up.of)
        referrers_kept = judged.kept
        state.rounds(state.delete([(d, why, False) for d, why in judged.deletions]))
    return _Decisions(
        state.deleted,
        state.removed,
        state.cascades,
        state.judged_kept,
        state.standing.reasons(),
        referrers_kept,
    )


def _judge(
    free: Sequence[str], verdicts: Mapping[str, Verdict], judged_kept: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Apply the verdicts on manifests just freed: those that compete, and those to delete;
    those kept are recorded in `judged_kept`."""
    entrants: list[str] = []
    wanted: list[str] = []
    for digest in free:
        verdict = verdicts.get(digest)
        if verdict is None:
            continue  # a referrer, or protected
        if verdict.judgement is Judgement.COMPETE:
            entrants.append(digest)
        elif verdict.judgement is Judgement.KEEP:
            judged_kept[digest] = verdict.reason
        else:
            wanted.append(digest)
    return entrants, wanted


def _deletions(graph: Graph, rule: Rule, decided: _Decisions) -> list[Action]:
    """The deletions in the order the executor sends them: by depth (a deletion after those in
    its `after`), then by digest."""
    deleted = decided.deleted
    # Decision order is a topological order: a deletion's `after` digests were decided first.
    depth: dict[str, int] = {}
    for digest, (_, after) in deleted.items():
        depth[digest] = 1 + max(depth[a] for a in after) if after else 0
    # Digests are unique: sorted by digest, then stably by depth, is sorted by (depth, digest).
    order = sorted(deleted)
    order.sort(key=depth.__getitem__)
    tags, manifests, cascades = graph.tags, graph.manifests, decided.cascades
    return [
        deletion(
            graph.name,
            digest,
            tags[digest],
            deleted[digest][0],
            rule.name,
            manifests[digest].size_in_bytes or 0,
            cascades.get(digest, ()),
            deleted[digest][1],
        )
        for digest in order
    ]


def _why_kept(
    graph: Graph,
    protected: Mapping[str, str],
    decided: _Decisions,
    held_up: Anchors,
    digest: str,
) -> str:
    if digest in protected:
        return reasons.protected(protected[digest])
    if digest in decided.judged_kept:
        return decided.judged_kept[digest]
    by_clause = decided.kept_by_clause.get(digest)
    if by_clause is not None:
        return by_clause
    by_referrer_rule = decided.referrers_kept.get(digest)
    if by_referrer_rule is not None and digest not in decided.judged_kept:
        return by_referrer_rule
    removed = decided.removed_by
    pins = [p for p in held_up.pinned_by.get(digest, ()) if p not in removed]
    if pins:
        return reasons.pinned_by_index(pins[0])
    subject = graph.subject.get(digest)
    if subject is not None:
        if subject in graph.manifests:
            return reasons.referrer_of_kept(subject)
        return reasons.referrer_of_absent(subject)
    living = [p for p in graph.parents.get(digest, ()) if p not in removed]
    if living:
        return reasons.child_of_kept(living[0])
    if digest in graph.attached_to:
        return reasons.attached_to_kept(graph.attached_to[digest])
    return reasons.IN_CYCLE

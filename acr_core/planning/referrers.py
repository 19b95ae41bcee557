"""Planning stage 5b, referrer rules (policy v2): which referrers of kept manifests go.

v1 never deletes a referrer itself: it goes only with its subject. A v2 rule's `referrers`
entries reach the referrers (at any depth: a signature of an SBOM included) whose subject the
plan keeps: for each subject and `artifactType`, `keepNewest: N` deletes all but the N newest
and `olderThan` deletes those older than that (either is enough to delete). A referrer that is
protected (locked, young, selected by a protecting keep clause; it then protects its subject
too) is never deleted and does not use up N; nor is one anchored by a kept index (one that lists
it, or lists one of its own referrers, which its deletion would take along). A
deleted referrer takes its own referrers with it (ACR's cascade), so they are not judged.

A referrer's artifact type is its manifest's `artifactType`, or else its config media type
(OCI image spec, "artifactType").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.policy import Rule
from acr_core.planning.rules import ReferrerRule


@dataclass(frozen=True, slots=True)
class Judged:
    """The referrer rules' decisions: deletions in order, and why the others are kept."""

    deletions: tuple[tuple[str, str], ...]  # (digest, reason)
    kept: Mapping[str, str]


def judge(
    graph: Graph,
    rule: Rule,
    protected: Mapping[str, str],
    removed: Mapping[str, str],
    now: datetime,
    anchored_by: Mapping[str, Sequence[str]],
) -> Judged:
    """Apply `rule.referrers` to the referrers of every manifest not `removed`, from the
    images down (a referrer kept is a subject in turn)."""
    by_type = {r.artifact_type: r for r in rule.referrers}
    deletions: list[tuple[str, str]] = []
    kept: dict[str, str] = {}
    pending = [d for d in graph.digests if d not in graph.subject and d not in removed]
    seen: set[str] = set(pending)
    while pending:
        subject = pending.pop()
        living = sorted(r for r in graph.referrers.get(subject, ()) if r not in removed)
        going: set[str] = set()
        for artifact, entry in sorted(by_type.items()):
            of_type = [r for r in living if graph.artifact_type.get(r) == artifact]
            held = [r for r in of_type if any(a not in removed for a in anchored_by.get(r, ()))]
            judgeable = [r for r in of_type if r not in protected and r not in held]
            for digest, why in _judge_type(graph, entry, subject, judgeable, now):
                if why is None:
                    kept[digest] = reasons.referrer_within(entry.describe(), subject)
                else:
                    deletions.append((digest, reasons.referrer_deleted(entry.describe(), why)))
                    going.add(digest)
        for referrer in living:
            if referrer not in going and referrer not in seen:
                seen.add(referrer)
                pending.append(referrer)
    return Judged(tuple(sorted(deletions)), kept)


def _judge_type(
    graph: Graph, entry: ReferrerRule, subject: str, judgeable: list[str], now: datetime
) -> list[tuple[str, str | None]]:
    """Each judgeable referrer of one subject and type, newest first, with why it is deleted
    (None: kept). Protected and anchored referrers are not judgeable, so they do not count
    toward `keepNewest`."""
    created = {d: graph.manifests[d].created_on for d in judgeable}
    judgeable = sorted(judgeable)
    judgeable.sort(key=lambda d: (graph.updated[d], created[d]), reverse=True)
    judged: list[tuple[str, str | None]] = []
    for position, digest in enumerate(judgeable):
        why: list[str] = []
        if entry.keep_newest is not None and position >= entry.keep_newest:
            why.append(reasons.beyond_keep_newest(entry.keep_newest, subject))
        updated = graph.updated[digest]
        older_than = entry.older_than
        if older_than is not None and updated is not None and updated < now - older_than:
            why.append(reasons.referrer_old(older_than))
        judged.append((digest, "; ".join(why) if why else None))
    return judged

"""Planning stage 3, candidates: what becomes of each manifest once it is judged.

A manifest is judged when nothing anchors it any more: at once for an image, and for a child,
an attached artifact or a pinned subject only after its last anchor is deleted (the anchoring
stage says when). Referrers are never judged (they go only with their subject), nor are
protected manifests. The verdict itself does not depend on when: tagged images compete in the
counting clauses; orphaned children and attached artifacts are deleted; untagged images, and
attached artifacts whose subject is not in the repository, go when older than
`untagged.olderThan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.policy import Rule


class Judgement(Enum):
    COMPETE = "compete"  # ranked by the competition stage
    DELETE = "delete"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What judging a manifest decides, and the reason a deletion or a keep gives."""

    judgement: Judgement
    reason: str = ""
    # Whether a deletion waits for the deletions that unanchored it (`Action.after`).
    waits: bool = False


COMPETE = Verdict(Judgement.COMPETE, waits=True)
_ORPHANED_CHILD = Verdict(Judgement.DELETE, reasons.PARENT_DELETED, waits=True)
_ORPHANED_ATTACHMENT = Verdict(Judgement.DELETE, reasons.SUBJECT_DELETED, waits=True)


def candidates(
    graph: Graph, protected: Mapping[str, str], rule: Rule, now: datetime, *, counted: bool
) -> Mapping[str, Verdict]:
    """The verdict on every judgeable manifest; `counted` says whether any clause counts."""
    tagged = COMPETE if counted else Verdict(Judgement.KEEP, reasons.NO_KEEP_LATEST)
    by_age = _by_age(rule)
    cutoff = None if rule.untagged_older_than is None else now - rule.untagged_older_than
    verdicts: dict[str, Verdict] = {}
    subject, attachments, attached_to, parents = (
        graph.subject,
        graph.attachments,
        graph.attached_to,
        graph.parents,
    )
    for digest, tags in graph.tags.items():
        if digest in subject or digest in protected:
            continue
        if tags and digest not in attachments:
            verdicts[digest] = tagged
        elif digest in attached_to:
            verdicts[digest] = _ORPHANED_ATTACHMENT
        elif digest in parents:
            verdicts[digest] = _ORPHANED_CHILD
        else:
            updated = graph.updated[digest]
            assert updated is not None  # missing timestamps are protected
            old = cutoff is not None and updated < cutoff
            verdicts[digest] = by_age[bool(tags), old]
    return verdicts


def _by_age(rule: Rule) -> Mapping[tuple[bool, bool], Verdict]:
    """The verdict on an untagged image (or, when tagged, an attachment whose subject is gone),
    by (tagged, older than `untagged.olderThan`)."""
    older_than = rule.untagged_older_than
    by_age: dict[tuple[bool, bool], Verdict] = {}
    for tagged, what in ((False, reasons.UNTAGGED), (True, reasons.SUBJECT_GONE)):
        if older_than is None:
            kept = Verdict(Judgement.KEEP, reasons.untagged_no_rule(what))
            by_age[tagged, False] = by_age[tagged, True] = kept
        else:
            by_age[tagged, False] = Verdict(
                Judgement.KEEP, reasons.untagged_young(what, older_than)
            )
            by_age[tagged, True] = Verdict(Judgement.DELETE, reasons.untagged_old(what, older_than))
    return by_age

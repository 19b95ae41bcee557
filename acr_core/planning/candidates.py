"""Planning stage 3, candidates: what becomes of each manifest once it is judged.

A manifest is judged when nothing anchors it any more: at once for an image, and for a child,
an attached artifact or a pinned subject only after its last anchor is deleted (the anchoring
stage says when). Referrers are never judged (they go only with their subject), nor are
protected manifests. The verdict itself does not depend on when: tagged images compete in the
counting clauses (and what happens to those no clause keeps is decided here too); orphaned
children and attached artifacts are deleted; untagged images, and attached artifacts whose
subject is not in the repository, go when older than `delete.untagged` (v1:
`untagged.olderThan`; strictly older, so `0s` spares an image updated this very instant). In
v2 a tagged image is a candidate only when `delete.tagged` is given and it is older than its
`olderThan` (issue 13, semantics 2); there `0s` means any age, as v1's keepLatest deletes
whatever it does not keep.
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
    # For COMPETE: the verdict on the image once no counting clause keeps it.
    beaten: Verdict | None = None


_ORPHANED_CHILD = Verdict(Judgement.DELETE, reasons.PARENT_DELETED, waits=True)
_ORPHANED_ATTACHMENT = Verdict(Judgement.DELETE, reasons.SUBJECT_DELETED, waits=True)


def candidates(
    graph: Graph, protected: Mapping[str, str], rule: Rule, now: datetime, *, counted: bool
) -> Mapping[str, Verdict]:
    """The verdict on every judgeable manifest; `counted` says whether any clause counts."""
    tagged = _tagged(rule, counted)
    by_age = _by_age(rule)
    cutoff = None if rule.delete.untagged is None else now - rule.delete.untagged
    tagged_cutoff = None if rule.delete.tagged is None else now - rule.delete.tagged
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
            # `0s` is any age: v1's keepLatest deletes an image updated this very instant.
            old = tagged_cutoff is not None and (
                not rule.delete.tagged or _updated(graph, digest) < tagged_cutoff
            )
            verdicts[digest] = tagged[old]
        elif digest in attached_to:
            verdicts[digest] = _ORPHANED_ATTACHMENT
        elif digest in parents:
            verdicts[digest] = _ORPHANED_CHILD
        else:
            # Strictly older, even than `0s` (as v1's untagged.olderThan always was).
            old = cutoff is not None and _updated(graph, digest) < cutoff
            verdicts[digest] = by_age[bool(tags), old]
    return verdicts


def _updated(graph: Graph, digest: str) -> datetime:
    updated = graph.updated[digest]
    assert updated is not None  # missing timestamps are protected
    return updated


def _tagged(rule: Rule, counted: bool) -> Mapping[bool, Verdict]:
    """The verdict on an unprotected tagged image, by whether it is older than
    `delete.tagged.olderThan`: it competes when a clause counts, and the verdict for when no
    clause keeps it is the one it gets outright otherwise."""
    older_than = rule.delete.tagged
    outright: dict[bool, Verdict] = {}
    if rule.version == 1:
        if not counted:
            return dict.fromkeys((False, True), Verdict(Judgement.KEEP, reasons.NO_KEEP_LATEST))
        assert rule.keep_latest is not None
        deleted = Verdict(Judgement.DELETE, reasons.beyond_keep_latest(rule.keep_latest))
        outright = {False: deleted, True: deleted}
    elif older_than is None:
        kept = Verdict(Judgement.KEEP, reasons.no_delete_entry("delete.tagged", reasons.TAGGED))
        outright = {False: kept, True: kept}
    else:
        outright = {
            False: Verdict(
                Judgement.KEEP, reasons.not_old_enough("delete.tagged", reasons.TAGGED, older_than)
            ),
            True: Verdict(
                Judgement.DELETE, reasons.deleted_by("delete.tagged", reasons.TAGGED, older_than)
            ),
        }
    if not counted:
        return outright
    return {
        old: Verdict(Judgement.COMPETE, waits=True, beaten=verdict)
        for old, verdict in outright.items()
    }


def _by_age(rule: Rule) -> Mapping[tuple[bool, bool], Verdict]:
    """The verdict on an untagged image (or, when tagged, an attachment whose subject is gone),
    by (tagged, older than `delete.untagged.olderThan`)."""
    if rule.version != 1:
        return _by_age_v2(rule)
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


def _by_age_v2(rule: Rule) -> Mapping[tuple[bool, bool], Verdict]:
    """`_by_age` in the words of policy version 2: the `delete.untagged` entry names itself."""
    older_than = rule.delete.untagged
    by_age: dict[tuple[bool, bool], Verdict] = {}
    field_name = "delete.untagged"
    for tagged, what in ((False, reasons.UNTAGGED), (True, reasons.SUBJECT_GONE)):
        if older_than is None:
            kept = Verdict(Judgement.KEEP, reasons.no_delete_entry(field_name, what))
            by_age[tagged, False] = by_age[tagged, True] = kept
        else:
            young = reasons.untagged_young_v2(what, older_than)
            by_age[tagged, False] = Verdict(Judgement.KEEP, young)
            old = reasons.deleted_by(field_name, what, older_than)
            by_age[tagged, True] = Verdict(Judgement.DELETE, old)
    return by_age

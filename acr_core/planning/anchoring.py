"""Planning stage 5, anchoring: what holds each manifest up, and what a deletion sets free.

Children and attached artifacts are *anchored*: they live while any parent index (or their
subject) lives. A referrer that an index also lists *pins* its subjects while that index lives:
deleting a subject removes its referrers (ACR cascades them), so a subject waits for every index
listing one of its referrers, unless that index goes with the subject anyway (the referrers
tag-schema fallback index is an attachment of the same subject). A deletion takes its referrers
with it, through referrers of referrers, and frees each manifest whose last anchor it removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from acr_core.planning.graph import Graph


@dataclass(frozen=True, slots=True)
class Anchors:
    of: Mapping[str, Sequence[str]]  # manifest -> its parents, attached subject, pinning indexes
    dependents: Mapping[str, Sequence[str]]  # anchor -> the manifests it holds up
    roots: tuple[str, ...]  # manifests nothing anchors, in digest order
    pinned_by: Mapping[str, tuple[str, ...]]  # subject -> indexes pinning it, in digest order


@dataclass(frozen=True, slots=True)
class Removal:
    """What deleting some manifests removes from the repository, and whom it sets free."""

    removed_by: Mapping[str, str]  # each manifest removed -> the deletion that removes it
    cascades: Mapping[str, tuple[str, ...]]  # deletion -> referrers ACR removes with it
    freed: tuple[str, ...]  # manifests whose last anchor is now removed


def anchors(graph: Graph) -> Anchors:
    pinned_by = _pins(graph)
    # The graph's own sequences are reused where they suffice: planning a large repository
    # allocates less, so the cycle collector has less to scan.
    of: dict[str, Sequence[str]] = {}
    dependents: dict[str, list[str]] = {}
    roots: list[str] = []
    parents, attached_to = graph.parents, graph.attached_to
    for digest in graph.digests:
        held_by: Sequence[str] = parents.get(digest, ())
        if digest in attached_to:
            held_by = (*held_by, attached_to[digest])
        if digest in pinned_by:
            held_by = (*held_by, *pinned_by[digest])
        if not held_by:
            roots.append(digest)
            continue
        of[digest] = held_by
        for anchor in held_by if len(held_by) == 1 else set(held_by):
            dependents.setdefault(anchor, []).append(digest)
    return Anchors(
        of=of,
        dependents=dependents,
        roots=tuple(roots),
        pinned_by=pinned_by,
    )


def _pins(graph: Graph) -> Mapping[str, tuple[str, ...]]:
    """Each subject that an index pins (by listing one of its referrers) -> those indexes."""
    pinned_by: dict[str, set[str]] = {}
    for referrer in sorted(graph.subject):
        parents = graph.parents.get(referrer)
        if not parents:
            continue
        chain = graph.subject_chain(referrer)
        for parent in parents:
            removed_with = set(graph.subject_chain(parent))
            attached = graph.attached_to.get(parent)
            if attached is not None:
                removed_with.add(attached)
                removed_with.update(graph.subject_chain(attached))
            for subject in chain:
                if subject not in removed_with:
                    pinned_by.setdefault(subject, set()).add(parent)
    return {subject: tuple(sorted(indexes)) for subject, indexes in pinned_by.items()}


def remove(
    graph: Graph, held: Anchors, removed: Mapping[str, str], deleted: Sequence[str]
) -> Removal:
    """Delete `deleted` from a repository where `removed` is already gone."""
    removed_by: dict[str, str] = {}
    cascades: dict[str, tuple[str, ...]] = {}
    referrers = graph.referrers
    for digest in deleted:
        removed_by[digest] = digest
        if digest in referrers:
            found = _cascade(graph, digest, removed, removed_by)
            if found:
                cascades[digest] = tuple(sorted(found))
    freed: list[str] = []
    seen: set[str] = set()
    dependents, anchored_by = held.dependents, held.of
    for item in removed_by:
        for dependent in dependents.get(item, ()):
            anchors = anchored_by[dependent]
            if len(anchors) == 1 or (
                dependent not in seen and all(a in removed_by or a in removed for a in anchors)
            ):
                seen.add(dependent)
                freed.append(dependent)
    return Removal(removed_by, cascades, tuple(freed))


def _cascade(
    graph: Graph, digest: str, removed: Mapping[str, str], removed_by: dict[str, str]
) -> list[str]:
    """Referrers ACR removes with `digest`, through referrers of referrers; records them."""
    found: list[str] = []
    stack = list(graph.referrers.get(digest, ()))
    while stack:
        referrer = stack.pop()
        if referrer in removed_by or referrer in removed:
            continue
        removed_by[referrer] = digest
        found.append(referrer)
        stack.extend(graph.referrers.get(referrer, ()))
    return found


def after(held: Anchors, removed: Mapping[str, str], digest: str) -> tuple[str, ...]:
    """The deletions that removed `digest`'s anchors: they must succeed before its own."""
    anchored_by = held.of.get(digest)
    if anchored_by is None:
        return ()
    if len(anchored_by) == 1:  # the common case, without building a set
        anchor = anchored_by[0]
        return (removed[anchor],) if anchor in removed else ()
    return tuple(sorted({removed[a] for a in anchored_by if a in removed}))

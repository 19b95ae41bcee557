"""Planning stage 7, safety: limits that block a repository's deletions, and `lockTags` locks.

A safety limit marks the repository's plan `blocked` (the executor applies none of its
deletions); `lockTags` adds a lock for each matching tag not already locked both ways.
"""

from __future__ import annotations

from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.plan import Action, ActionKind
from acr_core.planning.policy import Rule, Safety


def blocked(graph: Graph, safety: Safety, removed: int, direct: int) -> str | None:
    """Which limit `removed` manifests out of the repository's exceed, if any; `direct` of
    them are deletions of their own, the rest referrers that go with their subjects."""
    total = len(graph.manifests)
    limit = safety.max_deletes_per_repository
    if limit is not None and removed > limit:
        return reasons.over_max_deletes(removed, direct, limit, graph.name)
    fraction = safety.max_delete_fraction
    if fraction is not None and total and removed / total > fraction:
        return reasons.over_max_fraction(removed, direct, total, fraction, graph.name)
    return None


def locks(graph: Graph, rule: Rule) -> list[Action]:
    actions: list[Action] = []
    if not rule.lock_tags.patterns:
        return actions  # no `lockTags`: no tag to match (a large repository has many)
    for tag in sorted(
        {t for tags in graph.tags.values() for t in tags} | set(graph.tag_properties)
    ):
        pattern = rule.lock_tags.first_match(tag)
        if pattern is None:
            continue
        props = graph.tag_properties.get(tag)
        if props is not None and props.attributes.fully_locked:
            continue
        digest = (
            props.digest
            if props is not None
            else next(d for d, tags in sorted(graph.tags.items()) if tag in tags)
        )
        actions.append(
            Action(
                kind=ActionKind.LOCK_TAG,
                repository=graph.name,
                digest=digest,
                tags=(tag,),
                reason=reasons.lock_tag(pattern),
                rule=rule.name,
            )
        )
    return actions

"""Planning stage 2b, previous digests: what a rule's `previousDigests` clauses keep. Pure.

The cleaner's tag history (acr_core.history, read by the run before it plans) gives, per tag,
the digests the tag was seen pointing to, most recent first. A clause `{"previousDigests":
{"tags": ["prod"], "count": 3}}` keeps, for each tag matching its patterns, the first 3 of those
digests that are not the tag's current one (the tag listing says which that is; a tag that no
longer exists has none, so its last 3 are kept). What it keeps is protected like a `keepTags`
match, so an index kept this way keeps its children and an image its referrers.

Fail closed: without a readable history a rule with such a clause cannot know what to keep,
so the repository's plan is blocked (nothing deleted) with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.policy import Rule


@dataclass(frozen=True, slots=True)
class TagHistory:
    """One repository's tag history as the planner takes it: per tag, the digests it was seen
    pointing to, most recent first; or, in `unreadable`, why the history could not be read."""

    digests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unreadable: str | None = None


@dataclass(frozen=True, slots=True)
class Previous:
    protected: Mapping[str, str]  # digest -> why a clause keeps it
    blocked: str | None = None


def previous_digests(graph: Graph, rule: Rule, history: TagHistory | None) -> Previous:
    """The digests the rule's `previousDigests` clauses keep in this repository, or why the
    repository must be blocked instead."""
    clauses = rule.previous_digests
    if not clauses:
        return Previous({})
    if history is None or history.unreadable is not None:
        why = reasons.HISTORY_NOT_READ if history is None else str(history.unreadable)
        return Previous({}, reasons.history_unavailable(clauses[0].describe(), why, graph.name))
    protected: dict[str, list[str]] = {}
    for clause in clauses:
        for tag in sorted(history.digests):
            if not clause.tags.matches(tag):
                continue
            listed = graph.tag_properties.get(tag)
            current = listed.digest if listed is not None else None
            earlier = [d for d in history.digests[tag] if d != current][: clause.count]
            for position, digest in enumerate(earlier, start=1):
                if digest in graph.manifests:
                    why = reasons.previous_digest(clause.describe(), tag, position)
                    protected.setdefault(digest, []).append(why)
    return Previous({digest: "; ".join(why) for digest, why in protected.items()})

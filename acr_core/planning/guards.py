"""Planning stage 6, guards: deletions the planner may not make on what the snapshot shows.

A manifest that would be deleted but whose content the gatherer did not read (see
`needs_inspection`) is kept, and so is everything in a repository where an index's children are
unknown or whose listings may miss manifests or tags. A held deletion frees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from acr_core.planning import reasons
from acr_core.planning.graph import Graph


@dataclass(frozen=True, slots=True)
class Guards:
    unread: frozenset[str]
    unknown_index: str | None  # the first index whose children are unknown
    incomplete: str | None  # why the listings may miss manifests or tags
    active: bool  # whether any deletion may be held: the planner skips `hold` otherwise

    def hold(self, digest: str, reason: str) -> str | None:
        """Why deleting `digest` (for `reason`) must wait for a later run, or None."""
        if digest in self.unread:
            return reasons.held_unread(reason)
        if self.unknown_index is not None:
            return reasons.held_unknown_children(reason, self.unknown_index)
        if self.incomplete is not None:
            return reasons.held_incomplete(reason, self.incomplete)
        return None


def guards(graph: Graph) -> Guards:
    unknown = graph.unknown_children
    index = unknown[0] if unknown else None
    active = bool(graph.unread) or index is not None or graph.incomplete is not None
    return Guards(graph.unread, index, graph.incomplete, active)

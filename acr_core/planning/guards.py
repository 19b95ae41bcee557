"""Planning stage 6, guards: deletions the planner may not make on what the snapshot shows.

A manifest that would be deleted but whose content the gatherer did not read (see
`needs_inspection`) is kept, and so is everything in a repository where an index's children are
unknown or whose listings may miss manifests or tags. So is everything in a repository where a
protected manifest could not be read (`readEnabled=false`): it may be a signature or SBOM of any
image there, and ACR deletes referrers with their subject. A held deletion frees nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from acr_core.planning import reasons
from acr_core.planning.graph import Graph


@dataclass(frozen=True, slots=True)
class Guards:
    unread: frozenset[str]
    unknown_index: str | None  # the first index whose children are unknown
    unread_protected: str | None  # the first protected manifest whose subject is unknown
    incomplete: str | None  # why the listings may miss manifests or tags
    active: bool  # whether any deletion may be held: the planner skips `hold` otherwise

    def hold(self, digest: str, reason: str) -> str | None:
        """Why deleting `digest` (for `reason`) must wait for a later run, or None."""
        if digest in self.unread:
            return reasons.held_unread(reason)
        if self.unknown_index is not None:
            return reasons.held_unknown_children(reason, self.unknown_index)
        if self.unread_protected is not None:
            return reasons.held_unread_protected(reason, self.unread_protected)
        if self.incomplete is not None:
            return reasons.held_incomplete(reason, self.incomplete)
        return None


def guards(graph: Graph, protected: Mapping[str, str]) -> Guards:
    unknown = graph.unknown_children
    index = unknown[0] if unknown else None
    unread_protected = min((d for d in graph.unread if d in protected), default=None)
    active = bool(graph.unread) or index is not None or graph.incomplete is not None
    return Guards(graph.unread, index, unread_protected, graph.incomplete, active)

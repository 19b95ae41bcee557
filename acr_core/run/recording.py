"""What a run tells the record it keeps of itself (the deletion ledger, `acr_core.ledger`).

`run_cleanup(..., recorder=)` asks the recorder which digests must be kept (restored ones, for
a while), hands it the plan before the first change so it can keep what a deletion destroys,
and hands it the report before returning it. A recorder that cannot write raises
`RecordingError`: before the apply, that stops the run with nothing changed (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from acr_core.models import RepositorySnapshot
from acr_core.run.report import RunReport

__all__ = ["RecordingError", "RunRecorder", "merged"]


class RecordingError(Exception):
    """The run's record cannot be read or written; the message says where and what to do."""


class RunRecorder(Protocol):
    async def protected(self, now: datetime) -> Mapping[str, frozenset[str]]:
        """Per repository, digests the planner must keep at `now`."""
        ...

    async def before_apply(
        self, preview: RunReport, snapshots: Mapping[str, RepositorySnapshot]
    ) -> None:
        """Write down what the apply is about to do, before it does any of it."""
        ...

    async def record(self, report: RunReport, snapshots: Mapping[str, RepositorySnapshot]) -> None:
        """Write down what the run did (or, dry, planned), before the report is returned."""
        ...


def merged(
    first: Mapping[str, frozenset[str]] | None, second: Mapping[str, frozenset[str]]
) -> Mapping[str, frozenset[str]] | None:
    """Both protections, repository by repository (None when both are empty)."""
    if not second:
        return first
    union = dict(first or {})
    for repository, digests in second.items():
        union[repository] = union.get(repository, frozenset()) | digests
    return union

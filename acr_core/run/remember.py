"""The run's part in the tag history: record what each listing shows, read what it remembers.

Between gathering and planning, each repository's tag listing is folded into the history
(`HistoryStore.observe`), which answers with everything it remembers of that repository's tags;
that answer is what `previousDigests` clauses plan from. A repository whose history cannot be
read or written gets `TagHistory(unreadable=...)`, so its rule, if it uses the clause, deletes
nothing in this run (fail closed); rules without the clause never look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from acr_core.history.store import HistoryStore, from_snapshot
from acr_core.models import RepositorySnapshot
from acr_core.planning.previous import TagHistory

# Repositories whose history is read and written at once (the gather's own bound).
CONCURRENCY = 8


async def recall(
    store: HistoryStore | None, snapshots: Mapping[str, RepositorySnapshot], now: datetime
) -> dict[str, TagHistory] | None:
    """Each snapshot's tag history after recording its listing; None without a store."""
    if store is None:
        return None
    gate = asyncio.Semaphore(CONCURRENCY)
    found: dict[str, TagHistory] = {}

    async def one(name: str, snapshot: RepositorySnapshot) -> None:
        async with gate:
            try:
                memory = await store.observe(name, from_snapshot(snapshot, now))
            except Exception as exc:  # whatever failed, the clause must not plan on it
                found[name] = TagHistory(unreadable=f"could not be read or written ({exc})")
                return
        found[name] = TagHistory({tag: tuple(s.digest for s in m) for tag, m in memory.items()})

    await asyncio.gather(*(one(name, s) for name, s in snapshots.items()))
    return found

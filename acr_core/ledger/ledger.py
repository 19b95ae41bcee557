"""The ledger over an object store: write run and restore documents once, read them back.

Every document is written with `overwrite=False` (append-only; the function's blob container
also has a time-based immutability policy, so not even the function can change or remove one
early). Any store failure, and a document that cannot be read, is a `LedgerError` naming the
ledger and what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from acr_core.ledger.entries import (
    INTENT,
    REPORT,
    Entry,
    EntryFormatError,
    Protection,
    RunInfo,
    id_time,
    read_restore_document,
    read_run_document,
    restore_document,
    run_document,
)
from acr_core.run.recording import RecordingError
from acr_core.storage.objects import ObjectStore, StoreError

__all__ = ["Ledger", "LedgerError", "Query"]

T = TypeVar("T")

# Documents read at the same time when listing (each is one GET from blob storage).
READ_CONCURRENCY = 16
# A run's entries are stamped when it records them, after its start (the run id's time):
# runs that started this much before `since` are still read. A function run ends within 30
# minutes (host.json functionTimeout); a day leaves room for a long CLI apply.
RUN_SLACK = timedelta(days=1)


class LedgerError(RecordingError):
    """The ledger cannot be read or written; nothing was deleted if it happened before the apply."""


@dataclass(frozen=True, slots=True)
class Query:
    """Which entries to list; every field given must match."""

    repository: str | None = None
    digest: str | None = None
    run: str | None = None
    rule: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def run_may_match(self, run: str) -> bool:
        if self.run is not None:
            return run == self.run
        started = id_time(run)
        if started is None:
            return True
        if self.until is not None and started > self.until:
            return False
        return self.since is None or started >= self.since - RUN_SLACK

    def matches(self, entry: Entry) -> bool:
        digests = {entry.digest, *(c.digest for c in entry.cascades)}
        return (
            (self.repository is None or entry.repository == self.repository)
            and (self.digest is None or self.digest in digests)
            and (self.rule is None or entry.rule == self.rule)
            and (self.since is None or entry.time >= self.since)
            and (self.until is None or entry.time <= self.until)
        )


class Ledger:
    """The deletion ledger in one store (a local directory, or the function's blob container)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @property
    def description(self) -> str:
        return self.store.description

    async def write_run(
        self, info: RunInfo, stage: str, entries: list[Entry], now: datetime
    ) -> None:
        """Write `runs/<run>/<stage>.json` once; raise `LedgerError` if that is not possible."""
        key = f"runs/{info.run}/{stage}.json"
        await self._put(key, run_document(info, stage, entries, now))

    async def write_restore(
        self,
        restore: str,
        principal: str | None,
        registry: str,
        at: datetime,
        protections: list[Protection],
    ) -> None:
        key = f"restores/{restore}.json"
        await self._put(key, restore_document(restore, principal, registry, at, protections))

    async def entries(self, query: Query | None = None) -> list[Entry]:
        """The matching entries, oldest run first; a run's report replaces its intent (an
        intent without a report is a run that stopped before recording its outcomes)."""
        query = query or Query()
        stages: dict[str, set[str]] = {}
        for key in await self._keys("runs/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] in (f"{INTENT}.json", f"{REPORT}.json"):
                stages.setdefault(parts[1], set()).add(parts[2])
        keys = [
            f"runs/{run}/{REPORT if f'{REPORT}.json' in names else INTENT}.json"
            for run, names in sorted(stages.items())
            if query.run_may_match(run)
        ]
        documents = await self._read_all(keys)
        return [
            entry
            for key, data in zip(keys, documents, strict=True)
            for entry in self._decode(key, data, read_run_document)
            if query.matches(entry)
        ]

    async def protections(self, registry: str, now: datetime) -> dict[str, frozenset[str]]:
        """Per repository of `registry`, the restored digests still protected at `now`."""
        keys = [k for k in await self._keys("restores/") if k.endswith(".json")]
        protected: dict[str, set[str]] = {}
        for key, data in zip(keys, await self._read_all(keys), strict=True):
            where, items = self._decode(key, data, read_restore_document)
            for item in items:
                if where == registry and item.until > now:
                    protected.setdefault(item.repository, set()).add(item.digest)
        return {repository: frozenset(d) for repository, d in protected.items()}

    async def _put(self, key: str, data: bytes) -> None:
        try:
            written = await self.store.put(key, data, overwrite=False)
        except StoreError as exc:
            raise LedgerError(
                f"cannot write the deletion ledger ({self.description}): {exc}. Check that "
                "it exists and that this identity may write to it (docs/operations.md, "
                "'The deletion ledger')"
            ) from None
        if not written:
            raise LedgerError(f"ledger record {key} already exists in {self.description}")

    async def _keys(self, prefix: str) -> list[str]:
        try:
            return [key async for key in self.store.list(prefix)]
        except StoreError as exc:
            raise LedgerError(
                f"cannot list the deletion ledger ({self.description}): {exc}"
            ) from None

    async def _read_all(self, keys: Sequence[str]) -> list[bytes]:
        slots = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(key: str) -> bytes:
            async with slots:
                try:
                    data = await self.store.get(key)
                except StoreError as exc:
                    raise LedgerError(
                        f"cannot read {key} from the deletion ledger ({self.description}): {exc}"
                    ) from None
            if data is None:
                raise LedgerError(f"ledger record {key} vanished from {self.description}")
            return data

        return list(await asyncio.gather(*(read(key) for key in keys)))

    def _decode(self, key: str, data: bytes, reader: Callable[[str, bytes], T]) -> T:
        try:
            return reader(key, data)
        except EntryFormatError as exc:
            raise LedgerError(f"{exc} ({self.description})") from None

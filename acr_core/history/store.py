"""Where the tag history lives: Table Storage rows (the function) or a local JSON file (the CLI).

Both keep, per registry, repository and tag, the memory `model.merge` defines: the digests the
tag was seen pointing to, newest first, at most `DEPTH + 1`. `record` folds observations in
(an event: one tag); `observe` folds a run's listing in and returns the repository's whole
memory, which is what the planner reads. Every write merges with what is stored, so events
delivered twice or out of order, and instances writing the same tag at once, all end in the
same memory. In a table the write is conditional on the ETag read (`acr_core.storage.tables`)
and retried from a fresh read when another writer came first; there is no lock.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from acr_core.history.model import (
    FORMAT,
    HistoryError,
    Observation,
    Seen,
    TagMemory,
    decode,
    encode,
    merge,
    observations_by_tag,
)
from acr_core.models import RepositorySnapshot
from acr_core.storage.tables import Row, Rows, TableError

# Conditional writes of one row before giving up: each retry follows a writer that came first,
# so this many in a row means the row is written faster than it can be read.
ATTEMPTS = 8
BACKOFF = 0.02  # seconds; the waits of all attempts add up to 5 s at most
# Rows written at once by one `observe` (a first run over a repository writes one per tag).
WRITE_CONCURRENCY = 16


class HistoryStore(Protocol):
    @property
    def description(self) -> str: ...

    async def record(self, repository: str, observations: Sequence[Observation]) -> None: ...

    async def observe(
        self, repository: str, observations: Sequence[Observation]
    ) -> dict[str, TagMemory]: ...

    async def close(self) -> None: ...


def from_snapshot(snapshot: RepositorySnapshot, seen_at: datetime) -> list[Observation]:
    """What a run's tag listing says: each tag points to its digest. The time is the tag's own
    `lastUpdateTime` (the registry's clock, like the events'), so a listing read just before a
    push never looks newer than the push; `seen_at` only when the registry gave no time."""
    return [
        Observation(t.name, t.digest, t.last_updated_on or t.created_on or seen_at)
        for t in snapshot.tags
    ]


class TableHistory:
    """The history in rows: partition `<registry>/<repository>`, one row per tag."""

    def __init__(self, rows: Rows, *, registry: str) -> None:
        self._rows = rows
        self._registry = registry

    @property
    def description(self) -> str:
        return f"the tag history in {self._rows.description}"

    async def record(self, repository: str, observations: Sequence[Observation]) -> None:
        partition = self._partition(repository)
        for tag, seen in observations_by_tag(observations).items():
            await self._update(partition, tag, seen, False)  # read the row first

    async def observe(
        self, repository: str, observations: Sequence[Observation]
    ) -> dict[str, TagMemory]:
        partition = self._partition(repository)
        try:
            stored = {row.key: row async for row in self._rows.list(partition)}
        except TableError as exc:
            raise HistoryError(str(exc)) from exc
        memory = {tag: self._decode(partition, row) for tag, row in stored.items()}
        grouped = observations_by_tag(observations)
        changed = {t: s for t, s in grouped.items() if merge(memory.get(t, ()), s) != memory.get(t)}
        gate = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def write(tag: str, seen: list[Seen]) -> None:
            async with gate:
                memory[tag] = await self._update(partition, tag, seen, stored.get(tag))

        try:
            async with asyncio.TaskGroup() as group:
                for tag, seen in changed.items():
                    group.create_task(write(tag, seen))
        except* HistoryError as failed:  # one message, the first write's, not a group's
            raise failed.exceptions[0] from None
        return memory

    async def close(self) -> None:
        await self._rows.close()

    async def _update(
        self, partition: str, tag: str, seen: Iterable[Seen], row: Row | bool | None
    ) -> TagMemory:
        """Merge `seen` into the stored row and write it back if that changes it; `row` is
        the row as already read (None: absent), or a bool when it must be read first."""
        seen = list(seen)
        try:
            for attempt in range(ATTEMPTS):
                if isinstance(row, bool):
                    row = await self._rows.get(partition, tag)
                known = self._decode(partition, row) if row is not None else ()
                merged = merge(known, seen)
                if merged == known:
                    return merged
                etag = row.etag if row is not None else None
                if await self._rows.put(partition, tag, encode(merged), etag=etag):
                    return merged
                row = False  # another writer came first: merge with what it wrote
                # Writers that keep colliding on one row spread out (full jitter).
                await asyncio.sleep(random.uniform(0, BACKOFF * 2**attempt))  # noqa: S311
        except TableError as exc:
            raise HistoryError(str(exc)) from exc
        raise HistoryError(
            f"{self.description}: tag {tag!r} of {partition} changed under each of "
            f"{ATTEMPTS} attempts to write it; try again"
        )

    def _partition(self, repository: str) -> str:
        return f"{self._registry}/{repository}"

    def _decode(self, partition: str, row: Row) -> TagMemory:
        try:
            return decode(row.value)
        except ValueError as exc:
            raise HistoryError(
                f"{self.description}: the row for tag {row.key!r} of {partition} is not tag "
                f"history ({exc}); delete that row, or point the cleaner at its own table"
            ) from None


class FileHistory:
    """The history in one JSON file (the CLI's `--history PATH`), rewritten atomically (a
    temporary file, then `os.replace`), so a crash never leaves half a file. Two CLIs writing
    the same file at once can lose one's update: give concurrent runs their own files."""

    def __init__(self, path: Path, *, registry: str) -> None:
        self.path = path
        self._registry = registry

    @property
    def description(self) -> str:
        return f"the tag history file {self.path}"

    async def record(self, repository: str, observations: Sequence[Observation]) -> None:
        await self.observe(repository, observations)

    async def observe(
        self, repository: str, observations: Sequence[Observation]
    ) -> dict[str, TagMemory]:
        document = self._load()
        key = f"{self._registry}/{repository}"
        stored = document.setdefault("repositories", {}).setdefault(key, {})
        memory: dict[str, TagMemory] = {}
        for tag, text in stored.items():
            try:
                memory[tag] = decode(json.dumps(text))
            except ValueError as exc:
                raise self._unreadable(f"tag {tag!r} of {key}: {exc}") from None
        changed = False
        for tag, seen in observations_by_tag(observations).items():
            merged = merge(memory.get(tag, ()), seen)
            if merged != memory.get(tag):
                memory[tag] = merged
                stored[tag] = json.loads(encode(merged))
                changed = True
        if changed:
            self._save(document)
        return memory

    async def close(self) -> None:
        return None

    def _load(self) -> dict[str, dict[str, dict[str, object]]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"repositories": {}}
        except OSError as exc:
            raise self._unreadable(exc.strerror or str(exc)) from None
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise self._unreadable(f"not JSON ({exc})") from None
        if not isinstance(document, dict) or not isinstance(document.get("repositories"), dict):
            raise self._unreadable('not {"version": 1, "repositories": {...}}')
        if document.get("version", FORMAT) != FORMAT:
            raise self._unreadable(f"format version {document.get('version')!r}, not {FORMAT}")
        if not all(isinstance(v, dict) for v in document["repositories"].values()):
            raise self._unreadable("a repository's entry is not an object")
        return {"repositories": document["repositories"]}

    def _save(self, document: Mapping[str, object]) -> None:
        text = json.dumps({"version": 1, **document}, indent=1, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    file.write(text)
                os.replace(temp, self.path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise HistoryError(
                f"cannot write {self.description}: {exc.strerror or exc}; give --history a "
                "path you may write"
            ) from None

    def _unreadable(self, why: str) -> HistoryError:
        return HistoryError(
            f"cannot read {self.description}: {why}; fix or remove the file (removing it "
            "forgets every tag's earlier digests)"
        )


def user_history_path(environ: Mapping[str, str], platform: str, home: Path) -> Path:
    """Where the CLI keeps its history unless `--history` says: the user's data directory
    (`%LOCALAPPDATA%` on Windows, `~/Library/Application Support` on macOS, else
    `$XDG_DATA_HOME` or `~/.local/share`), under `acr-cleanup/history.json`."""
    if platform == "win32" and environ.get("LOCALAPPDATA"):
        base = Path(environ["LOCALAPPDATA"])
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "acr-cleanup" / "history.json"

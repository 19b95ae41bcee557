"""The stored form of a repository's snapshot (acr_core.run.snapshots): gzip-compressed.

Format 2 (`acr-cleanup-snapshot/2`) is laid out for speed, because a push run writes the snapshot
of its repository every time, and a cold worker reads it: at 50,000 manifests format 1's JSON
object per manifest and per tag, with their keys, one timestamp text per field and every raw
manifest escaped into a JSON string, cost seconds each way. Format 2 is one line of JSON, a
newline, and then the raw manifests back to back, each in the manifest cache's entry form (media
type line, raw bytes), unescaped. The JSON holds the same values as rows (lists in a fixed order,
below), and each distinct timestamp and each distinct set of lock switches once, in a table that
rows point into. Each raw manifest is hashed against its digest and parsed again on load, as
before.

    times:      [iso8601, ...]                       distinct, in first-use order
    switches:   [[delete, write, read, list, quarantineState, quarantineDetails], ...]
    manifests:  [[digest, created, updated, size, mediaType, configMediaType, architecture,
                  os, [tag, ...], [[digest, architecture, os], ...], switches], ...]
    tags:       [[name, digest, created, updated, signed, switches], ...]
    contents:   [[digest, length of its entry after the newline], ...]   in the entries' order

`created`/`updated` are positions in `times` (or null), `switches` a position in `switches`.
A snapshot of another format (format 1 included), for another repository, or damaged in any way
raises `SnapshotError`, and the run lists the repository in full: never a partial reading.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from acr_core.models import (
    ChangeableAttributes,
    ManifestContent,
    ManifestProperties,
    ManifestReference,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning import collector
from acr_core.registry.errors import InvalidResponseError
from acr_core.run.manifest_cache import decode_entry, encode_entry

FORMAT = "acr-cleanup-snapshot/2"


class SnapshotError(ValueError):
    """A stored snapshot that is not one this code wrote, or is damaged."""


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshot as kept: `listed_at` is when its oldest part was listed in full (incremental
    runs carry it over, so `max_age` bounds how long an unseen change can last)."""

    registry: str
    snapshot: RepositorySnapshot
    listed_at: datetime
    saved_at: datetime


class _Tables:
    """The timestamp and lock-switch tables an encoding fills as rows point into them."""

    def __init__(self) -> None:
        # Keyed by the instant and its offset: equal instants at other offsets print otherwise.
        self.times: dict[tuple[datetime, timedelta | None], int] = {}
        self.switches: dict[ChangeableAttributes, int] = {}

    def time(self, moment: datetime | None) -> int | None:
        if moment is None:
            return None
        return self.times.setdefault((moment, moment.utcoffset()), len(self.times))

    def switch(self, attributes: ChangeableAttributes) -> int:
        return self.switches.setdefault(attributes, len(self.switches))


def encode_snapshot(stored: StoredSnapshot) -> bytes:
    with collector.paused():  # rows and tables only: no reference cycles
        snapshot, tables = stored.snapshot, _Tables()
        time, switch = tables.time, tables.switch
        manifests = [
            [
                *(m.digest, time(m.created_on), time(m.last_updated_on), m.size_in_bytes),
                *(m.media_type, m.config_media_type, m.architecture, m.os, m.tags),
                [(r.digest, r.architecture, r.os) for r in m.references],
                switch(m.attributes),
            ]
            for m in snapshot.manifests
        ]
        tags = [
            [
                *(t.name, t.digest, time(t.created_on), time(t.last_updated_on)),
                *(t.signed, switch(t.attributes)),
            ]
            for t in snapshot.tags
        ]
        entries = [(d, encode_entry(c)) for d, c in sorted(snapshot.contents.items())]
        body = {
            "format": FORMAT,
            "registry": stored.registry,
            "repository": snapshot.name,
            "listedAt": stored.listed_at.isoformat(),
            "savedAt": stored.saved_at.isoformat(),
            "times": [moment.isoformat() for moment, _ in tables.times],
            "switches": [_switches_out(a) for a in tables.switches],
            "manifests": manifests,
            "tags": tags,
            "contents": [[d, len(entry)] for d, entry in entries],
        }
        # One line: JSON escapes every newline inside a string.
        header = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        data = b"".join([header, b"\n", *(entry for _, entry in entries)])
    # Level 1: a push run writes the snapshot every time, and speed matters more than size.
    return gzip.compress(data, compresslevel=1, mtime=0)


def decode_snapshot(data: bytes, registry: str, repository: str) -> StoredSnapshot:
    """The stored snapshot, every manifest in it verified against its digest."""
    with collector.paused():  # the decoded values hold no reference cycles
        try:
            data = gzip.decompress(data)
            # Format 1 has no newline: all of it is the JSON, whose format is then not this.
            line = data.find(b"\n")
            line = len(data) if line < 0 else line
            body = json.loads(data[:line])
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise SnapshotError(f"not a readable snapshot ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise SnapshotError(f"not in the format {FORMAT}")
        if body.get("registry") != registry or body.get("repository") != repository:
            raise SnapshotError(f"written for {body.get('registry')}/{body.get('repository')}")
        try:
            return _stored(body, memoryview(data)[line + 1 :], registry, repository)
        except (
            *(KeyError, TypeError, ValueError, AttributeError, IndexError),
            InvalidResponseError,
        ) as exc:
            raise SnapshotError(f"damaged ({type(exc).__name__}: {exc})") from None


def _stored(
    body: dict[str, Any], entries: memoryview, registry: str, repository: str
) -> StoredSnapshot:
    """The snapshot a format-2 body and its entries hold; raises on any value out of place."""
    times = [_time(t) for t in _rows(body["times"])]
    switches = [_switches_in(s) for s in _rows(body["switches"])]
    tables = (times, switches)
    rows = _rows(body["manifests"])
    manifests = tuple(_manifest_in(row, registry, repository, tables) for row in rows)
    tags = tuple(_tag_in(row, registry, repository, tables) for row in _rows(body["tags"]))
    contents: dict[str, ManifestContent] = {}
    start = 0
    for digest, length in _rows(body["contents"]):
        if type(length) is not int or not 0 <= length <= len(entries) - start:
            raise ValueError(f"the length {length!r} of {digest!r} is not what follows")
        end = start + length
        contents[_text(digest)] = decode_entry(digest, bytes(entries[start:end]))
        start = end
    if start != len(entries):
        raise ValueError(f"{len(entries) - start} bytes follow the last manifest")
    listed_at = _time(body["listedAt"])
    saved_at = _time(body["savedAt"])
    snapshot = RepositorySnapshot(
        name=repository,
        attributes=ChangeableAttributes(),
        manifests=manifests,
        tags=tags,
        contents=contents,
    )
    return StoredSnapshot(registry, snapshot, listed_at, saved_at)


def _rows(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("a table is not a list")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(_text(value))
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return moment


def _at(table: Sequence[Any], position: Any) -> Any:
    """`table[position]` for a position a row gives; Python's negative positions are not one."""
    if type(position) is not int or position < 0:
        raise ValueError(f"{position!r} is not a position in a table")
    return table[position]


def _at_or_none(table: Sequence[Any], position: Any) -> Any:
    return None if position is None else _at(table, position)


def _switches_out(a: ChangeableAttributes) -> list[Any]:
    return [
        a.delete_enabled,
        a.write_enabled,
        a.read_enabled,
        a.list_enabled,
        a.quarantine_state,
        a.quarantine_details,
    ]


def _switches_in(value: Any) -> ChangeableAttributes:
    delete, write, read, listed, state, details = value
    if not all(isinstance(b, bool) for b in (delete, write, read, listed)):
        raise ValueError("lock switches must be booleans")
    return ChangeableAttributes(
        delete, write, read, listed, _optional_text(state), _optional_text(details)
    )


def _manifest_in(
    row: Any,
    registry: str,
    repository: str,
    tables: tuple[list[datetime], list[ChangeableAttributes]],
) -> ManifestProperties:
    times, switches = tables
    digest, created, updated, size, media, config, arch, os, tags, references, locks = row
    if size is not None and (type(size) is not int):
        raise ValueError(f"size {size!r} is not a whole number")
    return ManifestProperties(
        registry=registry,
        repository=repository,
        digest=_text(digest),
        created_on=_at_or_none(times, created),
        last_updated_on=_at_or_none(times, updated),
        size_in_bytes=size,
        media_type=_optional_text(media),
        config_media_type=_optional_text(config),
        architecture=_optional_text(arch),
        os=_optional_text(os),
        tags=tuple(_text(t) for t in _rows(tags)),
        references=tuple(
            ManifestReference(_text(d), _optional_text(a), _optional_text(o))
            for d, a, o in _rows(references)
        ),
        attributes=_at(switches, locks),
    )


def _tag_in(
    row: Any,
    registry: str,
    repository: str,
    tables: tuple[list[datetime], list[ChangeableAttributes]],
) -> TagProperties:
    times, switches = tables
    name, digest, created, updated, signed, locks = row
    if signed is not None and not isinstance(signed, bool):
        raise ValueError(f"signed {signed!r} is not a boolean")
    return TagProperties(
        registry=registry,
        repository=repository,
        name=_text(name),
        digest=_text(digest),
        created_on=_at_or_none(times, created),
        last_updated_on=_at_or_none(times, updated),
        attributes=_at(switches, locks),
        signed=signed,
    )

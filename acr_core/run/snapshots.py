"""A repository's last snapshot, kept between runs, so a push run reads only what changed.

A push-triggered run loads the snapshot the previous run kept, reads the manifest and tag
listings newest first (`orderby=timedesc`) only until it is past the snapshot's watermark (the
newest `lastUpdateTime` it holds), and merges what it read over the snapshot (`merge`). Every
push, re-tag and new referrer or index moves a `lastUpdateTime` (docs/acr-facts.md sections
1.4, 1.11), so it is on the pages read. What moves no timestamp is caught by the counts or
bounded in time:

- a manifest or tag deleted by someone else: the repository's `manifestCount`/`tagCount`
  (read fresh each run) no longer match the merged snapshot, and the run lists everything;
- a lock or `listEnabled` set or cleared by someone else on an item older than the pages read
  (a PATCH moves no timestamp, section 1.7): invisible until the next full listing, which comes
  at the latest after `max_age` or with the next scheduled sweep. docs/reliability.md
  ("Incremental snapshots") says exactly what a plan may then get wrong, and why the executor's
  re-check before each DELETE still never deletes a manifest that was locked.

The snapshot is stored gzip-compressed JSON under ``snapshots/<registry>/<repository>/snapshot``
with the raw manifests the planner needed inside it (so a push into a 50,000-manifest
repository reads one object, not thousands); each one is hashed against its digest again on
load. A snapshot that cannot be read, is corrupt, of another format, or for another
repository is ignored with a warning, and the run lists the repository in full.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from acr_core.models import (
    ChangeableAttributes,
    ManifestContent,
    ManifestProperties,
    ManifestReference,
    RepositoryProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.registry.errors import InvalidResponseError
from acr_core.run.manifest_cache import decode_entry, encode_entry
from acr_core.storage.objects import ObjectStore, StoreError

__all__ = [
    "DEFAULT_MAX_AGE",
    "FORMAT",
    "SnapshotStore",
    "StoredSnapshot",
    "decode_snapshot",
    "encode_snapshot",
    "merge",
    "watermark",
]

log = logging.getLogger("acr_cleanup")

FORMAT = "acr-cleanup-snapshot/1"
# How long push runs may build on one full listing before the next push run lists everything
# again: the longest a lock set by someone else on an old manifest can stay unseen by push runs.
DEFAULT_MAX_AGE = timedelta(hours=1)
# Parsed snapshots a store keeps in memory (a warm worker cleans a few repositories at a time).
PARSED_SNAPSHOTS = 16


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


def watermark(items: Iterable[ManifestProperties | TagProperties]) -> datetime | None:
    """The newest `lastUpdateTime` among `items` (None when there is none)."""
    times = [i.last_updated_on for i in items if i.last_updated_on is not None]
    return max(times) if times else None


def merge(
    old: RepositorySnapshot,
    properties: RepositoryProperties,
    manifests: Iterable[ManifestProperties],
    tags: Iterable[TagProperties],
) -> RepositorySnapshot:
    """The snapshot after the changes read newest-first: `manifests` and `tags` are fresh and
    replace their old entries; a tag that moved is taken off the manifest it left (the stale
    manifests' tags are the merged tag listing's); content carries over, being immutable."""
    fresh = {m.digest: m for m in manifests}
    merged_tags = {t.name: t for t in old.tags}
    merged_tags.update((t.name, t) for t in tags)
    by_digest: dict[str, list[str]] = {}
    for tag in merged_tags.values():
        by_digest.setdefault(tag.digest, []).append(tag.name)
    merged: dict[str, ManifestProperties] = {}
    for manifest in old.manifests:
        if manifest.digest not in fresh:
            names = tuple(sorted(by_digest.get(manifest.digest, ())))
            merged[manifest.digest] = (
                manifest if names == manifest.tags else replace(manifest, tags=names)
            )
    merged.update(fresh)
    return RepositorySnapshot(
        name=old.name,
        attributes=properties.attributes,
        manifests=tuple(merged[d] for d in sorted(merged)),
        tags=tuple(merged_tags[n] for n in sorted(merged_tags)),
        contents={d: c for d, c in old.contents.items() if d in merged},
        manifest_count=properties.manifest_count,
        tag_count=properties.tag_count,
    )


def without(snapshot: RepositorySnapshot, digests: Iterable[str]) -> RepositorySnapshot:
    """The snapshot less manifests this run deleted (with their tags, as ACR deletes them)."""
    gone = set(digests)
    if not gone:
        return snapshot
    return replace(
        snapshot,
        manifests=tuple(m for m in snapshot.manifests if m.digest not in gone),
        tags=tuple(t for t in snapshot.tags if t.digest not in gone),
        contents={d: c for d, c in snapshot.contents.items() if d not in gone},
    )


def with_locked_tags(snapshot: RepositorySnapshot, names: Iterable[str]) -> RepositorySnapshot:
    """The snapshot with this run's tag locks (`lockTags`) applied, as ACR now holds them."""
    locked = set(names)
    if not locked:
        return snapshot
    return replace(
        snapshot,
        tags=tuple(
            replace(
                t,
                attributes=replace(t.attributes, delete_enabled=False, write_enabled=False),
            )
            if t.name in locked
            else t
            for t in snapshot.tags
        ),
    )


class SnapshotStore:
    """Loads and saves repositories' snapshots in an `ObjectStore`; never fails a run."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parsed: MutableMapping[str, StoredSnapshot] | None = None,
    ) -> None:
        self._store = store
        self.max_age = max_age
        self._clock = clock
        # Snapshots this process wrote or read, by the sha256 of their stored bytes: a warm
        # worker that finds its own last snapshot in the store skips decoding it again (at
        # 50,000 manifests decoding costs seconds). Keyed by content, so never stale.
        self._parsed = parsed if parsed is not None else {}
        # What this store saved in this run, so the run's own deletions and locks can be
        # written into it after they are applied (the next run's counts then add up).
        self._saved: dict[tuple[str, str], StoredSnapshot] = {}

    @property
    def description(self) -> str:
        return self._store.description

    def now(self) -> datetime:
        return self._clock()

    @staticmethod
    def key(registry: str, repository: str) -> str:
        return f"snapshots/{registry}/{repository}/snapshot"

    async def load(self, registry: str, repository: str) -> StoredSnapshot | None:
        """The kept snapshot if it can be trusted: None when there is none, it is older than
        `max_age`, or it is unreadable or corrupt (those two with a warning)."""
        key = self.key(registry, repository)
        try:
            data = await self._store.get(key)
        except StoreError as exc:
            log.warning(
                "acr-cleanup snapshot of %s not used (listing it in full): %s", repository, exc
            )
            return None
        if data is None:
            return None
        fingerprint = hashlib.sha256(data).hexdigest()
        try:
            stored = self._parsed.get(fingerprint) or decode_snapshot(data, registry, repository)
        except SnapshotError as exc:
            log.warning(
                "acr-cleanup snapshot %s in %s ignored (listing the repository in full): %s",
                key,
                self._store.description,
                exc,
            )
            return None
        self._remember(fingerprint, stored)
        age = self._clock() - stored.listed_at
        if age > self.max_age or age < -self.max_age:
            return None  # due for a full listing (or written by a clock far ahead)
        return stored

    async def save(self, stored: StoredSnapshot) -> None:
        key = self.key(stored.registry, stored.snapshot.name)
        self._saved[stored.registry, stored.snapshot.name] = stored
        data = encode_snapshot(stored)
        try:
            await self._store.put(key, data)
        except StoreError as exc:
            log.warning("acr-cleanup snapshot of %s not kept: %s", stored.snapshot.name, exc)
            return
        self._remember(hashlib.sha256(data).hexdigest(), stored)

    def _remember(self, fingerprint: str, stored: StoredSnapshot) -> None:
        """Keep the latest few parsed snapshots (one per repository is the common case)."""
        for old in [k for k, v in self._parsed.items() if v.snapshot.name == stored.snapshot.name]:
            del self._parsed[old]
        self._parsed[fingerprint] = stored
        while len(self._parsed) > PARSED_SNAPSHOTS:
            del self._parsed[next(iter(self._parsed))]

    async def record(
        self, registry: str, repository: str, *, deleted: Iterable[str], locked: Iterable[str]
    ) -> None:
        """Write what this run changed (manifests deleted, with the referrers ACR deleted with
        them; tags locked) into the snapshot it saved for `repository`, if it saved one."""
        stored = self._saved.get((registry, repository))
        if stored is None:
            return
        snapshot = with_locked_tags(without(stored.snapshot, deleted), locked)
        if snapshot is not stored.snapshot:
            await self.save(replace(stored, snapshot=snapshot, saved_at=self._clock()))


# --- the stored form ---------------------------------------------------------------------------


def encode_snapshot(stored: StoredSnapshot) -> bytes:
    snapshot = stored.snapshot
    body = {
        "format": FORMAT,
        "registry": stored.registry,
        "repository": snapshot.name,
        "listedAt": stored.listed_at.isoformat(),
        "savedAt": stored.saved_at.isoformat(),
        "manifests": [_manifest_out(m) for m in snapshot.manifests],
        "tags": [_tag_out(t) for t in snapshot.tags],
        "contents": {d: _content_out(c) for d, c in sorted(snapshot.contents.items())},
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    # Level 1: a push run writes the snapshot every time, and speed matters more than size.
    return gzip.compress(text.encode(), compresslevel=1, mtime=0)


def decode_snapshot(data: bytes, registry: str, repository: str) -> StoredSnapshot:
    """The stored snapshot, every manifest in it verified against its digest."""
    try:
        body = json.loads(gzip.decompress(data))
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise SnapshotError(f"not a readable snapshot ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise SnapshotError(f"not in the format {FORMAT}")
    if body.get("registry") != registry or body.get("repository") != repository:
        raise SnapshotError(f"written for {body.get('registry')}/{body.get('repository')}")
    try:
        manifests = tuple(_manifest_in(m, registry, repository) for m in body["manifests"])
        tags = tuple(_tag_in(t, registry, repository) for t in body["tags"])
        contents = {d: _content_in(d, c) for d, c in body["contents"].items()}
        listed_at = _time(body["listedAt"])
        saved_at = _time(body["savedAt"])
    except (KeyError, TypeError, ValueError, AttributeError, InvalidResponseError) as exc:
        raise SnapshotError(f"damaged ({type(exc).__name__}: {exc})") from None
    if listed_at is None or saved_at is None:
        raise SnapshotError("damaged (no listedAt or savedAt)")
    snapshot = RepositorySnapshot(
        name=repository,
        attributes=ChangeableAttributes(),
        manifests=manifests,
        tags=tags,
        contents=contents,
    )
    return StoredSnapshot(registry, snapshot, listed_at, saved_at)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return moment


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _attributes_out(a: ChangeableAttributes) -> list[Any]:
    return [
        a.delete_enabled,
        a.write_enabled,
        a.read_enabled,
        a.list_enabled,
        a.quarantine_state,
        a.quarantine_details,
    ]


def _attributes_in(value: list[Any]) -> ChangeableAttributes:
    delete, write, read, listed, state, details = value
    if not all(isinstance(b, bool) for b in (delete, write, read, listed)):
        raise ValueError("lock switches must be booleans")
    return ChangeableAttributes(delete, write, read, listed, state, details)


def _manifest_out(m: ManifestProperties) -> dict[str, Any]:
    return {
        "digest": m.digest,
        "created": _iso(m.created_on),
        "updated": _iso(m.last_updated_on),
        "size": m.size_in_bytes,
        "mediaType": m.media_type,
        "configMediaType": m.config_media_type,
        "architecture": m.architecture,
        "os": m.os,
        "tags": list(m.tags),
        "references": [[r.digest, r.architecture, r.os] for r in m.references],
        "attributes": _attributes_out(m.attributes),
    }


def _manifest_in(value: Mapping[str, Any], registry: str, repository: str) -> ManifestProperties:
    return ManifestProperties(
        registry=registry,
        repository=repository,
        digest=str(value["digest"]),
        created_on=_time(value["created"]),
        last_updated_on=_time(value["updated"]),
        size_in_bytes=value["size"],
        media_type=value["mediaType"],
        config_media_type=value["configMediaType"],
        architecture=value["architecture"],
        os=value["os"],
        tags=tuple(str(t) for t in value["tags"]),
        references=tuple(ManifestReference(d, a, o) for d, a, o in value["references"]),
        attributes=_attributes_in(value["attributes"]),
    )


def _tag_out(t: TagProperties) -> dict[str, Any]:
    return {
        "name": t.name,
        "digest": t.digest,
        "created": _iso(t.created_on),
        "updated": _iso(t.last_updated_on),
        "signed": t.signed,
        "attributes": _attributes_out(t.attributes),
    }


def _tag_in(value: Mapping[str, Any], registry: str, repository: str) -> TagProperties:
    return TagProperties(
        registry=registry,
        repository=repository,
        name=str(value["name"]),
        digest=str(value["digest"]),
        created_on=_time(value["created"]),
        last_updated_on=_time(value["updated"]),
        attributes=_attributes_in(value["attributes"]),
        signed=value["signed"],
    )


def _content_out(content: ManifestContent) -> str:
    """The cache's entry form (media type line, raw bytes), as text when it is UTF-8 (JSON
    manifests are) and base64 otherwise; either way the exact bytes come back."""
    entry = encode_entry(content)
    try:
        return "t" + entry.decode("utf-8")
    except UnicodeDecodeError:
        return "b" + base64.b64encode(entry).decode("ascii")


def _content_in(digest: str, value: str) -> ManifestContent:
    kind, text = value[:1], value[1:]
    entry = text.encode("utf-8") if kind == "t" else base64.b64decode(text, validate=True)
    return decode_entry(digest, entry)

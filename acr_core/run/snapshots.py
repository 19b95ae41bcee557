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
(acr_core.run.snapshot_codec) with the raw manifests the planner needed inside it (so a push
into a 50,000-manifest repository reads one object, not thousands); each one is hashed against
its digest again on load. A snapshot that cannot be read, is corrupt, of another format, or for
another repository is ignored with a warning, and the run lists the repository in full.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from acr_core.models import (
    ManifestProperties,
    RepositoryProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning import collector
from acr_core.run.snapshot_codec import (
    FORMAT,
    SnapshotError,
    StoredSnapshot,
    decode_snapshot,
    encode_snapshot,
)
from acr_core.storage.objects import ObjectStore, StoreError

__all__ = [
    "DEFAULT_MAX_AGE",
    "FORMAT",
    "SnapshotError",
    "SnapshotStore",
    "StoredSnapshot",
    "decode_snapshot",
    "encode_snapshot",
    "merge",
    "watermark",
]

log = logging.getLogger("acr_cleanup")

# How long push runs may build on one full listing before the next push run lists everything
# again: the longest a lock set by someone else on an old manifest can stay unseen by push runs.
DEFAULT_MAX_AGE = timedelta(hours=1)
# Parsed snapshots a store keeps in memory (a warm worker cleans a few repositories at a time).
PARSED_SNAPSHOTS = 16


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
    with collector.paused():  # tens of thousands of values, no reference cycles
        fresh = {m.digest: m for m in manifests}
        merged_tags = {t.name: t for t in old.tags}
        merged_tags.update((t.name, t) for t in tags)
        names = sorted(merged_tags)
        # Filled in name order, so each manifest's list of names is sorted already.
        by_digest: dict[str, list[str]] = {}
        for name in names:
            by_digest.setdefault(merged_tags[name].digest, []).append(name)
        merged: dict[str, ManifestProperties] = {}
        for manifest in old.manifests:
            if manifest.digest not in fresh:
                listed = tuple(by_digest.get(manifest.digest, ()))
                merged[manifest.digest] = (
                    manifest if listed == manifest.tags else replace(manifest, tags=listed)
                )
        merged.update(fresh)
        return RepositorySnapshot(
            name=old.name,
            attributes=properties.attributes,
            manifests=tuple(merged[d] for d in sorted(merged)),
            tags=tuple(merged_tags[n] for n in names),
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

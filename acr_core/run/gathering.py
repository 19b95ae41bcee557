"""Reading one repository for a run: in full, or only what changed since its kept snapshot.

Full: the repository's properties, every manifest and tag, and the raw manifests the planner
must see (`planner.needs_inspection`). Incremental (push runs with a kept snapshot): the
properties, then the manifest and tag listings newest first only until past the snapshot's
watermark, merged over it (acr_core.run.snapshots); when the merged snapshot's sizes differ from
the repository's counts (something was deleted, hidden or missed) it falls back to a full
listing. Either way a raw manifest is taken from the kept snapshot or the manifest cache when
they have it (verified against its digest) and read from ACR only otherwise, and the result is
kept as the repository's snapshot for the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from acr_core.models import (
    ManifestContent,
    ManifestProperties,
    RepositoryProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning import planner, reasons
from acr_core.planning.plan import RepositoryPlan
from acr_core.registry.client import MAX_PAGE_SIZE
from acr_core.registry.errors import DisallowedOperationError, NotFoundError
from acr_core.run._tasks import first_failure
from acr_core.run.limiter import Governor
from acr_core.run.manifest_cache import ManifestCache
from acr_core.run.snapshots import SnapshotStore, StoredSnapshot, merge, watermark

__all__ = ["Freshness", "GatherClient", "Gathered", "Reading", "gather", "unsure_competition"]

T = TypeVar("T")
log = logging.getLogger("acr_cleanup")


class GatherClient(Protocol):
    """The reads a gather sends (a part of `acr_core.registry.client.AcrClient`)."""

    @property
    def login_server(self) -> str: ...

    async def get_repository_properties(self, repository: str) -> RepositoryProperties: ...

    def list_manifest_properties(
        self, repository: str, *, order_by: Any = ..., results_per_page: int = ...
    ) -> AsyncIterator[ManifestProperties]: ...

    def list_tag_properties(
        self, repository: str, *, order_by: Any = ..., results_per_page: int = ...
    ) -> AsyncIterator[TagProperties]: ...

    async def get_manifest(self, repository: str, tag_or_digest: str) -> ManifestContent: ...


@dataclass(frozen=True, slots=True)
class Freshness:
    """What an incremental gather read from ACR this run; everything else in the snapshot is as
    an earlier run saw it (its locks may have changed since: a PATCH moves no timestamp)."""

    manifests: frozenset[str]
    tags: frozenset[str]
    listed_at: datetime  # when the snapshot it builds on was listed in full


@dataclass(frozen=True, slots=True)
class Reading:
    """How a run reads its repositories: raw manifests from `cache` when it has them; with
    `snapshots`, each repository's snapshot kept for the next run, and with `incremental` (push
    runs) a kept snapshot brought up to date rather than the repository listed in full.
    `page_size` is the `n` of each listing request (ACR serves at most 1000 items a page,
    docs/acr-facts.md section 1.12; tests make it small)."""

    cache: ManifestCache | None = None
    snapshots: SnapshotStore | None = None
    incremental: bool = False
    page_size: int = MAX_PAGE_SIZE


@dataclass(frozen=True, slots=True)
class Gathered:
    snapshot: RepositorySnapshot
    fresh: Freshness | None  # None: listed in full this run


async def gather(
    client: GatherClient,
    repository: str,
    governor: Governor,
    reading: Reading,
    *,
    reach: datetime | None = None,
) -> Gathered:
    """Read one repository (see the module docstring); incremental reads go back at least to
    `reach`. Raises `AcrError`."""
    cache, snapshots, page_size = reading.cache, reading.snapshots, reading.page_size
    started = snapshots.now() if snapshots is not None else None
    # Read before the listings: the planner compares the counts in it with what the listings
    # show, and a push in between only makes the listings longer, never shorter.
    async with governor.reads.slot():
        properties = await client.get_repository_properties(repository)
    stored = None
    if snapshots is not None:
        stored = await snapshots.load(client.login_server, repository)
    gathered = None
    if reading.incremental and stored is not None:
        gathered = await _changes(client, governor, properties, stored, page_size, reach)
    if gathered is None:
        listed = await _listings(client, governor, properties, repository, page_size, None)
        known = stored.snapshot.contents if stored is not None else {}
        gathered = Gathered(_with_contents(listed, known), None)
    snapshot = await _inspect(client, governor, gathered.snapshot, cache)
    if snapshots is not None and started is not None:
        listed_at = started if gathered.fresh is None else gathered.fresh.listed_at
        kept = StoredSnapshot(client.login_server, snapshot, listed_at, snapshots.now())
        await snapshots.save(kept)
    return replace(gathered, snapshot=snapshot)


async def _changes(
    client: GatherClient,
    governor: Governor,
    properties: RepositoryProperties,
    stored: StoredSnapshot,
    page_size: int,
    reach: datetime | None,
) -> Gathered | None:
    """The kept snapshot brought up to date from the newest-first listings, or None when the
    result does not add up to the repository's counts (then the caller lists in full)."""
    old = stored.snapshot
    manifest_mark, tag_mark = watermark(old.manifests), watermark(old.tags)
    if manifest_mark is None or (tag_mark is None and old.tags):
        return None
    if reach is not None:
        manifest_mark = min(manifest_mark, reach)
        tag_mark = reach if tag_mark is None else min(tag_mark, reach)
    marks = (manifest_mark, tag_mark)
    listed = await _listings(
        client, governor, properties, old.name, page_size, (marks[0], marks[1])
    )
    merged = merge(old, properties, listed.manifests, listed.tags)
    counts = (properties.manifest_count, properties.tag_count)
    if (len(merged.manifests), len(merged.tags)) != counts:
        log.info(
            "acr-cleanup %s: the snapshot brought up to date holds %d manifests and %d tags, "
            "the repository %d and %d; listing it in full",
            old.name,
            len(merged.manifests),
            len(merged.tags),
            *counts,
        )
        return None
    fresh = Freshness(
        manifests=frozenset(m.digest for m in listed.manifests),
        tags=frozenset(t.name for t in listed.tags),
        listed_at=stored.listed_at,
    )
    return Gathered(merged, fresh)


async def _listings(
    client: GatherClient,
    governor: Governor,
    properties: RepositoryProperties,
    repository: str,
    page_size: int,
    since: tuple[datetime, datetime | None] | None,
) -> RepositorySnapshot:
    """Both listings read at once: in full (`since=None`, the registry's own order), or newest
    first until past the (manifest, tag) watermarks."""

    # A listing holds one read slot for all its pages: pages follow each other anyway.
    async def manifests() -> list[ManifestProperties]:
        async with governor.reads.slot():
            if since is None:
                listing = client.list_manifest_properties(repository, results_per_page=page_size)
                return [m async for m in listing]
            newest = client.list_manifest_properties(
                repository, order_by="timedesc", results_per_page=page_size
            )
            return await _until(newest, since[0], page_size)

    async def tags() -> list[TagProperties]:
        async with governor.reads.slot():
            if since is None:
                listing = client.list_tag_properties(repository, results_per_page=page_size)
                return [t async for t in listing]
            newest = client.list_tag_properties(
                repository, order_by="timedesc", results_per_page=page_size
            )
            return await _until(newest, since[1], page_size)

    listed_manifests, listed_tags = await _both(manifests(), tags())
    return RepositorySnapshot(
        name=repository,
        attributes=properties.attributes,
        manifests=tuple(listed_manifests),
        tags=tuple(listed_tags),
        manifest_count=properties.manifest_count,
        tag_count=properties.tag_count,
    )


async def _until(listing: AsyncIterator[T], mark: datetime | None, page_size: int) -> list[T]:
    """A newest-first listing's items down to the first one older than `mark`, and the rest of
    that page (it is read anyway, and what is on it is fresh). Items as old as `mark` are read
    on: another push may share the newest kept timestamp. At least the first page is read."""
    items: list[T] = []
    iterator = aiter(listing)
    try:
        past = False
        async for item in iterator:
            items.append(item)
            updated = getattr(item, "last_updated_on", None)
            past = past or mark is None or (updated is not None and updated < mark)
            if past and len(items) % page_size == 0:
                break
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
    return items


def _with_contents(
    snapshot: RepositorySnapshot, known: dict[str, ManifestContent]
) -> RepositorySnapshot:
    """The listed snapshot with the kept contents of the manifests it still holds."""
    digests = {m.digest for m in snapshot.manifests}
    return replace(snapshot, contents={d: c for d, c in known.items() if d in digests})


async def _inspect(
    client: GatherClient,
    governor: Governor,
    snapshot: RepositorySnapshot,
    cache: ManifestCache | None,
) -> RepositorySnapshot:
    """The snapshot with the raw manifest of every digest the planner must see: from the
    snapshot itself, the cache, or (only then) ACR."""
    repository = snapshot.name
    wanted = [m.digest for m in snapshot.manifests if planner.needs_inspection(m)]
    # Only what a full read would read: a kept snapshot may know the content of a manifest
    # that no longer needs inspection (tagged since), and a plan must not depend on that.
    contents = {d: snapshot.contents[d] for d in wanted if d in snapshot.contents}
    unread = [d for d in wanted if d not in contents]
    # A few inspectors share one iterator, so a repository of 100,000 untagged manifests
    # holds a few tasks rather than one per manifest; the limiter sets the actual pace.
    pending = iter(unread)

    async def inspector() -> None:
        for digest in pending:
            if cache is not None and (cached := await cache.get(digest)) is not None:
                contents[digest] = cached
                continue
            async with governor.reads.slot():
                try:
                    content = await client.get_manifest(repository, digest)
                except NotFoundError:
                    continue  # deleted since it was listed: the planner protects the unseen
                except DisallowedOperationError:
                    # readEnabled=false refuses the pull (docs/acr-facts.md section 3): this one
                    # manifest stays unread, so the planner keeps it, and the rest goes on.
                    continue
            contents[digest] = content
            if cache is not None:
                await cache.put(content)

    workers = min(governor.limits.max_concurrency, len(unread))
    await _all(*(inspector() for _ in range(workers)))
    return replace(snapshot, contents=contents)


async def _both(
    first: Coroutine[Any, Any, list[ManifestProperties]],
    second: Coroutine[Any, Any, list[TagProperties]],
) -> tuple[list[ManifestProperties], list[TagProperties]]:
    try:
        async with asyncio.TaskGroup() as group:
            a = group.create_task(first)
            b = group.create_task(second)
    except BaseExceptionGroup as failures:
        raise first_failure(failures) from None
    return a.result(), b.result()


async def _all(*coroutines: Coroutine[Any, Any, None]) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except BaseExceptionGroup as failures:
        raise first_failure(failures) from None


def unsure_competition(
    plan: RepositoryPlan, snapshot: RepositorySnapshot, fresh: Freshness, counted: bool
) -> tuple[str, datetime | None] | None:
    """Why an incremental plan may keep other images than a full listing's would, and how far
    back a newest-first read must go to read all it depends on (None: no bound); or None.

    Locks decide which tagged images compete for `keepLatest` (a locked image is protected and
    takes no place), and a lock set by someone else on an item not read this run is not seen.
    So every tagged image the plan keeps without protecting it, its tags, and its referrers
    (a protected referrer protects its subject) must have been read this run; when one was not,
    the run reads the listings newest first again, as far back as the oldest of them (their
    `lastUpdateTime` cannot have gone back), or lists in full. Locks on what the plan deletes
    need no such care: the executor re-reads them before each DELETE.
    """
    if not counted:
        return None
    protected = reasons.protected("")
    referrers: dict[str, list[str]] = {}
    for digest, content in snapshot.contents.items():
        if content.subject is not None:
            referrers.setdefault(content.subject, []).append(digest)
    manifests = {m.digest: m for m in snapshot.manifests}
    tags = {t.name: t for t in snapshot.tags}
    stale: list[ManifestProperties | TagProperties] = []
    first: str | None = None
    for kept in plan.kept:
        if not kept.tags or kept.reason.startswith(protected):
            continue
        chain, pending = [], [kept.digest]
        while pending:
            digest = pending.pop()
            chain.append(digest)
            pending.extend(r for r in referrers.get(digest, ()) if r not in chain)
        found: list[ManifestProperties | TagProperties] = [
            *(tags[t] for t in kept.tags if t not in fresh.tags and t in tags),
            *(manifests[d] for d in chain if d not in fresh.manifests and d in manifests),
        ]
        if found and first is None:
            first = kept.digest
        stale += found
    if first is None:
        return None
    times = [item.last_updated_on for item in stale]
    reach = None if None in times else min(t for t in times if t is not None)
    return f"kept image {first} and {len(stale)} item(s) it depends on were not read", reach

"""Put deleted manifests back from the ledger, with their tags, and protect them for a while.

Each manifest goes back as the exact bytes recorded, so it has its original digest. Order:
an index's children before the index, a subject before its referrers (the registry refuses an
index whose children it lacks). A tag that is free again is put back; one that now points
elsewhere is left alone and reported. ACR reclaims a deleted manifest's unreferenced layers
asynchronously (docs/acr-facts.md section 3): once they are gone the registry refuses the
manifest, and the restore reports exactly which blobs (or child manifests) are missing.

The restored digests are written to the ledger with a protection period *before* anything is
put back, so the run that the restore's own push triggers does not delete them again only for
their age (`run_cleanup` feeds them to the planner's `protect`). A ledger that cannot be
written stops the restore before it changes anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from acr_core.ledger.entries import Entry, Protection, Recorded, new_id
from acr_core.ledger.ledger import Ledger, Query
from acr_core.models import OCI_MANIFEST, ManifestProperties, TagProperties
from acr_core.registry.errors import AcrError, AcrResponseError, NotFoundError

__all__ = ["RestoreClient", "RestoreReport", "RestoreResult", "State", "restore", "select"]

DEFAULT_PROTECT_FOR = timedelta(days=7)


class RestoreClient(Protocol):
    """The part of `AcrClient` a restore uses."""

    @property
    def login_server(self) -> str: ...

    @property
    def principal(self) -> str | None: ...

    async def get_manifest_properties(
        self, repository: str, tag_or_digest: str
    ) -> ManifestProperties: ...

    async def get_tag_properties(self, repository: str, tag: str) -> TagProperties: ...

    async def set_manifest(
        self, repository: str, manifest: bytes, *, tag: str | None = None, media_type: str = ...
    ) -> str: ...

    async def blob_exists(self, repository: str, digest: str) -> bool: ...


class State(StrEnum):
    RESTORED = "restored"
    WOULD_RESTORE = "would_restore"  # --dry-run: it can be put back
    PRESENT = "present"  # the registry has it (never deleted, or restored before)
    MISSING = "missing"  # the registry no longer has blobs or child manifests it names
    UNREADABLE = "unreadable"  # the ledger has no bytes for it
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RestoreResult:
    repository: str
    digest: str
    state: State
    run: str
    tags_restored: tuple[str, ...] = ()
    tags_skipped: dict[str, str] = field(default_factory=dict)  # tag -> the digest it names now
    missing: tuple[str, ...] = ()  # blobs (and child manifests) the registry no longer has
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "state": self.state.value,
            "run": self.run,
            "tagsRestored": list(self.tags_restored),
            "tagsSkipped": dict(self.tags_skipped),
            "missing": list(self.missing),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class RestoreReport:
    registry: str
    dry_run: bool
    restore: str | None  # its id in the ledger (None: dry run, or nothing to protect)
    protect_until: datetime | None
    results: tuple[RestoreResult, ...]

    @property
    def complete(self) -> bool:
        ok = (State.RESTORED, State.WOULD_RESTORE, State.PRESENT)
        return all(r.state in ok for r in self.results)

    def to_dict(self) -> dict[str, object]:
        return {
            "registry": self.registry,
            "dryRun": self.dry_run,
            "restore": self.restore,
            "protectUntil": self.protect_until.isoformat() if self.protect_until else None,
            "results": [r.to_dict() for r in self.results],
        }


@dataclass(frozen=True, slots=True)
class _Item:
    repository: str
    recorded: Recorded
    run: str

    @property
    def key(self) -> tuple[str, str]:
        return self.repository, self.recorded.digest


async def restore(
    ledger: Ledger,
    client: RestoreClient,
    entries: Sequence[Entry],
    *,
    now: datetime,
    dry_run: bool = False,
    protect_for: timedelta = DEFAULT_PROTECT_FOR,
) -> RestoreReport:
    """Put back what `entries` deleted (and the referrers that went with it), in order."""
    items = _ordered(_items(entries, client.login_server))
    until = now + protect_for
    restore_id = None
    if not dry_run and items:
        restore_id = new_id(now)
        protections = [Protection(i.repository, i.recorded.digest, until) for i in items]
        await ledger.write_restore(
            restore_id, client.principal, client.login_server, now, protections
        )
    results: list[RestoreResult] = []
    planned: set[tuple[str, str]] = set()  # put back (or, dry, would be) by this restore
    for item in items:
        result = await _restore_one(client, item, planned, dry_run)
        if result.state in (State.RESTORED, State.WOULD_RESTORE, State.PRESENT):
            planned.add(item.key)
        results.append(result)
    return RestoreReport(
        registry=client.login_server,
        dry_run=dry_run,
        restore=restore_id,
        protect_until=until if items else None,
        results=tuple(results),
    )


async def select(ledger: Ledger, query: Query) -> list[Entry]:
    """The deletions `query` names, with the deletions of the same runs that an index among
    them needs back first (its children, which the run deleted as entries of their own)."""
    chosen = [e for e in await ledger.entries(query) if e.may_be_deleted]
    runs = {e.info.run for e in chosen}
    others = [
        e
        for run in sorted(runs)
        for e in await ledger.entries(Query(run=run))
        if e.may_be_deleted and e not in chosen
    ]
    wanted = {(e.repository, d) for e in chosen for d in _references(_raw(e))[0]}
    while True:
        more = [e for e in others if (e.repository, e.digest) in wanted and e not in chosen]
        if not more:
            return chosen
        chosen += more
        wanted |= {(e.repository, d) for e in more for d in _references(_raw(e))[0]}


def _raw(entry: Entry) -> bytes | None:
    return entry.manifest.raw if entry.manifest is not None else None


def _items(entries: Sequence[Entry], registry: str) -> list[_Item]:
    """Each manifest the entries deleted in `registry`, once (the latest record wins)."""
    found: dict[tuple[str, str], _Item] = {}
    for entry in entries:
        if not entry.may_be_deleted or entry.info.dry_run or entry.info.registry != registry:
            continue
        own = entry.manifest or Recorded(entry.digest, entry.media_type, None, entry.tags)
        for recorded in (own, *entry.cascades):
            item = _Item(entry.repository, recorded, entry.info.run)
            found[item.key] = item
    return list(found.values())


def _references(raw: bytes | None) -> tuple[list[str], list[str]]:
    """The manifests (children, subject) and the blobs (config, layers) a manifest names."""
    try:
        document = json.loads(raw) if raw is not None else {}
    except ValueError:
        return [], []
    if not isinstance(document, dict):
        return [], []

    def digests(items: object) -> list[str]:
        listed = items if isinstance(items, list) else []
        return [str(d["digest"]) for d in listed if isinstance(d, dict) and "digest" in d]

    subject = document.get("subject")
    manifests = digests(document.get("manifests")) + digests([subject] if subject else [])
    config = document.get("config")
    blobs = digests([config] if config else []) + digests(document.get("layers"))
    return manifests, blobs + digests(document.get("blobs"))


def _ordered(items: list[_Item]) -> list[_Item]:
    """Children before their index and subjects before their referrers (depth first)."""
    by_key = {item.key: item for item in items}
    done: set[tuple[str, str]] = set()
    order: list[_Item] = []

    def visit(item: _Item, path: frozenset[tuple[str, str]]) -> None:
        if item.key in done or item.key in path:
            return
        for digest in _references(item.recorded.raw)[0]:
            dependency = by_key.get((item.repository, digest))
            if dependency is not None:
                visit(dependency, path | {item.key})
        done.add(item.key)
        order.append(item)

    for item in sorted(items, key=lambda i: i.key):
        visit(item, frozenset())
    return order


async def _restore_one(
    client: RestoreClient, item: _Item, planned: set[tuple[str, str]], dry_run: bool
) -> RestoreResult:
    repository, recorded = item.key[0], item.recorded
    base = RestoreResult(repository, recorded.digest, State.FAILED, item.run)
    try:
        if await _present(client, repository, recorded.digest):
            state = State.PRESENT
        elif recorded.raw is None:
            detail = "the ledger has no bytes for it: it could not be read when it was deleted"
            return _with(base, State.UNREADABLE, detail=detail)
        elif dry_run:
            missing = await _missing(client, item, planned)
            if missing:
                return _with(base, State.MISSING, missing=missing, detail=_lacks(missing))
            state = State.WOULD_RESTORE
        else:
            state = await _put(client, item)
            if state is State.MISSING:
                missing = await _missing(client, item, planned)
                return _with(base, State.MISSING, missing=missing, detail=_lacks(missing))
        restored: tuple[str, ...] = ()
        skipped: dict[str, str] = {}
        if recorded.raw is not None:  # a tag is put back with the manifest's own bytes
            restored, skipped = await _tags(client, item, dry_run)
    except AcrError as exc:
        return _with(base, State.FAILED, detail=str(exc))
    return RestoreResult(repository, recorded.digest, state, item.run, restored, skipped, detail="")


async def _put(client: RestoreClient, item: _Item) -> State:
    """PUT it by digest: RESTORED, or MISSING when the registry lacks something it names."""
    assert item.recorded.raw is not None
    try:
        await client.set_manifest(
            item.repository,
            item.recorded.raw,
            media_type=item.recorded.media_type or OCI_MANIFEST,
        )
    except AcrResponseError as exc:
        # ACR and the distribution spec answer 400 MANIFEST_BLOB_UNKNOWN for a missing blob
        # (and ACR for a missing child manifest as well).
        if exc.status == 400 and exc.code in ("MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"):
            return State.MISSING
        raise
    return State.RESTORED


async def _tags(
    client: RestoreClient, item: _Item, dry_run: bool
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Tags put back (or, dry, free to be), and tags left alone with the digest they name now."""
    restored: list[str] = []
    skipped: dict[str, str] = {}
    for tag in item.recorded.tags:
        try:
            current = (await client.get_tag_properties(item.repository, tag)).digest
        except NotFoundError:
            current = None
        if current is not None and current != item.recorded.digest:
            skipped[tag] = current
            continue
        if current is None and not dry_run:
            assert item.recorded.raw is not None
            await client.set_manifest(
                item.repository,
                item.recorded.raw,
                tag=tag,
                media_type=item.recorded.media_type or OCI_MANIFEST,
            )
        restored.append(tag)
    return tuple(restored), skipped


async def _missing(
    client: RestoreClient, item: _Item, planned: set[tuple[str, str]]
) -> tuple[str, ...]:
    """What the registry lacks for this manifest: child manifests, then blobs."""
    manifests, blobs = _references(item.recorded.raw)
    subject = _subject(item.recorded.raw)
    missing = [
        digest
        for digest in manifests
        if digest != subject  # a referrer may go back before its subject (OCI 1.1)
        and (item.repository, digest) not in planned
        and not await _present(client, item.repository, digest)
    ]
    missing += [b for b in dict.fromkeys(blobs) if not await client.blob_exists(item.repository, b)]
    return tuple(missing)


def _subject(raw: bytes | None) -> str | None:
    try:
        subject = json.loads(raw).get("subject") if raw is not None else None
    except (ValueError, AttributeError):
        return None
    return str(subject["digest"]) if isinstance(subject, dict) and "digest" in subject else None


async def _present(client: RestoreClient, repository: str, digest: str) -> bool:
    try:
        await client.get_manifest_properties(repository, digest)
    except NotFoundError:
        return False
    return True


def _lacks(missing: tuple[str, ...]) -> str:
    if not missing:
        return "the registry refused it for a blob it no longer has"
    return "the registry no longer has " + ", ".join(missing)


def _with(
    base: RestoreResult, state: State, *, missing: tuple[str, ...] = (), detail: str = ""
) -> RestoreResult:
    return RestoreResult(
        base.repository, base.digest, state, base.run, missing=missing, detail=detail
    )

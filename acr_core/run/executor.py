"""Apply a plan to the registry: deletes by digest, tag locks, at the pace ACR allows.

Correctness before speed. ACR has no conditional delete, so immediately before each DELETE the
executor re-reads, in parallel, everything that would have kept the manifest: the repository's
properties (its locks and manifest count), the manifest's properties (tags, locks,
`lastUpdateTime`), each tag the plan judged it by (lock, target), each referrer ACR would delete
with it (its locks: a manifest's PATCH moves no timestamp), and the repository's newest manifest
and newest tag (`orderby=timedesc`, one item). The manifest is skipped if it changed
(someone may have just tagged it `prod`). The whole repository stops deleting, this deletion and
every later one skipped as changed, if its locks changed or if anything in it is newer than the
snapshot or it holds more manifests than the snapshot less this run's deletions: a push, a
re-tag, a new referrer (a signature is a manifest) and a new index all do that, and a new
referrer or index may protect what the plan deletes. The next run re-reads and re-plans it. A
`stop` callable (the coalescer's, when a push for the repository arrives) stops its DELETEs the
same way. An index goes before its children (`Action.after`), so a failure never leaves a kept
index pointing at deleted children.

The window that remains: a change that reaches ACR after the re-check reads were answered and
before the DELETE reaches it, about one round trip (longer if the transport retries the DELETE),
is not seen. Locks are the exception: ACR itself refuses to delete a locked manifest, or in a
repository with `writeEnabled=false` (docs/acr-facts.md section 3). Not seen at all:
a tag removed from another manifest (it makes nothing newer), a manifest pushed hidden
(`listEnabled=false`) while this run's own DELETEs are in flight (they mask it in the count), and
a lock set on a tag of a referrer deleted with the manifest.

Cost per deletion: 1 + t + r reads of its own (t = its planned tags, r = the referrers deleted
with it), sent together with the repository-wide reads (its properties, newest manifest,
newest tag), then the DELETE. The repository-wide reads are shared: every deletion of the
repository that asks for them before they are sent waits for the same three (`_SharedProbes`),
so each deletion still sees reads sent after it asked; one such read is in flight per
repository at a time, and the deletions asking meanwhile share the next. Unshared a deletion
costs 4 + t + r reads and its DELETE; shared, about 2 + t + r requests.
A repository whose manifests and tags each fit in one listing page (1,000) is re-checked from
its listings instead whenever enough deletions wait for the shared read (one more per
`LISTING_ITEMS_PER_READ` items listed): it lists the repository's manifests and tags (newest
first, one page each), which show every deletion's manifest, tags and referrers as fresh as
reads of their own, so a deletion costs its DELETE and its part of three shared requests; what
the listings do not show (hidden, gone) is read on its own, and so is everything when too few
deletions waited (paced deletions come one at a time, and decoding a large listing for each
would cost more than their reads).
Measured: 197 deletions with one tag each, 30 ms per request, 32 in flight: 1,182 requests
unshared, about 615 shared, 249 from the listings; the fleet of 8 workers over 200
repositories of 10 images: 9,791 requests with reads of their own, 7,000 from the listings.
At the 2026 per-identity budgets (docs/acr-facts.md section 4.1) 500 deletions a minute on
Basic/Standard cost at most 2,500 reads a minute with one tag each, within the 5,000
DataplaneRead; on Premium (2,000 deletes, 10,000 reads) unshared reads would bound deletions to
about 1,900 a minute, but reads waiting for their tokens are shared, so the DataplaneDelete
pace binds.
No ListReferrers request is made (its budget is 250 a minute): new referrers show up as the
newest manifest.

Pace: the run's `Governor` (acr_core.run.limiter). Each request takes a token from its
category's budget (DataplaneRead for the re-check reads, DataplaneDelete for the DELETE,
DataplaneWrite for a lock) and then one of `max_concurrency` slots, shared by all repositories
and halved by a 429. A deletion takes its DELETE's token before its re-check, so that waiting
for the budget never comes between the re-check and the DELETE; a deletion the re-check skips
spends its token unused. Up to `max_concurrency` actions are in progress at once.

429s have one owner, the client's transport (acr_core.registry.transport): it retries each
request after its `Retry-After` and reports each 429 once to the governor, which pauses the
category that was refused for that long and slows its budget. The executor never retries: an
action whose request is still refused after those retries fails as transient, the function
fails its invocation, and the platform runs the whole run again from a fresh read.

Worst case per deletion, all of it bounded: the wait for its DELETE token (at most one
token's interval at the pace, plus any `Retry-After` pause of DataplaneDelete, which ACR counts
down to the end of its throttling period, up to about 60 s); its re-check: first the shared read
in flight for its repository, if any, then its own reads in parallel, each at most
`RetryPolicy.attempts` (6) attempts within `RetryPolicy.deadline` (120 s) plus one attempt's
30 s timeout, so about 150 s each, 2 * 150 s together (3 * 150 s re-checked from listings,
whose missing items are read afterwards); when a 429 paused deletes while those reads were
out, the pause (up to about 60 s) and the re-check again, `RECHECKS` (3) re-checks at most, so
that the DELETE is not sent into a pause and held there long after its re-check; then the
DELETE: 6 attempts, about 150 s. In all 6 * (3 * (4 + t + r) + 1) attempts (the shared reads
counted in full) and about 60 + 3 * 450 + 2 * 60 + 150 = 1,680 s. A lock is one PATCH: its
token, then 6 attempts, about 150 s. Each re-run of a failed run by the platform
(docs/operations.md, "Failure modes and fixes") starts afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, TypeVar

from acr_core.models import (
    ChangeableAttributes,
    ManifestProperties,
    RepositoryProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning.plan import Action, ActionKind, Plan
from acr_core.registry.errors import (
    AcrError,
    DisallowedOperationError,
    NotFoundError,
    PermissionDeniedError,
    is_transient,
)
from acr_core.run._tasks import first_failure
from acr_core.run.limiter import Governor

__all__ = ["ActionOutcome", "Executor", "ExecutorClient", "Outcome", "Stop"]

T = TypeVar("T")


class ExecutorClient(Protocol):
    """The part of `AcrClient` (acr_core.registry.client) the executor uses."""

    async def get_repository_properties(self, repository: str) -> RepositoryProperties: ...

    async def get_manifest_properties(
        self, repository: str, tag_or_digest: str
    ) -> ManifestProperties: ...

    async def get_tag_properties(self, repository: str, tag: str) -> TagProperties: ...

    def list_manifest_properties(
        self,
        repository: str,
        *,
        order_by: Literal["timedesc", "timeasc"] | None = ...,
        results_per_page: int = ...,
    ) -> AsyncIterator[ManifestProperties]: ...

    def list_tag_properties(
        self,
        repository: str,
        *,
        order_by: Literal["timedesc", "timeasc"] | None = ...,
        results_per_page: int = ...,
    ) -> AsyncIterator[TagProperties]: ...

    async def delete_manifest(self, repository: str, digest: str) -> bool: ...

    async def update_tag_properties(
        self,
        repository: str,
        tag: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
    ) -> TagProperties: ...


class Outcome(StrEnum):
    """What happened to one action. `planned` is a dry run's outcome (set by the report)."""

    PLANNED = "planned"
    APPLIED = "applied"
    ALREADY_GONE = "already_gone"
    SKIPPED_CHANGED = "skipped_changed"
    SKIPPED_LOCKED = "skipped_locked"
    SKIPPED_BLOCKED = "skipped_blocked"
    SKIPPED_DEPENDENCY = "skipped_dependency"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    action: Action
    outcome: Outcome
    detail: str = ""
    # A failure that retrying later may fix (throttling, 5xx, network): the function raises on
    # these so that the platform retries the run.
    transient: bool = False

    @property
    def deleted(self) -> bool:
        """The manifest is gone from the registry (by us, or already)."""
        return self.action.kind is ActionKind.DELETE_MANIFEST and self.outcome in (
            Outcome.APPLIED,
            Outcome.ALREADY_GONE,
        )


CHANGED = "changed since planned; will be re-planned next run"
REPLANNED = "the next run re-reads and re-plans the repository"
PUSHED = "a push arrived while deleting; the follow-up run re-plans"

Key = tuple[str, str]
# A repository whose manifests and tags each fit in one listing page (ACR returns at most 1,000
# items a page, docs/acr-facts.md section 1.12) may be re-checked from its listings (see
# `_probe`): a shared read lists them when enough deletions wait for it, one for a repository
# of under LISTING_ITEMS_PER_READ items (its listings cost the same three requests as the shared
# read without them) and one more for every LISTING_ITEMS_PER_READ items (decoding about that
# many items costs the client as much CPU as a request).
LISTING_PAGE = 1000
LISTING_ITEMS_PER_READ = 200
# Re-checks of one deletion at most: a re-check that a 429 pause outdated is read again after
# the pause, twice at most, then the DELETE goes (the transport waits out any further pause).
RECHECKS = 3
# Asked right before each DELETE: True means send no more DELETEs to that repository.
Stop = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class _Reads:
    """What one deletion's re-check read (None: gone, or an empty listing)."""

    repository: RepositoryProperties | None
    manifest: ManifestProperties | None
    tags: Mapping[str, TagProperties | None]
    newest_manifest: ManifestProperties | None
    newest_tag: TagProperties | None
    cascades: Mapping[str, ManifestProperties | None]  # the referrers deleted with it
    confirmed: int = 0  # this run's deletions confirmed before `repository` was read


@dataclass(frozen=True, slots=True)
class _Probe:
    """The repository-wide part of a re-check, and the deletions confirmed before it; for a
    repository re-checked from its listings, those listings' first pages by digest and name."""

    repository: RepositoryProperties | None
    newest_manifest: ManifestProperties | None
    newest_tag: TagProperties | None
    confirmed: int
    manifests: Mapping[str, ManifestProperties] | None = None
    tags: Mapping[str, TagProperties] | None = None


class _SharedProbes:
    """One repository-wide re-check serves every deletion that asked for it before it was
    sent: such a read is as fresh for each of them as one of its own, since it left after
    each asked. A deletion that asks once it has been sent waits for the next one, which is
    sent when the one in flight is answered: one at a time per repository, so that the
    deletions asking meanwhile share the next.

    Deletions of one repository re-checked together then cost three reads between them, not
    three each; what each one reads of its own manifest, tags and referrers is unchanged.
    """

    def __init__(
        self, probe: Callable[[str, Callable[[], None], Callable[[], int]], Awaitable[_Probe]]
    ) -> None:
        self._probe = probe
        self._open: dict[str, asyncio.Future[_Probe]] = {}
        self._waiting: dict[asyncio.Future[_Probe], int] = {}  # deletions waiting for each
        self._flying: dict[str, asyncio.Task[None]] = {}  # the latest probe of each repository
        self._tasks: set[asyncio.Task[None]] = set()

    async def read(self, repository: str) -> _Probe:
        future = self._open.get(repository)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._open[repository] = future
            self._waiting[future] = 0
            task = asyncio.ensure_future(
                self._run(repository, future, self._flying.get(repository))
            )
            self._flying[repository] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._waiting[future] += 1
        # Shielded: one deletion cancelled must not cancel the read the others wait for.
        return await asyncio.shield(future)

    async def _run(
        self, repository: str, future: asyncio.Future[_Probe], before: asyncio.Task[None] | None
    ) -> None:
        def sent() -> None:
            if self._open.get(repository) is future:
                del self._open[repository]

        try:
            if before is not None:
                await asyncio.wait([before])  # how it ended is for its own deletions
            future.set_result(
                await self._probe(repository, sent, lambda: self._waiting.get(future, 0))
            )
        except Exception as exc:  # every deletion waiting for it fails with it
            future.set_exception(exc)
        finally:
            sent()
            self._waiting.pop(future, None)
            if self._flying.get(repository) is asyncio.current_task():
                del self._flying[repository]
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning if none waits

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def _lock_bits(attributes: ChangeableAttributes) -> tuple[bool, bool]:
    return attributes.delete_enabled, attributes.write_enabled


class Executor:
    """Applies one plan. Create one per run; `apply` may be called once."""

    def __init__(
        self,
        client: ExecutorClient,
        governor: Governor,
        snapshots: Mapping[str, RepositorySnapshot],
        *,
        on_done: Callable[[ActionOutcome], None] | None = None,
        stop: Stop | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock
        # repository -> (when its first action started, when its last action ended)
        self._spans: dict[str, tuple[float, float]] = {}
        self._governor = governor
        self._manifests: dict[Key, ManifestProperties] = {
            (s.name, m.digest): m for s in snapshots.values() for m in s.manifests
        }
        self._tags: dict[Key, TagProperties] = {
            (s.name, t.name): t for s in snapshots.values() for t in s.tags
        }
        self._snapshots = snapshots
        self._stop = stop
        self._changed: dict[str, str] = {}  # repository -> what changed in it during the run
        self._confirmed: dict[str, int] = {}  # repository -> manifests this run deleted
        self._locking: set[Key] = set()  # tags this run locks
        self._probes = _SharedProbes(self._probe)
        self._on_done = on_done
        self._denied: dict[tuple[str, ActionKind], str] = {}
        # Repositories that may be re-checked from their listings, and the items they list.
        self._listed = _listable(snapshots)

    async def apply(self, plan: Plan) -> tuple[ActionOutcome, ...]:
        """Apply every action, dependencies first; returns one outcome per action, in order."""
        workers = min(self._governor.limits.max_concurrency, max(1, len(plan.actions)))
        schedule = _Schedule(plan, workers, self._on_done)

        async def worker() -> None:
            while (index := await schedule.next()) is not None:
                action = schedule.actions[index]
                started = self._clock()
                outcome = await self._run(action)
                first, _ = self._spans.get(action.repository, (started, started))
                self._spans[action.repository] = (min(first, started), self._clock())
                schedule.finish(index, outcome)

        if not schedule.complete:
            tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                self._probes.cancel()
        return schedule.outcomes()

    def apply_seconds(self) -> dict[str, float]:
        """Per repository, from its first action's start to its last action's end (actions of
        several repositories run interleaved, so the spans overlap)."""
        return {repository: end - start for repository, (start, end) in self._spans.items()}

    async def _run(self, action: Action) -> ActionOutcome:
        # A permission the identity lacks in a repository is lacking for every action of the
        # same kind there: fail those without sending a request each.
        denied = self._denied.get((action.repository, action.kind))
        if denied is not None:
            return ActionOutcome(action, Outcome.FAILED, f"not attempted: {denied}")
        try:
            if action.kind is ActionKind.LOCK_TAG:
                return await self._lock(action)
            return await self._delete(action)
        except PermissionDeniedError as exc:
            self._denied[(action.repository, action.kind)] = str(exc)
            return ActionOutcome(action, Outcome.FAILED, str(exc))
        except AcrError as exc:
            # A 429 here has outlived the transport's retries: transient, like a 5xx.
            return ActionOutcome(action, Outcome.FAILED, str(exc), is_transient(exc))

    async def _lock(self, action: Action) -> ActionOutcome:
        tag = action.tags[0]
        self._locking.add((action.repository, tag))
        try:
            async with self._governor.writes.slot():
                await self._client.update_tag_properties(
                    action.repository, tag, can_write=False, can_delete=False
                )
        except NotFoundError:
            return ActionOutcome(action, Outcome.SKIPPED_CHANGED, f"tag {tag} is gone; {CHANGED}")
        return ActionOutcome(action, Outcome.APPLIED)

    async def _delete(self, action: Action) -> ActionOutcome:
        repository, digest = action.repository, action.digest
        if (halted := self._halted(repository)) is not None:
            return ActionOutcome(action, Outcome.SKIPPED_CHANGED, halted)
        # The DELETE's token first: waiting for the budget must not come between the re-check
        # and the DELETE it clears.
        budget = self._governor.deletes.budget
        await self._governor.deletes.take()
        for attempt in range(1, RECHECKS + 1):
            verdict = await self._cleared(action)
            if verdict is not None:
                return verdict
            if not budget.paused or attempt == RECHECKS:
                break
            # A 429 paused deletes while the reads were out: sent now, the DELETE would wait
            # out the pause in the transport and reach ACR long after its re-check. Wait here
            # instead, and read again.
            await budget.wait_pause()
        try:
            async with self._governor.deletes.slot(taken=True):
                deleted = await self._client.delete_manifest(repository, digest)
        except DisallowedOperationError as exc:
            return ActionOutcome(action, Outcome.SKIPPED_LOCKED, f"locked: {exc}")
        if not deleted:
            return ActionOutcome(action, Outcome.ALREADY_GONE, "already deleted")
        # ACR deletes the manifest's referrers with it (docs/acr-facts.md section 3).
        self._confirmed[repository] = self._confirmed.get(repository, 0) + 1 + len(action.cascades)
        return ActionOutcome(action, Outcome.APPLIED)

    async def _cleared(self, action: Action) -> ActionOutcome | None:
        """Re-check one deletion: None when nothing that would keep the manifest changed, else
        the outcome that skips it."""
        repository, digest = action.repository, action.digest
        if (halted := self._halted(repository)) is not None:
            return ActionOutcome(action, Outcome.SKIPPED_CHANGED, halted)
        reads = await self._recheck(action)
        if reads.repository is None or reads.manifest is None:
            return ActionOutcome(action, Outcome.ALREADY_GONE, "already deleted")
        moved = self._repository_moved(repository, reads, reads.confirmed)
        if moved is not None:
            self._changed.setdefault(repository, moved)
        change = _manifest_changed(
            self._manifests.get((repository, digest)), action.tags, reads.manifest, reads
        ) or self._referrer_locked(repository, reads)
        if change is not None:
            return ActionOutcome(action, Outcome.SKIPPED_CHANGED, f"{change}; {CHANGED}")
        if moved is not None:
            detail = f"the repository changed since the snapshot: {moved}; {REPLANNED}"
            return ActionOutcome(action, Outcome.SKIPPED_CHANGED, detail)
        # Another deletion's re-check, or a push, may have stopped the repository while
        # this one's reads were out.
        if (halted := self._halted(repository)) is not None:
            return ActionOutcome(action, Outcome.SKIPPED_CHANGED, halted)
        return None

    def _halted(self, repository: str) -> str | None:
        """Why no more DELETEs go to `repository` in this run, or None."""
        if self._stop is not None and self._stop(repository):
            return PUSHED
        reason = self._changed.get(repository)
        if reason is None:
            return None
        return f"not attempted: the repository changed during this run ({reason}); {REPLANNED}"

    async def _recheck(self, action: Action) -> _Reads:
        """Everything that would keep the manifest, read in parallel just before its DELETE:
        the manifest (tags, locks, lastUpdateTime), each planned tag (lock, target), each
        referrer deleted with it, and the repository-wide reads (`_probe`)."""
        repository, digest, client = action.repository, action.digest, self._client
        if repository in self._listed:
            return await self._from_listings(action, await self._probes.read(repository))
        try:
            async with asyncio.TaskGroup() as group:
                probe = group.create_task(self._probes.read(repository))
                manifest = group.create_task(
                    self._read(lambda: client.get_manifest_properties(repository, digest))
                )
                tags = {
                    tag: group.create_task(self._read_tag(repository, tag)) for tag in action.tags
                }
                cascades = {
                    referrer: group.create_task(self._read_manifest(repository, referrer))
                    for referrer in action.cascades
                }
        except BaseExceptionGroup as failures:
            raise first_failure(failures) from None
        return _reads(
            probe.result(),
            manifest.result(),
            {tag: task.result() for tag, task in tags.items()},
            {referrer: task.result() for referrer, task in cascades.items()},
        )

    async def _from_listings(self, action: Action, shared: _Probe) -> _Reads:
        """A deletion's re-check from its repository's listings, which were sent after it
        asked: as fresh as reads of its own. What they do not show is read on its own, since
        missing from a listing is not the same as gone: hidden (`listEnabled=false`, docs/
        acr-facts.md section 3), deleted, or past the first page; without listings (too few
        deletions shared them) that is everything."""
        repository = action.repository
        listed_manifests, listed_tags = shared.manifests or {}, shared.tags or {}
        wanted = (action.digest, *action.cascades)
        manifests: dict[str, ManifestProperties | None] = {
            d: listed_manifests[d] for d in wanted if d in listed_manifests
        }
        tags: dict[str, TagProperties | None] = {
            t: listed_tags[t] for t in action.tags if t in listed_tags
        }
        missing = [d for d in wanted if d not in manifests]
        untold = [t for t in action.tags if t not in tags]
        if missing or untold:
            try:
                async with asyncio.TaskGroup() as group:
                    read_manifests = {
                        d: group.create_task(self._read_manifest(repository, d)) for d in missing
                    }
                    read_tags = {
                        t: group.create_task(self._read_tag(repository, t)) for t in untold
                    }
            except BaseExceptionGroup as failures:
                raise first_failure(failures) from None
            manifests.update({d: task.result() for d, task in read_manifests.items()})
            tags.update({t: task.result() for t, task in read_tags.items()})
        cascades = {referrer: manifests[referrer] for referrer in action.cascades}
        return _reads(shared, manifests[action.digest], tags, cascades)

    async def _probe(
        self, repository: str, sent: Callable[[], None], waiting: Callable[[], int]
    ) -> _Probe:
        """The repository's properties (locks, manifest count), its newest manifest and its
        newest tag, read in parallel; `sent()` is called as the first of them is sent.

        For a repository re-checked from its listings, when enough deletions wait for it, the
        first pages of its manifest and tag listings newest first, rather than their first
        items: the same three requests instead of 1 + t + r more per deletion, which is what
        makes a large cleanup of a small repository cost little more than its DELETEs. Fewer
        deletions waiting (paced deletions arrive one by one) read their own items afterwards.
        """
        client = self._client
        confirmed = 0
        size = LISTING_PAGE if self._worth_listing(repository, waiting()) else 1

        async def properties() -> RepositoryProperties | None:
            nonlocal confirmed
            async with self._governor.reads.slot():
                sent()
                # Deletions confirmed before this read is sent are in the count it sees.
                confirmed = self._confirmed.get(repository, 0)
                try:
                    return await client.get_repository_properties(repository)
                except NotFoundError:
                    return None

        async def newest(listing: Callable[[], AsyncIterator[T]]) -> list[T]:
            async with self._governor.reads.slot():
                sent()
                try:
                    return await _first_page(listing(), size)
                except NotFoundError:
                    return []

        try:
            async with asyncio.TaskGroup() as group:
                repo = group.create_task(properties())
                newest_manifest = group.create_task(
                    newest(
                        lambda: client.list_manifest_properties(
                            repository, order_by="timedesc", results_per_page=size
                        )
                    )
                )
                newest_tag = group.create_task(
                    newest(
                        lambda: client.list_tag_properties(
                            repository, order_by="timedesc", results_per_page=size
                        )
                    )
                )
        except BaseExceptionGroup as failures:
            raise first_failure(failures) from None
        return _probed(
            repo.result(), newest_manifest.result(), newest_tag.result(), confirmed, size
        )

    def _worth_listing(self, repository: str, waiting: int) -> bool:
        items = self._listed.get(repository)
        return items is not None and waiting >= 1 + items // LISTING_ITEMS_PER_READ

    async def _read_manifest(self, repository: str, digest: str) -> ManifestProperties | None:
        return await self._read(lambda: self._client.get_manifest_properties(repository, digest))

    async def _read_tag(self, repository: str, tag: str) -> TagProperties | None:
        return await self._read(lambda: self._client.get_tag_properties(repository, tag))

    async def _read(self, read: Callable[[], Awaitable[T]]) -> T | None:
        """One re-check read in a read slot; None when what it reads is gone."""
        async with self._governor.reads.slot():
            try:
                return await read()
            except NotFoundError:
                return None

    def _repository_moved(self, repository: str, reads: _Reads, confirmed: int) -> str | None:
        """What changed in the repository since the snapshot that a re-plan must see, or None.

        Every push, re-tag, new referrer or new index makes a manifest or a tag newer than the
        snapshot's (lastUpdateTime, docs/acr-facts.md sections 1.4, 1.11), and a push adds to the
        manifest count, which this run's own deletions only lower.
        """
        snapshot, now = self._snapshots.get(repository), reads.repository
        if snapshot is None or now is None:
            return "the repository is not in the snapshot"
        if _lock_bits(now.attributes) != _lock_bits(snapshot.attributes):
            return "repository locks changed"
        newest = reads.newest_manifest
        if newest is not None:
            before = self._manifests.get((repository, newest.digest))
            if before is None or before.last_updated_on != newest.last_updated_on:
                return f"manifest {newest.digest} was pushed or updated at {_when(newest)}"
        tag = reads.newest_tag
        if tag is not None and self._tag_moved(repository, tag):
            return f"tag {tag.name} was pushed or moved (to {tag.digest}) at {_when(tag)}"
        if snapshot.manifest_count is not None:
            # The listing may have caught a push the count, read just before it, did not.
            counted = max(snapshot.manifest_count, len(snapshot.manifests))
            if now.manifest_count > counted - confirmed:
                return (
                    f"it holds {now.manifest_count} manifests, more than the snapshot's "
                    f"{counted} less the {confirmed} this run deleted"
                )
        return None

    def _referrer_locked(self, repository: str, reads: _Reads) -> str | None:
        """A referrer that ACR would delete with the manifest, locked since the snapshot: a
        manifest's PATCH does not move its lastUpdateTime (docs/acr-facts.md section 1.7), so
        only reading it shows the lock."""
        for referrer, now in reads.cascades.items():
            before = self._manifests.get((repository, referrer))
            if now is None or before is None:
                continue
            if _lock_bits(now.attributes) != _lock_bits(before.attributes):
                return f"referrer {referrer}, deleted with it, was locked"
        return None

    def _tag_moved(self, repository: str, tag: TagProperties) -> bool:
        before = self._tags.get((repository, tag.name))
        if before is None or before.digest != tag.digest:
            return True
        # Whether a tag's PATCH moves its lastUpdateTime is not documented (a manifest's
        # does not, docs/acr-facts.md section 1.7): this run's own locks do not count as a change.
        return before.last_updated_on != tag.last_updated_on and (
            (repository, tag.name) not in self._locking
        )


class _Schedule:
    """Which actions may start: a deletion waits for every deletion in its `after` to succeed,
    and is skipped when one of them does not. Skips decided up front (blocked repositories,
    dependencies the plan does not delete, cycles) are recorded before anything runs."""

    def __init__(
        self, plan: Plan, workers: int, on_done: Callable[[ActionOutcome], None] | None
    ) -> None:
        self.actions = plan.actions
        self._workers = workers
        self._on_done = on_done
        self._results: dict[int, ActionOutcome] = {}
        self._dependents: dict[int, list[int]] = {}
        self._waiting: dict[int, int] = {}
        self._ready: asyncio.Queue[int | None] = asyncio.Queue()
        blocked = {r.repository: r.blocked for r in plan.repositories if r.blocked}
        deleting: dict[Key, int] = {
            (a.repository, a.digest): i
            for i, a in enumerate(self.actions)
            if a.kind is ActionKind.DELETE_MANIFEST and a.repository not in blocked
        }
        for i, action in enumerate(self.actions):
            if action.kind is ActionKind.DELETE_MANIFEST and action.repository in blocked:
                reason = blocked[action.repository] or "blocked"
                self.finish(i, ActionOutcome(action, Outcome.SKIPPED_BLOCKED, reason))
            else:
                self._wait(i, [deleting.get((action.repository, d)) for d in action.after])
        for i, count in self._waiting.items():
            if count == 0 and i not in self._results:
                self._ready.put_nowait(i)
        pending = {i: n for i, n in self._waiting.items() if i not in self._results}
        for i in _in_cycles(pending, self._dependents):
            if i not in self._results:  # an earlier member's failure may have skipped it already
                failed = ActionOutcome(
                    self.actions[i], Outcome.FAILED, "the plan orders it in a cycle"
                )
                self.finish(i, failed)

    def _wait(self, index: int, parents: list[int | None]) -> None:
        action = self.actions[index]
        for digest, parent in zip(action.after, parents, strict=True):
            if parent is None or (parent in self._results and not self._results[parent].deleted):
                self.finish(index, _not_after(action, digest, "will not"))
                return
        self._waiting[index] = len(parents)
        for parent in parents:
            assert parent is not None
            self._dependents.setdefault(parent, []).append(index)

    @property
    def complete(self) -> bool:
        return len(self._results) == len(self.actions)

    async def next(self) -> int | None:
        """The next action to run, or None when there is nothing left for this worker."""
        return await self._ready.get()

    def finish(self, index: int, outcome: ActionOutcome) -> None:
        self._results[index] = outcome
        if self._on_done is not None:
            self._on_done(outcome)
        for child in self._dependents.pop(index, []):
            if child in self._results:
                continue
            if outcome.deleted:
                self._waiting[child] -= 1
                if self._waiting[child] == 0:
                    self._ready.put_nowait(child)
            else:
                self.finish(
                    child, _not_after(self.actions[child], outcome.action.digest, "did not")
                )
        if self.complete:
            for _ in range(self._workers):
                self._ready.put_nowait(None)

    def outcomes(self) -> tuple[ActionOutcome, ...]:
        return tuple(self._results[i] for i in range(len(self.actions)))


def _not_after(action: Action, digest: str, verb: str) -> ActionOutcome:
    return ActionOutcome(
        action,
        Outcome.SKIPPED_DEPENDENCY,
        f"must follow the deletion of {digest}, which {verb} happen",
    )


def _manifest_changed(
    before: ManifestProperties | None,
    planned_tags: Sequence[str],
    now: ManifestProperties,
    reads: _Reads,
) -> str | None:
    """Why the manifest no longer matches what was planned, or None.

    `planned_tags` are the tags the planner judged it by: the manifest listing's, plus any
    the tag listing showed on it (the two listings are read at slightly different times).
    """
    if before is None:
        return "not in the snapshot"
    if set(now.tags) != set(planned_tags):
        return f"tags changed from {_tags(planned_tags)} to {_tags(now.tags)}"
    if _lock_bits(now.attributes) != _lock_bits(before.attributes):
        return "manifest locks changed"
    if now.last_updated_on != before.last_updated_on:
        return "lastUpdateTime changed"
    for tag in sorted(planned_tags):
        properties = reads.tags.get(tag)
        if properties is None:
            return f"tag {tag} was removed"
        if properties.digest != now.digest:
            return f"tag {tag} moved to {properties.digest}"
        if not properties.attributes.deletable:
            return f"tag {tag} was locked"
    return None


async def _first_page(listing: AsyncIterator[T], size: int) -> list[T]:
    """A listing's first `size` items (one page of that size); later pages are never asked for."""
    iterator = aiter(listing)
    items: list[T] = []
    try:
        async for item in iterator:
            items.append(item)
            if len(items) >= size:
                break
        return items
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _reads(
    shared: _Probe,
    manifest: ManifestProperties | None,
    tags: Mapping[str, TagProperties | None],
    cascades: Mapping[str, ManifestProperties | None],
) -> _Reads:
    return _Reads(
        repository=shared.repository,
        manifest=manifest,
        tags=tags,
        newest_manifest=shared.newest_manifest,
        newest_tag=shared.newest_tag,
        cascades=cascades,
        confirmed=shared.confirmed,
    )


def _probed(
    repository: RepositoryProperties | None,
    manifests: list[ManifestProperties],
    tags: list[TagProperties],
    confirmed: int,
    size: int,
) -> _Probe:
    """A shared read's answer from its listings' first pages, newest first (of `size` items)."""
    return _Probe(
        repository,
        manifests[0] if manifests else None,
        tags[0] if tags else None,
        confirmed,
        {m.digest: m for m in manifests} if size > 1 else None,
        {t.name: t for t in tags} if size > 1 else None,
    )


def _listable(snapshots: Mapping[str, RepositorySnapshot]) -> dict[str, int]:
    """Each repository whose manifest and tag listings each fit in one page, with the number
    of items they hold together."""
    return {
        name: len(snapshot.manifests) + len(snapshot.tags)
        for name, snapshot in snapshots.items()
        if len(snapshot.manifests) <= LISTING_PAGE and len(snapshot.tags) <= LISTING_PAGE
    }


def _when(item: ManifestProperties | TagProperties) -> str:
    when = item.last_updated_on
    return when.isoformat() if when is not None else "an unknown time"


def _tags(tags: Sequence[str]) -> str:
    return "[" + ", ".join(sorted(tags)) + "]" if tags else "untagged"


def _in_cycles(waiting: Mapping[int, int], dependents: Mapping[int, list[int]]) -> list[int]:
    """Actions that can never become ready because their `after` chain loops back on itself."""
    remaining = dict(waiting)
    ready = [i for i, n in remaining.items() if n == 0]
    while ready:
        index = ready.pop()
        for child in dependents.get(index, []):
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    return sorted(i for i, n in remaining.items() if n > 0)

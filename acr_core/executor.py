"""Apply a plan to the registry: deletes by digest, tag locks, at the pace ACR allows.

Correctness before speed. Every manifest is re-read immediately before it is deleted, and one
whose tags, locks or `lastUpdateTime` moved since the snapshot is skipped: someone may have just
tagged it `prod`, and the next run plans it again from fresh state. An index goes before its
children (`Action.after`), so a failure never leaves a kept index pointing at deleted children.

Speed comes from an AIMD limiter shared by every repository of a run: concurrency grows while
requests succeed and halves when ACR answers 429, and new requests wait out `Retry-After`. Token
buckets can cap it below the SKU's published budget (acr-facts.md section 4: WriteOps per minute
Basic 100, Standard 500, Premium 2000), so a large sweep runs just under the write limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from acr_core.errors import (
    AcrError,
    DisallowedOperationError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
)
from acr_core.models import (
    ChangeableAttributes,
    ManifestProperties,
    RepositoryProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.plan import Action, ActionKind, Plan

# acr purge caps parallel deletes at 32, "the max number of parallel delete requests recommended
# by ACR server" (Azure/acr-cli cmd/acr/purge.go, acr-facts.md section 4).
DEFAULT_MAX_CONCURRENCY = 32
# How often one operation may meet a 429 that outlived the client's own retries before it is
# reported as failed; each time the limiter halves and waits first.
THROTTLE_ROUNDS = 6


class ExecutorClient(Protocol):
    """The part of `acr_core.client.AcrClient` the executor uses (fakes implement the same)."""

    async def get_repository_properties(self, repository: str) -> RepositoryProperties: ...

    async def get_manifest_properties(
        self, repository: str, tag_or_digest: str
    ) -> ManifestProperties: ...

    async def get_tag_properties(self, repository: str, tag: str) -> TagProperties: ...

    async def delete_manifest(self, repository: str, digest: str) -> bool: ...

    async def update_tag_properties(
        self,
        repository: str,
        tag: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
    ) -> TagProperties: ...


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    """Caps on how hard a run may push the registry; `None` rates mean "adapt to 429s only".

    `writes_per_minute` is the SKU's WriteOps budget or less (deletes and lock changes);
    `reads_per_minute` its ReadOps budget (listings, property reads, manifest reads).
    """

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    writes_per_minute: float | None = None
    reads_per_minute: float | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        for name in ("writes_per_minute", "reads_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or unset, got {value}")


class TokenBucket:
    """`rate_per_minute` tokens a minute, with at most one second's worth in a burst.

    ACR throttles bursts "even when the average rate is within registry limits"
    (acr-facts.md section 4), hence the small burst.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = rate_per_minute / 60.0
        self._capacity = max(1.0, self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await self._sleep((1.0 - self._tokens) / self._rate)


class AdaptiveLimiter:
    """Additive-increase, multiplicative-decrease concurrency for one kind of request.

    Starts small and grows by one per success (slow start) until the first 429, then by about
    one per round trip; a 429 halves the limit (at most once per `decrease_interval`, since a
    burst of in-flight requests is throttled together) and holds new requests back for the
    `Retry-After` the registry sent, or an exponential backoff when it sent none.
    """

    def __init__(
        self,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        rate_per_minute: float | None = None,
        *,
        initial: int = 4,
        base_backoff: float = 1.0,
        max_backoff: float = 30.0,
        decrease_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_concurrency = max_concurrency
        self._limit = float(min(initial, max_concurrency))
        self._slow_start = True
        self._in_flight = 0
        self._paused_until = 0.0
        self._last_decrease = -float("inf")
        self._backoff = base_backoff
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._decrease_interval = decrease_interval
        self._clock = clock
        self._sleep = sleep
        self._changed = asyncio.Condition()
        self._bucket = (
            TokenBucket(rate_per_minute, clock=clock, sleep=sleep) if rate_per_minute else None
        )
        self.throttle_count = 0
        self.peak = 0

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    def throttled(self, retry_after: float | None = None) -> None:
        """The registry answered 429: shrink, and hold new requests back for a while."""
        self.throttle_count += 1
        now = self._clock()
        if now - self._last_decrease >= self._decrease_interval:
            self._limit = max(1.0, self._limit / 2)
            self._last_decrease = now
            self._slow_start = False
        if retry_after is None:
            delay = self._backoff
            self._backoff = min(self._max_backoff, self._backoff * 2)
        else:
            delay = max(0.0, retry_after)
        self._paused_until = max(self._paused_until, now + delay)

    def _succeeded(self) -> None:
        self._backoff = self._base_backoff
        step = 1.0 if self._slow_start else 1.0 / self._limit
        self._limit = min(float(self.max_concurrency), self._limit + step)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot; leaving normally counts as a success."""
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self._in_flight < self.limit)
                wait = self._paused_until - self._clock()
                if wait <= 0:
                    self._in_flight += 1
                    self.peak = max(self.peak, self._in_flight)
                    break
            await self._sleep(wait)
        ok = False
        try:
            if self._bucket is not None:
                await self._bucket.take()
            yield
            ok = True
        finally:
            async with self._changed:
                self._in_flight -= 1
                if ok:
                    self._succeeded()
                self._changed.notify_all()


class Governor:
    """The read and write limiters one run shares across all its repositories."""

    def __init__(self, limits: ExecutionLimits | None = None) -> None:
        limits = limits or ExecutionLimits()
        self.limits = limits
        self.reads = AdaptiveLimiter(limits.max_concurrency, limits.reads_per_minute)
        self.writes = AdaptiveLimiter(limits.max_concurrency, limits.writes_per_minute)

    def throttled(self, retry_after: float | None = None) -> None:
        """A 429 from the client's listener: ACR budgets reads and writes separately, but the
        listener cannot tell which budget ran out, so both back off."""
        self.reads.throttled(retry_after)
        self.writes.throttled(retry_after)

    @property
    def throttle_count(self) -> int:
        return max(self.reads.throttle_count, self.writes.throttle_count)


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

    @property
    def deleted(self) -> bool:
        """The manifest is gone from the registry (by us, or already)."""
        return self.action.kind is ActionKind.DELETE_MANIFEST and self.outcome in (
            Outcome.APPLIED,
            Outcome.ALREADY_GONE,
        )


CHANGED = "changed since planned; will be re-planned next run"

Key = tuple[str, str]


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
    ) -> None:
        self._client = client
        self._governor = governor
        self._manifests: dict[Key, ManifestProperties] = {
            (s.name, m.digest): m for s in snapshots.values() for m in s.manifests
        }
        self._snapshots = snapshots
        self._repository_checks: dict[str, asyncio.Task[str | None]] = {}
        self._on_done = on_done
        self._denied: dict[tuple[str, ActionKind], str] = {}

    async def apply(self, plan: Plan) -> tuple[ActionOutcome, ...]:
        """Apply every action, dependencies first; returns one outcome per action, in order."""
        workers = min(self._governor.limits.max_concurrency, max(1, len(plan.actions)))
        schedule = _Schedule(plan, workers, self._on_done)

        async def worker() -> None:
            while (index := await schedule.next()) is not None:
                schedule.finish(index, await self._run(schedule.actions[index]))

        if not schedule.complete:
            tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
        return schedule.outcomes()

    async def _run(self, action: Action) -> ActionOutcome:
        # A permission the identity lacks in a repository is lacking for every action of the
        # same kind there: fail those without sending a request each.
        denied = self._denied.get((action.repository, action.kind))
        if denied is not None:
            return ActionOutcome(action, Outcome.FAILED, f"not attempted: {denied}")
        for _ in range(THROTTLE_ROUNDS):
            try:
                if action.kind is ActionKind.LOCK_TAG:
                    return await self._lock(action)
                return await self._delete(action)
            except ThrottledError as exc:
                self._governor.throttled(exc.retry_after)
                last = str(exc)
            except PermissionDeniedError as exc:
                self._denied[(action.repository, action.kind)] = str(exc)
                return ActionOutcome(action, Outcome.FAILED, str(exc))
            except AcrError as exc:
                return ActionOutcome(action, Outcome.FAILED, str(exc))
        return ActionOutcome(action, Outcome.FAILED, f"still throttled after retrying: {last}")

    async def _lock(self, action: Action) -> ActionOutcome:
        tag = action.tags[0]
        async with self._governor.writes.slot():
            try:
                await self._client.update_tag_properties(
                    action.repository, tag, can_write=False, can_delete=False
                )
            except NotFoundError:
                return ActionOutcome(
                    action, Outcome.SKIPPED_CHANGED, f"tag {tag} is gone; {CHANGED}"
                )
        return ActionOutcome(action, Outcome.APPLIED)

    async def _delete(self, action: Action) -> ActionOutcome:
        repository, digest = action.repository, action.digest
        async with self._governor.writes.slot():
            change = await self._repository_changed(repository)
            if change is None:
                change = await self._manifest_changed(repository, digest)
            if change == "gone":
                return ActionOutcome(action, Outcome.ALREADY_GONE, "already deleted")
            if change is not None:
                return ActionOutcome(action, Outcome.SKIPPED_CHANGED, f"{change}; {CHANGED}")
            try:
                deleted = await self._client.delete_manifest(repository, digest)
            except DisallowedOperationError as exc:
                return ActionOutcome(action, Outcome.SKIPPED_LOCKED, f"locked: {exc}")
        if not deleted:
            return ActionOutcome(action, Outcome.ALREADY_GONE, "already deleted")
        return ActionOutcome(action, Outcome.APPLIED)

    async def _repository_changed(self, repository: str) -> str | None:
        """Re-read the repository's locks once per run, shared by all its deletions."""
        task = self._repository_checks.get(repository)
        if task is None:
            task = asyncio.ensure_future(self._read_repository(repository))
            self._repository_checks[repository] = task
        try:
            return await asyncio.shield(task)
        except AcrError:
            # A failed read is not remembered: the next deletion in the repository tries again.
            if self._repository_checks.get(repository) is task:
                del self._repository_checks[repository]
            raise

    async def _read_repository(self, repository: str) -> str | None:
        snapshot = self._snapshots.get(repository)
        async with self._governor.reads.slot():
            try:
                now = await self._client.get_repository_properties(repository)
            except NotFoundError:
                return "gone"
        if snapshot is None or _lock_bits(now.attributes) != _lock_bits(snapshot.attributes):
            return "repository locks changed"
        return None

    async def _manifest_changed(self, repository: str, digest: str) -> str | None:
        """Why the manifest no longer matches the snapshot ("gone" if it is), or None."""
        before = self._manifests.get((repository, digest))
        if before is None:
            return "not in the snapshot"
        async with self._governor.reads.slot():
            try:
                now = await self._client.get_manifest_properties(repository, digest)
            except NotFoundError:
                return "gone"
        if set(now.tags) != set(before.tags):
            return f"tags changed from {_tags(before.tags)} to {_tags(now.tags)}"
        if _lock_bits(now.attributes) != _lock_bits(before.attributes):
            return "manifest locks changed"
        if now.last_updated_on != before.last_updated_on:
            return "lastUpdateTime changed"
        for tag in now.tags:
            async with self._governor.reads.slot():
                try:
                    properties = await self._client.get_tag_properties(repository, tag)
                except NotFoundError:
                    return f"tag {tag} was removed"
            if properties.digest != digest:
                return f"tag {tag} moved to {properties.digest}"
            if not properties.attributes.deletable:
                return f"tag {tag} was locked"
        return None


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
            failed = ActionOutcome(self.actions[i], Outcome.FAILED, "the plan orders it in a cycle")
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

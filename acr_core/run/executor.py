"""Apply a plan to the registry: deletes by digest, tag locks, at the pace ACR allows.

Correctness before speed. Every manifest is re-read immediately before it is deleted, and one
whose tags, locks or `lastUpdateTime` moved since the snapshot is skipped: someone may have just
tagged it `prod`, and the next run plans it again from fresh state. An index goes before its
children (`Action.after`), so a failure never leaves a kept index pointing at deleted children.

Speed comes from the run's `Governor` (acr_core.run.limiter): every request takes a slot from its
AIMD limiter, shared by all repositories, which grows until ACR answers 429 and then backs off.

429s have one owner, the client's transport (acr_core.registry.transport): it retries each
request and reports each 429 once to the limiter. The executor never retries: an action whose
request is still refused after those retries fails as transient, the function fails its
invocation, and the platform runs the whole run again from a fresh read.

Worst case per deletion: its re-check reads (the repository's properties, once per repository
per run; the manifest's properties; each of its t tags' properties), then the DELETE, one after
another. That is 3 + t requests, each at most `RetryPolicy.attempts` (6) attempts within
`RetryPolicy.deadline` (120 s) plus one attempt's timeout (30 s): 6 * (3 + t) attempts and
about (3 + t) * 150 s, per run. A lock is one PATCH: 6 attempts, about 150 s. Each re-run of a
failed run by the platform (docs/operations.md, "Failure modes and fixes") starts afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

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
from acr_core.run.limiter import Governor

__all__ = ["ActionOutcome", "Executor", "ExecutorClient", "Outcome"]


class ExecutorClient(Protocol):
    """The part of `AcrClient` (acr_core.registry.client) the executor uses."""

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
                change = await self._manifest_changed(repository, digest, action.tags)
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

    async def _manifest_changed(
        self, repository: str, digest: str, planned_tags: Sequence[str]
    ) -> str | None:
        """Why the manifest no longer matches what was planned ("gone" if it is), or None.

        `planned_tags` are the tags the planner judged it by: the manifest listing's, plus any
        the tag listing showed on it (the two listings are read at slightly different times).
        """
        before = self._manifests.get((repository, digest))
        if before is None:
            return "not in the snapshot"
        async with self._governor.reads.slot():
            try:
                now = await self._client.get_manifest_properties(repository, digest)
            except NotFoundError:
                return "gone"
        if set(now.tags) != set(planned_tags):
            return f"tags changed from {_tags(planned_tags)} to {_tags(now.tags)}"
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

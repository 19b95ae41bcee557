"""The one orchestrator: gather a snapshot of each repository, plan, apply unless dry run.

The CLI, the function app, the demo and the benchmarks all call `run_cleanup`; a dry run takes
exactly the same path and stops before applying. Gathering reads every repository concurrently
(bounded), and inside each repository reads the raw manifests the planner must see
(`planner.needs_inspection`). A repository that vanishes while it is read is skipped; one that
cannot be read is reported as failed and nothing is deleted in it, while the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from acr_core.history.store import HistoryStore
from acr_core.models import (
    ManifestContent,
    RepositorySnapshot,
)
from acr_core.planning import planner
from acr_core.planning.plan import Action, ActionKind, Plan, RepositoryPlan
from acr_core.planning.policy import Policy
from acr_core.planning.previous import TagHistory
from acr_core.registry.errors import (
    AcrError,
    NotFoundError,
    is_transient,
)
from acr_core.registry.transport import ClientStats, RequestPacer, ThrottleListener
from acr_core.run._tasks import first_failure
from acr_core.run.executor import ActionOutcome, Executor, ExecutorClient, Outcome, Stop
from acr_core.run.gathering import Freshness, Reading, gather, unsure_competition
from acr_core.run.limiter import ExecutionLimits, Governor
from acr_core.run.manifest_cache import ManifestCache
from acr_core.run.recording import RunRecorder, merged
from acr_core.run.remember import recall
from acr_core.run.report import (
    Durations,
    RepositoryDurations,
    RepositoryIssue,
    RequestStats,
    RunReport,
    Status,
)
from acr_core.run.snapshots import SnapshotStore

__all__ = [
    "ProgressEvent",
    "Reading",
    "RegistryClient",
    "RepositoryNotFoundError",
    "RunInterrupted",
    "RunReport",
    "gather_repository",
    "run_cleanup",
]

# Repositories read at the same time. Requests are bounded by the read limiter anyway; this
# bounds how many snapshots are held half-built in memory.
REPOSITORY_CONCURRENCY = 8
# ACR caps a page at 1000 items whatever `n` asks for (docs/acr-facts.md section 1.12).
PAGE_SIZE = 1000

T = TypeVar("T")
log = logging.getLogger("acr_cleanup")


class RegistryClient(ExecutorClient, Protocol):
    """The part of `acr_core.registry.client.AcrClient` a run uses."""

    @property
    def login_server(self) -> str: ...

    @property
    def stats(self) -> ClientStats: ...

    def add_throttle_listener(self, listener: ThrottleListener) -> None: ...

    def add_request_pacer(self, pacer: RequestPacer) -> None: ...

    def list_repository_names(self, *, results_per_page: int = ...) -> AsyncIterator[str]: ...

    async def get_manifest(self, repository: str, tag_or_digest: str) -> ManifestContent: ...


class RepositoryNotFoundError(Exception):
    """A repository named with `repositories=` (and `named_must_exist=True`) does not exist;
    raised after reading and before anything is changed."""

    def __init__(self, repositories: Sequence[str]) -> None:
        self.repositories = tuple(repositories)
        names = ", ".join(repr(name) for name in self.repositories)
        super().__init__(f"repository {names} not found")


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """`phase` is "gather" (one event per repository read) or "apply" (one per action done)."""

    phase: str
    done: int
    total: int
    repository: str | None = None


Progress = Callable[[ProgressEvent], None]


async def run_cleanup(
    client: RegistryClient,
    policy: Policy,
    *,
    repositories: Sequence[str] | None = None,
    dry_run: bool = True,
    now: datetime | None = None,
    protect: Mapping[str, frozenset[str]] | None = None,
    limits: ExecutionLimits | None = None,
    progress: Progress | None = None,
    confirm: Callable[[RunReport], Awaitable[bool]] | None = None,
    stop: Stop | None = None,
    named_must_exist: bool = False,
    recorder: RunRecorder | None = None,
    history: HistoryStore | None = None,
    reading: Reading | None = None,
) -> RunReport:
    """Gather, plan and (unless `dry_run`) apply; `confirm` may veto applying a non-empty plan.

    `confirm(preview)` is shown the report of what apply will do (the dry run's report, with
    this run's gather and plan figures); the time it takes is in no duration of the report.
    `repositories=None` means every repository the catalog lists that the policy covers.
    `stop(repository)`, asked right before each DELETE, True once a push to that repository
    arrived during the run: its remaining deletions are skipped and the follow-up run re-plans.
    Raises `AcrError` only when the repositories cannot be listed at all; everything that goes
    wrong in one repository is in the report. With `named_must_exist` (the CLI: a name typed by
    hand), a named repository the registry does not have raises `RepositoryNotFoundError`
    before anything is planned or changed; without it (an event for a repository deleted
    since) it is reported as gone. Cancelled while applying, it raises `RunInterrupted`, which
    carries the report of what was done so far. `recorder` (the deletion ledger) adds its
    protected digests to `protect`, is told the plan before the first change and given every
    report before it is returned; its `RecordingError` propagates (raised before the apply,
    nothing changed). `history`: the moving-tag history (see `_read_and_plan`). `reading`:
    how repositories are read (cached raw manifests, kept snapshots brought up to date for push
    runs; `acr_core.run.gathering.Reading`).
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must carry a time zone, e.g. datetime.now(UTC)")
    governor = Governor(limits)
    run = _Run(client, datetime.now(UTC), now, _request_stats(client.stats), governor)
    if recorder is not None:
        protect = merged(protect, await recorder.protected(run.now))
    how = _Reading(reading or Reading())
    with _listening(client, governor):
        read = await _read_and_plan(
            client, governor, policy, repositories, run.now, protect, progress, how, history
        )
        missing = [i.repository for i in read.issues if i.status is Status.GONE]
        if named_must_exist and repositories is not None and missing:
            raise RepositoryNotFoundError(missing)
        if dry_run or not read.plan.actions:
            planned = run.report(read, _untouched(read), dry_run=dry_run)
            return await _recorded(recorder, planned, read)
        if confirm is not None and not await confirm(run.report(read, None, dry_run=True)):
            return run.report(read, _untouched(read, cancelled=True), dry_run=False)
        done = await _apply_recorded(client, governor, read, progress, stop, run, recorder, how)
    return await _recorded(recorder, run.report(read, done, dry_run=False), read)


async def _apply_recorded(
    client: RegistryClient,
    governor: Governor,
    read: _Read,
    progress: Progress | None,
    stop: Stop | None,
    run: _Run,
    recorder: RunRecorder | None,
    how: _Reading,
) -> _Applied:
    """Apply, with the ledger told first and given an interrupted run's report; afterwards
    the kept snapshots learn this run's own deletions and locks."""
    if recorder is not None:
        await recorder.before_apply(run.report(read, None, dry_run=False), read.snapshots)
    try:
        done = await _apply(client, governor, read, progress, stop, run)
    except RunInterrupted as interrupted:
        await _recorded(recorder, interrupted.report, read)
        raise
    await _remember(client, how.config.snapshots, done.outcomes)
    return done


def _untouched(read: _Read, *, cancelled: bool = False) -> _Applied:
    """The apply step of a run that applied nothing (a dry run, or `confirm` said no)."""
    return _Applied(read.planned, read.planned, cancelled=cancelled)


async def _recorded(recorder: RunRecorder | None, report: RunReport, read: _Read) -> RunReport:
    if recorder is not None:
        await recorder.record(report, read.snapshots)
    return report


@dataclass(frozen=True, slots=True)
class _Read:
    """What reading and planning produced, and when each ended (`time.monotonic()`)."""

    snapshots: Mapping[str, RepositorySnapshot]
    plan: Plan
    issues: tuple[RepositoryIssue, ...]
    gather_seconds: Mapping[str, float]
    plan_seconds: Mapping[str, float]
    began: float
    gathered: float
    planned: float


async def _read_and_plan(
    client: RegistryClient,
    governor: Governor,
    policy: Policy,
    repositories: Sequence[str] | None,
    now: datetime,
    protect: Mapping[str, frozenset[str]] | None,
    progress: Progress | None,
    reading: _Reading,
    history: HistoryStore | None = None,
) -> _Read:
    """Gather, record each listing in the tag history `history` and read back what it
    remembers (acr_core.run.remember; without it, `previousDigests` rules delete nothing),
    then plan."""
    began = time.monotonic()
    names, issues = await _select(client, policy, repositories)
    snapshots, failed, gather_seconds = await _gather_all(
        client, governor, names, progress, reading
    )
    gathered = time.monotonic()
    remembered = await recall(history, snapshots, now)
    the_plan, plan_seconds = _plan_each(snapshots, policy, now, protect, remembered)
    for deeper in (True, False):
        # An incremental plan a full listing might change: read further back, once; then
        # list in full what is still unsure.
        unsure = reading.unsure(the_plan, snapshots, policy)
        if not unsure:
            break
        again = _Reading(replace(reading.config, incremental=deeper))
        again.reach = {n: r for n, r in unsure.items() if r is not None}
        names = sorted(unsure)
        more, more_failed, _ = await _gather_all(client, governor, names, None, again)
        for name in names:
            reading.fresh.pop(name, None)
        reading.fresh.update(again.fresh)
        snapshots = {**{n: s for n, s in snapshots.items() if n not in unsure}, **more}
        failed = [*failed, *more_failed]
        gathered = time.monotonic()
        if remembered is not None:  # record and recall only the repositories read again
            remembered = {**remembered, **(await recall(history, more, now) or {})}
        the_plan, plan_seconds = _plan_each(snapshots, policy, now, protect, remembered)
    return _Read(
        snapshots=snapshots,
        plan=the_plan,
        issues=tuple(sorted([*issues, *failed], key=lambda i: i.repository)),
        gather_seconds=gather_seconds,
        plan_seconds=plan_seconds,
        began=began,
        gathered=gathered,
        planned=time.monotonic(),
    )


@dataclass(frozen=True, slots=True)
class _Applied:
    """What the apply step did: when it started and ended (`time.monotonic()`), one outcome
    per action, each repository's apply span, and whether `confirm` said no."""

    started: float
    ended: float
    outcomes: tuple[ActionOutcome, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class _Run:
    """What one run knows from its start, to build its report at any step."""

    client: RegistryClient
    started_at: datetime
    given_now: datetime | None
    before: RequestStats
    governor: Governor

    @property
    def now(self) -> datetime:
        return self.given_now or self.started_at

    def report(self, read: _Read, done: _Applied | None, *, dry_run: bool) -> RunReport:
        """The report so far; `done=None` is the preview of an apply not yet started."""
        done = done or _Applied(read.planned, read.planned)
        after = _request_stats(self.client.stats)
        applying = done.ended - done.started
        total = read.planned - read.began + applying
        return RunReport(
            registry=self.client.login_server,
            dry_run=dry_run,
            now=self.now,
            started_at=self.started_at,
            plan=read.plan,
            outcomes=done.outcomes,
            issues=read.issues,
            durations=Durations(
                gather=read.gathered - read.began,
                plan=read.planned - read.gathered,
                apply=applying,
                total=total,
            ),
            repository_durations=_per_repository(
                read.gather_seconds, read.plan_seconds, done.seconds
            ),
            requests=RequestStats(
                requests=after.requests - self.before.requests,
                throttled=after.throttled - self.before.throttled,
                retries=after.retries - self.before.retries,
                concurrency=self.governor.request_seconds / total if total > 0 else 0.0,
            ),
            cancelled=done.cancelled,
        )


class RunInterrupted(asyncio.CancelledError):
    """The run was cancelled (Ctrl-C) while applying; `report` says what was done so far, and
    each action not finished reads `planned` with `INTERRUPTED` as its detail."""

    def __init__(self, report: RunReport) -> None:
        super().__init__("interrupted while applying")
        self.report = report


INTERRUPTED = "not done: the run was interrupted (a request in flight may have gone through)"


def _per_repository(
    gather: Mapping[str, float], plan: Mapping[str, float], apply: Mapping[str, float]
) -> dict[str, RepositoryDurations]:
    """Each repository read (failed ones too) with the seconds of its three steps."""
    return {
        name: RepositoryDurations(
            gather=seconds, plan=plan.get(name, 0.0), apply=apply.get(name, 0.0)
        )
        for name, seconds in gather.items()
    }


async def _apply(
    client: RegistryClient,
    governor: Governor,
    read: _Read,
    progress: Progress | None,
    stop: Stop | None,
    run: _Run,
) -> _Applied:
    """Apply the plan; cancelled part-way, raise `RunInterrupted` with what was done."""
    finished: dict[Action, ActionOutcome] = {}
    show = _apply_progress(read.plan, progress)

    def on_done(outcome: ActionOutcome) -> None:
        finished[outcome.action] = outcome
        show(outcome)

    executor = Executor(client, governor, read.snapshots, on_done=on_done, stop=stop)
    started = time.monotonic()
    try:
        outcomes = await executor.apply(read.plan)
    except asyncio.CancelledError:
        partial = tuple(
            finished.get(action) or ActionOutcome(action, Outcome.PLANNED, INTERRUPTED)
            for action in read.plan.actions
        )
        done = _Applied(started, time.monotonic(), partial, executor.apply_seconds())
        raise RunInterrupted(run.report(read, done, dry_run=False)) from None
    return _Applied(started, time.monotonic(), outcomes, executor.apply_seconds())


@contextmanager
def _listening(client: RegistryClient, governor: Governor) -> Iterator[None]:
    """Feed the client's 429s to the run's governor, and pace its token requests, while the
    run lasts (the client keeps both for its whole life, so they go quiet afterwards)."""
    active = True

    def on_throttle(retry_after: float | None) -> None:
        if active:
            governor.throttled(retry_after)

    async def pace(method: str, path: str) -> None:
        if active:
            await governor.pace(method, path)

    client.add_throttle_listener(on_throttle)
    client.add_request_pacer(pace)
    try:
        yield
    finally:
        active = False


@dataclass
class _Reading:
    """How a run reads its repositories, and what each incremental read saw fresh."""

    config: Reading
    fresh: dict[str, Freshness] = field(default_factory=dict)
    reach: dict[str, datetime] = field(default_factory=dict)  # read back at least this far

    def unsure(
        self, plan: Plan, snapshots: Mapping[str, RepositorySnapshot], policy: Policy
    ) -> dict[str, datetime | None]:
        """The repositories read incrementally whose plan a full listing might change, and how
        far back a newest-first read must go for it (None: list in full)."""
        unsure: dict[str, datetime | None] = {}
        for repository_plan in plan.repositories:
            name, fresh = repository_plan.repository, self.fresh.get(repository_plan.repository)
            rule = policy.rule_for(name)
            if fresh is None or rule is None:
                continue
            counted = rule.keep_latest is not None
            found = unsure_competition(repository_plan, snapshots[name], fresh, counted)
            if found is not None:
                log.info("acr-cleanup %s: %s; reading further", name, found[0])
                unsure[name] = found[1]
        return unsure


async def _remember(
    client: RegistryClient, snapshots: SnapshotStore | None, outcomes: Sequence[ActionOutcome]
) -> None:
    """Write the run's deletions and locks into the snapshots it kept."""
    if snapshots is None:
        return
    deleted: dict[str, list[str]] = {}
    locked: dict[str, list[str]] = {}
    for outcome in outcomes:
        action = outcome.action
        if outcome.deleted:
            deleted.setdefault(action.repository, []).extend((action.digest, *action.cascades))
        elif action.kind is ActionKind.LOCK_TAG and outcome.outcome is Outcome.APPLIED:
            locked.setdefault(action.repository, []).extend(action.tags[:1])
    for repository in sorted({*deleted, *locked}):
        await snapshots.record(
            client.login_server,
            repository,
            deleted=deleted.get(repository, ()),
            locked=locked.get(repository, ()),
        )


async def gather_repository(
    client: RegistryClient,
    repository: str,
    governor: Governor | None = None,
    *,
    cache: ManifestCache | None = None,
    snapshots: SnapshotStore | None = None,
    incremental: bool = False,
) -> RepositorySnapshot:
    """Read one repository: its locks, every manifest and tag, and the raw manifests the
    planner needs (indexes, untagged and non-image manifests), from `cache` when it has them.
    With `snapshots`, the result is kept for the next run, and `incremental` reads only what
    changed since the kept one (acr_core.run.gathering). Raises `AcrError`."""
    how = Reading(cache=cache, snapshots=snapshots, incremental=incremental, page_size=PAGE_SIZE)
    gathered = await gather(client, repository, governor or Governor(), how)
    return gathered.snapshot


async def _select(
    client: RegistryClient, policy: Policy, repositories: Sequence[str] | None
) -> tuple[list[str], list[RepositoryIssue]]:
    """The repositories to read, and an issue for each named one no rule covers."""
    if repositories is None:
        listed = [name async for name in client.list_repository_names(results_per_page=PAGE_SIZE)]
        return sorted(name for name in set(listed) if policy.covers(name)), []
    names = sorted(set(repositories))
    issues = [
        RepositoryIssue(name, Status.NOT_COVERED, "no policy rule matches it; left untouched")
        for name in names
        if not policy.covers(name)
    ]
    return [name for name in names if policy.covers(name)], issues


def _plan_each(
    snapshots: Mapping[str, RepositorySnapshot],
    policy: Policy,
    now: datetime,
    protect: Mapping[str, frozenset[str]] | None,
    history: Mapping[str, TagHistory] | None = None,
) -> tuple[Plan, dict[str, float]]:
    """The plan, one repository at a time so each one's planning time is known (repositories
    are planned independently, so this is the same plan as planning them all at once)."""
    repositories: list[RepositoryPlan] = []
    seconds: dict[str, float] = {}
    for name in sorted(snapshots):
        started = time.monotonic()
        one = planner.plan([snapshots[name]], policy, now, protect=protect, history=history)
        repositories += one.repositories
        seconds[name] = time.monotonic() - started
    return Plan(tuple(repositories)), seconds


async def _gather_all(
    client: RegistryClient,
    governor: Governor,
    names: Sequence[str],
    progress: Progress | None,
    reading: _Reading,
) -> tuple[dict[str, RepositorySnapshot], list[RepositoryIssue], dict[str, float]]:
    """Snapshots, issues for the repositories that could not be read, and the seconds each
    repository took to read (failed ones too)."""
    snapshots: dict[str, RepositorySnapshot] = {}
    issues: list[RepositoryIssue] = []
    seconds: dict[str, float] = {}
    pending = iter(names)

    async def reader() -> None:
        for name in pending:
            started = time.monotonic()
            try:
                gathered = await gather(
                    client, name, governor, reading.config, reach=reading.reach.get(name)
                )
                snapshots[name] = gathered.snapshot
                if gathered.fresh is not None:
                    reading.fresh[name] = gathered.fresh
            except NotFoundError:
                issues.append(RepositoryIssue(name, Status.GONE, "deleted while it was read"))
            except AcrError as exc:
                issues.append(
                    RepositoryIssue(name, Status.FAILED, str(exc), is_transient(exc), cause=exc)
                )
            seconds[name] = time.monotonic() - started
            if progress is not None:
                progress(ProgressEvent("gather", len(snapshots) + len(issues), len(names), name))

    await _all(*(reader() for _ in range(min(REPOSITORY_CONCURRENCY, len(names)))))
    return snapshots, issues, seconds


async def _all(*coroutines: Coroutine[Any, Any, T]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise that failure itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coroutines]
    except BaseExceptionGroup as failures:
        raise first_failure(failures) from None
    return [task.result() for task in tasks]


def _apply_progress(plan: Plan, progress: Progress | None) -> Callable[[ActionOutcome], None]:
    total = len(plan.actions)
    done = 0

    def on_done(outcome: ActionOutcome) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(ProgressEvent("apply", done, total, outcome.action.repository))

    return on_done


def _request_stats(stats: ClientStats) -> RequestStats:
    return RequestStats(requests=stats.requests, throttled=stats.throttled, retries=stats.retries)

"""What the three functions do, on plain data: `function_app.py` converts and calls these.

- `image_pushed`: clean the one repository a validated ImagePushed event names, never deleting
  the digest just pushed; events for a repository already being cleaned fold into one run.
- `scheduled_sweep`: list the catalog within the budget; returns the queue messages to send.
- `queued_sweep`: clean the repository a sweep message names, or resume a cut-off listing.

Failures: transient registry errors raise, so the platform retries the invocation (which
re-reads the registry); permanent ones (a bad event, invalid settings, permission denied) log
one error saying what to fix and return, so nothing retries in vain. `retry_reason` is that
decision for a finished run. Every run logs one summary line (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from acr_core.app.coalescer import Coalescer
from acr_core.app.credentials import ManagedIdentity
from acr_core.app.events import Envelope, Ignored, read_image_pushed
from acr_core.app.recording import StoreFactory, ledger_recorder
from acr_core.app.settings import Settings, SettingsError
from acr_core.app.sweep import Listing, read_continuation, read_sweep_message
from acr_core.app.tag_history import HistoryFactory, opened, record_push
from acr_core.registry.client import AcrClient
from acr_core.registry.errors import AcrError, is_transient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.executor import Outcome
from acr_core.run.gathering import Reading
from acr_core.run.manifest_cache import DEFAULT_MEMORY_BYTES, ManifestCache
from acr_core.run.recording import RecordingError
from acr_core.run.report import RunReport, Status
from acr_core.run.service import run_cleanup
from acr_core.run.snapshots import SnapshotStore, StoredSnapshot
from acr_core.storage.blob import BlobStore
from acr_core.storage.objects import MemoryStore, ObjectStore

__all__ = [
    "RetryPolicy",  # with RunReport: the types of the Shell's edges, for function_app.configure
    "RetryableRun",
    "RunReport",
    "Shell",
    "image_pushed",
    "queued_sweep",
    "retry_reason",
    "scheduled_sweep",
]

log = logging.getLogger("acr_cleanup")


@dataclass
class Shell:
    """What the handlers run with: the settings (or why they are invalid) and the edges that
    tests and the demo replace through `function_app.configure` (credential, TLS trust, clock)."""

    settings: Settings | SettingsError
    credential: AsyncTokenCredential | None = None  # None: the managed identity
    verify: ssl.SSLContext | bool = True  # trusts a local emulator's CA; True in Azure
    now: Callable[[], datetime] | None = None  # the registry's "now"; None: the wall clock
    retry: RetryPolicy | None = None  # None: the client's default policy
    on_report: Callable[[str, RunReport], None] | None = None  # sees (trigger, report) per run
    coalescer: Coalescer = field(default_factory=Coalescer)
    managed: ManagedIdentity = field(default_factory=ManagedIdentity)
    ledger_store: StoreFactory | None = None  # None: CLEANUP_LEDGER_URL's blob container
    history: HistoryFactory | None = None  # None: the table CLEANUP_HISTORY_TABLE_URL names
    # Raw manifests (and, without CLEANUP_CACHE_URL, snapshots) while the worker is warm.
    memory: MemoryStore = field(default_factory=lambda: MemoryStore(DEFAULT_MEMORY_BYTES))
    # Opens the persistent store for a run instead of CLEANUP_CACHE_URL (tests: Azurite).
    cache_store: Callable[[Settings], ObjectStore] | None = None
    # Snapshots parsed while warm, by the hash of their stored bytes (acr_core.run.snapshots).
    parsed_snapshots: dict[str, StoredSnapshot] = field(default_factory=dict)


class RetryableRun(Exception):
    """A run that hit a transient registry error (in its gather, or on an action after the
    client's own retries): raised so the platform retries the run, which re-reads the registry."""


# --- the three flows -------------------------------------------------------------------------


async def image_pushed(shell: Shell, envelope: Envelope | Ignored) -> None:
    """Clean the repository a delivered event names, if it is an ImagePushed we accept."""
    settings = _valid_settings(shell, "on_image_pushed")
    if settings is None:
        return
    pushed = (
        envelope
        if isinstance(envelope, Ignored)
        else read_image_pushed(
            envelope, resource_id=settings.resource_id, login_server=settings.login_server
        )
    )
    if isinstance(pushed, Ignored):
        level = logging.WARNING if pushed.suspicious else logging.INFO
        log.log(level, "acr-cleanup ignored event %s: %s", pushed.event_id, pushed.reason)
        return
    if not settings.policy.covers(pushed.repository):
        log.info(
            "acr-cleanup event %s: no policy rule covers repository %r; nothing to do",
            pushed.event_id,
            pushed.repository,
        )
        return
    assert isinstance(envelope, Envelope)  # `pushed` was read from it
    unrecorded = await record_push(
        settings, shell.history, _storage(shell, settings), envelope, pushed
    )

    async def run(protect: frozenset[str], stop: asyncio.Event) -> None:
        await _clean(shell, settings, pushed.repository, "push", protect, pushed.event_id, stop)

    started = await _guarded(
        f"event {pushed.event_id} for {pushed.repository}",
        shell.coalescer.submit(pushed.repository, pushed.digest, run),
    )
    if started is False:
        log.info(
            "acr-cleanup event %s folded into the run already queued for %s",
            pushed.event_id,
            pushed.repository,
        )
    if unrecorded is not None:  # the tag history must learn this push: have it delivered again
        log.error("acr-cleanup event %s: %s; will retry", pushed.event_id, unrecorded)
        raise RetryableRun(unrecorded)


async def scheduled_sweep(shell: Shell, *, past_due: bool) -> list[str] | None:
    """The timer's listing: the queue messages to send, or None (invalid settings)."""
    settings = _valid_settings(shell, "sweep_schedule")
    if settings is None:
        return None
    return await _fan_out(shell, settings, after=None, cause=None, past_due=past_due)


async def queued_sweep(shell: Shell, body: bytes, message_id: str | None) -> list[str] | None:
    """Handle one sweep queue message; returns the messages to queue (a continuation's
    listing), or None when there are none to send."""
    settings = _valid_settings(shell, "sweep_repository")
    if settings is None:
        return None
    after = read_continuation(body)
    if after is not None:
        return await _fan_out(shell, settings, after=after, cause=message_id, past_due=None)
    repository = read_sweep_message(body)
    if repository is None:
        log.error(
            'acr-cleanup sweep message %s is not {"repository": "<name>"} or '
            '{"continueAfter": "<name>"}; dropped',
            message_id,
        )
        return None
    if not settings.policy.covers(repository):
        log.info("acr-cleanup sweep: no policy rule covers %r any more; nothing to do", repository)
        return None

    async def run(protect: frozenset[str], stop: asyncio.Event) -> None:
        await _clean(shell, settings, repository, "sweep", protect, message_id, stop)

    await _guarded(f"sweep of {repository}", shell.coalescer.submit(repository, None, run))
    return None


# --- the sweep's listing ---------------------------------------------------------------------


async def _fan_out(
    shell: Shell, settings: Settings, *, after: str | None, cause: str | None, past_due: bool | None
) -> list[str]:
    """List the catalog (from its start, or lexically after `after`) within the budget and
    return one message per covered repository, plus a continuation if the listing stopped
    short after listing something. Stopped before listing anything: raise, so the platform
    retries this invocation (a continuation from the same place would loop)."""
    started = time.monotonic()
    listing = await _list(shell, settings, after)
    summary = listing.summary(cause=cause, past_due=past_due, seconds=time.monotonic() - started)
    budget = f"CLEANUP_SWEEP_BUDGET_SECONDS={settings.sweep_budget_seconds:g}"
    if listing.cut_off and listing.resume is None:
        _log_summary("acr-cleanup sweep", summary)
        problem = (
            f"the sweep listed no repository within {budget}; raise it, or see why the "
            "registry is slow"
        )
        log.warning("acr-cleanup %s; will retry", problem)
        raise RetryableRun(problem)
    _log_summary("acr-cleanup sweep", summary)
    if listing.resume is not None:
        log.warning(
            "acr-cleanup sweep %s after %d repositories; queued the %d covered ones and a "
            "continuation after %r",
            f"stopped listing at {budget}" if listing.cut_off else "listing failed",
            listing.listed,
            len(listing.covered),
            listing.resume,
        )
    return listing.messages()


async def _list(shell: Shell, settings: Settings, after: str | None) -> Listing:
    """The budgeted listing; a transient error before any name is listed propagates."""
    listing = Listing(after=after)

    async def collect() -> None:
        async with _client(shell, settings) as client:
            names = client.list_repository_names(last=after)
            await listing.take(names, settings.policy.covers)

    try:
        async with asyncio.timeout(settings.sweep_budget_seconds):
            await _guarded("the sweep's repository listing", collect())
    except TimeoutError:
        listing.cut_off = True
    except AcrError:  # transient: `_guarded` logged it and re-raised
        if listing.last is None:
            raise
    return listing


# --- one run ---------------------------------------------------------------------------------


async def _clean(
    shell: Shell,
    settings: Settings,
    repository: str,
    trigger: str,
    protect: frozenset[str],
    cause: str | None,
    stop: asyncio.Event | None = None,
) -> RunReport:
    """One run over one repository; logs its summary and raises if it should be retried.
    Once `stop` is set (a push to the repository arrived), the run sends no more DELETEs."""
    limits = settings.limits()
    history = opened(settings, shell.history, _storage(shell, settings))
    async with (
        _client(shell, settings) as client,
        ledger_recorder(
            settings,
            _credential(shell, settings),
            client,
            trigger=trigger,
            event_id=cause,
            store_factory=shell.ledger_store,
        ) as recorder,
        history as tag_history,
        _reading(shell, settings, trigger) as reading,
    ):
        report = await run_cleanup(
            client,
            settings.policy,
            repositories=[repository],
            dry_run=settings.dry_run,
            now=shell.now() if shell.now is not None else None,
            protect={repository: protect} if protect else None,
            limits=limits,
            stop=None if stop is None else lambda _: stop.is_set(),
            recorder=recorder,
            history=tag_history,
            reading=reading,
        )
    context = {"repository": repository, "trigger": trigger, "cause": cause}
    _log_summary("acr-cleanup run", {**context, **report.summary()})
    if shell.on_report is not None:
        shell.on_report(trigger, report)
    reason = retry_reason(report, repository)
    _log_problems(report, repository, retrying=reason is not None)
    if reason is not None:
        raise RetryableRun(reason)
    return report


def retry_reason(report: RunReport, repository: str) -> str | None:
    """Why the platform should run this again, or None: an action that failed transiently
    (after the client's own retries), or a gather stopped by a transient error. Everything
    else (refused, blocked, gone) would fail the same way again, so it is only logged."""
    transient = [o for o in report.outcomes if o.outcome is Outcome.FAILED and o.transient]
    if transient:
        return f"{repository}: {len(transient)} action(s) hit a transient error"
    for issue in report.issues:
        if issue.transient:
            return f"{repository}: {issue.detail}"
    return None


def _log_problems(report: RunReport, repository: str, *, retrying: bool) -> None:
    """One line per kind of problem: failed actions, blocked plans, and (unless the run is
    to be retried, which says why) repositories the run could not plan."""
    failures = [o for o in report.outcomes if o.outcome is Outcome.FAILED]
    if failures:
        log.error(
            "acr-cleanup: %d of %d actions on %s failed; the first: %s",
            len(failures),
            len(report.outcomes),
            repository,
            failures[0].detail,
        )
    for plan in report.plan.repositories:
        if plan.blocked:
            log.warning("acr-cleanup: %s is blocked: %s", plan.repository, plan.blocked)
    if retrying:
        return
    for issue in report.issues:
        if issue.status is Status.FAILED:
            log.error("acr-cleanup: cleaning %s failed: %s", repository, issue.detail)
        else:  # gone since the event, or no longer covered: nothing to clean
            log.info("acr-cleanup: %s: %s", repository, issue.detail)


# --- edges -----------------------------------------------------------------------------------


def _valid_settings(shell: Shell, function: str) -> Settings | None:
    if isinstance(shell.settings, SettingsError):
        log.error(
            "acr-cleanup %s did nothing: %s. Fix the app settings (README, 'Settings').",
            function,
            shell.settings,
        )
        return None
    return shell.settings


@asynccontextmanager
async def _reading(shell: Shell, settings: Settings, trigger: str) -> AsyncIterator[Reading]:
    """How a run reads: manifests from memory then the cache container; snapshots in the
    container (shared by every instance), or in memory without one; push runs incremental."""
    persistent: ObjectStore | None = None
    if shell.cache_store is not None:
        persistent = shell.cache_store(settings)
    elif settings.cache_url is not None:
        persistent = BlobStore(settings.cache_url, _credential(shell, settings))
    layers = [shell.memory] if persistent is None else [shell.memory, persistent]
    max_age = timedelta(seconds=settings.snapshot_max_age_seconds)
    try:
        yield Reading(
            cache=ManifestCache(layers),
            snapshots=SnapshotStore(
                persistent or shell.memory, max_age=max_age, parsed=shell.parsed_snapshots
            ),
            incremental=trigger == "push",
        )
    finally:
        if persistent is not None:
            await persistent.close()


@asynccontextmanager
async def _client(shell: Shell, settings: Settings) -> AsyncIterator[AcrClient]:
    """A client per run: its request statistics are then exactly the run's own."""
    async with AcrClient(
        settings.endpoint,
        _credential(shell, settings),
        audience=settings.token_audience,
        verify=shell.verify,
        retry=shell.retry,
    ) as client:
        yield client


def _credential(shell: Shell, settings: Settings) -> AsyncTokenCredential:
    """The credential for the registry, the ledger and the cache: the managed identity, or
    the tests'."""
    if shell.credential is not None:
        return shell.credential
    return shell.managed.for_this_loop(settings.client_id)


def _storage(shell: Shell, settings: Settings) -> Callable[[], AsyncTokenCredential]:
    """The function's own storage account is reached with its managed identity."""
    return lambda: shell.managed.for_this_loop(settings.client_id)


def _log_summary(prefix: str, summary: Mapping[str, object]) -> None:
    """One line: the JSON in the message (always queryable in Application Insights' `traces`)
    and the same fields as record attributes (custom dimensions under OpenTelemetry)."""
    extra = {f"acr_cleanup_{key}": value for key, value in summary.items() if value is not None}
    log.info("%s %s", prefix, json.dumps(summary, sort_keys=True), extra=extra)


async def _guarded(what: str, work: Awaitable[object]) -> object | None:
    """Await `work`; re-raise transient failures, log permanent ones with the fix."""
    try:
        return await work
    except RetryableRun as exc:
        log.warning("acr-cleanup %s hit a transient registry error, will retry: %s", what, exc)
        raise
    except RecordingError as exc:
        # Fail closed: nothing was deleted. Raised, so the platform retries once the ledger
        # can be written again (a storage outage); a missing role repeats until it is granted.
        log.error("acr-cleanup %s stopped before deleting anything: %s", what, exc)
        raise
    except AcrError as exc:
        if is_transient(exc):
            log.warning("acr-cleanup %s hit a transient registry error, will retry: %s", what, exc)
            raise
        log.error("acr-cleanup %s failed and will not be retried: %s", what, exc)
    except ClientAuthenticationError as exc:
        log.error(
            "acr-cleanup %s could not get a token for the registry: %s. Check that the app "
            "has a managed identity and that AZURE_CLIENT_ID names it (or is unset for the "
            "system-assigned identity).",
            what,
            exc.message,
        )
    return None

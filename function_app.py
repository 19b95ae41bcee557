"""The Azure Functions app (Python v2 programming model): a thin shell over `acr_core`.

Three functions, names fixed by docs/architecture.md (the infra wires them by name):

- `on_image_pushed` (Event Grid trigger, Event Grid schema or CloudEvents 1.0): applies the
  policy to the one repository a validated `ImagePushed` event names, never deleting the
  digest just pushed.
- `sweep_schedule` (timer, `%CLEANUP_SCHEDULE%`): lists the repositories the policy covers and
  puts one message per repository on the Storage queue `acr-cleanup-sweep`. A listing cut off by
  `CLEANUP_SWEEP_BUDGET_SECONDS` (or by a transient error part-way) also queues a continuation.
- `sweep_repository` (queue trigger): cleans the one repository a message names, or resumes the
  listing after the name a continuation carries, queueing as the timer does.

Settings are read once, at import, from `os.environ` (the only place that reads it). Failures:
transient registry errors (`acr_core.registry.errors.is_transient`) raise so the platform retries;
permanent ones (a bad event, invalid settings, permission denied) log one error saying what to
fix and return, so nothing retries in vain. Every run logs one structured summary line.
Operating notes: docs/operations.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import azure.functions as func
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from acr_core.app.events import (
    Envelope,
    Ignored,
    make_envelope,
    read_image_pushed,
)
from acr_core.app.settings import Settings, SettingsError, load_settings
from acr_core.names import is_repository_name
from acr_core.registry.client import AcrClient
from acr_core.registry.errors import AcrError, is_transient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.executor import Outcome
from acr_core.run.limiter import ExecutionLimits
from acr_core.run.report import RunReport, Status
from acr_core.run.service import run_cleanup

SWEEP_QUEUE = "acr-cleanup-sweep"
STORAGE_CONNECTION = "AzureWebJobsStorage"
APP_ROOT = Path(__file__).resolve().parent

log = logging.getLogger("acr_cleanup")
app = func.FunctionApp()


@dataclass
class Shell:
    """What the handlers run with: the settings (or why they are invalid) and the edges that
    tests and the demo replace through `configure` (credential, TLS trust, clock)."""

    settings: Settings | SettingsError
    credential: AsyncTokenCredential | None = None  # None: the managed identity
    verify: ssl.SSLContext | bool = True  # trusts a local emulator's CA; True in Azure
    now: Callable[[], datetime] | None = None  # the registry's "now"; None: the wall clock
    retry: RetryPolicy | None = None  # None: the client's default policy
    on_report: Callable[[str, RunReport], None] | None = None  # sees (trigger, report) per run
    coalescer: Coalescer = field(default_factory=lambda: Coalescer())
    managed: tuple[asyncio.AbstractEventLoop, AsyncTokenCredential] | None = None


def configure(
    env: Mapping[str, str],
    *,
    credential: AsyncTokenCredential | None = None,
    verify: ssl.SSLContext | bool = True,
    now: Callable[[], datetime] | None = None,
    retry: RetryPolicy | None = None,
    on_report: Callable[[str, RunReport], None] | None = None,
) -> Shell:
    """(Re)read the settings from `env` and set the edges; returns the new shell.

    Azure runs this once at import with `os.environ`. Tests and `scripts/demo.py` call it to
    point the handlers at a local emulator; `on_report` lets the demo show each run's plan.
    """
    global _shell
    try:
        settings: Settings | SettingsError = load_settings(env, app_root=APP_ROOT)
    except SettingsError as exc:
        settings = exc
    except Exception as exc:
        # Raising here would fail the module import, and the host would then index no function
        # at all, so nothing would ever log why. Each invocation reports it instead.
        settings = SettingsError([f"reading the app settings failed unexpectedly: {exc!r}"])
    _shell = Shell(
        settings,
        credential=credential,
        verify=verify,
        now=now,
        retry=retry,
        on_report=on_report,
    )
    return _shell


class Coalescer:
    """At most one run per repository at a time in this instance.

    Events that arrive while a repository's run is in flight fold into a single follow-up run
    that protects all of their digests, so a multi-arch push (one event per child, then the
    index) costs two runs, not one per event. Every caller waits for the run that covers its
    event and sees that run's exception, so a transient failure is retried per event.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[None]] = {}
        self._waiting: dict[str, _Batch] = {}

    async def submit(
        self,
        repository: str,
        digest: str | None,
        run: Callable[[frozenset[str]], Awaitable[object]],
    ) -> bool:
        """Run `run(protected digests)` for `repository`, or join the follow-up run already
        waiting. Returns True if this call started the run, False if it joined one."""
        batch = self._waiting.get(repository)
        if batch is not None:
            batch.add(digest)
            await asyncio.shield(batch.done)
            return False
        batch = _Batch(asyncio.get_running_loop().create_future())
        batch.add(digest)
        previous = self._running.get(repository)
        if previous is not None:
            self._waiting[repository] = batch
            try:
                await asyncio.wait([previous])
            except BaseException:
                batch.done.cancel()  # cancelled while waiting: joiners must not wait forever
                raise
            finally:
                del self._waiting[repository]
        self._running[repository] = batch.done
        try:
            await run(frozenset(batch.digests))
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except BaseException as exc:
            batch.done.set_exception(exc)
            raise
        else:
            batch.done.set_result(None)
        finally:
            if self._running.get(repository) is batch.done:
                del self._running[repository]
        return True


@dataclass
class _Batch:
    done: asyncio.Future[None]
    digests: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # The starter re-raises the run's exception itself; joiners may be absent, so mark it
        # retrieved to keep asyncio from logging "exception was never retrieved".
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def add(self, digest: str | None) -> None:
        if digest is not None:
            self.digests.add(digest)


_shell = configure(os.environ)


# --- the functions ---------------------------------------------------------------------------


@app.event_grid_trigger(arg_name="event")
async def on_image_pushed(event: func.EventGridEvent) -> None:
    """Clean the pushed repository. The converter hands over a `func.CloudEvent` instead when
    the subscription delivers CloudEvents 1.0 (azure-functions >= 1.25)."""
    shell = _shell
    settings = _valid_settings(shell, "on_image_pushed")
    if settings is None:
        return
    envelope = _envelope(event)
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

    async def run(protect: frozenset[str]) -> None:
        await _clean(shell, settings, pushed.repository, "push", protect, pushed.event_id)

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


@app.timer_trigger(arg_name="timer", schedule="%CLEANUP_SCHEDULE%", run_on_startup=False)
@app.queue_output(arg_name="out", queue_name=SWEEP_QUEUE, connection=STORAGE_CONNECTION)
@app.retry(
    strategy="exponential_backoff",
    max_retry_count="3",
    minimum_interval="00:00:10",
    maximum_interval="00:15:00",
)
async def sweep_schedule(
    timer: func.TimerRequest,
    out: func.Out[typing.List[str]],  # noqa: UP006 - the worker rejects list[str] (functions-infra.md 1.6)
) -> None:
    """Fan the sweep out: one queue message per repository the policy covers."""
    shell = _shell
    settings = _valid_settings(shell, "sweep_schedule")
    if settings is None:
        return
    await _fan_out(shell, settings, out, after=None, cause=None, past_due=bool(timer.past_due))


@app.queue_trigger(arg_name="msg", queue_name=SWEEP_QUEUE, connection=STORAGE_CONNECTION)
@app.queue_output(arg_name="out", queue_name=SWEEP_QUEUE, connection=STORAGE_CONNECTION)
async def sweep_repository(
    msg: func.QueueMessage,
    out: func.Out[typing.List[str]],  # noqa: UP006 - the worker rejects list[str] (functions-infra.md 1.6)
) -> None:
    """Clean the one repository a sweep message names, or continue a cut-off listing."""
    shell = _shell
    settings = _valid_settings(shell, "sweep_repository")
    if settings is None:
        return
    body = msg.get_body()
    after = read_continuation(body)
    if after is not None:
        await _fan_out(shell, settings, out, after=after, cause=msg.id, past_due=None)
        return
    repository = read_sweep_message(body)
    if repository is None:
        log.error(
            'acr-cleanup sweep message %s is not {"repository": "<name>"} or '
            '{"continueAfter": "<name>"}; dropped',
            msg.id,
        )
        return
    if not settings.policy.covers(repository):
        log.info("acr-cleanup sweep: no policy rule covers %r any more; nothing to do", repository)
        return

    async def run(protect: frozenset[str]) -> None:
        await _clean(shell, settings, repository, "sweep", protect, msg.id)

    await _guarded(f"sweep of {repository}", shell.coalescer.submit(repository, None, run))


# --- the sweep's listing ---------------------------------------------------------------------


@dataclass
class _Listing:
    """How far one budgeted catalog listing got."""

    covered: list[str] = field(default_factory=list)
    listed: int = 0
    last: str | None = None  # the last name listed: everything up to it has been seen


async def _fan_out(
    shell: Shell,
    settings: Settings,
    out: func.Out[typing.List[str]],  # noqa: UP006 - as the functions' own annotation
    *,
    after: str | None,
    cause: str | None,
    past_due: bool | None,
) -> None:
    """List the catalog (from its start, or lexically after `after`) within the budget and queue
    one message per covered repository. Cut off, or stopped by a transient error, after listing
    something: also queue a continuation resuming after the last name listed, so a slow
    listing's tail is not left to the next sweep. Stopped before listing anything: raise, so
    the platform retries this invocation (a continuation from the same place would loop).
    """
    started = time.monotonic()
    listing = _Listing()

    async def collect() -> bool:
        async with _client(shell, settings) as client:
            async for name in client.list_repository_names(last=after):
                listing.listed += 1
                listing.last = name
                if settings.policy.covers(name):
                    listing.covered.append(name)
        return True

    cut_off = transient = False
    completed: object = False
    try:
        async with asyncio.timeout(settings.sweep_budget_seconds):
            completed = await _guarded("the sweep's repository listing", collect())
    except TimeoutError:
        cut_off = True
    except AcrError:  # transient: `_guarded` logged it and re-raised
        if listing.last is None:
            raise
        transient = True
    resume = listing.last if cut_off or transient else None
    summary = {
        "trigger": "schedule" if after is None else "continuation",
        "cause": cause,
        "pastDue": past_due,
        "after": after,
        "listed": listing.listed,
        "enqueued": len(listing.covered),
        "cutOff": cut_off,
        "listingFailed": not cut_off and completed is not True,
        "continueAfter": resume,
        "durationSeconds": round(time.monotonic() - started, 3),
    }
    if cut_off and resume is None:
        _log_summary("acr-cleanup sweep", summary)
        problem = (
            f"the sweep listed no repository within CLEANUP_SWEEP_BUDGET_SECONDS="
            f"{settings.sweep_budget_seconds:g}; raise it, or see why the registry is slow"
        )
        log.warning("acr-cleanup %s; will retry", problem)
        raise _RetryableRun(problem)
    messages = [sweep_message(name) for name in listing.covered]
    if resume is not None:
        messages.append(continuation_message(resume))
    out.set(messages)
    _log_summary("acr-cleanup sweep", summary)
    if resume is not None:
        log.warning(
            "acr-cleanup sweep %s after %d repositories; queued the %d covered ones and a "
            "continuation after %r",
            f"stopped listing at CLEANUP_SWEEP_BUDGET_SECONDS={settings.sweep_budget_seconds:g}"
            if cut_off
            else "listing failed transiently",
            listing.listed,
            len(listing.covered),
            resume,
        )


# --- helpers ---------------------------------------------------------------------------------


def sweep_message(repository: str) -> str:
    """The queue message that has `sweep_repository` clean one repository."""
    return json.dumps({"repository": repository})


def continuation_message(after: str) -> str:
    """The queue message that has `sweep_repository` list the catalog on after `after`."""
    return json.dumps({"continueAfter": after})


def read_sweep_message(body: bytes) -> str | None:
    """The repository a sweep message names, or None if the message is not one of those."""
    return _read_name(body, "repository")


def read_continuation(body: bytes) -> str | None:
    """The name a continuation message resumes after, or None if it is not one."""
    return _read_name(body, "continueAfter")


def _read_name(body: bytes, key: str) -> str | None:
    """`name` from a message that is exactly `{key: name}`, name a valid repository name."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or list(data) != [key]:
        return None
    name = data[key]
    if not isinstance(name, str) or not is_repository_name(name):
        return None
    return name


def _valid_settings(shell: Shell, function: str) -> Settings | None:
    if isinstance(shell.settings, SettingsError):
        log.error(
            "acr-cleanup %s did nothing: %s. Fix the app settings (README, 'Settings').",
            function,
            shell.settings,
        )
        return None
    return shell.settings


def _envelope(event: func.EventGridEvent | func.CloudEvent) -> Envelope | Ignored:
    if isinstance(event, func.CloudEvent):
        return make_envelope(
            event_id=event.id,
            event_type=event.type,
            source=event.source,
            subject=event.subject,
            data=event.get_json(),
            schema="cloudevents",
        )
    return make_envelope(
        event_id=event.id,
        event_type=event.event_type,
        source=event.topic,
        subject=event.subject,
        data=event.get_json(),
        schema="eventgrid",
    )


def _credential(shell: Shell, settings: Settings) -> AsyncTokenCredential:
    """The injected credential, or this event loop's managed-identity credential.

    Kept for the life of the worker's loop so azure-identity's token cache spares a call to
    the identity endpoint on every run; a new loop (as in tests) gets a new credential, since
    its HTTP session is bound to the loop that created it.
    """
    if shell.credential is not None:
        return shell.credential
    loop = asyncio.get_running_loop()
    if shell.managed is None or shell.managed[0] is not loop:
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        credential: AsyncTokenCredential = (
            ManagedIdentityCredential(client_id=settings.client_id)
            if settings.client_id is not None
            else DefaultAzureCredential()
        )
        shell.managed = (loop, credential)
    return shell.managed[1]


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


async def _clean(
    shell: Shell,
    settings: Settings,
    repository: str,
    trigger: str,
    protect: frozenset[str],
    cause: str | None,
) -> RunReport:
    """One run over one repository; logs its summary and raises if it should be retried."""
    limits = ExecutionLimits(
        max_concurrency=settings.max_concurrency,
        writes_per_minute=settings.max_writes_per_minute,
    )
    async with _client(shell, settings) as client:
        report = await run_cleanup(
            client,
            settings.policy,
            repositories=[repository],
            dry_run=settings.dry_run,
            now=shell.now() if shell.now is not None else None,
            protect={repository: protect} if protect else None,
            limits=limits,
        )
    _log_summary("acr-cleanup run", run_summary(report, repository, trigger, cause))
    if shell.on_report is not None:
        shell.on_report(trigger, report)
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
    retry = [o for o in failures if o.transient]
    if retry:
        raise _RetryableRun(f"{repository}: {len(retry)} action(s) hit a transient error")
    for issue in report.issues:
        if issue.transient:
            raise _RetryableRun(f"{repository}: {issue.detail}")
        if issue.status is Status.FAILED:
            log.error("acr-cleanup: cleaning %s failed: %s", repository, issue.detail)
        else:  # gone since the event, or no longer covered: nothing to clean
            log.info("acr-cleanup: %s: %s", repository, issue.detail)
    return report


class _RetryableRun(Exception):
    """A run that hit a transient registry error (in its gather, or on an action after the
    client's own retries): raised so the platform retries the run, which re-reads the registry."""


def run_summary(
    report: RunReport, repository: str, trigger: str, cause: str | None
) -> dict[str, object]:
    """The summary fields of one run, flat, for the log line and Application Insights."""
    totals = report.totals
    return {
        "repository": repository,
        "trigger": trigger,
        "cause": cause,
        "status": report.status.value,
        "dryRun": report.dry_run,
        "kept": totals.kept,
        "planned": totals.planned_deletions,
        "deleted": totals.deleted,
        "alreadyGone": totals.already_gone,
        "locked": totals.locked,
        "skipped": totals.skipped,
        "failed": totals.failed,
        "blocked": sum(1 for r in report.plan.repositories if r.blocked),
        "bytesDeleted": totals.bytes_deleted,
        "durationSeconds": round(report.durations.total, 3),
        "requests": report.requests.requests,
        "throttled": report.requests.throttled,
    }


def _log_summary(prefix: str, summary: Mapping[str, object]) -> None:
    """One line: the JSON in the message (always queryable in Application Insights' `traces`)
    and the same fields as record attributes (custom dimensions under OpenTelemetry)."""
    extra = {f"acr_cleanup_{key}": value for key, value in summary.items() if value is not None}
    log.info("%s %s", prefix, json.dumps(summary, sort_keys=True), extra=extra)


async def _guarded(what: str, work: Awaitable[object]) -> object | None:
    """Await `work`; re-raise transient failures, log permanent ones with the fix."""
    try:
        return await work
    except _RetryableRun as exc:
        log.warning("acr-cleanup %s hit a transient registry error, will retry: %s", what, exc)
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

"""The Azure Functions app (Python v2 programming model): triggers, conversion, a call.

Three functions, names fixed by docs/architecture.md (the infra wires them by name):

- `on_image_pushed` (Event Grid trigger, Event Grid schema or CloudEvents 1.0): cleans the one
  repository a validated `ImagePushed` event names, never deleting the digest just pushed.
- `sweep_schedule` (timer, `%CLEANUP_SCHEDULE%`): lists the repositories the policy covers and
  puts one message per repository on the Storage queue `acr-cleanup-sweep`, plus a
  continuation when the listing is cut off by `CLEANUP_SWEEP_BUDGET_SECONDS`.
- `sweep_repository` (queue trigger): cleans the one repository a message names, or resumes the
  listing after the name a continuation carries, queueing as the timer does.

This module only turns the worker's `func.*` objects into plain data and hands them to
`acr_core.app.handlers`, which decides what to do, what to log and what the platform retries.
Settings are read once, at import, from `os.environ` (the only place that reads it).
Operating notes: docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import ssl
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import azure.functions as func
from azure.core.credentials_async import AsyncTokenCredential

from acr_core.app import handlers
from acr_core.app.events import Envelope, Ignored, make_envelope
from acr_core.app.handlers import RetryPolicy, RunReport, Shell
from acr_core.app.recording import StoreFactory
from acr_core.app.settings import Settings, SettingsError, load_settings
from acr_core.app.tag_history import HistoryFactory

SWEEP_QUEUE = "acr-cleanup-sweep"
STORAGE_CONNECTION = "AzureWebJobsStorage"
APP_ROOT = Path(__file__).resolve().parent

log = logging.getLogger("acr_cleanup")  # the logger acr_core.app.handlers writes to
app = func.FunctionApp()


def configure(
    env: Mapping[str, str],
    *,
    credential: AsyncTokenCredential | None = None,
    verify: ssl.SSLContext | bool = True,
    now: Callable[[], datetime] | None = None,
    retry: RetryPolicy | None = None,
    on_report: Callable[[str, RunReport], None] | None = None,
    ledger_store: StoreFactory | None = None,
    history: HistoryFactory | None = None,
) -> Shell:
    """(Re)read the settings from `env` and set the edges; returns the new shell.

    Azure runs this once at import with `os.environ`. Tests and `scripts/demo.py` call it to
    point the handlers at a local emulator; `on_report` lets the demo show each run's plan;
    `ledger_store` replaces the ledger's blob container (Azurite, a local directory).
    `history` replaces the tag history's table (CLEANUP_HISTORY_TABLE_URL) with another store.
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
        ledger_store=ledger_store,
        history=history,
    )
    return _shell


_shell = configure(os.environ)


@app.event_grid_trigger(arg_name="event")
async def on_image_pushed(event: func.EventGridEvent) -> None:
    """Clean the pushed repository. The converter hands over a `func.CloudEvent` instead when
    the subscription delivers CloudEvents 1.0 (azure-functions >= 1.25)."""
    await handlers.image_pushed(_shell, _envelope(event))


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
    out: func.Out[typing.List[str]],  # noqa: UP006 - the worker rejects list[str] (docs/functions-facts.md 1.6)
) -> None:
    """Fan the sweep out: one queue message per repository the policy covers."""
    messages = await handlers.scheduled_sweep(_shell, past_due=bool(timer.past_due))
    if messages is not None:
        out.set(messages)


@app.queue_trigger(arg_name="msg", queue_name=SWEEP_QUEUE, connection=STORAGE_CONNECTION)
@app.queue_output(arg_name="out", queue_name=SWEEP_QUEUE, connection=STORAGE_CONNECTION)
async def sweep_repository(
    msg: func.QueueMessage,
    out: func.Out[typing.List[str]],  # noqa: UP006 - the worker rejects list[str] (docs/functions-facts.md 1.6)
) -> None:
    """Clean the one repository a sweep message names, or continue a cut-off listing."""
    messages = await handlers.queued_sweep(_shell, msg.get_body(), msg.id)
    if messages is not None:
        out.set(messages)


def _envelope(event: func.EventGridEvent | func.CloudEvent) -> Envelope | Ignored:
    """The delivered event's fields, in either schema, as the handlers read them."""
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

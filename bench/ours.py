"""Our side: `acr_core.run.service.run_cleanup` with `keepLatest: 3` over `acr_core.AcrClient`.

For the push-triggered scenario the event the emulator delivered goes to the function's own
Event Grid handler (`function_app.on_image_pushed`), which validates it and cleans that one
repository with the pushed digest protected; the function's client is its own, so the delete
clock is not fed there.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from acr_core.planning.policy import load_policy
from acr_core.registry._network import http_transport
from acr_core.registry.client import AcrClient
from acr_core.run.limiter import ExecutionLimits
from acr_core.run.service import run_cleanup
from bench.events import PushedImage
from bench.wire import DeleteClock, RecordingTransport

KEEP = 3
POLICY: dict[str, object] = {
    "version": 1,
    "rules": [{"name": "keep-3", "repositories": ["**"], "keepLatest": KEEP}],
    # The scenarios delete up to 1,997 of 2,000 images in one repository: well past the default
    # safety limits, which exist to stop exactly that by accident.
    "safety": {"maxDeletesPerRepository": 1_000_000, "maxDeleteFraction": 1.0},
}


async def run(
    url: str,
    credential: Any,
    ca_file: str,
    repositories: Sequence[str] | None,
    pushed: PushedImage | None,
    clock: DeleteClock,
    *,
    limits: dict[str, Any],
    resource_id: str = "",
) -> dict[str, Any]:
    if pushed is not None:
        return await run_push_handler(url, credential, ca_file, pushed, resource_id)
    policy = load_policy(POLICY)
    # Exactly the transport AcrClient builds by default, wrapped to time accepted deletes.
    inner = http_transport(ssl.create_default_context(cafile=ca_file))
    async with AcrClient(url, credential, transport=RecordingTransport(inner, clock)) as client:
        report = await run_cleanup(
            client,
            policy,
            repositories=repositories,
            dry_run=False,
            limits=ExecutionLimits(**limits) if limits else None,
        )
    summary = report.to_dict()
    totals: dict[str, int] = summary["totals"]  # type: ignore[assignment]
    repos: list[dict[str, Any]] = summary["repositories"]  # type: ignore[assignment]
    errors = [f"{r['repository']}: {r['status']}" for r in repos if r.get("status") != "done"]
    return {
        "deleted": totals["deleted"] + totals["alreadyGone"],
        "failed": totals["failed"],
        "skipped": totals["skipped"],
        "status": summary["status"],
        "errors": errors[:10],
        "report_durations": summary["durations"],
    }


async def run_push_handler(
    url: str, credential: Any, ca_file: str, pushed: PushedImage, resource_id: str
) -> dict[str, Any]:
    """Hand the delivered event to the function's own Event Grid handler, `on_image_pushed`,
    configured as the app settings would configure it, and return its run summary."""
    shell = function_shell(url, credential, ca_file, resource_id)
    return await handle_push(shell, pushed)


def function_shell(
    url: str,
    credential: Any,
    ca_file: str,
    resource_id: str,
    policy: dict[str, object] | None = None,
) -> Any:
    """`function_app` configured as its app settings would configure it: one warm instance.

    `BENCH_FUNCTION_ENV` (a JSON object) adds or overrides app settings, e.g. the storage
    account the function keeps its caches in, or its SKU setting."""
    import function_app  # imported before the clock starts (bench.child)

    env = {
        "ACR_LOGIN_SERVER": urlsplit(url).netloc,
        "ACR_RESOURCE_ID": resource_id,
        "CLEANUP_POLICY": json.dumps(policy or POLICY),
        "CLEANUP_DRY_RUN": "false",
        **json.loads(os.environ.get("BENCH_FUNCTION_ENV") or "{}"),
    }
    shell = function_app.configure(
        env, credential=credential, verify=ssl.create_default_context(cafile=ca_file)
    )
    if isinstance(shell.settings, Exception):
        raise ValueError(f"the function's settings are invalid: {shell.settings}")
    return shell


async def handle_push(shell: Any, pushed: PushedImage) -> dict[str, Any]:
    """One event through `function_app.on_image_pushed` on the configured `shell`."""
    import azure.functions as func

    import function_app

    summaries: list[dict[str, Any]] = []
    capture = _SummaryCapture(summaries)
    function_app.log.addHandler(capture)
    level = function_app.log.level
    function_app.log.setLevel(logging.INFO)
    try:
        e = pushed.event
        await function_app.on_image_pushed(
            func.EventGridEvent(
                id=e["id"],
                data=e["data"],
                topic=e["topic"],
                subject=e["subject"],
                event_type=e["eventType"],
                event_time=datetime.fromisoformat(e["eventTime"]) if e.get("eventTime") else None,
                data_version=e.get("dataVersion", ""),
            )
        )
    finally:
        function_app.log.removeHandler(capture)
        function_app.log.setLevel(level)
    if not summaries:
        raise RuntimeError("the function's handler logged no run summary (it did nothing)")
    summary = summaries[-1]
    return {
        "deleted": summary["deleted"] + summary["alreadyGone"],
        "failed": summary["failed"],
        "skipped": summary["skipped"],
        "status": summary["status"],
        "errors": [],
        "handler": "function_app.on_image_pushed",
        "summary": summary,
    }


class _SummaryCapture(logging.Handler):
    """Collects the function's one-line run summaries (`acr-cleanup run {json}`)."""

    def __init__(self, into: list[dict[str, Any]]) -> None:
        super().__init__(logging.INFO)
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("acr-cleanup run {"):
            self._into.append(json.loads(message.split(" ", 2)[2]))

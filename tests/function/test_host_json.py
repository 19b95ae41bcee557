"""host.json agrees with what the code and docs/operations.md rely on."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from acr_core.app.settings import DEFAULT_SWEEP_BUDGET_SECONDS, MAX_SWEEP_BUDGET_SECONDS

HOST = Path(__file__).resolve().parents[2] / "host.json"


def host() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(HOST.read_text(encoding="utf-8"))
    return data


def _timespan(text: str) -> timedelta:
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def test_sweep_budget_ends_well_before_the_function_timeout() -> None:
    """The largest sweep budget settings accept leaves the timer minutes to write its messages."""
    timeout = _timespan(host()["functionTimeout"])
    assert timedelta(seconds=DEFAULT_SWEEP_BUDGET_SECONDS) < timeout
    assert timedelta(seconds=MAX_SWEEP_BUDGET_SECONDS) <= timeout - timedelta(minutes=5)


def test_summaries_are_logged_and_never_sampled() -> None:
    """Our INFO summary lines pass the log filter, and sampling never drops traces or failures."""
    logging = host()["logging"]
    assert logging["logLevel"]["Function"] == "Information"
    excluded = logging["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Request", "Exception", "Trace"} <= set(excluded)


def test_queue_messages_are_base64() -> None:
    """The queue extension reads base64, as the Azurite fan-out test writes the messages."""
    assert host()["extensions"]["queues"]["messageEncoding"] == "base64"

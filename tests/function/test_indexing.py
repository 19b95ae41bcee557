"""The Functions worker's own loader indexes every function with the bindings we mean."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.function import fake_protos

loader = pytest.importorskip("azure_functions_runtime.loader")
from azure_functions_runtime.bindings import meta  # noqa: E402
from azure_functions_runtime.functions import Registry  # noqa: E402

APP_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def indexed() -> dict[str, Any]:
    """Index function_app.py exactly as the worker does at start-up."""
    meta.load_binding_registry()
    # A fresh module: FunctionApp.get_functions() is not idempotent (docs/functions-facts.md 1.5).
    saved = sys.modules.pop("function_app", None)
    try:
        functions = loader.index_function_app(str(APP_DIR / "function_app.py"))
        metadata, _ = loader.process_indexed_function(
            fake_protos, Registry(), functions, str(APP_DIR)
        )
    finally:
        if saved is not None:
            sys.modules["function_app"] = saved
    return {m.name: m for m in metadata}


def bindings(metadata: Any) -> list[dict[str, Any]]:
    return sorted((json.loads(raw) for raw in metadata.raw_bindings), key=lambda b: b["name"])


def test_exactly_the_three_contract_functions(indexed: dict[str, Any]) -> None:
    """The worker finds the three functions the infrastructure wires by name."""
    assert set(indexed) == {"on_image_pushed", "sweep_schedule", "sweep_repository"}


def test_event_grid_trigger(indexed: dict[str, Any]) -> None:
    """on_image_pushed has one Event Grid trigger binding and nothing else."""
    assert bindings(indexed["on_image_pushed"]) == [
        {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
    ]


def test_timer_fans_out_to_the_queue(indexed: dict[str, Any]) -> None:
    """sweep_schedule runs on %CLEANUP_SCHEDULE%, never on start-up, and writes the sweep queue."""
    assert bindings(indexed["sweep_schedule"]) == [
        {
            "direction": "OUT",
            "type": "queue",
            "name": "out",
            "queueName": "acr-cleanup-sweep",
            "connection": "AzureWebJobsStorage",
        },
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "%CLEANUP_SCHEDULE%",
            "runOnStartup": False,
        },
    ]


def test_timer_retries_with_backoff(indexed: dict[str, Any]) -> None:
    """The timer's only retry is its function-level policy: exponential, 3 times."""
    retry = indexed["sweep_schedule"].retry_options
    assert retry.retry_strategy == "exponential_backoff"
    assert retry.max_retry_count == 3
    assert retry.minimum_interval == timedelta(seconds=10)
    assert retry.maximum_interval == timedelta(minutes=15)


def test_queue_trigger(indexed: dict[str, Any]) -> None:
    """sweep_repository is triggered by the sweep queue and writes continuations back to it."""
    assert bindings(indexed["sweep_repository"]) == [
        {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "msg",
            "queueName": "acr-cleanup-sweep",
            "connection": "AzureWebJobsStorage",
        },
        {
            "direction": "OUT",
            "type": "queue",
            "name": "out",
            "queueName": "acr-cleanup-sweep",
            "connection": "AzureWebJobsStorage",
        },
    ]

"""Build the objects the Functions worker hands our handlers, the way the worker builds them.

Events go through azure-functions' own Event Grid converter (`EventGridEventInConverter`), the
code the worker runs on each element of the array Event Grid posts: a body with `specversion`
becomes a `func.CloudEvent`, any other a `func.EventGridEvent`.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest


def event_from_json(body: dict[str, Any]) -> func.EventGridEvent:
    """One delivered event as the handler receives it (an EventGridEvent or a CloudEvent).

    Typed as EventGridEvent because that is the handler's annotation; the converter returns a
    CloudEvent for CloudEvents bodies, which the handler checks for.
    """
    decoded = EventGridEventInConverter.decode(
        Datum(json.dumps(body), "json"), trigger_metadata=None
    )
    return decoded  # type: ignore[return-value]


def timer(*, past_due: bool = False) -> TimerRequest:
    return TimerRequest(past_due=past_due)


def queue_message(body: str, *, message_id: str = "m-1") -> func.QueueMessage:
    return func.QueueMessage(id=message_id, body=body.encode(), pop_receipt="receipt")


class Out:
    """Stands in for `func.Out[...]`: keeps what the function set."""

    def __init__(self) -> None:
        self.value: list[str] | None = None

    def set(self, value: list[str]) -> None:
        self.value = value

    def get(self) -> list[str] | None:
        return self.value

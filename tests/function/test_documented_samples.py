"""Azure's documented ImagePushed samples, as the worker hands them over, reach the policy step.

The samples name `demo.azurecr.io`, which is not reachable from here, so the policy below covers
no repository of theirs: an accepted event ends at "no policy rule covers", a rejected one at
"ignored event", and neither sends a request anywhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest

import function_app
from scripts.func_objects import event_from_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
SAMPLE_TOPIC = (
    "/subscriptions/<subscription-id>/resourceGroups/<resource-group-name>"
    "/providers/Microsoft.ContainerRegistry/registries/<name>"
)
SETTINGS = {
    "ACR_LOGIN_SERVER": "demo.azurecr.io",
    "ACR_RESOURCE_ID": SAMPLE_TOPIC,
    "CLEANUP_POLICY": json.dumps({"version": 1, "rules": [{"repositories": ["apps/**"]}]}),
}


def sample(schema: str) -> dict[str, Any]:
    (event,) = json.loads((FIXTURES / f"{schema}-image-pushed.json").read_text())
    assert isinstance(event, dict)
    return event


def by_hand(schema: str) -> func.EventGridEvent:
    """The same sample built with the azure-functions constructors instead of the converter."""
    body = sample(schema)
    if schema == "cloudevents":
        cloud = func.CloudEvent(
            id=body["id"],
            source=body["source"],
            type=body["type"],
            specversion=body["specversion"],
            time=datetime(2018, 4, 25, 21, 39, 47, tzinfo=UTC),
            subject=body["subject"],
            data=body["data"],
        )
        return cloud  # type: ignore[return-value]
    return func.EventGridEvent(
        id=body["id"],
        data=body["data"],
        topic=body["topic"],
        subject=body["subject"],
        event_type=body["eventType"],
        event_time=datetime(2018, 4, 25, 21, 39, 47, tzinfo=UTC),
        data_version=body["dataVersion"],
    )


@pytest.fixture
def app(caplog: pytest.LogCaptureFixture) -> Iterator[ModuleType]:
    saved = function_app._shell
    caplog.set_level(logging.INFO, logger="acr_cleanup")
    function_app.configure(SETTINGS)
    yield function_app
    function_app._shell = saved


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "acr_cleanup"]


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize("build", [lambda s: event_from_json(sample(s)), by_hand])
async def test_documented_sample_is_accepted(
    app: ModuleType, caplog: pytest.LogCaptureFixture, schema: str, build: Any
) -> None:
    """The documented sample passes every check and stops only at the policy."""
    event = build(schema)
    expected = func.CloudEvent if schema == "cloudevents" else func.EventGridEvent
    assert isinstance(event, expected)

    await app.on_image_pushed(event)

    (line,) = lines(caplog)
    assert "no policy rule covers repository 'aci-helloworld'" in line


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_documented_sample_from_another_registry_is_ignored(
    app: ModuleType, caplog: pytest.LogCaptureFixture, schema: str
) -> None:
    """The same sample with another registry's topic is ignored with a warning."""
    body = sample(schema)
    body["topic" if schema == "eventgrid" else "source"] = SAMPLE_TOPIC.replace("<name>", "other")

    await app.on_image_pushed(event_from_json(body))

    (record,) = [r for r in caplog.records if r.name == "acr_cleanup"]
    assert record.levelno == logging.WARNING
    assert "is not the configured ACR_RESOURCE_ID" in record.getMessage()

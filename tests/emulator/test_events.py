"""ImagePushed / ImageDeleted events in Azure's documented shapes, in-process and by webhook."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from acr_emulator import EmulatorConfig, Webhook
from tests.emulator.helpers import admin_headers, push_image

RESOURCE_ID = (
    "/subscriptions/1234/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myacr"
)
EVENT_GRID_KEYS = {
    "id",
    "topic",
    "subject",
    "eventType",
    "eventTime",
    "data",
    "dataVersion",
    "metadataVersion",
}
CLOUD_EVENT_KEYS = {"id", "source", "subject", "type", "time", "data", "specversion"}


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(resource_id=RESOURCE_ID, location="westeurope")


@pytest.fixture
async def auth(emulator, emulator_client):
    return await admin_headers(emulator_client, emulator)


async def test_a_push_by_tag_fires_image_pushed_in_event_grid_shape(
    emulator, emulator_client, auth
):
    """Pushing app:v1 publishes one ImagePushed with topic, subject repo:tag and the full target."""
    events: list[dict[str, Any]] = []
    emulator.subscribe(events.append)
    digest, body = await push_image(
        emulator_client, {**auth, "user-agent": "test-agent/1.0"}, "team/app", "v1"
    )
    [event] = events
    assert set(event) == EVENT_GRID_KEYS
    assert event["eventType"] == "Microsoft.ContainerRegistry.ImagePushed"
    assert event["topic"] == RESOURCE_ID
    assert event["subject"] == "team/app:v1"
    assert (event["dataVersion"], event["metadataVersion"]) == ("2.0", "1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", event["eventTime"])
    data = event["data"]
    assert set(data) == {"id", "timestamp", "action", "location", "target", "request"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", data["timestamp"])
    assert (data["action"], data["location"]) == ("push", "westeurope")
    assert data["target"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": len(body),
        "digest": digest,
        "length": len(body),
        "repository": "team/app",
        "tag": "v1",
    }
    assert {k: data["request"][k] for k in ("host", "method", "useragent")} == {
        "host": "acr.test",
        "method": "PUT",
        "useragent": "test-agent/1.0",
    }


async def test_a_push_by_digest_has_no_tag(emulator, emulator_client, auth):
    """A digest-only push has no target.tag, and its subject is the repository."""
    events: list[dict[str, Any]] = []
    emulator.subscribe(events.append)
    digest, body = await push_image(emulator_client, auth, "team/app", "v1")
    await push_image(
        emulator_client,
        auth,
        "team/app",
        "v1-sig-tmp",
        layer=b"signature",
        subject={
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": len(body),
        },
    )
    response = await emulator_client.get("/v2/team/app/manifests/v1-sig-tmp", headers=auth)
    referrer = response.content
    by_digest = await emulator_client.put(
        f"/v2/team/app/manifests/{response.headers['docker-content-digest']}",
        content=referrer,
        headers={**auth, "content-type": response.headers["content-type"]},
    )
    assert by_digest.status_code == 201
    assert "tag" not in events[-1]["data"]["target"]
    assert events[-1]["subject"] == "team/app"


async def test_cloud_events_carry_the_same_event_in_cloudevents_1_0(
    emulator, emulator_client, auth
):
    """A CloudEvents subscriber gets source/type/time/specversion and no location."""
    events: list[dict[str, Any]] = []
    emulator.subscribe(events.append, schema="cloudevents")
    await push_image(emulator_client, auth, "team/app", "v1")
    [event] = events
    assert set(event) == CLOUD_EVENT_KEYS
    assert (event["source"], event["type"], event["specversion"]) == (
        RESOURCE_ID,
        "Microsoft.ContainerRegistry.ImagePushed",
        "1.0",
    )
    assert "location" not in event["data"]
    assert event["data"]["target"]["tag"] == "v1"


async def test_a_manifest_delete_fires_image_deleted_with_a_short_target(
    emulator, emulator_client, auth
):
    """A delete publishes ImageDeleted with subject = repository and a three-field target."""
    digest, _ = await push_image(emulator_client, auth, "team/app", "v1")
    events: list[dict[str, Any]] = []
    emulator.subscribe(events.append)
    await emulator_client.delete(f"/v2/team/app/manifests/{digest}", headers=auth)
    [event] = events
    assert event["eventType"] == "Microsoft.ContainerRegistry.ImageDeleted"
    assert event["subject"] == "team/app"
    assert event["data"]["action"] == "delete"
    assert event["data"]["request"]["method"] == "DELETE"
    assert event["data"]["target"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "repository": "team/app",
    }


async def test_untagging_fires_no_event(emulator, emulator_client, auth):
    """DELETE of a tag publishes nothing, as in ACR."""
    await push_image(emulator_client, auth, "team/app", "v1")
    await push_image(emulator_client, auth, "team/app", "v2", layer=b"two")
    events: list[dict[str, Any]] = []
    emulator.subscribe(events.append)
    response = await emulator_client.delete("/acr/v1/team%2Fapp/_tags/v1", headers=auth)
    assert response.status_code == 202
    assert events == []


async def test_cascaded_deletes_fire_one_event_per_manifest(emulator, emulator_client, auth):
    """Deleting a subject with a referrer publishes ImageDeleted for both digests."""
    digest, body = await push_image(emulator_client, auth, "team/app", "v1")
    referrer, _ = await push_image(
        emulator_client,
        auth,
        "team/app",
        "sig",
        layer=b"sig",
        subject={
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": len(body),
        },
    )
    events: list[dict[str, Any]] = []
    emulator.subscribe(events.append)
    await emulator_client.delete(f"/v2/team/app/manifests/{digest}", headers=auth)
    assert sorted(e["data"]["target"]["digest"] for e in events) == sorted([digest, referrer])


async def test_unsubscribing_stops_delivery(emulator, emulator_client, auth):
    """After unsubscribe() the callback sees nothing more."""
    events: list[dict[str, Any]] = []
    unsubscribe = emulator.subscribe(events.append)
    await push_image(emulator_client, auth, "team/app", "v1")
    unsubscribe()
    await push_image(emulator_client, auth, "team/app", "v2", layer=b"two")
    assert len(events) == 1


class Receiver:
    """A webhook endpoint that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((headers, body))
        self.arrived.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield app, f"http://127.0.0.1:{port}/hook"
    server.should_exit = True
    await task


async def test_webhooks_receive_event_grid_arrays_and_cloudevents(
    emulator, emulator_client, auth, receiver
):
    """An Event Grid webhook gets a one-element array; a CloudEvents one gets one event object."""
    app, url = receiver
    emulator.events.add_webhook(url, "eventgrid")
    emulator.events.add_webhook(url, "cloudevents")
    digest, _ = await push_image(emulator_client, auth, "team/app", "v1")
    await emulator.events.drain()
    by_type = {
        headers["content-type"]: (headers, json.loads(body)) for headers, body in app.requests
    }
    grid_headers, grid = by_type["application/json"]
    _, cloud = by_type["application/cloudevents+json; charset=utf-8"]
    assert grid_headers["aeg-event-type"] == "Notification"
    assert isinstance(grid, list)
    assert grid[0]["data"]["target"]["digest"] == digest
    assert cloud["specversion"] == "1.0"
    assert cloud["data"]["target"]["digest"] == digest
    assert [d.status for d in emulator.events.deliveries] == [200, 200]


def test_webhooks_off_loopback_are_refused():
    """A webhook URL that is not 127.0.0.1, ::1 or localhost is a ValueError."""
    with pytest.raises(ValueError, match="not on loopback"):
        Webhook("https://example.com/hook")

"""A one-shot webhook on loopback that waits for the emulator's `ImagePushed` event.

Event Grid delivers an array of events in its own schema, or CloudEvents 1.0 (one object, or an
array in batch mode); both carry the pushed image under `data.target` (acr-facts.md section 5).
A `Microsoft.EventGrid.SubscriptionValidationEvent` is answered with its validation code, as an
Event Grid webhook must, and waiting goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
MAX_BODY = 1 << 20
MAX_REQUESTS = 100


@dataclass(frozen=True)
class PushedImage:
    repository: str
    digest: str
    tag: str | None
    received: float  # wall clock (time.time()) when the event arrived
    event: dict[str, Any]
    schema: str  # "eventgrid" or "cloudevents"


def _events(body: Any) -> list[dict[str, Any]]:
    items = body if isinstance(body, list) else [body]
    return [item for item in items if isinstance(item, dict)]


def _pushed(event: dict[str, Any], received: float) -> PushedImage | None:
    kind = event.get("eventType") or event.get("type")
    if kind != PUSHED:
        return None
    target = (event.get("data") or {}).get("target") or {}
    if not isinstance(target.get("repository"), str) or not isinstance(target.get("digest"), str):
        return None
    schema = "cloudevents" if "specversion" in event else "eventgrid"
    return PushedImage(
        target["repository"], target["digest"], target.get("tag"), received, event, schema
    )


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_BODY:
        raise ValueError(f"event body of {length} bytes is larger than {MAX_BODY}")
    return await reader.readexactly(length)


async def receive_one_push(
    port: int, *, deadline_s: float, ready: bool = True, host: str = "127.0.0.1"
) -> PushedImage:
    """Listen on host:port until one `ImagePushed` event arrives; return it.

    Prints `{"ready": true}` on stdout once listening (when `ready`), so that the parent knows
    when to push. Bounded by `deadline_s` seconds and `MAX_REQUESTS` deliveries.
    """
    found: asyncio.Future[PushedImage] = asyncio.get_running_loop().create_future()
    deliveries = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal deliveries
        deliveries += 1
        reply: dict[str, Any] = {}
        try:
            body = json.loads(await _read_request(reader) or b"null")
            received = time.time()
            for event in _events(body):
                if event.get("eventType") == VALIDATION:
                    reply = {"validationResponse": (event.get("data") or {}).get("validationCode")}
                pushed = _pushed(event, received)
                if pushed is not None and not found.done():
                    found.set_result(pushed)
            status = "200 OK"
        except (ValueError, asyncio.IncompleteReadError):
            status = "400 Bad Request"
        payload = json.dumps(reply).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()
        if deliveries >= MAX_REQUESTS and not found.done():
            found.set_exception(RuntimeError(f"{MAX_REQUESTS} deliveries without ImagePushed"))

    server = await asyncio.start_server(handle, host, port)
    async with server:
        if ready:
            print(json.dumps({"ready": True}), flush=True)
        async with asyncio.timeout(deadline_s):
            return await found

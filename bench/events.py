"""A webhook on loopback that waits for the emulator's `ImagePushed` event.

Event Grid delivers an array of events in its own schema, or CloudEvents 1.0 (one object, or an
array in batch mode); both carry the pushed image under `data.target` (docs/acr-facts.md section 5).
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


class PushListener:
    """A webhook on loopback: each `wait()` returns the next `ImagePushed` event, in the order
    they arrived; every other delivery (the `ImageDeleted` events a cleanup causes) is
    answered 200 and dropped, as an Event Grid subscription filtered to `ImagePushed` drops
    them. Bounded by `deadline_s` seconds of waiting."""

    def __init__(self, port: int, *, host: str = "127.0.0.1") -> None:
        self._port = port
        self._host = host
        self._found: asyncio.Queue[PushedImage] = asyncio.Queue()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> PushListener:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait(self, deadline_s: float) -> PushedImage:
        async with asyncio.timeout(deadline_s):
            return await self._found.get()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply: dict[str, Any] = {}
        try:
            body = json.loads(await _read_request(reader) or b"null")
            received = time.time()
            for event in _events(body):
                if event.get("eventType") == VALIDATION:
                    reply = {"validationResponse": (event.get("data") or {}).get("validationCode")}
                pushed = _pushed(event, received)
                if pushed is not None:
                    self._found.put_nowait(pushed)
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

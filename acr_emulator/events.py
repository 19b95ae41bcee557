"""ImagePushed / ImageDeleted events, shaped as Azure documents them, and their delivery.

Shapes (docs/acr-facts.md section 5; learn.microsoft.com event-schema-container-registry):
- Event Grid schema: `id, topic, subject, eventType, eventTime, data, dataVersion, metadataVersion`;
  `data.location` and `dataVersion "2.0"` follow the newer docs.azure.cn sample.
- CloudEvents 1.0: `id, source, subject, type, time, data, specversion`; its `data` carries no
  `location`, exactly as the documented sample.
- A push by tag has `subject` `repo:tag` and `target.tag`; a push by digest (index children,
  referrers) has neither tag nor `:tag` in the subject (UNCERTAIN in ACR; docs/emulator.md).
- A delete has `subject` `repo` and a target of `mediaType, digest, repository` only.
Untagging fires no event (container-registry-webhook-reference.md).

Webhooks get what Event Grid sends: the Event Grid schema as a JSON array with header
`aeg-event-type: Notification`; CloudEvents one event per request as
`application/cloudevents+json`. Only loopback URLs are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from acr_emulator.clock import format_acr_time, format_event_time

Schema = Literal["eventgrid", "cloudevents"]
SCHEMAS = ("eventgrid", "cloudevents")
PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
# Short on purpose: Event Grid retries for 24 h (10 s, 30 s, 1 min, ...), tests cannot wait.
WEBHOOK_RETRY_DELAYS = (0.05, 0.2, 0.5)
PUBLISHED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class RequestInfo:
    host: str
    method: str
    useragent: str


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    schema: Schema = "eventgrid"

    def __post_init__(self) -> None:
        if self.schema not in SCHEMAS:
            raise ValueError(f"webhook schema must be one of {SCHEMAS}, not {self.schema!r}")
        check_loopback(self.url)


def check_loopback(url: str) -> None:
    """Refuse any webhook that would send traffic off this machine."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URL {url!r} must be http or https")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"webhook URL {url!r} is not on loopback (127.0.0.1 or ::1)")


def image_event(
    event_type: str,
    *,
    resource_id: str,
    location: str,
    repository: str,
    digest: str,
    media_type: str,
    size: int | None,
    tag: str | None,
    request: RequestInfo,
    when: datetime,
) -> dict[str, Any]:
    """One event in the Event Grid schema."""
    target: dict[str, Any] = {"mediaType": media_type}
    if event_type == PUSHED:
        target |= {"size": size, "digest": digest, "length": size, "repository": repository}
        if tag is not None:
            target["tag"] = tag
    else:
        target |= {"digest": digest, "repository": repository}
    data = {
        "id": str(uuid.uuid4()),
        "timestamp": format_event_time(when),
        "action": "push" if event_type == PUSHED else "delete",
        "location": location,
        "target": target,
        "request": {
            "id": str(uuid.uuid4()),
            "host": request.host,
            "method": request.method,
            "useragent": request.useragent,
        },
    }
    subject = f"{repository}:{tag}" if event_type == PUSHED and tag else repository
    return {
        "id": str(uuid.uuid4()),
        "topic": resource_id,
        "subject": subject,
        "eventType": event_type,
        "eventTime": format_acr_time(when),
        "data": data,
        "dataVersion": "2.0",
        "metadataVersion": "1",
    }


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in event["data"].items() if k != "location"}
    return {
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": data,
        "specversion": "1.0",
    }


def render(event: dict[str, Any], schema: Schema) -> dict[str, Any]:
    return to_cloudevent(event) if schema == "cloudevents" else event


Subscriber = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    event_id: str
    status: int | None
    attempts: int


class EventBus:
    """In-process subscribers (called synchronously) and webhooks (posted in the background)."""

    def __init__(self, webhooks: tuple[Webhook, ...] = (), *, verify: str | bool = True) -> None:
        self._subscribers: list[tuple[Subscriber, Schema]] = []
        self.webhooks: list[Webhook] = list(webhooks)
        self.deliveries: deque[Delivery] = deque(maxlen=PUBLISHED_KEPT)
        # The most recent events (Event Grid schema); bounded so long benchmarks stay small.
        self.published: deque[dict[str, Any]] = deque(maxlen=PUBLISHED_KEPT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._verify: str | bool | ssl.SSLContext = verify
        self._client: httpx.AsyncClient | None = None

    def subscribe(self, callback: Subscriber, schema: Schema = "eventgrid") -> Callable[[], None]:
        """Call `callback(event)` for every event; returns a function that unsubscribes."""
        if schema not in SCHEMAS:
            raise ValueError(f"schema must be one of {SCHEMAS}, not {schema!r}")
        entry = (callback, schema)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(entry)

        return unsubscribe

    def add_webhook(self, url: str, schema: Schema = "eventgrid") -> None:
        self.webhooks.append(Webhook(url, schema))

    def publish(self, event: dict[str, Any]) -> None:
        self.published.append(event)
        for callback, schema in list(self._subscribers):
            callback(render(event, schema))
        if self.webhooks:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            for hook in self.webhooks:
                task = loop.create_task(self._deliver(hook, event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every webhook delivery started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _deliver(self, hook: Webhook, event: dict[str, Any]) -> None:
        if self._client is None:
            verify = self._verify
            if isinstance(verify, str):
                verify = ssl.create_default_context(cafile=verify)
            self._client = httpx.AsyncClient(verify=verify, timeout=30.0, trust_env=False)
        if hook.schema == "cloudevents":
            body = json.dumps(to_cloudevent(event)).encode()
            headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
        else:
            body = json.dumps([event]).encode()
            headers = {"content-type": "application/json", "aeg-event-type": "Notification"}
        status: int | None = None
        attempts = 0
        for delay in (0.0, *WEBHOOK_RETRY_DELAYS):
            await asyncio.sleep(delay)
            attempts += 1
            try:
                response = await self._client.post(hook.url, content=body, headers=headers)
                status = response.status_code
            except httpx.HTTPError:
                status = None
                continue
            # Event Grid does not retry 400, 413 or (for webhooks) 401 (delivery-and-retry.md).
            if status < 300 or status in (400, 401, 413):
                break
        self.deliveries.append(Delivery(hook.url, event["id"], status, attempts))

"""The function's tag history: the table it lives in, and what each `ImagePushed` adds to it.

Each tagged push is a tag-to-digest move at the event's `data.timestamp` (the registry's clock,
docs/acr-facts.md section 5), recorded before the run it triggers, so a digest `prod` has just
left is remembered before anything could delete it. Pushes by digest (index children,
referrers) have no tag and add nothing. Recording merges with what is stored (acr_core.history),
so Event Grid's redeliveries and out-of-order deliveries change nothing. When it fails, the
handler still runs the cleanup (whose `previousDigests` rules then delete nothing, the history
being unreadable) and then fails the invocation, so Event Grid delivers the event again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from azure.core.credentials_async import AsyncTokenCredential

from acr_core.app.events import Envelope, ImagePushed
from acr_core.app.settings import Settings
from acr_core.history.model import Observation
from acr_core.history.store import HistoryStore, TableHistory
from acr_core.storage.tables import TableStore

# Tests and the demo give the Shell one of these instead of a table URL.
HistoryFactory = Callable[[Settings], HistoryStore]

log = logging.getLogger("acr_cleanup")


@asynccontextmanager
async def opened(
    settings: Settings,
    factory: HistoryFactory | None,
    credential: Callable[[], AsyncTokenCredential],
) -> AsyncIterator[HistoryStore | None]:
    """The history for one invocation (None: none configured), closed afterwards."""
    store: HistoryStore | None = None
    if factory is not None:
        store = factory(settings)
    elif settings.history_table_url is not None:
        rows = TableStore(settings.history_table_url, credential())
        store = TableHistory(rows, registry=settings.login_server)
    try:
        yield store
    finally:
        if store is not None:
            await store.close()


def pushed_at(envelope: Envelope) -> datetime | None:
    """The push's `data.timestamp` (ISO 8601, up to 9 fractional digits), or None."""
    data = envelope.data
    value = data.get("timestamp") if isinstance(data, Mapping) else None
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        # Python reads at most 6 fractional digits; ACR writes 9 (docs/acr-facts.md section 5).
        head, dot, rest = value.partition(".")
        if dot:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            value = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def record_push(
    settings: Settings,
    factory: HistoryFactory | None,
    credential: Callable[[], AsyncTokenCredential],
    envelope: Envelope,
    pushed: ImagePushed,
) -> str | None:
    """Record a tagged push's move in the history; returns why it could not be, or None."""
    if pushed.tag is None:
        return None
    at = pushed_at(envelope)
    if at is None:
        log.info(
            "acr-cleanup event %s has no usable data.timestamp; the next run's listing records "
            "where %s points",
            pushed.event_id,
            pushed.tag,
        )
        return None
    try:
        async with opened(settings, factory, credential) as store:
            if store is None:
                return None
            await store.record(pushed.repository, [Observation(pushed.tag, pushed.digest, at)])
    except Exception as exc:  # whatever failed, the event must be delivered again
        return f"recording {pushed.repository}:{pushed.tag} in the tag history failed: {exc}"
    return None

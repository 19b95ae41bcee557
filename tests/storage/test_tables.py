"""The Table Storage backend and the tag history on it, against Azurite's table service."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from acr_core.history.model import DEPTH, HistoryError, Observation, previous
from acr_core.history.store import TableHistory
from acr_core.storage.tables import TableError, TableStore
from tests.storage.azurite_tables import (
    ACCOUNT,
    CREDENTIAL,
    azurite_tables_fixture,  # noqa: F401 - the fixture `azurite_tables`
    free_port,
    new_table,
)

pytestmark = pytest.mark.azurite

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIGESTS = [f"sha256:{i:064x}" for i in range(12)]


@pytest.fixture
async def table_url(azurite_tables: str) -> str:
    """A fresh table, as the Bicep would create it."""
    return await new_table(azurite_tables)


async def test_rows_are_written_only_as_they_were_read(table_url: str) -> None:
    """Create fails on an existing row, update on a stale ETag; keys with slashes round-trip."""
    store = TableStore(table_url, CREDENTIAL)
    try:
        assert await store.get("r/apps/web", "prod") is None
        assert await store.put("r/apps/web", "prod", "one", etag=None)
        assert not await store.put("r/apps/web", "prod", "again", etag=None)
        first = await store.get("r/apps/web", "prod")
        assert first is not None
        assert first.value == "one"
        assert await store.put("r/apps/web", "prod", "two", etag=first.etag)
        assert not await store.put("r/apps/web", "prod", "stale", etag=first.etag)
        assert await store.put("r/apps/web", "a/b#c?d", "odd", etag=None)
        rows = [row async for row in store.list("r/apps/web")]
        assert [(r.key, r.value) for r in rows] == [("a/b#c?d", "odd"), ("prod", "two")]
        assert [row async for row in store.list("r/apps")] == []
    finally:
        await store.close()


async def test_concurrent_writers_keep_exactly_the_last_digests(table_url: str) -> None:
    """Four instances recording shuffled, duplicated pushes of one tag at once leave the table
    remembering its current digest and the last DEPTH before it, in order."""
    pushes = [DIGESTS[i % len(DIGESTS)] for i in range(40)] + [DIGESTS[3]]
    events = [Observation("prod", d, T0 + timedelta(seconds=i)) for i, d in enumerate(pushes)]
    deliveries = events + random.Random(1).sample(events, 15)
    random.Random(2).shuffle(deliveries)
    stores = [TableStore(table_url, CREDENTIAL) for _ in range(4)]
    histories = [TableHistory(s, registry="r.example") for s in stores]

    async def deliver(i: int) -> None:
        for event in deliveries[i::4]:
            await histories[i].record("apps/web", [event])

    try:
        await asyncio.gather(*(deliver(i) for i in range(4)))
        memory = await histories[0].observe("apps/web", [])
    finally:
        for store in stores:
            await store.close()
    expected = [DIGESTS[i] for i in (2, 1, 0, 11, 10, 9, 8, 7, 6, 5, 4)][:DEPTH]
    assert memory["prod"][0].digest == DIGESTS[3]
    assert list(previous(memory["prod"])) == expected


async def test_a_missing_table_is_an_error_saying_to_create_it(azurite_tables: str) -> None:
    """Reading a table that does not exist says so and what to do, never 'no history'."""
    history = TableHistory(TableStore(f"{azurite_tables}/nosuchtable", CREDENTIAL), registry="r")
    try:
        with pytest.raises(HistoryError, match=r"nosuchtable.*create the table"):
            await history.observe("apps/web", [])
        with pytest.raises(HistoryError, match="create the table"):
            await history.record("apps/web", [Observation("prod", DIGESTS[0], T0)])
    finally:
        await history.close()


async def test_an_unreachable_account_is_an_error(table_url: str) -> None:
    """A storage account that does not answer fails the read with the table's URL."""
    url = f"http://127.0.0.1:{free_port()}/{ACCOUNT}/history"
    store = TableStore(url, CREDENTIAL)
    try:
        with pytest.raises(TableError, match=f"cannot read table {url}"):
            await store.get("r/apps/web", "prod")
    finally:
        await store.close()


def test_a_table_url_is_checked() -> None:
    """Something that is not a table URL is refused with the form it should have."""
    with pytest.raises(TableError, match="is not a table URL"):
        TableStore("myaccount", CREDENTIAL)

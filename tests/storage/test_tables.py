"""The Table Storage backend and the tag history on it, against Azurite's table service."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables.aio import TableClient

from acr_core.history.model import DEPTH, HistoryError, Observation, previous
from acr_core.history.store import TableHistory
from acr_core.storage.tables import TableError, TableStore

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parents[2]
# Azurite's well-known development account (Azurite README, "Default storage account").
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CREDENTIAL = AzureNamedKeyCredential(ACCOUNT, KEY)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIGESTS = [f"sha256:{i:064x}" for i in range(12)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def azurite_tables() -> Iterator[str]:
    """Azurite's table service on a free loopback port; yields the account's endpoint."""
    binary = os.environ.get("AZURITE")
    path = Path(binary).parent if binary else ROOT / ".tools/azurite/node_modules/.bin"
    if not (path / "azurite-table").exists():
        pytest.skip(f"Azurite is not installed at {path} (make setup installs it)")
    port = _free_port()
    process = subprocess.Popen(
        [str(path / "azurite-table"), "--tableHost", "127.0.0.1", "--tablePort", str(port),
         "--inMemoryPersistence", "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("azurite-table did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def table_url(azurite_tables: str) -> str:
    """A fresh table, as the Bicep would create it."""
    name = f"history{random.randrange(10**9)}"
    async with TableClient(azurite_tables, name, credential=CREDENTIAL) as client:
        await client.create_table()
    return f"{azurite_tables}/{name}"


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
    url = f"http://127.0.0.1:{_free_port()}/{ACCOUNT}/history"
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

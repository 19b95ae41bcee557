"""The moving-tag history end to end: pushes move `prod`, the function records each move, and
a later sweep keeps the digests `prod` left while it cleans every other untagged image."""

from __future__ import annotations

import json
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from acr_core.app.settings import Settings
from acr_core.app.sweep import sweep_message
from acr_core.history.model import HistoryError
from acr_core.history.store import TableHistory
from acr_core.storage.tables import MemoryTable, TableStore
from scripts.func_objects import Out, event_from_json, queue_message
from tests.function.conftest import Registry, summaries
from tests.storage.azurite_tables import CREDENTIAL, azurite_tables_fixture, new_table  # noqa: F401

DAY = timedelta(days=1)
POLICY = {
    "version": 2,
    "rules": [
        {
            "name": "apps",
            "repositories": ["apps/**"],
            "keep": [{"previousDigests": {"tags": ["prod"], "count": 2}}],
            "delete": {"untagged": {"olderThan": "1d"}},
        }
    ],
}
TABLE = "https://history.table.core.windows.net/tags"  # set, so the policy loads; replaced below


def configured(configure: Any, table: MemoryTable) -> ModuleType:
    app: ModuleType = configure(CLEANUP_POLICY=json.dumps(POLICY), CLEANUP_HISTORY_TABLE_URL=TABLE)

    def history(settings: Settings) -> TableHistory:
        return TableHistory(table, registry=settings.login_server)

    app._shell.history = history
    return app


async def push_and_deliver(registry: Registry, app: ModuleType, tag: str | None, age: int) -> str:
    """Push an image `age` days ago and deliver its ImagePushed event to the function."""
    registry.eventgrid.clear()
    pushed = await registry.push("apps/web", tag, age=age * DAY)
    (event,) = registry.pushed_events()
    await app.on_image_pushed(event_from_json(event))
    return pushed.digest


async def test_the_digests_prod_left_survive_the_sweep(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """prod moves p1 -> p2 -> p3 -> p4 (an event each); the sweep keeps p3 and p2 (count 2)
    and deletes p1, an untagged build and what a `dev` tag left behind."""
    app = configured(configure, MemoryTable())
    p1 = await push_and_deliver(registry, app, "prod", 12)
    dev1 = await push_and_deliver(registry, app, "dev", 11)
    p2 = await push_and_deliver(registry, app, "prod", 10)
    build = await push_and_deliver(registry, app, None, 9)
    p3 = await push_and_deliver(registry, app, "prod", 8)
    dev2 = await push_and_deliver(registry, app, "dev", 7)
    p4 = await push_and_deliver(registry, app, "prod", 6)

    await app.sweep_repository(queue_message(sweep_message("apps/web")), Out())

    assert registry.digests("apps/web") == {p4, p3, p2, dev2}
    assert registry.tags("apps/web") == {"prod", "dev"}
    assert {p1, dev1, build}.isdisjoint(registry.digests("apps/web"))
    last = summaries(app_log())[-1]
    assert last["trigger"] == "sweep"
    assert last["blocked"] == 0


async def test_without_the_history_the_sweep_would_delete_them(
    registry: Registry, configure: Any
) -> None:
    """The control: a history that forgot the events keeps only what the sweep's own listing
    shows, so prod's earlier digests are untagged leftovers like any other."""
    table = MemoryTable()
    app = configured(configure, table)
    await push_and_deliver(registry, app, "prod", 12)
    await push_and_deliver(registry, app, "prod", 10)
    p3 = await push_and_deliver(registry, app, "prod", 8)
    forgotten = configured(configure, MemoryTable())

    await forgotten.sweep_repository(queue_message(sweep_message("apps/web")), Out())

    assert registry.digests("apps/web") == {p3}


class Unreadable(TableHistory):
    async def observe(self, repository: str, observations: Any) -> Any:
        raise HistoryError("cannot read table https://x.table.core.windows.net/tags: offline")

    async def record(self, repository: str, observations: Any) -> None:
        raise HistoryError("cannot write table https://x.table.core.windows.net/tags: offline")


async def test_an_unreadable_history_deletes_nothing_and_the_event_is_retried(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """With the table unreachable the run deletes nothing (blocked, saying why), and the push
    handler fails so that Event Grid delivers the event again."""
    app = configured(configure, MemoryTable())
    await push_and_deliver(registry, app, "prod", 12)
    await push_and_deliver(registry, app, None, 11)
    await push_and_deliver(registry, app, "prod", 10)
    before = registry.state()
    app._shell.history = lambda settings: Unreadable(MemoryTable(), registry="r")

    with pytest.raises(Exception, match="recording apps/web:prod in the tag history failed"):
        await push_and_deliver(registry, app, "prod", 8)
    await app.sweep_repository(queue_message(sweep_message("apps/web")), Out())

    after = registry.state()
    assert after["apps/web"][0] >= before["apps/web"][0]  # nothing deleted, one image more
    assert summaries(app_log())[-1]["blocked"] == 1
    blocked = [r.getMessage() for r in app_log() if "is blocked" in r.getMessage()]
    assert "needs the tag history, which could not be read or written" in blocked[-1]
    assert "offline" in blocked[-1]


async def test_a_move_only_its_event_saw_is_remembered(registry: Registry, configure: Any) -> None:
    """prod moves twice before any run lists it: the event of the middle push is what tells
    the history that prod pointed to p2, so p2 survives the sweep (its own run keeps it anyway,
    as the pushed digest)."""
    app = configured(configure, MemoryTable())
    p1 = await push_and_deliver(registry, app, "prod", 12)
    registry.eventgrid.clear()
    p2 = (await registry.push("apps/web", "prod", age=10 * DAY)).digest
    (middle,) = registry.pushed_events()
    p3 = (await registry.push("apps/web", "prod", age=8 * DAY)).digest

    await app.on_image_pushed(event_from_json(middle))
    await app.sweep_repository(queue_message(sweep_message("apps/web")), Out())

    assert registry.digests("apps/web") == {p3, p2, p1}


@pytest.mark.azurite
async def test_the_history_in_a_real_table_keeps_prods_digests(
    registry: Registry, configure: Any, azurite_tables: str
) -> None:
    """The same flow with the history in Azurite's Table Storage: events and runs write rows
    (ETag-conditional), and the sweep keeps what prod left."""
    url = await new_table(azurite_tables)
    app: ModuleType = configure(CLEANUP_POLICY=json.dumps(POLICY), CLEANUP_HISTORY_TABLE_URL=url)
    app._shell.history = lambda settings: TableHistory(
        TableStore(url, CREDENTIAL), registry=settings.login_server
    )
    p1 = await push_and_deliver(registry, app, "prod", 12)
    build = await push_and_deliver(registry, app, None, 11)
    p2 = await push_and_deliver(registry, app, "prod", 10)
    p3 = await push_and_deliver(registry, app, "prod", 8)
    p4 = await push_and_deliver(registry, app, "prod", 6)

    await app.sweep_repository(queue_message(sweep_message("apps/web")), Out())

    assert registry.digests("apps/web") == {p4, p3, p2}
    assert {p1, build}.isdisjoint(registry.digests("apps/web"))
    store = TableStore(url, CREDENTIAL)
    try:
        rows = [row async for row in store.list(f"{registry.server.login_server}/apps/web")]
    finally:
        await store.close()
    assert [row.key for row in rows] == ["prod"]
    assert [digest for digest, _ in json.loads(rows[0].value)] == [p4, p3, p2, p1]

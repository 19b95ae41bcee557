"""The function's cache in its own storage account (Azurite here): push runs read less.

The first push run lists the repository in full and keeps its snapshot and raw manifests in
the blob container; the next push run reads the snapshot back, reads only what changed, and
reaches the same final state a full read would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from acr_core.storage.blob import BlobStore
from scripts.func_objects import event_from_json
from tests.function.conftest import Registry, summaries
from tests.storage.azurite import azurite_service

DAY = timedelta(days=1)
CONTAINER = "acr-cleanup-cache"
RAW_GET = "/v2/{name}/manifests/{reference}"

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def azurite_blob() -> Iterator[str]:
    with azurite_service("blob") as connection_string:
        yield connection_string


@pytest.fixture
async def container(azurite_blob: str) -> AsyncIterator[BlobStore]:
    store = BlobStore.from_connection_string(azurite_blob, CONTAINER)
    await store.create_container()
    yield store
    await store.close()


async def test_second_push_run_reads_only_what_changed(
    registry: Registry, app: ModuleType, app_log: Any, container: BlobStore, azurite_blob: str
) -> None:
    """Two pushes: the second run reads no raw manifest it had seen, and keepLatest holds."""
    app._shell.cache_store = lambda _: BlobStore.from_connection_string(azurite_blob, CONTAINER)
    for age, tag in zip((10, 9, 8), ("v1", "v2", "v3"), strict=True):
        await registry.push("apps/web", tag, age=age * DAY)
    registry.eventgrid.clear()
    await registry.push("apps/web", "v4", age=3 * DAY)
    await app.on_image_pushed(event_from_json(registry.pushed_events()[-1]))
    keys = [key async for key in container.list()]
    assert any(key.startswith("snapshots/") for key in keys)
    assert registry.tags("apps/web") == {"v2", "v3", "v4"}  # v4, just pushed, is protected

    registry.emulator.counters.reset()
    await registry.push("apps/web", "v5", age=2 * DAY)
    pushes = registry.emulator.counters.total
    await app.on_image_pushed(event_from_json(registry.pushed_events()[-1]))
    assert registry.tags("apps/web") == {"v3", "v4", "v5"}
    raw_reads = registry.emulator.counters.count(endpoint=RAW_GET, method="GET")
    assert raw_reads <= pushes  # the pusher's own reads; the run read no manifest content
    first, second = summaries(app_log())[-2:]
    assert second["requests"] <= first["requests"]

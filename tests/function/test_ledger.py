"""The function records each run in its ledger container (Azurite here), and a ledger it
cannot write stops the run before anything is deleted."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from typing import Any, cast

import pytest
from azure.core.credentials_async import AsyncTokenCredential

import function_app
from acr_core.ledger.ledger import Ledger
from acr_core.run.recording import RecordingError
from acr_core.storage.blob import BlobStore
from acr_emulator.testing import DEFAULT_OID, AsyncFakeCredential
from scripts.func_objects import event_from_json
from tests.function.conftest import Registry, app_settings
from tests.function.test_push_trigger import DAY, seed_history
from tests.storage.azurite import azurite_service


@pytest.fixture(scope="module")
def azurite_blob() -> Iterator[str]:
    with azurite_service("blob") as connection_string:
        yield connection_string


@pytest.fixture
def configured(registry: Registry, azurite_blob: str) -> Iterator[Any]:
    saved = function_app._shell

    def apply(container: str) -> None:
        url = azurite_blob.split("BlobEndpoint=")[1].rstrip(";") + f"/{container}"
        function_app.configure(
            app_settings(registry, CLEANUP_LEDGER_URL=url),
            credential=cast(AsyncTokenCredential, AsyncFakeCredential()),
            verify=ssl.create_default_context(cafile=registry.server.ca_file),
            # Azurite takes its account key, not the managed identity: the same container.
            ledger_store=lambda _: BlobStore.from_connection_string(azurite_blob, container),
        )

    yield apply
    function_app._shell = saved


async def test_a_push_run_is_in_the_ledger_with_its_event_and_identity(
    registry: Registry, configured: Any, azurite_blob: str
) -> None:
    """Each deletion of the push's run is recorded with trigger push, the event id and the oid."""
    store = BlobStore.from_connection_string(azurite_blob, "ledger")
    await store.create_container()
    configured("ledger")
    old = await seed_history(registry)
    await registry.push("apps/web", "v5", age=0 * DAY)
    (event,) = registry.pushed_events()
    await function_app.on_image_pushed(event_from_json(event))
    entries = await Ledger(store).entries()
    await store.close()
    assert sorted(e.digest for e in entries) == sorted(old[:2])
    assert {(e.info.trigger, e.info.event_id, e.info.principal) for e in entries} == {
        ("push", event["id"], DEFAULT_OID)
    }
    assert {e.outcome for e in entries} == {"applied"}


async def test_a_ledger_it_cannot_write_deletes_nothing_and_says_why(
    registry: Registry, configured: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No ledger container: the invocation fails (to be retried) and logs why; nothing goes."""
    caplog.set_level(logging.INFO, logger="acr_cleanup")
    configured("absent")
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=0 * DAY)
    before = registry.digests("apps/web")
    (event,) = registry.pushed_events()
    with pytest.raises(RecordingError):
        await function_app.on_image_pushed(event_from_json(event))
    assert registry.digests("apps/web") == before
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("stopped before deleting anything" in m and "ledger" in m for m in errors)

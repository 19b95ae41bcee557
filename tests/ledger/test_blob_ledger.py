"""The ledger in a blob container (Azurite), as the function writes it: records, reads back,
refuses to overwrite, and a missing container stops the run before it deletes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from acr_core.ledger.ledger import Ledger, LedgerError
from acr_core.ledger.recorder import LedgerRecorder
from acr_core.run.service import run_cleanup
from acr_core.storage.blob import BlobStore
from scripts.oci_push import push_image
from tests.ledger.conftest import LATER, Stage
from tests.storage.azurite import azurite_service


@pytest.fixture(scope="module")
def azurite_blob() -> Iterator[str]:
    with azurite_service("blob") as connection_string:
        yield connection_string


@pytest.fixture
async def blob_ledger(azurite_blob: str) -> AsyncIterator[Ledger]:
    store = BlobStore.from_connection_string(azurite_blob, "ledger")
    await store.create_container()
    try:
        yield Ledger(store)
    finally:
        await store.close()


async def test_a_run_recorded_in_blob_storage_reads_back_and_stays_unchanged(
    stage: Stage, blob_ledger: Ledger
) -> None:
    """The run's documents are in the container, readable, and cannot be written again."""
    old = await push_image(stage.http, "app", "v1", label="1")
    await push_image(stage.http, "app", "v2", label="2")
    stage.ledger = blob_ledger
    report = await stage.run()
    [entry] = await blob_ledger.entries()
    assert (entry.digest, entry.outcome) == (old.digest, report.outcomes[0].outcome.value)
    assert entry.manifest is not None
    assert entry.manifest.raw is not None
    keys = [key async for key in blob_ledger.store.list("runs/")]
    assert keys == [f"runs/{entry.info.run}/intent.json", f"runs/{entry.info.run}/report.json"]
    with pytest.raises(LedgerError, match="already exists"):
        await blob_ledger.write_run(entry.info, "report", [entry], LATER)


async def test_a_missing_container_stops_the_run_before_it_deletes(
    stage: Stage, azurite_blob: str
) -> None:
    """No container (not created, or no access): the run raises and the registry is unchanged."""
    await push_image(stage.http, "app", "v1", label="1")
    await push_image(stage.http, "app", "v2", label="2")
    before = stage.digests("app")
    store = BlobStore.from_connection_string(azurite_blob, "missing")
    recorder = LedgerRecorder(Ledger(store), stage.client, stage.policy, trigger="test")
    try:
        with pytest.raises(LedgerError, match="ContainerNotFound"):
            await run_cleanup(
                stage.client, stage.policy, dry_run=False, now=LATER, recorder=recorder
            )
    finally:
        await store.close()
    assert stage.digests("app") == before

"""The function's deletion ledger: a blob container of its own storage account, written
through its managed identity (`CLEANUP_LEDGER_URL`; infra/ creates the container with a
time-based immutability policy and grants the identity Storage Blob Data Contributor on that
container only). Unset, runs are not recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from azure.core.credentials_async import AsyncTokenCredential

from acr_core.app.settings import Settings
from acr_core.ledger.ledger import Ledger
from acr_core.ledger.recorder import LedgerRecorder, ManifestSource
from acr_core.storage.blob import BlobStore
from acr_core.storage.objects import ObjectStore

__all__ = ["StoreFactory", "ledger_recorder"]

# Tests and the demo replace the blob container (Azurite, a directory) by the URL's store.
StoreFactory = Callable[[str], ObjectStore]


@asynccontextmanager
async def ledger_recorder(
    settings: Settings,
    credential: AsyncTokenCredential | None,
    client: ManifestSource,
    *,
    trigger: str,
    event_id: str | None,
    store_factory: StoreFactory | None = None,
) -> AsyncIterator[LedgerRecorder | None]:
    """A recorder for one run into the configured ledger, or None when there is none."""
    url = settings.ledger_url
    if url is None:
        yield None
        return
    store = store_factory(url) if store_factory is not None else BlobStore(url, credential)
    try:
        yield LedgerRecorder(
            Ledger(store), client, settings.policy, trigger=trigger, event_id=event_id
        )
    finally:
        await store.close()

"""Where the cleaner keeps what it must remember between runs: keyed bytes and rows.

Backends: memory, a local directory (the CLI), Azure Blob and Table Storage through the
function's managed identity (Azurite in tests). Nothing here knows ACR.
"""

from acr_core.storage.objects import DirectoryStore, MemoryStore, ObjectStore, StoreError

__all__ = ["DirectoryStore", "MemoryStore", "ObjectStore", "StoreError"]

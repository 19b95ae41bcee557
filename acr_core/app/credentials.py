"""The credential the function signs in to the registry with: the managed identity, per loop."""

from __future__ import annotations

import asyncio

from azure.core.credentials_async import AsyncTokenCredential


class ManagedIdentity:
    """This event loop's managed-identity credential, created on first use.

    Kept for the life of the worker's loop so azure-identity's token cache spares a call to
    the identity endpoint on every run; a new loop (as in tests) gets a new credential, since
    its HTTP session is bound to the loop that created it.
    """

    def __init__(self) -> None:
        self._current: tuple[asyncio.AbstractEventLoop, AsyncTokenCredential] | None = None

    def for_this_loop(self, client_id: str | None) -> AsyncTokenCredential:
        """The user-assigned identity `client_id` (AZURE_CLIENT_ID) names, or with None,
        azure-identity's default chain (the system-assigned identity in Azure)."""
        loop = asyncio.get_running_loop()
        if self._current is None or self._current[0] is not loop:
            from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

            credential: AsyncTokenCredential = (
                ManagedIdentityCredential(client_id=client_id)
                if client_id is not None
                else DefaultAzureCredential()
            )
            self._current = (loop, credential)
        return self._current[1]

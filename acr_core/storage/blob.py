"""`BlobStore`: keyed bytes in one Azure Blob Storage container, for the function app.

In Azure the function reaches its own storage account through its managed identity (an
``AsyncTokenCredential``; the role it needs is Storage Blob Data Contributor on the account or
the container, granted by infra/). The tests use Azurite through a connection string. Each key
is one block blob, written with one Put Blob request (the SDK uploads up to 64 MiB at once), so
a reader sees the old bytes or the new, never a part; ``overwrite=False`` sends
``If-None-Match: *``, which the service refuses when the blob exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient, ExponentialRetry

from acr_core.storage.objects import StoreError, check_key

__all__ = ["BlobStore"]


def _client_options(retries: int) -> dict[str, Any]:
    """The SDK's own retries (on 408/429/5xx and connection errors), kept but short.

    The storage SDK's default waits 15 s, then 18 s, then 24 s between attempts: for a cache that
    saves one registry read per key that is far too long, so two retries 1 s and 3 s apart, and a
    10 s connection timeout, bound a dead account to about 25 s per request at worst.
    """
    retry = ExponentialRetry(
        initial_backoff=1, increment_base=2, retry_total=retries, random_jitter_range=1
    )
    return {"retry_policy": retry, "connection_timeout": 10, "read_timeout": 30}


class BlobStore:
    """Keys as blobs of one container; every failure of the service is a `StoreError`."""

    def __init__(
        self, container_url: str, credential: AsyncTokenCredential | None, *, retries: int = 2
    ) -> None:
        client = ContainerClient.from_container_url(
            container_url, credential=credential, **_client_options(retries)
        )
        self._init(client)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, container: str, *, retries: int = 2
    ) -> BlobStore:
        """A store on the container of a connection string's account (Azurite in tests)."""
        store = cls.__new__(cls)
        client = ContainerClient.from_connection_string(
            connection_string, container, **_client_options(retries)
        )
        store._init(client)
        return store

    def _init(self, client: ContainerClient) -> None:
        self._client = client
        # The query part of a container URL may be a SAS token: it never reaches a message.
        parts = urlsplit(client.url)
        self._url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    @property
    def description(self) -> str:
        return f"blob container {self._url}"

    def _fail(self, verb: str, key: str, error: Exception) -> StoreError:
        reason = getattr(error, "reason", None) or str(error).splitlines()[0][:200]
        code = getattr(error, "error_code", None)
        said = f"{reason} ({code})" if code else str(reason or type(error).__name__)
        return StoreError(
            f"cannot {verb} {key!r} in {self.description}: {said}; check that the container "
            "exists and that the identity has Storage Blob Data Contributor on it"
        )

    async def get(self, key: str) -> bytes | None:
        blob = self._client.get_blob_client(check_key(key))
        try:
            downloader = await blob.download_blob()
            data: bytes = await downloader.readall()
        except ResourceNotFoundError as error:
            if getattr(error, "error_code", None) == "ContainerNotFound":
                raise self._fail("read", key, error) from error
            return None
        except (AzureError, OSError) as error:
            raise self._fail("read", key, error) from error
        return data

    async def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        blob = self._client.get_blob_client(check_key(key))
        try:
            await blob.upload_blob(bytes(data), overwrite=overwrite)
        except ResourceExistsError as error:
            if not overwrite and getattr(error, "error_code", None) in (None, "BlobAlreadyExists"):
                return False
            raise self._fail("write", key, error) from error
        except (AzureError, OSError) as error:
            raise self._fail("write", key, error) from error
        return True

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        # Blob Storage lists names in lexical order (List Blobs, "Remarks"), as the protocol asks.
        try:
            async for item in self._client.list_blobs(name_starts_with=prefix or None):
                yield item.name
        except (AzureError, OSError) as error:
            raise self._fail("list", prefix or "/", error) from error

    async def create_container(self) -> None:
        """Create the container if it is missing (tests and local setups; infra/ creates it)."""
        try:
            await self._client.create_container()
        except ResourceExistsError:
            return
        except (AzureError, OSError) as error:
            raise self._fail("create", "/", error) from error

    async def close(self) -> None:
        await self._client.close()

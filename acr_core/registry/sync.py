"""`SyncAcrClient`: the same client for scripts that do not use `async`.

Microsoft's Python SDK ships a synchronous `ContainerRegistryClient` beside its async twin in
`azure.containerregistry.aio` (docs/acr-facts.md section 7). This is ours: every public method
of `AcrClient`, with the same names and keywords, run by the same code on a private event loop
in a background thread. A thread (rather than `asyncio.run` per call) keeps one connection pool
and one token cache for the client's life, and works where the caller already runs a loop (a
notebook, an async test). Listings are lazy iterators that fetch a page when the last one is
used up, as the SDK's `ItemPaged` does; `list(...)` reads them whole. Errors are the same
`acr_core.registry.errors` classes, raised in the caller's thread.

    with SyncAcrClient("myregistry.azurecr.io", DefaultAzureCredential()) as client:
        for name in client.list_repository_names(): ...

The credential may be a synchronous azure-identity credential (as the SDK's sync client takes)
or an async one; a synchronous `get_token` runs in a worker thread, as it may block.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx

from acr_core.models import (
    OCI_MANIFEST,
    ManifestContent,
    ManifestProperties,
    RepositoryProperties,
    TagProperties,
)
from acr_core.registry.auth import AccessTokenLike, AsyncTokenCredential
from acr_core.registry.client import MAX_PAGE_SIZE, AcrClient, OrderBy
from acr_core.registry.transport import ClientStats, RequestPacer, RetryPolicy, ThrottleListener

T = TypeVar("T")


class TokenCredential(Protocol):
    """Any azure-identity synchronous credential (DefaultAzureCredential, ...)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


class _CredentialInThread:
    """An async face on a synchronous credential: each `get_token` runs in a worker thread."""

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)


def _as_async(
    credential: TokenCredential | AsyncTokenCredential | None,
) -> AsyncTokenCredential | None:
    if credential is None or inspect.iscoroutinefunction(credential.get_token):
        return credential  # type: ignore[return-value]
    return _CredentialInThread(credential)  # type: ignore[arg-type]


class _LoopThread:
    """An event loop running in a daemon thread; `run` waits for a coroutine's result there."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="SyncAcrClient", daemon=True
        )
        self._thread.start()
        self.closed = False

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self.closed:
            coroutine.close()
            raise RuntimeError("this SyncAcrClient is closed; make a new one")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def stop(self) -> None:
        """Finish open listings, stop the loop and join its thread."""
        if self.closed:
            return
        self.run(self._loop.shutdown_asyncgens())
        self.closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class _Listing(Iterator[T]):
    """A sync iterator over one of the client's async listings, a page at a time."""

    def __init__(self, loop: _LoopThread, items: AsyncIterator[T]) -> None:
        self._loop = loop
        self._items = items

    def __next__(self) -> T:
        try:
            return self._loop.run(_next(self._items))
        except StopAsyncIteration:
            raise StopIteration from None


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)


async def _make(endpoint: str, kwargs: dict[str, Any]) -> AcrClient:
    return AcrClient(endpoint, **kwargs)  # built on the loop that will use it


class SyncAcrClient:
    """A synchronous client for one registry's data plane. Use as `with SyncAcrClient(...) as c`;
    the arguments are `AcrClient`'s."""

    def __init__(
        self,
        endpoint: str,
        credential: TokenCredential | AsyncTokenCredential | None = None,
        *,
        audience: str | None = None,
        username: str | None = None,
        password: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        kwargs: dict[str, Any] = {
            "credential": _as_async(credential),
            "audience": audience,
            "username": username,
            "password": password,
            "transport": transport,
            "verify": verify,
            "retry": retry,
            "timeout": timeout,
        }
        self._loop = _LoopThread()
        try:
            self._client = self._loop.run(_make(endpoint, kwargs))
        except BaseException:
            self._loop.stop()
            raise

    def __repr__(self) -> str:
        return f"Sync{self._client!r}"

    @property
    def login_server(self) -> str:
        return self._client.login_server

    @property
    def principal(self) -> str | None:
        return self._client.principal

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    def add_throttle_listener(self, callback: ThrottleListener) -> None:
        """Call `callback(retry_after)` on every 429, from the client's own thread."""
        self._client.add_throttle_listener(callback)

    def add_request_pacer(self, pacer: RequestPacer) -> None:
        """Await `pacer(method, path)` before each request, on the client's own loop."""
        self._client.add_request_pacer(pacer)

    def __enter__(self) -> SyncAcrClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the client's thread; closing twice is harmless."""
        if not self._loop.closed:
            self._loop.run(self._client.close())
            self._loop.stop()

    # -- repositories ---------------------------------------------------------------------

    def list_repository_names(
        self, *, results_per_page: int = MAX_PAGE_SIZE, last: str | None = None
    ) -> Iterator[str]:
        names = self._client.list_repository_names(results_per_page=results_per_page, last=last)
        return _Listing(self._loop, names)

    def get_repository_properties(self, repository: str) -> RepositoryProperties:
        return self._loop.run(self._client.get_repository_properties(repository))

    def update_repository_properties(
        self,
        repository: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
        can_read: bool | None = None,
        can_list: bool | None = None,
    ) -> RepositoryProperties:
        locks = {"can_delete": can_delete, "can_write": can_write}
        locks |= {"can_read": can_read, "can_list": can_list}
        return self._loop.run(self._client.update_repository_properties(repository, **locks))

    def delete_repository(self, repository: str) -> bool:
        return self._loop.run(self._client.delete_repository(repository))

    # -- manifests --------------------------------------------------------------------------

    def list_manifest_properties(
        self, repository: str, *, order_by: OrderBy = None, results_per_page: int = MAX_PAGE_SIZE
    ) -> Iterator[ManifestProperties]:
        manifests = self._client.list_manifest_properties(
            repository, order_by=order_by, results_per_page=results_per_page
        )
        return _Listing(self._loop, manifests)

    def get_manifest_properties(self, repository: str, tag_or_digest: str) -> ManifestProperties:
        return self._loop.run(self._client.get_manifest_properties(repository, tag_or_digest))

    def update_manifest_properties(
        self,
        repository: str,
        tag_or_digest: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
        can_read: bool | None = None,
        can_list: bool | None = None,
    ) -> ManifestProperties:
        locks = {"can_delete": can_delete, "can_write": can_write}
        locks |= {"can_read": can_read, "can_list": can_list}
        update = self._client.update_manifest_properties(repository, tag_or_digest, **locks)
        return self._loop.run(update)

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest (ACR deletes its tags and referrers with it)."""
        return self._loop.run(self._client.delete_manifest(repository, digest))

    def get_manifest(self, repository: str, tag_or_digest: str) -> ManifestContent:
        return self._loop.run(self._client.get_manifest(repository, tag_or_digest))

    def set_manifest(
        self,
        repository: str,
        manifest: bytes | Mapping[str, Any],
        *,
        tag: str | None = None,
        media_type: str = OCI_MANIFEST,
    ) -> str:
        """Upload a manifest (by `tag`, else by its digest); returns its digest."""
        return self._loop.run(
            self._client.set_manifest(repository, manifest, tag=tag, media_type=media_type)
        )

    def blob_exists(self, repository: str, digest: str) -> bool:
        return self._loop.run(self._client.blob_exists(repository, digest))

    # -- tags ---------------------------------------------------------------------------------

    def list_tag_properties(
        self,
        repository: str,
        *,
        order_by: OrderBy = None,
        results_per_page: int = MAX_PAGE_SIZE,
        digest: str | None = None,
    ) -> Iterator[TagProperties]:
        tags = self._client.list_tag_properties(
            repository, order_by=order_by, results_per_page=results_per_page, digest=digest
        )
        return _Listing(self._loop, tags)

    def get_tag_properties(self, repository: str, tag: str) -> TagProperties:
        return self._loop.run(self._client.get_tag_properties(repository, tag))

    def update_tag_properties(
        self,
        repository: str,
        tag: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
        can_read: bool | None = None,
        can_list: bool | None = None,
    ) -> TagProperties:
        locks = {"can_delete": can_delete, "can_write": can_write}
        locks |= {"can_read": can_read, "can_list": can_list}
        return self._loop.run(self._client.update_tag_properties(repository, tag, **locks))

    def delete_tag(self, repository: str, tag: str) -> bool:
        return self._loop.run(self._client.delete_tag(repository, tag))

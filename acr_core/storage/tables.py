"""Rows with ETags: Azure Table Storage through the function's identity, and a memory twin.

A row is one string `value` under (partition, key), with the ETag the service gave its last
write. Writers that read, change and write back pass the ETag they read: the write succeeds only
if nobody wrote the row in between (`put` returns False otherwise, and the caller re-reads and
tries again). That is optimistic concurrency as Table Storage offers it (If-Match on update,
insert failing when the row exists); there is no lock anywhere.

Keys may hold any text: the characters Table Storage refuses in keys (`/`, `\\`, `#`, `?`) and
`%` are %-escaped on the way in and back. Any failure of the service (network, permission, a
missing table) is raised as `TableError`, naming the table and what to do; a missing row is
None, not an error. Nothing here knows what the rows mean.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

__all__ = ["MemoryTable", "Row", "Rows", "TableError", "TableStore"]

VALUE = "Value"  # the one property each row has
_ESCAPES = {"%": "%25", "/": "%2F", "\\": "%5C", "#": "%23", "?": "%3F"}


class TableError(Exception):
    """The table cannot be read or written; the message names the table and what to do."""


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    value: str
    etag: str


class Rows(Protocol):
    @property
    def description(self) -> str: ...

    async def get(self, partition: str, key: str) -> Row | None: ...

    def list(self, partition: str) -> AsyncIterator[Row]: ...

    async def put(self, partition: str, key: str, value: str, *, etag: str | None) -> bool:
        """Write the row if it is as the caller read it: absent (`etag` None) or unchanged
        since (`etag` given). False when someone else wrote it first (or it is gone)."""
        ...

    async def close(self) -> None: ...


def escape(key: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in key)


def unescape(key: str) -> str:
    for plain, escaped in reversed(_ESCAPES.items()):  # "%25" last, so "%252F" stays "%2F"
        key = key.replace(escaped, plain)
    return key


class MemoryTable:
    """The same contract in memory, with ETags that change on every write (tests, the demo)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self._etags = itertools.count(1)
        self.writes = 0

    @property
    def description(self) -> str:
        return "a table in memory"

    async def get(self, partition: str, key: str) -> Row | None:
        return self._rows.get((partition, key))

    async def list(self, partition: str) -> AsyncIterator[Row]:
        for (p, _), row in sorted(self._rows.items()):
            if p == partition:
                yield row

    async def put(self, partition: str, key: str, value: str, *, etag: str | None) -> bool:
        now = self._rows.get((partition, key))
        if (now.etag if now is not None else None) != etag:
            return False
        self._rows[(partition, key)] = Row(key, value, f'W/"{next(self._etags)}"')
        self.writes += 1
        return True

    async def close(self) -> None:
        return None


class TableStore:
    """Azure Table Storage: `table_url` is `https://<account>.table.core.windows.net/<table>`
    (Azurite: `http://127.0.0.1:<port>/devstoreaccount1/<table>`). In Azure the credential is
    the managed identity, which needs Storage Table Data Contributor on that table; the table
    itself is created by the deployment (the Bicep), never here."""

    def __init__(
        self,
        table_url: str,
        credential: AsyncTokenCredential | AzureNamedKeyCredential,
        *,
        close_credential: bool = False,
    ) -> None:
        """`close_credential`: `close()` closes the credential too (the caller made it for
        this store alone; the function's managed identity is shared, and stays open)."""
        # Imported here: the CLI, installed as a package, uses a table only when asked to.
        from azure.data.tables.aio import TableClient

        self.table_url = check_table_url(table_url)
        endpoint, _, table = self.table_url.rpartition("/")
        self._client: TableClient = TableClient(endpoint, table, credential=credential)
        self._credential = credential if close_credential else None

    @property
    def description(self) -> str:
        return f"table {self.table_url}"

    async def get(self, partition: str, key: str) -> Row | None:
        try:
            entity = await self._client.get_entity(escape(partition), escape(key))
        except ResourceNotFoundError as exc:
            if _table_missing(exc):
                raise self._error("read", exc) from exc
            return None
        except AzureError as exc:
            raise self._error("read", exc) from exc
        return Row(key, str(entity.get(VALUE, "")), str(entity.metadata["etag"]))

    async def list(self, partition: str) -> AsyncIterator[Row]:
        pages = self._client.query_entities(
            "PartitionKey eq @partition", parameters={"partition": escape(partition)}
        )
        try:
            async for entity in pages:
                yield Row(
                    unescape(str(entity["RowKey"])),
                    str(entity.get(VALUE, "")),
                    str(entity.metadata["etag"]),
                )
        except AzureError as exc:
            raise self._error("read", exc) from exc

    async def put(self, partition: str, key: str, value: str, *, etag: str | None) -> bool:
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": escape(partition), "RowKey": escape(key), VALUE: value}
        try:
            if etag is None:
                await self._client.create_entity(entity)
            else:
                await self._client.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return False  # someone else wrote it first
        except ResourceNotFoundError as exc:
            if _table_missing(exc):
                raise self._error("write", exc) from exc
            return False  # deleted since it was read
        except HttpResponseError as exc:
            if exc.status_code == 412:
                return False
            raise self._error("write", exc) from exc
        except AzureError as exc:
            raise self._error("write", exc) from exc
        return True

    async def close(self) -> None:
        await self._client.close()
        if isinstance(self._credential, AsyncTokenCredential):
            await self._credential.close()

    def _error(self, verb: str, exc: AzureError) -> TableError:
        message = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
        if _table_missing(exc):
            fix = "create the table (the Bicep does) or correct the URL"
        elif isinstance(exc, ClientAuthenticationError) or _status(exc) == 403:
            fix = "grant the identity Storage Table Data Contributor on the table"
        else:
            fix = "check that the storage account is reachable"
        return TableError(f"cannot {verb} {self.description}: {message}; {fix}")


def check_table_url(table_url: str) -> str:
    """`table_url` without a trailing slash, or TableError saying what a table URL looks like.
    Plain http only to the loopback address (Azurite): a token must not cross a network in clear."""
    parts = urlsplit(table_url.strip())
    base, _, table = parts.path.rstrip("/").rpartition("/")
    local = parts.hostname in ("127.0.0.1", "localhost")
    if not (parts.scheme == "https" or (parts.scheme == "http" and local)) or not table:
        raise TableError(
            f"{table_url!r} is not a table URL: want "
            "https://<account>.table.core.windows.net/<table> (plain http only on 127.0.0.1)"
        )
    return f"{parts.scheme}://{parts.netloc}{base}/{table}"


def _status(exc: AzureError) -> int | None:
    return exc.status_code if isinstance(exc, HttpResponseError) else None


def _table_missing(exc: AzureError) -> bool:
    code = getattr(exc, "error_code", None)
    # The SDK leaves `error_code` unset on some operations (create); the body still says it.
    return getattr(code, "value", code) == "TableNotFound" or "TableNotFound" in str(exc)

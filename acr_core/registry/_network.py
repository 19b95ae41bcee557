"""The client's sockets on asyncio's own streams, under httpx's usual connection pool.

Why: a profile of the client against the emulator (docs/benchmarks.md, "Client CPU per
request") showed about half of its CPU in the layers between httpcore and the socket, not in
HTTP: httpcore's default backend on asyncio goes through anyio, whose TLS stream runs OpenSSL
through memory buffers one call at a time, and whose `extra_attributes` builds two dicts and
calls `getpeername()` each time the pool asks an idle connection "is the socket readable?",
which it does for every connection on every request it assigns. asyncio's streams do TLS in
its transport and answer that question from state they already hold.

Behaviour is httpcore's contract for a network backend (`httpcore.AsyncNetworkBackend`):
timeouts per call, httpcore's exception types (httpx maps them to its own, so the retry
policy in transport.py sees the same `httpx.TransportError`s as before, with the original
error, a failed certificate check included, as the cause), TCP_NODELAY (asyncio sets it for
TCP), and on close the socket is closed without waiting for a TLS close_notify, as the default
backend does (`standard_compatible=False`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# Every error a socket or TLS call can end in here; TimeoutError is caught before it.
_IO_ERRORS = (OSError, EOFError, ssl.SSLError)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: an asyncio reader and writer pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's interface)
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except _IO_ERRORS as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's interface)
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except _IO_ERRORS as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # No close_notify exchange: what is being closed is a finished or a failed exchange.
        self._writer.transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except _IO_ERRORS as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Idle and readable means the server closed the connection (or sent what it must
            # not): the pool then drops it instead of sending on it.
            return (
                self._reader.at_eof()
                or self._reader.exception() is not None
                or self._writer.transport.is_closing()
                or bool(getattr(self._reader, "_buffer", b""))
            )
        names = {"client_addr": "sockname", "server_addr": "peername"}
        return self._writer.get_extra_info(names.get(info, info))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections as asyncio streams (TCP or a Unix socket)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except _IO_ERRORS as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        _apply(writer, socket_options)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except _IO_ERRORS as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        _apply(writer, socket_options)
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _apply(writer: asyncio.StreamWriter, options: Iterable[Any] | None) -> None:
    sock: socket.socket | None = writer.get_extra_info("socket")
    if sock is not None:
        for option in options or ():
            sock.setsockopt(*option)


class AsyncioPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, with its request-to-connection assignment done in linear time.

    httpcore 1.0 re-runs this assignment whenever a request arrives or a response is closed,
    and for every idle connection it counts all connections again by building a list of them:
    with 16 requests in flight that was a quarter of the client's CPU in the profile. This is
    the same policy, counted once: drop closed connections; close expired ones and, while
    there are more connections than `max_keepalive_connections`, idle ones; then give each
    queued request the first available connection to its origin, else a new one (closing an
    idle one first when the pool is full), else leave it queued.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        connections = self._connections
        closing: list[httpcore.AsyncConnectionInterface] = []
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif connection.has_expired() or (
                connection.is_idle() and len(connections) > self._max_keepalive_connections
            ):
                connections.remove(connection)
                closing.append(connection)
        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            chosen = next(
                (c for c in connections if c.can_handle_request(origin) and c.is_available()),
                None,
            )
            if chosen is None:
                if len(connections) >= self._max_connections:
                    idle = next((c for c in connections if c.is_idle()), None)
                    if idle is None:
                        continue  # stays queued until a connection is released
                    connections.remove(idle)
                    closing.append(idle)
                chosen = self.create_connection(origin)
                connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing


def http_transport(verify: ssl.SSLContext | bool) -> httpx.AsyncHTTPTransport:
    """httpx's transport (its limits and error mapping) over `AsyncioPool` and `AsyncioBackend`.

    httpx takes neither a pool nor a network backend as an argument, so its pool is replaced
    by one with httpx's default connection limit. The pool's internals are httpcore 1.0's;
    with any other httpcore (or an httpx without `_pool`) the transport is left as httpx
    builds it, which costs CPU and changes nothing else.
    """
    transport = httpx.AsyncHTTPTransport(verify=verify)
    if not httpcore.__version__.startswith("1.0.") or not isinstance(
        getattr(transport, "_pool", None), httpcore.AsyncConnectionPool
    ):
        return transport
    # httpx's default limits, except that every connection may stay open: with httpx's 20
    # kept alive, a run with 32 requests in flight closed a dozen after each burst and opened
    # them again, a TLS handshake each time.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    transport._pool = AsyncioPool(
        ssl_context=httpx.create_ssl_context(verify=verify),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend(),
    )
    return transport

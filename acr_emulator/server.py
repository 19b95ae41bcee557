"""Serving an ASGI app over HTTPS (a CA and certificate made at start-up) or HTTP, on loopback.

It knows nothing of the emulator: `Emulator.serve` hands in its app and admin login.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme
import uvicorn

from acr_emulator.http import App

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the caller decides when to stop, and it stops at once.

    uvicorn re-raises a captured SIGTERM after shutting down, which would kill the process
    before our temporary certificate directory is removed.

    uvicorn notices `should_exit` at its next 0.1 s tick and then sleeps another 0.1 s before it
    waits, in 0.1 s steps, for the connections to close: about 0.2 s a stop. The test suite
    starts and stops an emulator for hundreds of tests, so `stop()` wakes the main loop at once
    and the shutdown waits only as long as the connections on loopback take to close.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Shut down now (setting `should_exit` alone is noticed at the next tick)."""
        self.should_exit = True
        self._stopping.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's graceful shutdown, polling every 5 ms rather than every 100 ms."""
        for listener in self.servers:
            listener.close()
        for sock in sockets or []:
            sock.close()
        state = self.server_state
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)
        # uvicorn's state has no event to wait on: poll it, as uvicorn does, only more often.
        while (state.connections or state.tasks) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for task in state.tasks:
            task.cancel(msg="the emulator is stopping")
        if not self.force_exit:
            await self.lifespan.shutdown()


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where a served emulator listens; `ca_file` is None over plain HTTP."""

    url: str
    host: str
    port: int
    ca_file: str | None
    admin_username: str
    admin_password: str
    task: asyncio.Task[None] | None = field(default=None, compare=False, repr=False)

    @property
    def login_server(self) -> str:
        return self.url.split("://", 1)[1]

    async def wait(self) -> None:
        """Return when the server stops by itself (uvicorn exits on SIGINT/SIGTERM)."""
        if self.task is not None:
            await asyncio.shield(self.task)


def make_certificates(directory: Path, host: str) -> tuple[str, str]:
    """A fresh CA (`ca.pem`) and a server certificate for loopback (`server.pem`)."""
    ca = trustme.CA(organization_name="acr_emulator")
    names = sorted({host, "127.0.0.1", "localhost", "::1"})
    cert = ca.issue_cert(*names)
    ca_file = directory / "ca.pem"
    server_file = directory / "server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_file))
    return str(ca_file), str(server_file)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted
    # sockets whose proto is IPPROTO_TCP, and with Nagle on every response (headers and body are
    # two writes) waits about 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"the emulator cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _config(
    app: App, host: str, port: int, cert_file: str | None, log_level: str
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=cert_file,
        ssl_keyfile=cert_file,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        interface="asgi3",
        proxy_headers=False,
        loop="asyncio",
        timeout_keep_alive=30,
        # Clients that leave keep-alive connections open must not hold up shutdown.
        timeout_graceful_shutdown=1,
    )


@contextlib.asynccontextmanager
async def serve(
    app: App,
    login: tuple[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = True,
    log_level: str = "critical",
) -> AsyncIterator[ServerInfo]:
    """Run uvicorn in the current event loop until the block exits.

    `login` is the admin user name and password, only passed on in the `ServerInfo`.
    """
    if host not in LOOPBACK:
        raise ValueError(f"the emulator only listens on loopback, not {host!r}")
    with tempfile.TemporaryDirectory(prefix="acr-emulator-") as tmp:
        ca_file = server_file = None
        if tls:
            ca_file, server_file = make_certificates(Path(tmp), host)
        server = _Server(_config(app, host, port, server_file, log_level))
        # Binding here, not in uvicorn, turns "port in use" into an error we can word (uvicorn
        # would sys.exit inside its task) and tells us the port that 0 picked.
        sock = _bind(host, port)
        bound = sock.getsockname()[1]
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                raise RuntimeError("the emulator's server stopped during start-up")
            await asyncio.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        info = ServerInfo(
            url=f"{'https' if tls else 'http'}://{shown}:{bound}",
            host=host,
            port=bound,
            ca_file=ca_file,
            admin_username=login[0],
            admin_password=login[1],
            task=task,
        )
        try:
            yield info
        finally:
            server.stop()
            await task


@contextlib.contextmanager
def serve_in_thread(
    app: App,
    login: tuple[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = True,
) -> Iterator[ServerInfo]:
    """Serve from a daemon thread with its own event loop (for synchronous callers)."""
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    result: dict[str, object] = {}

    async def main() -> None:
        nonlocal stop, loop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            async with serve(app, login, host=host, port=port, tls=tls) as info:
                result["info"] = info
                ready.set()
                await stop.wait()
        except BaseException as exc:
            result["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if "info" not in result:
        raise RuntimeError(f"the emulator did not start: {result.get('error')!r}")
    try:
        info = result["info"]
        assert isinstance(info, ServerInfo)
        yield info
    finally:
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)

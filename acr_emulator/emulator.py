"""The `Emulator`: builds the registry's state and APIs from a config and routes requests.

State: the store (`Registry`), the `Clock`, the tokens and `Principals`, the `EventBus`, the
`Counters`, the `RateLimiter` (ACR's 2026 rate limits and per-identity counters), the `Guard`
(faults and throttling) and the `Hooks` (tests stage races with them).
APIs: `V2Api` and `BlobApi` (/v2), `AcrApi` (/acr/v1), `OAuthApi` (/oauth2) and `AdminApi`
(/_emulator), each built with only the state it uses. Every request goes: route -> guard ->
hooks -> handler (which checks auth first, as ACR challenges before revealing whether anything
exists) -> counters. Admin endpoints skip the guard and the hooks and are not counted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from acr_emulator import server
from acr_emulator.access import Gate, Principals
from acr_emulator.api_acr import AcrApi
from acr_emulator.api_admin import AdminApi
from acr_emulator.api_blobs import BlobApi
from acr_emulator.api_oauth import OAuthApi
from acr_emulator.api_v2 import V2Api
from acr_emulator.auth import TokenService
from acr_emulator.clock import Clock
from acr_emulator.config import EmulatorConfig
from acr_emulator.counters import Counters
from acr_emulator.errors import RegistryError
from acr_emulator.events import EventBus, Schema, Subscriber
from acr_emulator.faults import Faults
from acr_emulator.guard import Guard
from acr_emulator.hooks import Hook, Hooks
from acr_emulator.http import (
    COMMON_HEADERS,
    App,
    Receive,
    Request,
    Response,
    Route,
    Send,
    error_response,
    match,
    not_found,
    read_request,
    send_response,
)
from acr_emulator.identity import Identify, categories
from acr_emulator.notify import Notifier
from acr_emulator.ratelimit import RateLimiter
from acr_emulator.seed import load_fixture, seed
from acr_emulator.server import ServerInfo
from acr_emulator.store import Registry
from acr_emulator.throttle import Throttle

ADMIN_PREFIX = "/_emulator"


class Emulator:
    """A local ACR. `emu.app` is the ASGI app; `emu.serve()` runs it over HTTPS on loopback."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config = config or EmulatorConfig()
        self.clock = clock = Clock(config.now, frozen=config.frozen_clock)
        self.registry = Registry(retag_moves_manifest_time=config.retag_moves_manifest_time)
        self.counters = Counters()
        self.tokens = TokenService(
            now=(lambda: clock.now().timestamp()) if config.tokens_use_clock else time.time
        )
        self.principals = Principals(config)
        self.events = EventBus(config.webhooks, verify=config.webhook_verify)
        self.throttle = Throttle(config.throttle)
        self.rate = RateLimiter(config.rate_limits, clock=lambda: clock.peek().timestamp())
        self._guard = Guard(config.faults, self.throttle, self.rate)
        self._hooks = Hooks()
        self._routes = self._build_routes()

    def _build_routes(self) -> list[Route]:
        config = self.config
        gate = Gate(self.tokens, login_server=config.login_server, require_auth=config.require_auth)
        self._identify = Identify(self.tokens, config.admin_username, gate.service)
        notifier = Notifier(
            self.events,
            self.clock,
            gate.service,
            resource_id=config.resource_id,
            location=config.location,
        )
        admin = AdminApi(
            registry=self.registry,
            clock=self.clock,
            counters=self.counters,
            guard=self._guard,
            bus=self.events,
            tokens=self.tokens,
            principals=self.principals,
        )
        v2 = V2Api(self.registry, self.clock, gate, notifier, require_blobs=config.require_blobs)
        return [
            *admin.routes(),
            *OAuthApi(self.tokens, self.principals, gate, config).routes(),
            *AcrApi(self.registry, self.clock, gate, notifier).routes(),
            *v2.routes(),
            *BlobApi(self.registry, gate).routes(),
        ]

    # ---- what tests, the demo and benchmarks use ----------------------------------------

    @property
    def app(self) -> App:
        return self._asgi

    @property
    def faults(self) -> Faults:
        """The faults injected now; assign a new `Faults` to change them mid-test."""
        return self._guard.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._guard.faults = faults

    def before_request(self, hook: Hook) -> Callable[[], None]:
        """Call `hook(arrival)` just before each data-plane request is handled (after the
        guard); it may change the state the request sees. Returns a function that removes it."""
        return self._hooks.add(hook)

    @property
    def anonymous_pull(self) -> bool:
        return self.principals.anonymous_pull

    @anonymous_pull.setter
    def anonymous_pull(self, enabled: bool) -> None:
        self.principals.anonymous_pull = enabled

    @property
    def admin_password(self) -> str:
        return self.principals.admin_password

    def seed(self, fixture: Mapping[str, Any] | str) -> None:
        """Bulk-load a fixture (a mapping, or a path to a JSON file); see docs/emulator.md."""
        seed(
            self.registry,
            self.clock,
            load_fixture(fixture) if isinstance(fixture, str) else fixture,
        )

    def subscribe(self, callback: Subscriber, schema: Schema = "eventgrid") -> Callable[[], None]:
        """Receive every ImagePushed/ImageDeleted event; returns an unsubscribe function."""
        return self.events.subscribe(callback, schema)

    def grant(
        self, principal: str, role: str, *, repositories: tuple[str, ...] | None = None
    ) -> None:
        """Give a principal (AAD `oid`) a role; its first grant replaces the default roles.

        `repositories` is an ABAC condition (repository-name prefixes), honoured only for the
        ABAC repository roles.
        """
        self.principals.grant(principal, role, repositories)

    def revoke(self, principal: str) -> None:
        """Take every grant away: the principal is left with no permission at all."""
        self.principals.revoke(principal)

    def revoke_tokens(self) -> None:
        """Make every token issued so far invalid, as if they had all expired."""
        self.tokens.revoke_all()

    def add_scoped_token(self, username: str, password: str, actions: Sequence[str]) -> None:
        """Create (or replace) an ACR token: Basic credentials limited to scope-map `actions`,
        e.g. `repositories/team-a/api/content/read`."""
        self.principals.add_scoped_token(username, password, actions)

    @asynccontextmanager
    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        log_level: str = "critical",
    ) -> AsyncIterator[ServerInfo]:
        """Serve over HTTPS (or HTTP) on loopback in this event loop; yields `url`, `ca_file`."""
        login = (self.config.admin_username, self.admin_password)
        async with server.serve(
            self.app, login, host=host, port=port, tls=tls, log_level=log_level
        ) as info:
            yield info

    @contextmanager
    def serve_in_thread(
        self, *, host: str = "127.0.0.1", port: int = 0, tls: bool = True
    ) -> Iterator[ServerInfo]:
        """Serve from a background thread, for synchronous clients and sync tests."""
        login = (self.config.admin_username, self.admin_password)
        with server.serve_in_thread(self.app, login, host=host, port=port, tls=tls) as info:
            yield info

    # ---- ASGI ----------------------------------------------------------------------------

    async def _asgi(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(await read_request(scope, receive), send)

    async def _http(self, req: Request, send: Send) -> None:
        extra = [*COMMON_HEADERS, ("x-ms-correlation-request-id", str(uuid.uuid4()))]
        found = match(self._routes, req.path)
        if found is None:
            self.counters.record("unmatched", req.method, 404)
            await send_response(send, not_found(), extra)
            return
        route, req.params = found
        admin = route.name.startswith(ADMIN_PREFIX)
        if not admin:
            kinds, who = categories(req.method, route.name), self._identify(req)
            refused = await self._guard.check(req, send, kinds, who)
            if refused is not None:
                self.counters.record(route.name, req.method, refused.status)
                self.rate.counters.record(kinds, who, refused.status)
                await send_response(send, refused, extra)
                return
            await self._hooks.run(req.method, req.path, route.name)
        response = await _dispatch(route, req)
        if not admin:
            self.counters.record(route.name, req.method, response.status)
            self.rate.counters.record(kinds, who, response.status)
        await send_response(send, response, extra, head=req.method == "HEAD")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.events.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _dispatch(route: Route, req: Request) -> Response:
    """The route's handler for the method (HEAD falls back to GET), errors made responses."""
    handler = route.methods.get(req.method)
    if handler is None and req.method == "HEAD":
        handler = route.methods.get("GET")
    if handler is None:
        return error_response(
            RegistryError(405, "UNSUPPORTED", f"{req.method} is not supported here")
        )
    try:
        return await handler(req)
    except RegistryError as exc:
        return error_response(exc)

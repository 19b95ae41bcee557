"""The `Emulator`: registry state plus the ASGI app that serves it.

Every request goes: route -> faults (latency, 5xx, drop) -> throttle -> handler (which checks
auth first, as ACR challenges before revealing whether anything exists) -> counters.
Admin endpoints under `/_emulator/` skip faults and throttling and are not counted.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

from acr_emulator import auth
from acr_emulator.auth import TOKEN_USER, Grant, Scope, ScopedToken, TokenError, TokenService
from acr_emulator.clock import Clock
from acr_emulator.config import EmulatorConfig
from acr_emulator.counters import Counters
from acr_emulator.errors import RegistryError
from acr_emulator.events import EventBus, RequestInfo, Schema, Subscriber, image_event
from acr_emulator.faults import DroppedConnection, Faults
from acr_emulator.http import (
    COMMON_HEADERS,
    App,
    Receive,
    Request,
    Response,
    Route,
    Send,
    match,
    not_found,
    read_request,
    send_response,
)
from acr_emulator.server import ServerInfo
from acr_emulator.store import Deleted, Manifest, Registry
from acr_emulator.throttle import Throttle

AUTH_MESSAGE = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)
READ_METHODS = frozenset({"GET", "HEAD"})


class Emulator:
    """A local ACR. `emu.app` is the ASGI app; `emu.serve()` runs it over HTTPS on loopback."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock = Clock(self.config.now, frozen=self.config.frozen_clock)
        self.registry = Registry(retag_moves_manifest_time=self.config.retag_moves_manifest_time)
        self.counters = Counters()
        self.tokens = TokenService(
            now=self._registry_seconds if self.config.tokens_use_clock else time.time
        )
        self.scoped_tokens: dict[str, ScopedToken] = {}
        for token in self.config.scoped_tokens:
            self.add_scoped_token(token.username, token.password, token.actions)
        self.throttle = Throttle(self.config.throttle)
        self.faults: Faults = self.config.faults
        self.events = EventBus(self.config.webhooks, verify=self.config.webhook_verify)
        self.admin_password = self.config.admin_password or secrets.token_urlsafe(24)
        self.anonymous_pull = self.config.anonymous_pull
        self.uploads: dict[str, tuple[str, bytearray]] = {}
        self._grants: dict[str, tuple[Grant, ...]] = {}
        self._default_grants = tuple(Grant(r) for r in self._default_roles())
        self._routes = self._build_routes()

    # ---- public API used by tests --------------------------------------------------------

    @property
    def app(self) -> App:
        return self._asgi

    def seed(self, fixture: Mapping[str, Any] | str) -> None:
        """Bulk-load a fixture (a mapping, or a path to a JSON file); see docs/emulator.md."""
        from acr_emulator.seed import load_fixture, seed

        seed(self, load_fixture(fixture) if isinstance(fixture, str) else fixture)

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
        if role not in auth.ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {sorted(auth.ROLES)}")
        self._grants[principal] = (*self._grants.get(principal, ()), Grant(role, repositories))

    def revoke(self, principal: str) -> None:
        """Take every grant away: the principal is left with no permission at all."""
        self._grants[principal] = ()

    def revoke_tokens(self) -> None:
        """Make every token issued so far invalid, as if they had all expired."""
        self.tokens.not_before = self.tokens.now()

    def add_scoped_token(self, username: str, password: str, actions: Sequence[str]) -> None:
        """Create (or replace) an ACR token: Basic credentials limited to scope-map `actions`,
        e.g. `repositories/team-a/api/content/read`."""
        if username in (self.config.admin_username, TOKEN_USER):
            raise ValueError(f"the scoped token name {username!r} is taken by another login")
        self.scoped_tokens[username] = ScopedToken(username, password, tuple(actions))

    def _registry_seconds(self) -> float:
        return self.clock.now().timestamp()

    def grants_of(self, principal: str | None) -> tuple[Grant, ...] | None:
        """A principal's grants; None stands for the admin user (everything)."""
        if principal is None:
            return None
        return self._grants.get(principal, self._default_grants)

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
        from acr_emulator.server import serve

        async with serve(self, host=host, port=port, tls=tls, log_level=log_level) as server:
            yield server

    @contextmanager
    def serve_in_thread(
        self, *, host: str = "127.0.0.1", port: int = 0, tls: bool = True
    ) -> Iterator[ServerInfo]:
        """Serve from a background thread, for synchronous clients and sync tests."""
        from acr_emulator.server import serve_in_thread

        with serve_in_thread(self, host=host, port=port, tls=tls) as server:
            yield server

    # ---- helpers for the route modules ---------------------------------------------------

    def service(self, req: Request) -> str:
        return self.config.login_server or req.host

    def authorize(self, req: Request, scope: Scope | None) -> None:
        """Let the request through, or raise ACR's 401 challenge for `scope`."""
        if not self.config.require_auth:
            return
        header = req.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential:
            try:
                claims = self.tokens.verify(
                    credential.strip(), grant_type="access_token", audience=self.service(req)
                )
            except TokenError:
                raise self.challenge(req, scope) from None
            if scope is None or auth.permits(claims.get("access") or [], scope):
                return
            raise self.challenge(req, scope, insufficient=True)
        # Even with anonymous pull on, ACR challenges a request without a token; the client
        # then fetches an anonymous token (Go rec/Test_authenticationPolicy_anonymousAccess).
        raise self.challenge(req, scope)

    def challenge(
        self, req: Request, scope: Scope | None, *, insufficient: bool = False
    ) -> RegistryError:
        service = self.service(req)
        parts = [f'realm="{req.scheme}://{service}/oauth2/token"', f'service="{service}"']
        detail: list[dict[str, str]] | None = None
        if scope is not None:
            parts.append(f'scope="{scope}"')
            detail = [
                {"Type": scope.type, "Name": scope.name, "Action": action}
                for action in scope.actions
            ]
        if insufficient:
            parts.append('error="insufficient_scope"')
        return RegistryError(
            401,
            "UNAUTHORIZED",
            AUTH_MESSAGE,
            detail,
            headers=[("www-authenticate", "Bearer " + ",".join(parts))],
        )

    def publish_push(
        self, req: Request, repository: str, manifest: Manifest, tag: str | None
    ) -> None:
        self.events.publish(
            image_event(
                "Microsoft.ContainerRegistry.ImagePushed",
                resource_id=self.config.resource_id,
                location=self.config.location,
                repository=repository,
                digest=manifest.digest,
                media_type=manifest.media_type,
                size=len(manifest.body),
                tag=tag,
                request=self._request_info(req),
                when=self.clock.peek(),
            )
        )

    def publish_deletes(self, req: Request, deleted: list[Deleted]) -> None:
        for item in deleted:
            self.events.publish(
                image_event(
                    "Microsoft.ContainerRegistry.ImageDeleted",
                    resource_id=self.config.resource_id,
                    location=self.config.location,
                    repository=item.repository,
                    digest=item.digest,
                    media_type=item.media_type,
                    size=None,
                    tag=None,
                    request=self._request_info(req),
                    when=self.clock.peek(),
                )
            )

    def _request_info(self, req: Request) -> RequestInfo:
        return RequestInfo(self.service(req), req.method, req.headers.get("user-agent", ""))

    def now(self) -> datetime:
        return self.clock.now()

    # ---- ASGI ----------------------------------------------------------------------------

    def _default_roles(self) -> tuple[str, ...]:
        if self.config.default_roles is not None:
            for role in self.config.default_roles:
                if role not in auth.ROLES:
                    raise ValueError(f"unknown default role {role!r}")
            return self.config.default_roles
        if self.config.abac:
            return (
                "Container Registry Repository Contributor",
                "Container Registry Repository Catalog Lister",
            )
        return ("Owner",)

    def _build_routes(self) -> list[Route]:
        from acr_emulator import routes_acr, routes_admin, routes_oauth, routes_v2

        return [
            *routes_admin.build(self),
            *routes_oauth.build(self),
            *routes_acr.build(self),
            *routes_v2.build(self),
        ]

    async def _asgi(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        req = await read_request(scope, receive)
        extra = [*COMMON_HEADERS, ("x-ms-correlation-request-id", str(uuid.uuid4()))]
        found = match(self._routes, req.path)
        if found is None:
            self.counters.record("unmatched", req.method, 404)
            await send_response(send, not_found(), extra)
            return
        route, req.params = found
        admin = route.name.startswith("/_emulator")
        handler = route.methods.get(req.method)
        if handler is None and req.method == "HEAD":
            handler = route.methods.get("GET")
        if not admin:
            response = await self._guard(req, send, extra)
            if response is not None:
                self.counters.record(route.name, req.method, response.status)
                await send_response(send, response, extra)
                return
        if handler is None:
            response = _error(
                RegistryError(405, "UNSUPPORTED", f"{req.method} is not supported here")
            )
        else:
            try:
                response = await handler(req)
            except RegistryError as exc:
                response = _error(exc)
        if not admin:
            self.counters.record(route.name, req.method, response.status)
        await send_response(send, response, extra, head=req.method == "HEAD")

    async def _guard(
        self, req: Request, send: Send, extra: list[tuple[str, str]]
    ) -> Response | None:
        """Faults and throttling; a response here replaces the handler's."""
        faults = self.faults
        if faults.active and faults.applies_to(req.method):
            delay = faults.delay()
            if delay:
                await asyncio.sleep(delay)
            outcome = faults.roll()
            if outcome == "drop":
                # Start a response that never completes: over HTTP the client sees the
                # connection close mid-response; in-process the ASGI transport raises this.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-length", b"100")],
                    }
                )
                raise DroppedConnection("acr_emulator dropped the connection (fault injection)")
            if outcome == "error":
                return _error(
                    RegistryError(faults.error_status, "SERVICE_UNAVAILABLE", "injected fault")
                )
        kind = "read" if req.method in READ_METHODS or req.path.startswith("/oauth2/") else "write"
        retry_after = self.throttle.admit(kind)
        if retry_after is not None:
            return _error(
                RegistryError(
                    429,
                    "TOOMANYREQUESTS",
                    "too many requests: the registry's operations-per-minute limit was exceeded",
                    headers=[("retry-after", str(retry_after))],
                )
            )
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.events.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _error(exc: RegistryError) -> Response:
    return Response.json(exc.body(), exc.status, list(exc.headers))

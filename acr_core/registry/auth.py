"""ACR authentication as an `httpx.Auth` flow, with per-scope token caches.

The dance (docs/acr-facts.md section 2): a request without a token gets 401 with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...`; an AAD token for
`<audience>/.default` is exchanged at `POST /oauth2/exchange` for an ACR refresh token (one per
registry); the refresh token buys an access token per scope at `POST /oauth2/token`; the request
is resent with it. Anonymous access uses `grant_type=password` with an empty refresh token;
the admin user or a repository-scoped token uses `GET /oauth2/token` with HTTP Basic (2.3).

To keep round trips to the minimum ACR allows:
- tokens are cached until a margin before their JWT `exp` (refresh token per registry, access
  token per scope), and a token for the scope a request will need is sent up front;
- the first request learns `realm`/`service` from its challenge while concurrent first requests
  wait for it, so a burst costs one 401, not one per request;
- one lock per scope: a hundred concurrent requests for a scope cause one token request.
The registry's challenge always wins over the prediction. A refused token is replaced once,
then the 401 goes to the caller (`PermissionDeniedError` / `AuthenticationError`). A refused
refresh token is replaced by one more exchange; if the token endpoint refuses that one too,
the error is `TokenRevokedError` (transient: the exchange had just accepted the identity), and a
token service that fails (5xx, 429) raises its own transient error.

Token values live only in `_Token.value` and request headers: never logged, never in a repr.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from acr_core.registry._wire import (
    Challenge,
    jwt_claims,
    parse_challenge,
    predict_scope,
    refresh_margin,
    token_lifetime,
)
from acr_core.registry.errors import AuthenticationError, InvalidResponseError, error_from_response

log = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "https://containerregistry.azure.net"
# Used when a token is not a JWT with `exp`: ACR documents 3 h for its tokens
# (docs/acr-facts.md section 2.4); a shorter guess only costs an early refresh.
_OPAQUE_ACCESS_LIFETIME = 600.0
_OPAQUE_REFRESH_LIFETIME = 3600.0
# After a re-grant was refused for insufficient scope, how long before trying a new grant
# again: role assignments take minutes to propagate (docs/acr-facts.md section 6, UNCERTAIN).
_REGRANT_INTERVAL = 60.0


class AccessTokenLike(Protocol):
    @property
    def token(self) -> str: ...


class AsyncTokenCredential(Protocol):
    """Any azure-identity async credential (managed identity, DefaultAzureCredential, ...)."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    renew_at: float
    generation: int = 0
    regranted_at: float | None = None  # set when issued after an insufficient_scope refusal

    def fresh(self, now: float) -> bool:
        return now < self.renew_at


class AcrAuth(httpx.Auth):
    """Authenticates requests to one registry with a credential, Basic, or anonymously."""

    def __init__(
        self,
        origin: httpx.URL,
        *,
        credential: AsyncTokenCredential | None = None,
        audience: str | None = None,
        username: str | None = None,
        password: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if credential is not None and username is not None:
            raise ValueError("give either a credential or a username/password, not both")
        if (username is None) != (password is None):
            raise ValueError("Basic auth needs both username and password")
        self._origin = origin
        self._credential = credential
        self._aad_scope = (audience or DEFAULT_AUDIENCE).rstrip("/") + "/.default"
        self._basic = httpx.BasicAuth(username, password) if username and password else None
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._service: str | None = None
        self._realm: str | None = None
        self._probe: asyncio.Event | None = None
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh: _Token | None = None
        self._refresh_lock = asyncio.Lock()
        self._generation = 0
        self._learned: dict[str, str] = {}
        self._username = username
        self._oid: str | None = None

    @property
    def mode(self) -> str:
        if self._credential is not None:
            return "aad"
        return "basic" if self._basic is not None else "anonymous"

    def __repr__(self) -> str:
        return f"AcrAuth(mode={self.mode!r}, cached_scopes={len(self._tokens)})"

    @property
    def principal(self) -> str | None:
        """Who the registry sees: the Basic username, or the object id (`oid`) of the Azure AD
        token exchanged so far (None before the first exchange, and when anonymous)."""
        return self._username if self._basic is not None else self._oid

    def bind(self, client: httpx.AsyncClient) -> None:
        """The client that sends token requests (with `auth=None`, through the same transport)."""
        self._client = client

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        predicted = predict_scope(request.method, request.url.path)
        if predicted is not None:
            predicted = self._learned.get(predicted, predicted)
        probing = False
        if self._service is None:
            if self._probe is None:
                self._probe, probing = asyncio.Event(), True
            else:
                await self._probe.wait()
        sent: str | None = None
        challenge: Challenge | None = None
        try:
            if self._service is not None and predicted is not None:
                sent = await self._access_token(predicted)
                request.headers["Authorization"] = f"Bearer {sent}"
            response = yield request
            challenge = _bearer_challenge(response)
            if challenge is not None:
                self._learn(challenge, request)
        finally:
            if probing and self._probe is not None:
                self._probe.set()
                self._probe = None
        if challenge is None:
            return
        scope = challenge.scope or predicted
        if scope is None:
            return
        refused = sent if scope == predicted else None
        insufficient = challenge.error == "insufficient_scope"
        token = await self._access_token(scope, refused=refused, regrant=insufficient)
        if token == sent:
            return  # nothing newer to try: resending the refused token would only repeat the 401
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401 and predicted is not None and scope != predicted:
            self._learned[predicted] = scope

    def _learn(self, challenge: Challenge, request: httpx.Request) -> None:
        realm = (
            httpx.URL(challenge.realm) if challenge.realm else self._origin.join("/oauth2/token")
        )
        if (realm.scheme, realm.host, realm.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            raise AuthenticationError(
                status=401,
                code=None,
                message=f"the challenge's realm {realm.scheme}://{realm.netloc.decode()} is not "
                "this registry; refusing to send credentials there",
                method=request.method,
                url=str(request.url.copy_with(query=None)),
                hint="Use the registry's own login server as the endpoint",
            )
        self._realm = str(realm.copy_with(query=None))
        self._service = challenge.service or self._origin.netloc.decode()

    async def _access_token(
        self, scope: str, *, refused: str | None = None, regrant: bool = False
    ) -> str:
        """The cached token for `scope`, or a new one. `refused` is a token the registry turned
        down: it is replaced (and with `regrant`, so is the refresh token it came from)."""
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(scope)
            if cached is not None and cached.value != refused and cached.fresh(self._clock()):
                return cached.value
            now = self._clock()
            if cached is not None and cached.value == refused:
                recent = cached.regranted_at is not None and (
                    now - cached.regranted_at < _REGRANT_INTERVAL
                )
                if regrant and recent:
                    # The freshest grant there is was refused too: the caller gets the 401
                    # (PermissionDeniedError) without more token traffic.
                    return cached.value
                del self._tokens[scope]
                if regrant and self._refresh is not None:
                    self._drop_refresh(cached.generation)
            token = await self._fetch_access_token(scope)
            if regrant:
                token.regranted_at = now
            self._tokens[scope] = token
            return token.value

    async def _fetch_access_token(self, scope: str) -> _Token:
        if self._basic is not None:
            params = {"service": self._service_name(), "scope": scope}
            response = await self._send("GET", self._realm_url(), params=params, auth=self._basic)
            return self._token_from(response, "access_token", 0)
        if self._credential is None:
            form = {
                "grant_type": "password",
                "service": self._service_name(),
                "scope": scope,
                "refresh_token": "",
            }
            response = await self._send("POST", self._realm_url(), data=form)
            return self._token_from(response, "access_token", 0)
        for _attempt in (1, 2):
            refresh = await self._refresh_token()
            form = {
                "grant_type": "refresh_token",
                "service": self._service_name(),
                "scope": scope,
                "refresh_token": refresh.value,
            }
            response = await self._send("POST", self._realm_url(), data=form, raise_on_error=False)
            if response.is_success:
                log.debug("ACR access token issued for scope %s", scope)
                return self._token_from(response, "access_token", refresh.generation)
            if response.status_code != 401:
                # The token service failed (5xx, or 429 after the retries): its own, transient
                # class, not an error body read as a token response that lacks a token.
                raise error_from_response(response)
            # The refresh token expired or was revoked before its `exp`: exchange again, once.
            self._drop_refresh(refresh.generation)
        # The second refresh token came from an exchange made after the first was refused, so
        # the exchange accepts this identity: what was refused is the token, revoked as soon as
        # issued. A later retry can succeed (TokenRevokedError is transient).
        raise error_from_response(response, fresh_refresh_token=True)

    async def _refresh_token(self) -> _Token:
        async with self._refresh_lock:
            if self._refresh is not None and self._refresh.fresh(self._clock()):
                return self._refresh
            assert self._credential is not None
            aad = await self._credential.get_token(self._aad_scope)
            oid = jwt_claims(aad.token).get("oid")
            self._oid = oid if isinstance(oid, str) else self._oid
            form = {
                "grant_type": "access_token",
                "service": self._service_name(),
                "access_token": aad.token,
            }
            exchange = str(self._origin.join("/oauth2/exchange"))
            response = await self._send("POST", exchange, data=form)
            self._generation += 1
            self._refresh = self._token_from(response, "refresh_token", self._generation)
            log.debug("ACR refresh token obtained for %s", self._service)
            return self._refresh

    def _drop_refresh(self, generation: int) -> None:
        if self._refresh is not None and self._refresh.generation == generation:
            self._refresh = None

    async def _send(
        self, method: str, url: str, *, raise_on_error: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """A token request, sent through the client's transport (so retried and counted)."""
        if self._client is None:
            raise RuntimeError("AcrAuth is not bound to a client")
        kwargs.setdefault("auth", None)
        response = await self._client.request(method, url, **kwargs)
        if raise_on_error and not response.is_success:
            raise error_from_response(response)
        return response

    def _token_from(self, response: httpx.Response, key: str, generation: int) -> _Token:
        try:
            body = response.json()
        except ValueError:
            body = None
        value = (body.get(key) or body.get("token")) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise InvalidResponseError(
                f"{response.request.method} {response.request.url.copy_with(query=None)} "
                f"returned no {key}"
            )
        opaque = _OPAQUE_REFRESH_LIFETIME if key == "refresh_token" else _OPAQUE_ACCESS_LIFETIME
        lifetime = token_lifetime(value, time.time())
        lifetime = opaque if lifetime is None else lifetime
        renew_at = self._clock() + lifetime - refresh_margin(max(lifetime, 0.0))
        return _Token(value=value, renew_at=renew_at, generation=generation)

    def _service_name(self) -> str:
        return self._service or self._origin.netloc.decode()

    def _realm_url(self) -> str:
        return self._realm or str(self._origin.join("/oauth2/token"))


def _bearer_challenge(response: httpx.Response) -> Challenge | None:
    if response.status_code != 401:
        return None
    challenge = parse_challenge(response.headers.get("www-authenticate", ""))
    return challenge if challenge is not None and challenge.scheme == "bearer" else None

"""Which rate-limit categories a request falls in, and which identity sent it.

Categories (docs/acr-facts.md section 4.1): /oauth2/exchange and /oauth2/token are OAuth,
whatever the method; a GET or HEAD of /v2/<name>/referrers/<digest> is ListReferrers and
DataplaneRead; every other /v2 and /acr/v1 request is DataplaneRead (GET, HEAD, OPTIONS, and
our choice for any method ACR does not list), DataplaneWrite (PUT, PATCH, POST: pushes, blob
uploads, tag and manifest attribute changes) or DataplaneDelete (DELETE). `GET /v2/` (the ping
every client sends first) is a GET on the data plane, so DataplaneRead: the documentation makes
no exception for it (our reading). The emulator's own /_emulator endpoints are never counted.

Identities: an access token names its identity in the `identity` claim the emulator's token
service writes (`label`): "admin" for the admin user (whichever password it logged in with;
the emulator has one), "anonymous" for anonymous pull, the AAD `oid` for an Entra principal,
"token:<name>" for an ACR token with a scope map (each its own identity: our choice, the
documentation names only the other three). A request without a valid access token (the first,
challenged one; an expired token) cannot be told apart from anyone else's: "anonymous".
Token requests are limited per registry only; for the counters they are attributed to the
identity whose credentials they carry, as far as the request shows it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from acr_emulator.auth import TOKEN_USER, TokenError, TokenService, unverified_claims
from acr_emulator.http import Request
from acr_emulator.ratelimit import DELETE, OAUTH, READ, REFERRERS, WRITE

ADMIN = "admin"
ANONYMOUS = "anonymous"
REFERRERS_ROUTE = "/v2/{name}/referrers/{digest}"
_WRITE_METHODS = frozenset({"PUT", "PATCH", "POST"})


def label(principal: str | None, *, anonymous: bool) -> str:
    """The identity an access token is issued to: ADMIN, ANONYMOUS, an oid or token:<name>."""
    if anonymous:
        return ANONYMOUS
    return principal or ADMIN


def categories(method: str, route: str) -> tuple[str, ...]:
    """The categories a request to `route` (a route name such as `/v2/{name}/tags/list`)
    counts against, in the order their buckets are checked."""
    if route.startswith("/oauth2/"):
        return (OAUTH,)
    if route == REFERRERS_ROUTE and method in ("GET", "HEAD"):
        return (REFERRERS, READ)
    if method in _WRITE_METHODS:
        return (WRITE,)
    if method == "DELETE":
        return (DELETE,)
    return (READ,)


class Identify:
    """Names the identity behind a request, from its access token or its token request."""

    def __init__(
        self, tokens: TokenService, admin_username: str, service_of: Callable[[Request], str]
    ) -> None:
        """`service_of` is `Gate.service`: the registry name a request is addressed to."""
        self._tokens = tokens
        self._admin_username = admin_username
        self._service_of = service_of

    def __call__(self, req: Request) -> str:
        if req.path.startswith("/oauth2/"):
            return self._of_token_request(req)
        scheme, _, credential = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return ANONYMOUS
        try:
            claims = self._tokens.verify(
                credential.strip(), grant_type="access_token", audience=self._service_of(req)
            )
        except TokenError:
            return ANONYMOUS
        return str(claims.get("identity") or ANONYMOUS)

    def _of_token_request(self, req: Request) -> str:
        scheme, _, encoded = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return ANONYMOUS
            return self._of_login(req, username, password)
        if req.method != "POST":
            return ANONYMOUS
        form = req.form()
        first = {key: values[0] for key, values in form.items() if values}
        if req.path.startswith("/oauth2/exchange"):
            return _of_aad(first.get("access_token", ""))
        if first.get("username"):
            return self._of_login(req, first["username"], first.get("password", ""))
        return self._of_refresh(req, first.get("refresh_token", ""))

    def _of_login(self, req: Request, username: str, password: str) -> str:
        if username == TOKEN_USER:
            return self._of_refresh(req, password)
        if username == self._admin_username:
            return ADMIN
        return f"token:{username}"

    def _of_refresh(self, req: Request, token: str) -> str:
        if not token:
            return ANONYMOUS
        try:
            claims = self._tokens.verify(
                token, grant_type="refresh_token", audience=self._service_of(req)
            )
        except TokenError:
            return ANONYMOUS
        return str(claims.get("sub") or ANONYMOUS)


def _of_aad(token: str) -> str:
    try:
        claims = unverified_claims(token)
    except TokenError:
        return ANONYMOUS
    principal = claims.get("oid") or claims.get("sub")
    return principal if isinstance(principal, str) and principal else ANONYMOUS

"""ACR's token service: /oauth2/exchange and /oauth2/token (docs/acr-facts.md sections 2.2-2.3).

- `POST /oauth2/exchange` (form `grant_type=access_token`, `service`, `access_token`): an AAD
  access token -> an ACR refresh token. Any JWT-shaped AAD token is trusted; its `oid` (or
  `sub`) names the principal; its `aud` and `exp`, when present, are checked.
- `POST /oauth2/token` (form `grant_type=refresh_token`, `service`, `scope`..., `refresh_token`):
  -> an access token. `grant_type=password` with an empty refresh token is the anonymous grant.
- `GET /oauth2/token?service=&scope=` with HTTP Basic: the admin user, or the user
  `00000000-0000-0000-0000-000000000000` with an ACR refresh token as password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Any

from acr_emulator import auth, identity
from acr_emulator.access import Gate, Principals
from acr_emulator.auth import TOKEN_USER, TokenError, TokenService
from acr_emulator.config import EmulatorConfig
from acr_emulator.errors import RegistryError, invalid
from acr_emulator.http import Request, Response, Route, route


def _unauthorized(message: str) -> RegistryError:
    return RegistryError(401, "UNAUTHORIZED", message)


class OAuthApi:
    """The token endpoints: turn AAD tokens and Basic logins into ACR refresh and access tokens.

    From `config` it reads only the token lifetimes and the accepted AAD audiences.
    """

    def __init__(
        self, tokens: TokenService, principals: Principals, gate: Gate, config: EmulatorConfig
    ) -> None:
        self._tokens = tokens
        self._principals = principals
        self._gate = gate
        self._access_lifetime = config.access_token_lifetime
        self._refresh_lifetime = config.refresh_token_lifetime
        self._audiences = {a.rstrip("/") for a in config.accepted_audiences}

    def routes(self) -> list[Route]:
        return [
            route("/oauth2/exchange", r"/oauth2/exchange", {"POST": self.exchange}),
            route(
                "/oauth2/token", r"/oauth2/token", {"POST": self.token_post, "GET": self.token_get}
            ),
        ]

    async def exchange(self, req: Request) -> Response:
        form = req.form()
        grant_type = _one(form, "grant_type")
        service = self._check_service(req, _one(form, "service"))
        if grant_type not in ("access_token", "access_token_refresh_token"):
            raise invalid(
                "BAD_REQUEST",
                f"grant_type {grant_type!r} is not supported; use access_token",
            )
        aad = _one(form, "access_token")
        if not aad:
            raise invalid("BAD_REQUEST", "the form field 'access_token' is required")
        principal = self._principal_of_aad(aad)
        refresh = self._refresh_token_for(principal, service, _one(form, "tenant"))
        return Response.json({"refresh_token": refresh})

    async def token_post(self, req: Request) -> Response:
        form = req.form()
        grant_type = _one(form, "grant_type")
        service = self._check_service(req, _one(form, "service"))
        scopes = form.get("scope", [])
        refresh = _one(form, "refresh_token")
        if grant_type == "refresh_token":
            if not refresh:
                raise invalid("BAD_REQUEST", "the form field 'refresh_token' is required")
            subject = self._principal_of_refresh(refresh, service)
            return Response.json({"access_token": self._access_token(subject, service, scopes)})
        if grant_type == "password":
            username, password = _one(form, "username"), _one(form, "password")
            if username or password:
                token = self._basic_access_token(username or "", password or "", service, scopes)
                return Response.json({"access_token": token})
            if refresh:
                principal = self._principal_of_refresh(refresh, service)
                token = self._access_token(principal, service, scopes)
                return Response.json({"access_token": token})
            if not self._principals.anonymous_pull:
                raise _unauthorized("anonymous pull is not enabled on this registry")
            token = self._access_token(None, service, scopes, anonymous=True)
            return Response.json({"access_token": token})
        raise invalid(
            "BAD_REQUEST", f"grant_type {grant_type!r} is not supported; use refresh_token"
        )

    async def token_get(self, req: Request) -> Response:
        service: str = self._check_service(req, req.arg("service"))
        scopes = req.query.get("scope", [])
        header = req.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise _unauthorized("malformed Basic credentials") from None
            token = self._basic_access_token(username, password, service, scopes)
        elif self._principals.anonymous_pull:
            token = self._access_token(None, service, scopes, anonymous=True)
        else:
            error = _unauthorized("Basic credentials are required")
            error.headers.append(("www-authenticate", f'Basic realm="{service}"'))
            raise error
        # Docker clients read `token`, ACR's API returns `access_token`: send both.
        return Response.json({"access_token": token, "token": token})

    def _check_service(self, req: Request, service: str | None) -> str:
        expected = self._gate.service(req)
        if not service:
            raise invalid("BAD_REQUEST", "the form field 'service' is required")
        if service != expected:
            raise _unauthorized(f"service {service!r} is not this registry ({expected!r})")
        return service

    def _principal_of_aad(self, token: str) -> str:
        try:
            claims = auth.unverified_claims(token)
        except TokenError as exc:
            raise _unauthorized(str(exc)) from None
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= time.time():
            raise _unauthorized("the AAD access token has expired")
        audience = claims.get("aud")
        if audience is not None and str(audience).rstrip("/") not in self._audiences:
            raise _unauthorized(
                f"the AAD token's audience {audience!r} is not accepted; request a token for "
                "https://containerregistry.azure.net/.default"
            )
        principal = claims.get("oid") or claims.get("sub")
        if not isinstance(principal, str) or not principal:
            raise _unauthorized("the AAD access token names no principal (no oid or sub claim)")
        return principal

    def _principal_of_refresh(self, token: str, service: str) -> str:
        try:
            claims = self._tokens.verify(token, grant_type="refresh_token", audience=service)
        except TokenError as exc:
            raise _unauthorized(f"invalid refresh token: {exc}") from None
        return str(claims.get("sub"))

    def _refresh_token_for(self, principal: str, service: str, tenant: str | None) -> str:
        return self._tokens.issue(
            {
                "sub": principal,
                "aud": service,
                "grant_type": "refresh_token",
                "tenant": tenant or "",
                "permissions": {"Actions": ["read", "write", "delete"], "NotActions": None},
            },
            self._refresh_lifetime,
        )

    def _access_token(
        self,
        principal: str | None,
        service: str,
        scopes: list[str],
        *,
        anonymous: bool = False,
        scoped: auth.ScopedToken | None = None,
    ) -> str:
        try:
            parsed = auth.parse_scopes(scopes)
        except ValueError as exc:
            raise invalid("BAD_REQUEST", str(exc)) from None
        principals = self._principals
        if scoped is not None:
            principal = f"token:{scoped.username}"
            access = auth.scope_map_access(parsed, scoped.scope_map())
        else:
            grants: tuple[auth.Grant, ...] | None = (
                () if anonymous else principals.grants_of(principal)
            )
            access = auth.grant_access(
                parsed,
                grants,
                abac=principals.abac,
                anonymous=anonymous and principals.anonymous_pull,
            )
        claims: dict[str, Any] = {
            "sub": principal or "",
            "aud": service,
            "grant_type": "access_token",
            "access": access,
            "identity": identity.label(principal, anonymous=anonymous),
        }
        return self._tokens.issue(claims, self._access_lifetime)

    def _basic_access_token(
        self, username: str, password: str, service: str, scopes: list[str]
    ) -> str:
        """An access token for Basic credentials: a refresh token, an ACR token, the admin."""
        scoped = self._principals.scoped_tokens.get(username)
        if scoped is not None:
            if not hmac.compare_digest(password, scoped.password):
                raise _unauthorized("invalid username or password")
            return self._access_token(None, service, scopes, scoped=scoped)
        principal = self._basic_principal(username, password, service)
        return self._access_token(principal, service, scopes)

    def _basic_principal(self, username: str, password: str, service: str) -> str | None:
        """The principal behind Basic credentials; None is the admin user."""
        if username == TOKEN_USER:
            return self._principal_of_refresh(password, service)
        if self._principals.is_admin(username, password):
            return None
        raise _unauthorized("invalid username or password")


def _one(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None

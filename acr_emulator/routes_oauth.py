"""ACR's token service: /oauth2/exchange and /oauth2/token (acr-facts.md sections 2.2-2.3).

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
from typing import TYPE_CHECKING, Any

from acr_emulator import auth
from acr_emulator.auth import TOKEN_USER, TokenError
from acr_emulator.errors import RegistryError, invalid
from acr_emulator.http import Request, Response, Route, route

if TYPE_CHECKING:
    from acr_emulator.emulator import Emulator


def _unauthorized(message: str) -> RegistryError:
    return RegistryError(401, "UNAUTHORIZED", message)


def build(emu: Emulator) -> list[Route]:
    config = emu.config

    def check_service(req: Request, service: str | None) -> str:
        expected = emu.service(req)
        if not service:
            raise invalid("BAD_REQUEST", "the form field 'service' is required")
        if service != expected:
            raise _unauthorized(f"service {service!r} is not this registry ({expected!r})")
        return service

    def principal_of_aad(token: str) -> str:
        try:
            claims = auth.unverified_claims(token)
        except TokenError as exc:
            raise _unauthorized(str(exc)) from None
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= time.time():
            raise _unauthorized("the AAD access token has expired")
        audience = claims.get("aud")
        if audience is not None and str(audience).rstrip("/") not in {
            a.rstrip("/") for a in config.accepted_audiences
        }:
            raise _unauthorized(
                f"the AAD token's audience {audience!r} is not accepted; request a token for "
                "https://containerregistry.azure.net/.default"
            )
        principal = claims.get("oid") or claims.get("sub")
        if not isinstance(principal, str) or not principal:
            raise _unauthorized("the AAD access token names no principal (no oid or sub claim)")
        return principal

    def refresh_token_for(principal: str, service: str, tenant: str | None) -> str:
        return emu.tokens.issue(
            {
                "sub": principal,
                "aud": service,
                "grant_type": "refresh_token",
                "tenant": tenant or "",
                "permissions": {"Actions": ["read", "write", "delete"], "NotActions": None},
            },
            config.refresh_token_lifetime,
        )

    def access_token_for(
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
        if scoped is not None:
            principal = f"token:{scoped.username}"
            access = auth.scope_map_access(parsed, scoped.scope_map())
        else:
            grants: tuple[auth.Grant, ...] | None = () if anonymous else emu.grants_of(principal)
            access = auth.grant_access(
                parsed, grants, abac=config.abac, anonymous=anonymous and emu.anonymous_pull
            )
        claims: dict[str, Any] = {
            "sub": principal or "",
            "aud": service,
            "grant_type": "access_token",
            "access": access,
        }
        return emu.tokens.issue(claims, config.access_token_lifetime)

    def principal_of_refresh(token: str, service: str) -> str:
        try:
            claims = emu.tokens.verify(token, grant_type="refresh_token", audience=service)
        except TokenError as exc:
            raise _unauthorized(f"invalid refresh token: {exc}") from None
        return str(claims.get("sub"))

    async def exchange(req: Request) -> Response:
        form = req.form()
        grant_type = _one(form, "grant_type")
        service = check_service(req, _one(form, "service"))
        if grant_type not in ("access_token", "access_token_refresh_token"):
            raise invalid(
                "BAD_REQUEST",
                f"grant_type {grant_type!r} is not supported; use access_token",
            )
        aad = _one(form, "access_token")
        if not aad:
            raise invalid("BAD_REQUEST", "the form field 'access_token' is required")
        principal = principal_of_aad(aad)
        return Response.json(
            {"refresh_token": refresh_token_for(principal, service, _one(form, "tenant"))}
        )

    async def token_post(req: Request) -> Response:
        form = req.form()
        grant_type = _one(form, "grant_type")
        service = check_service(req, _one(form, "service"))
        scopes = form.get("scope", [])
        refresh = _one(form, "refresh_token")
        if grant_type == "refresh_token":
            if not refresh:
                raise invalid("BAD_REQUEST", "the form field 'refresh_token' is required")
            subject = principal_of_refresh(refresh, service)
            return Response.json({"access_token": access_token_for(subject, service, scopes)})
        if grant_type == "password":
            username, password = _one(form, "username"), _one(form, "password")
            if username or password:
                token = basic_access_token(username or "", password or "", service, scopes)
                return Response.json({"access_token": token})
            if refresh:
                principal = principal_of_refresh(refresh, service)
                return Response.json({"access_token": access_token_for(principal, service, scopes)})
            if not emu.anonymous_pull:
                raise _unauthorized("anonymous pull is not enabled on this registry")
            return Response.json(
                {"access_token": access_token_for(None, service, scopes, anonymous=True)}
            )
        raise invalid(
            "BAD_REQUEST", f"grant_type {grant_type!r} is not supported; use refresh_token"
        )

    def basic_access_token(username: str, password: str, service: str, scopes: list[str]) -> str:
        """An access token for Basic credentials: a refresh token, an ACR token, the admin."""
        scoped = emu.scoped_tokens.get(username)
        if scoped is not None:
            if not hmac.compare_digest(password, scoped.password):
                raise _unauthorized("invalid username or password")
            return access_token_for(None, service, scopes, scoped=scoped)
        return access_token_for(check_basic(username, password, service), service, scopes)

    def check_basic(username: str, password: str, service: str) -> str | None:
        """The principal behind Basic credentials; None is the admin user."""
        if username == TOKEN_USER:
            return principal_of_refresh(password, service)
        if (
            config.admin_enabled
            and hmac.compare_digest(username, config.admin_username)
            and hmac.compare_digest(password, emu.admin_password)
        ):
            return None
        raise _unauthorized("invalid username or password")

    async def token_get(req: Request) -> Response:
        service: str = check_service(req, req.arg("service"))
        scopes = req.query.get("scope", [])
        header = req.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                username, _, password = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise _unauthorized("malformed Basic credentials") from None
            token = basic_access_token(username, password, service, scopes)
        elif emu.anonymous_pull:
            token = access_token_for(None, service, scopes, anonymous=True)
        else:
            error = _unauthorized("Basic credentials are required")
            error.headers.append(("www-authenticate", f'Basic realm="{service}"'))
            raise error
        # Docker clients read `token`, ACR's API returns `access_token`: send both.
        return Response.json({"access_token": token, "token": token})

    return [
        route("/oauth2/exchange", r"/oauth2/exchange", {"POST": exchange}),
        route("/oauth2/token", r"/oauth2/token", {"POST": token_post, "GET": token_get}),
    ]


def _one(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None

"""Who may do what (`Principals`) and the check every registry request passes first (`Gate`).

The permission model itself (roles, scopes, scope maps, token claims) is in `auth`; this module
holds the emulator's mutable part of it, the grants and logins, and ACR's 401 challenge.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence

from acr_emulator import auth
from acr_emulator.auth import TOKEN_USER, Grant, Scope, ScopedToken, TokenError, TokenService
from acr_emulator.config import EmulatorConfig
from acr_emulator.errors import RegistryError
from acr_emulator.http import Request

AUTH_MESSAGE = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)


class Principals:
    """The logins a registry accepts and the roles its principals hold.

    A principal is an AAD `oid`; the admin user and ACR tokens (scope maps) log in with Basic
    credentials. `anonymous_pull` may be switched at any time, as on a real registry.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.abac = config.abac
        self.anonymous_pull = config.anonymous_pull
        self.admin_enabled = config.admin_enabled
        self.admin_username = config.admin_username
        self.admin_password = config.admin_password or secrets.token_urlsafe(24)
        self.scoped_tokens: dict[str, ScopedToken] = {}
        for token in config.scoped_tokens:
            self.add_scoped_token(token.username, token.password, token.actions)
        self._grants: dict[str, tuple[Grant, ...]] = {}
        self._default_grants = tuple(Grant(r) for r in _default_roles(config))

    def grant(self, principal: str, role: str, repositories: tuple[str, ...] | None) -> None:
        """Give a principal a role; its first grant replaces the default roles."""
        if role not in auth.ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {sorted(auth.ROLES)}")
        self._grants[principal] = (*self._grants.get(principal, ()), Grant(role, repositories))

    def revoke(self, principal: str) -> None:
        """Take every grant away: the principal is left with no permission at all."""
        self._grants[principal] = ()

    def grants_of(self, principal: str | None) -> tuple[Grant, ...] | None:
        """A principal's grants; None stands for the admin user (everything)."""
        if principal is None:
            return None
        return self._grants.get(principal, self._default_grants)

    def add_scoped_token(self, username: str, password: str, actions: Sequence[str]) -> None:
        """Create (or replace) an ACR token: Basic credentials limited to scope-map `actions`."""
        if username in (self.admin_username, TOKEN_USER):
            raise ValueError(f"the scoped token name {username!r} is taken by another login")
        self.scoped_tokens[username] = ScopedToken(username, password, tuple(actions))

    def is_admin(self, username: str, password: str) -> bool:
        """Whether Basic credentials are the admin user's (never, with the admin user off)."""
        return (
            self.admin_enabled
            and hmac.compare_digest(username, self.admin_username)
            and hmac.compare_digest(password, self.admin_password)
        )


def _default_roles(config: EmulatorConfig) -> tuple[str, ...]:
    if config.default_roles is not None:
        for role in config.default_roles:
            if role not in auth.ROLES:
                raise ValueError(f"unknown default role {role!r}")
        return config.default_roles
    if config.abac:
        return (
            "Container Registry Repository Contributor",
            "Container Registry Repository Catalog Lister",
        )
    return ("Owner",)


class Gate:
    """Checks a registry request's bearer token against the scope the endpoint needs."""

    def __init__(
        self, tokens: TokenService, *, login_server: str | None, require_auth: bool
    ) -> None:
        self._tokens = tokens
        self._login_server = login_server
        self._require_auth = require_auth

    def service(self, req: Request) -> str:
        """The registry's name: the configured login server, else the Host asked for."""
        return self._login_server or req.host

    def authorize(self, req: Request, scope: Scope | None) -> None:
        """Let the request through, or raise ACR's 401 challenge for `scope`."""
        if not self._require_auth:
            return
        header = req.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer" and credential:
            try:
                claims = self._tokens.verify(
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

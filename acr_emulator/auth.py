"""ACR's token service and permission model, from the wire facts (docs/acr-facts.md 2 and 6).

Tokens are JWTs (HS256 with a per-emulator secret): clients read only the `exp` claim, as they
do with ACR's RS256 tokens. An access token carries Docker-token-spec `access` entries: the
requested scopes intersected with what the principal may do, so a caller lacking a permission
still gets a token and then a 401 `insufficient_scope` on the call (as ACR does).

Principals: the admin user, an AAD principal (the `oid` claim of the exchanged AAD token), or
anonymous. Roles are granted per principal with `Emulator.grant` (kept by
`access.Principals`); a principal with no grants gets `EmulatorConfig.default_roles`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Wire actions (challenge scopes, docs/acr-facts.md section 2.1).
PULL, PUSH, DELETE = "pull", "push", "delete"
METADATA_READ, METADATA_WRITE = "metadata_read", "metadata_write"
REPOSITORY_ACTIONS = frozenset({PULL, PUSH, DELETE, METADATA_READ, METADATA_WRITE})
CATALOG = "catalog"  # stands for registry:catalog:*
# The Basic username that takes an ACR refresh token as its password (docs/acr-facts.md 2.2).
TOKEN_USER = "00000000-0000-0000-0000-000000000000"

_ALL = REPOSITORY_ACTIONS | {CATALOG}
_READ = frozenset({PULL, METADATA_READ, CATALOG})

# What each built-in role permits, per role-assignment mode (docs/acr-facts.md section 6).
# AcrPush does not include delete: the docs' "untag" is ambiguous and least privilege is the
# safer reading for a cleaner (docs/emulator.md). "AcrMetadataWriter" stands for the custom role
# with registries/metadata/read+write that lock changes need in non-ABAC mode.
RBAC_ROLES: dict[str, frozenset[str]] = {
    "AcrPull": _READ,
    "AcrPush": _READ | {PUSH},
    "AcrDelete": frozenset({DELETE}),
    "AcrMetadataWriter": frozenset({METADATA_READ, METADATA_WRITE}),
    "Reader": _READ,
    "Contributor": _ALL,
    "Owner": _ALL,
}
ABAC_ROLES: dict[str, frozenset[str]] = {
    "Container Registry Repository Reader": frozenset({PULL, METADATA_READ}),
    "Container Registry Repository Writer": frozenset({PULL, METADATA_READ, PUSH, METADATA_WRITE}),
    "Container Registry Repository Contributor": REPOSITORY_ACTIONS,
    "Container Registry Repository Catalog Lister": frozenset({CATALOG}),
}
ROLES = frozenset(RBAC_ROLES) | frozenset(ABAC_ROLES)
# Anonymous pull makes every repository readable and listable (docs/acr-facts.md section 2.6).
ANONYMOUS_ACTIONS = _READ


@dataclass(frozen=True, slots=True)
class Grant:
    role: str
    # ABAC condition: repository name prefixes (StringStartsWith); None means registry-wide.
    repositories: tuple[str, ...] | None = None


# ACR scope-map actions (`az acr scope-map create --repository <name> content/read ...`, stored
# as `repositories/<name>/<action>`; container-registry-repository-scoped-permissions.md) and the
# wire actions each one allows.
SCOPE_MAP_ACTIONS: dict[str, str] = {
    "content/read": PULL,
    "content/write": PUSH,
    "content/delete": DELETE,
    "metadata/read": METADATA_READ,
    "metadata/write": METADATA_WRITE,
}


@dataclass(frozen=True, slots=True)
class ScopedToken:
    """An ACR token: a username and password whose only rights are its scope map's actions.

    `actions` are scope-map strings, e.g. `repositories/team-a/api/content/read`; a repository
    name ending in `/*` covers every repository under that prefix. A scope map grants no
    catalog listing (our choice; ACR's documentation lists only repository actions).
    """

    username: str
    password: str
    actions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.username or not self.password:
            raise ValueError("a scoped token needs a username and a password")
        self.scope_map()

    def scope_map(self) -> dict[str, frozenset[str]]:
        """Repository name (or `prefix/*`) -> the wire actions allowed there."""
        allowed: dict[str, set[str]] = {}
        for action in self.actions:
            name, verb = _split_scope_map_action(action)
            allowed.setdefault(name, set()).add(SCOPE_MAP_ACTIONS[verb])
        return {name: frozenset(verbs) for name, verbs in allowed.items()}


def _split_scope_map_action(action: str) -> tuple[str, str]:
    if action.startswith("repositories/"):
        rest = action.removeprefix("repositories/")
        for verb in SCOPE_MAP_ACTIONS:
            name = rest.removesuffix("/" + verb)
            if name != rest and name:
                return name, verb
    raise ValueError(
        f"scope-map action {action!r} is not repositories/<name>/<action> with an action "
        f"among {sorted(SCOPE_MAP_ACTIONS)}"
    )


def scope_map_access(
    scopes: list[Scope], scope_map: dict[str, frozenset[str]]
) -> list[dict[str, Any]]:
    """The `access` list of a scoped token: each repository scope cut down to its scope map."""
    access: list[dict[str, Any]] = []
    for scope in scopes:
        if scope.type != "repository" or scope.name == "*":
            continue
        allowed: set[str] = set(scope_map.get(scope.name, ()))
        for name, actions in scope_map.items():
            if name.endswith("/*") and scope.name.startswith(name[:-1]):
                allowed |= actions
        wanted = REPOSITORY_ACTIONS if "*" in scope.actions else frozenset(scope.actions)
        given = sorted(wanted & allowed)
        if given:
            access.append({"type": "repository", "name": scope.name, "actions": given})
    return access


@dataclass(frozen=True, slots=True)
class Scope:
    """`repository:<name>:<actions>` or `registry:catalog:*`."""

    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """Parse scope form values; one value may hold several scopes separated by spaces."""
    scopes: list[Scope] = []
    for value in values:
        for item in value.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind not in ("repository", "registry") or not name or not actions:
                raise ValueError(f"malformed scope {item!r}")
            scopes.append(Scope(kind, name, tuple(a for a in actions.split(",") if a)))
    return scopes


def allowed_actions(
    grants: tuple[Grant, ...], repository: str | None, *, abac: bool
) -> frozenset[str]:
    """Actions the grants allow on `repository` (None: the catalog)."""
    table = ABAC_ROLES if abac else RBAC_ROLES
    actions: set[str] = set()
    for grant in grants:
        permitted = table.get(grant.role)
        if permitted is None:
            continue
        conditional = grant.repositories is not None and CATALOG not in permitted
        if conditional and not _matches(repository, grant.repositories or ()):
            continue
        actions |= permitted
    return frozenset(actions)


def _matches(repository: str | None, prefixes: tuple[str, ...]) -> bool:
    return repository is not None and any(repository.startswith(p) for p in prefixes)


def grant_access(
    scopes: list[Scope], grants: tuple[Grant, ...] | None, *, abac: bool, anonymous: bool
) -> list[dict[str, Any]]:
    """The Docker-token `access` list: each requested scope cut down to what is allowed."""
    access: list[dict[str, Any]] = []
    for scope in scopes:
        if scope.type == "registry":
            if scope.name != "catalog":
                continue
            allowed = _effective(grants, None, abac=abac, anonymous=anonymous)
            if CATALOG in allowed:
                access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
            continue
        if scope.name == "*":
            # `repository:*:*` (acr-cli): stands for every repository the grants reach.
            actions = _wildcard_actions(grants, abac=abac, anonymous=anonymous)
        else:
            actions = _effective(grants, scope.name, abac=abac, anonymous=anonymous)
        wanted = REPOSITORY_ACTIONS if "*" in scope.actions else frozenset(scope.actions)
        given = sorted(wanted & actions)
        if given:
            access.append({"type": "repository", "name": scope.name, "actions": given})
    return access


def _effective(
    grants: tuple[Grant, ...] | None, repository: str | None, *, abac: bool, anonymous: bool
) -> frozenset[str]:
    if grants is None:
        return frozenset(_ALL)  # the admin user
    allowed = allowed_actions(grants, repository, abac=abac)
    return allowed | ANONYMOUS_ACTIONS if anonymous else allowed


def _wildcard_actions(
    grants: tuple[Grant, ...] | None, *, abac: bool, anonymous: bool
) -> frozenset[str]:
    if grants is None:
        return frozenset(_ALL)
    unconditional = tuple(g for g in grants if g.repositories is None)
    allowed = allowed_actions(unconditional, "", abac=abac) & REPOSITORY_ACTIONS
    return allowed | (ANONYMOUS_ACTIONS & REPOSITORY_ACTIONS) if anonymous else allowed


def permits(access: list[dict[str, Any]], scope: Scope) -> bool:
    """Whether a token's `access` list covers one required scope."""
    for entry in access:
        if entry.get("type") != scope.type:
            continue
        name = entry.get("name")
        if name != scope.name and name != "*":
            continue
        actions = entry.get("actions") or []
        if "*" in actions or all(a in actions for a in scope.actions):
            return True
    return False


# ---- JWTs ----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Verified tokens remembered (signature checked once); cleared when full.
_CACHE_SIZE = 4096


class TokenError(ValueError):
    """A token that is malformed, forged, expired or for another registry."""


class TokenService:
    """Issues and verifies the emulator's refresh and access tokens.

    `now` is the time source for `iat`/`exp` and for checking them (POSIX seconds): the wall
    clock, or the registry clock when `EmulatorConfig.tokens_use_clock` is set.
    """

    def __init__(
        self, secret: bytes | None = None, *, now: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret or uuid.uuid4().bytes + uuid.uuid4().bytes
        self.now = now
        # Tokens issued before this instant are refused (`revoke_all`).
        self.not_before = 0.0
        self._verified: dict[str, dict[str, Any]] = {}

    def revoke_all(self) -> None:
        """Make every token issued so far invalid, as if they had all expired."""
        self.not_before = self.now()

    def issue(self, claims: dict[str, Any], lifetime: float) -> str:
        now = self.now()
        body = {
            "jti": str(uuid.uuid4()),
            "iss": "Azure Container Registry",
            "iat": int(now),
            "nbf": int(now),
            # A float lifetime below one second would round to an already-expired token.
            "exp": int(now + max(lifetime, 1.0)),
            "_issued": now,
            **claims,
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256)
        return f"{header}.{payload}.{_b64(signature.digest())}"

    def verify(self, token: str, *, grant_type: str, audience: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        now = self.now()
        if claims.get("exp", 0) <= now:
            raise TokenError("token has expired")
        if claims.get("_issued", 0) < self.not_before:
            raise TokenError("token has been revoked")
        if claims.get("grant_type") != grant_type:
            raise TokenError(f"expected a {grant_type} token")
        if claims.get("aud") != audience:
            raise TokenError(f"token is for {claims.get('aud')!r}, not {audience!r}")
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        """Check the signature and parse the claims (the costly part, cached by `verify`)."""
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256)
            if not hmac.compare_digest(_unb64(signature), expected.digest()):
                raise TokenError("token signature is not valid")
            claims = json.loads(_unb64(payload))
        except (ValueError, TypeError) as exc:
            raise TokenError(f"malformed token: {exc}") from exc
        if not isinstance(claims, dict):
            raise TokenError("malformed token")
        return claims


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: how the emulator reads an AAD token it trusts."""
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
    except (ValueError, IndexError) as exc:
        raise TokenError(f"the AAD access token is not a JWT: {exc}") from exc
    if not isinstance(claims, dict):
        raise TokenError("the AAD access token payload is not a JSON object")
    return claims

"""A tiny scripted ACR for `httpx.MockTransport`: the auth dance plus whatever a test scripts.

Used where a test needs exact control the emulator does not offer (a given fault on a given
attempt, a lying digest, a hostile realm). Behaviour follows docs/acr-facts.md section 2; it shares
no code with `acr_core`.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

HOST = "fake.azurecr.io"
ENDPOINT = f"https://{HOST}"


def make_jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def read_jwt(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    data: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return data


def required_scope(method: str, path: str) -> str:
    """The scope this fake demands, written from the facts table, not from acr_core."""
    if path.endswith("/_catalog"):
        return "registry:catalog:*"
    if path.startswith("/acr/v1/"):
        name = path[len("/acr/v1/") :].split("/_")[0]
        verb = {"GET": "metadata_read", "PATCH": "metadata_write", "DELETE": "delete"}[method]
        return f"repository:{name}:{verb}"
    name = path[len("/v2/") :].rsplit("/", 2)[0]
    return f"repository:{name}:{'delete' if method == 'DELETE' else 'pull'}"


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeAcr:
    """Scripted registry. `routes` maps (method, path) to a handler; `faults` is a queue of
    responses (or exceptions) served before the real answer to matching paths."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    faults: list[tuple[str, httpx.Response | Exception]] = field(default_factory=list)
    denied: set[str] = field(default_factory=set)  # scopes the identity lacks
    token_lifetime: int = 10_800
    realm: str = f"{ENDPOINT}/oauth2/token"
    admin: tuple[str, str] | None = None
    anonymous_scopes: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    log: list[httpx.Request] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    issued: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        path = request.url.path
        for index, (prefix, fault) in enumerate(self.faults):
            if path.startswith(prefix):
                del self.faults[index]
                self.calls[f"fault {path}"] += 1
                if isinstance(fault, Exception):
                    raise fault
                return fault
        if path == "/oauth2/exchange":
            self.calls["exchange"] += 1
            return self._exchange(request)
        if path == "/oauth2/token":
            self.calls["token"] += 1
            return self._token(request)
        scope = required_scope(request.method, path)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            self.calls["401"] += 1
            return self._challenge(scope, None)
        token = auth[len("Bearer ") :]
        claims = read_jwt(token)
        if token in self.revoked or float(str(claims["exp"])) < time.time():
            self.calls["401"] += 1
            return self._challenge(scope, "invalid_token")
        if claims.get("scope") != scope or scope in self.denied:
            self.calls["401"] += 1
            return self._challenge(scope, "insufficient_scope")
        self.calls[f"{request.method} {path}"] += 1
        handler = self.routes.get((request.method, path))
        if handler is None:
            return httpx.Response(
                404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "not found"}]}
            )
        return handler(request)

    def _challenge(self, scope: str, error: str | None) -> httpx.Response:
        value = f'Bearer realm="{self.realm}",service="{HOST}",scope="{scope}"'
        if error:
            value += f',error="{error}"'
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return httpx.Response(401, headers={"WWW-Authenticate": value}, json=body)

    def _issue(self, claims: dict[str, object]) -> str:
        now = int(time.time())
        self.issued += 1
        return make_jwt(
            {**claims, "iat": now, "exp": now + self.token_lifetime, "jti": self.issued}
        )

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        if form.get("grant_type") != ["access_token"] or not form.get("access_token"):
            return httpx.Response(400, json={"errors": [{"code": "BAD", "message": "bad form"}]})
        return httpx.Response(200, json={"refresh_token": self._issue({"kind": "refresh"})})

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            expected = self.admin and base64.b64encode(":".join(self.admin).encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return httpx.Response(
                    401, json={"errors": [{"code": "UNAUTHORIZED", "message": "no"}]}
                )
            scope = request.url.params["scope"]
            return httpx.Response(200, json={"access_token": self._issue({"scope": scope})})
        form = parse_qs(request.content.decode(), keep_blank_values=True)
        scope = form["scope"][0]
        if form["grant_type"] == ["password"]:
            if scope not in self.anonymous_scopes:
                return httpx.Response(
                    401, json={"errors": [{"code": "UNAUTHORIZED", "message": "no"}]}
                )
            return httpx.Response(200, json={"access_token": self._issue({"scope": scope})})
        refresh = form["refresh_token"][0]
        if refresh in self.revoked:
            return httpx.Response(
                401, json={"errors": [{"code": "UNAUTHORIZED", "message": "expired"}]}
            )
        return httpx.Response(200, json={"access_token": self._issue({"scope": scope})})


@dataclass
class StaticCredential:
    """An azure-identity-shaped async credential returning a fixed fake AAD token."""

    token_value: str = "aad-" + "x" * 20
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    async def get_token(self, *scopes: str, **kwargs: object) -> _AadToken:
        self.scopes.append(scopes)
        return _AadToken(self.token_value, int(time.time()) + 3600)


@dataclass(frozen=True)
class _AadToken:
    token: str
    expires_on: int

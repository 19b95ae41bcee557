"""A minimal request/response layer over plain ASGI.

The emulator answers thousands of requests per second in benchmarks, and repository names
carry `/` (raw or `%2F`-encoded), so routing is a short list of anchored regexes over the
decoded path rather than a framework's router.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from acr_emulator.errors import RegistryError, invalid

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COMMON_HEADERS = (
    ("docker-distribution-api-version", "registry/2.0"),
    (
        "access-control-expose-headers",
        "Docker-Content-Digest, WWW-Authenticate, Link, X-Ms-Correlation-Request-Id",
    ),
)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.headers.get("host", "localhost")

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise invalid("BAD_REQUEST", f"the body is not valid JSON: {exc}") from exc

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = None

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        return cls(
            status,
            json.dumps(payload, separators=(",", ":")).encode(),
            headers or [],
            "application/json; charset=utf-8",
        )

    @classmethod
    def empty(cls, status: int = 202, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, b"", headers or [])


async def read_request(scope: Scope, receive: Receive) -> Request:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    raw_path: bytes | None = scope.get("raw_path")
    path = unquote(raw_path.decode("latin-1").split("?")[0]) if raw_path else scope["path"]
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        # Repeated fields combine into one list (RFC 9110 section 5.3): Docker sends one
        # Accept line per media type.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(
        method=scope["method"],
        path=path,
        query=parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
        headers=headers,
        body=b"".join(chunks),
        scheme=scope.get("scheme", "http"),
    )


async def send_response(
    send: Send, response: Response, extra: list[tuple[str, str]], *, head: bool = False
) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (*response.headers, *extra)]
    if response.content_type:
        headers.append((b"content-type", response.content_type.encode("latin-1")))
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def error_response(exc: RegistryError) -> Response:
    """A registry error as ACR sends it: its status, headers and JSON error body."""
    return Response.json(exc.body(), exc.status, list(exc.headers))


def not_found() -> Response:
    """ACR's router-level 404: plain text, no challenge (docs/acr-facts.md section 1.0)."""
    return Response(404, b"404 page not found\n", [], "text/plain; charset=utf-8")


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: a name for counters, a path pattern, and handlers per method."""

    name: str
    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]


def route(name: str, regex: str, methods: Mapping[str, Handler]) -> Route:
    return Route(name, re.compile(f"^{regex}$"), methods)


def match(routes: list[Route], path: str) -> tuple[Route, dict[str, str]] | None:
    for candidate in routes:
        found = candidate.pattern.match(path)
        if found is not None:
            return candidate, found.groupdict()
    return None

"""Table tests for the auth helpers: challenge parsing, JWT lifetimes, refresh margins, roles."""

from __future__ import annotations

import base64
import json

import pytest

from acr_core.registry._wire import (
    Challenge,
    jwt_claims,
    parse_challenge,
    refresh_margin,
    token_lifetime,
)
from acr_core.registry.errors import role_hint, scrub


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://r.io/oauth2/token",service="r.io",'
            'scope="repository:hello-world:metadata_read"',
            Challenge(
                "bearer",
                "https://r.io/oauth2/token",
                "r.io",
                "repository:hello-world:metadata_read",
            ),
        ),
        (
            'Bearer realm="https://r.io/oauth2/token",service="r.io",scope="registry:catalog:*",'
            'error="insufficient_scope"',
            Challenge(
                "bearer",
                "https://r.io/oauth2/token",
                "r.io",
                "registry:catalog:*",
                "insufficient_scope",
            ),
        ),
        (
            'Bearer realm="https://r.io/oauth2/token", service="r.io", '
            'scope="repository:a/b:pull,push"',
            Challenge("bearer", "https://r.io/oauth2/token", "r.io", "repository:a/b:pull,push"),
        ),
        (
            'Bearer realm="https://r.io/oauth2/token",service="r.io"',
            Challenge("bearer", "https://r.io/oauth2/token", "r.io"),
        ),
        ("Bearer realm=https://r.io/t,service=r.io", Challenge("bearer", "https://r.io/t", "r.io")),
        ('Basic realm="Registry"', Challenge("basic", "Registry")),
        ('Bearer scope="a:b:c d:e:f"', Challenge("bearer", scope="a:b:c d:e:f")),
        ("", None),
    ],
)
def test_parse_challenge(header: str, expected: Challenge | None) -> None:
    """ACR's challenges parse with quoted values kept whole, commas and spaces included."""
    assert parse_challenge(header) == expected


@pytest.mark.parametrize(
    ("token", "now", "lifetime"),
    [
        (jwt({"exp": 10_800 + 1000, "iat": 1000}), 50_000.0, 10_800.0),
        (jwt({"exp": 2000}), 1500.0, 500.0),
        (jwt({"exp": 1000}), 1500.0, -500.0),
        (jwt({"iat": 1000}), 1500.0, None),
        (jwt({"exp": "soon"}), 1500.0, None),
        ("opaque-token", 1500.0, None),
        ("a.!!!.c", 1500.0, None),
    ],
)
def test_token_lifetime(token: str, now: float, lifetime: float | None) -> None:
    """Lifetime is exp - iat when issued-at is known (clock-skew proof), else exp - now."""
    assert token_lifetime(token, now) == lifetime


def test_jwt_claims_of_non_object_payload_is_empty() -> None:
    """A JWT whose payload is not an object yields no claims."""
    payload = base64.urlsafe_b64encode(b"[1]").decode()
    assert jwt_claims(f"x.{payload}.y") == {}


@pytest.mark.parametrize(("lifetime", "margin"), [(10_800, 300), (4500, 300), (60, 15), (0, 0)])
def test_refresh_margin(lifetime: float, margin: float) -> None:
    """Tokens are renewed 5 minutes early, or a quarter of their life when that is shorter."""
    assert refresh_margin(lifetime) == margin


@pytest.mark.parametrize(
    ("scope", "needle"),
    [
        ("repository:app:delete", "'delete' on repository 'app' needs AcrDelete"),
        ("repository:team/app:metadata_write", "metadata/write"),
        ("repository:app:pull", "AcrPull"),
        ("registry:catalog:*", "Catalog Lister"),
        (None, "lacks a data-plane role"),
    ],
)
def test_role_hint_names_action_and_role(scope: str | None, needle: str) -> None:
    """A denied scope is explained with the action and the Azure role that grants it."""
    assert needle in role_hint(scope)


def test_scrub_removes_jwts() -> None:
    """Anything shaped like a JWT is removed from text quoted into messages."""
    token = jwt({"exp": 1})
    assert token not in scrub(f"bad token {token} here")
    assert scrub("plain message") == "plain message"

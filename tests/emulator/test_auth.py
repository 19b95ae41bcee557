"""Auth as ACR does it: challenges, exchange, tokens, roles, ABAC, anonymous pull, expiry."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from acr_emulator import Emulator, EmulatorConfig
from acr_emulator.testing import aad_token
from tests.emulator.helpers import basic

SERVICE = "acr.test"
FIXTURE = {
    "repositories": [
        {"name": "team-a/api", "manifests": [{"tags": ["v1"]}, {"tags": ["v2"]}]},
        {"name": "team-b/web", "manifests": [{"tags": ["v1"]}]},
    ]
}


@pytest.fixture
def seeded(emulator):
    emulator.seed(FIXTURE)
    return emulator


def claims(token: str) -> Any:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def refresh_token(client, oid="principal-1", **kwargs):
    response = await client.post(
        "/oauth2/exchange",
        data={
            "grant_type": "access_token",
            "service": SERVICE,
            "access_token": aad_token(oid=oid, **kwargs),
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["refresh_token"]


async def access_token(client, refresh, *scopes):
    response = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "service": SERVICE,
            "scope": list(scopes),
            "refresh_token": refresh,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def bearer(client, oid, *scopes):
    return {
        "authorization": "Bearer "
        + await access_token(client, await refresh_token(client, oid), *scopes)
    }


async def test_an_unauthenticated_call_gets_acr_s_challenge(seeded, emulator_client):
    """401 UNAUTHORIZED with a no-space Bearer challenge naming realm, service and scope."""
    response = await emulator_client.get("/acr/v1/team-a%2Fapi/_tags")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="https://acr.test/oauth2/token",service="acr.test",'
        'scope="repository:team-a/api:metadata_read"'
    )
    assert response.json()["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "team-a/api", "Action": "metadata_read"}
    ]


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/acr/v1/_catalog", "registry:catalog:*"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("PATCH", "/acr/v1/team-a%2Fapi/_tags/v1", "repository:team-a/api:metadata_write"),
        ("DELETE", "/acr/v1/team-a%2Fapi", "repository:team-a/api:delete"),
        ("GET", "/v2/team-a/api/manifests/v1", "repository:team-a/api:pull"),
        ("PUT", "/v2/team-a/api/manifests/v3", "repository:team-a/api:pull,push"),
    ],
)
async def test_each_operation_challenges_for_its_scope(
    seeded, emulator_client, method, path, scope
):
    """The challenge's scope is the one ACR asks for that operation."""
    response = await emulator_client.request(method, path)
    assert f'scope="{scope}"' in response.headers["www-authenticate"]


async def test_the_base_endpoint_challenges_without_scope(emulator_client):
    """GET /v2/ without a token is 401 with realm and service only."""
    response = await emulator_client.get("/v2/")
    assert (
        response.headers["www-authenticate"]
        == 'Bearer realm="https://acr.test/oauth2/token",service="acr.test"'
    )


async def test_exchange_then_token_then_call(seeded, emulator_client):
    """An AAD token becomes a refresh token, then an access token that the call accepts."""
    headers = await bearer(emulator_client, "p1", "repository:team-a/api:metadata_read")
    response = await emulator_client.get("/acr/v1/team-a%2Fapi/_tags", headers=headers)
    assert response.status_code == 200
    assert [t["name"] for t in response.json()["tags"]] == ["v1", "v2"]


async def test_tokens_are_jwts_with_configured_lifetimes(emulator_client):
    """Refresh and access tokens carry exp = iat + the configured lifetime (3 h by default)."""
    refresh = await refresh_token(emulator_client)
    access = await access_token(emulator_client, refresh, "registry:catalog:*")
    for token in (refresh, access):
        body = claims(token)
        assert body["exp"] - body["iat"] == 3 * 3600
    assert claims(access)["access"] == [{"type": "registry", "name": "catalog", "actions": ["*"]}]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"lifetime": -10}, "expired"),
        ({"audience": "https://vault.azure.net"}, "audience"),
    ],
)
async def test_the_exchange_refuses_expired_or_foreign_aad_tokens(
    emulator_client, kwargs, fragment
):
    """An expired AAD token, or one for another audience, gets 401 naming the reason."""
    response = await emulator_client.post(
        "/oauth2/exchange",
        data={
            "grant_type": "access_token",
            "service": SERVICE,
            "access_token": aad_token(**kwargs),
        },
    )
    assert response.status_code == 401
    assert fragment in response.json()["errors"][0]["message"]


async def test_the_exchange_refuses_another_registry_s_service(emulator_client):
    """Asking for a refresh token for another login server is 401."""
    response = await emulator_client.post(
        "/oauth2/exchange",
        data={
            "grant_type": "access_token",
            "service": "other.azurecr.io",
            "access_token": aad_token(),
        },
    )
    assert response.status_code == 401


async def test_revoked_tokens_are_challenged_again(seeded, emulator, emulator_client):
    """After revoke_tokens (expiry mid-run), the old access token gets a plain challenge."""
    headers = await bearer(emulator_client, "p1", "registry:catalog:*")
    emulator.revoke_tokens()
    response = await emulator_client.get("/acr/v1/_catalog", headers=headers)
    assert response.status_code == 401
    assert "insufficient_scope" not in response.headers["www-authenticate"]


async def test_a_token_for_another_scope_is_insufficient(seeded, emulator_client):
    """A catalog-only token on a tag list answers 401 error="insufficient_scope"."""
    headers = await bearer(emulator_client, "p1", "registry:catalog:*")
    response = await emulator_client.get("/acr/v1/team-a%2Fapi/_tags", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].endswith(',error="insufficient_scope"')


async def test_several_scopes_in_one_token(seeded, emulator_client):
    """Repeated and space-separated scope values all land in one token."""
    refresh = await refresh_token(emulator_client)
    token = await access_token(
        emulator_client,
        refresh,
        "registry:catalog:* repository:team-a/api:metadata_read",
        "repository:team-b/web:pull",
    )
    assert [e["name"] for e in claims(token)["access"]] == ["catalog", "team-a/api", "team-b/web"]


async def test_admin_basic_auth_on_get_token(seeded, emulator, emulator_client):
    """GET /oauth2/token with the admin user's Basic credentials yields a usable token."""
    good = await emulator_client.get(
        "/oauth2/token",
        params={"service": SERVICE, "scope": "repository:team-a/api:delete"},
        headers={"authorization": basic(emulator.config.admin_username, emulator.admin_password)},
    )
    bad = await emulator_client.get(
        "/oauth2/token",
        params={"service": SERVICE, "scope": "repository:team-a/api:delete"},
        headers={"authorization": basic(emulator.config.admin_username, "wrong")},
    )
    deleted = await emulator_client.delete(
        "/acr/v1/team-a%2Fapi/_tags/v1",
        headers={"authorization": "Bearer " + good.json()["access_token"]},
    )
    assert bad.status_code == 401
    assert deleted.status_code == 202
    assert "v1" not in emulator.registry.repositories["team-a/api"].tags


async def test_a_refresh_token_works_as_a_basic_password(seeded, emulator_client):
    """User 00000000-0000-0000-0000-000000000000 with a refresh token as password gets a token."""
    refresh = await refresh_token(emulator_client)
    response = await emulator_client.get(
        "/oauth2/token",
        params={"service": SERVICE, "scope": "registry:catalog:*"},
        headers={"authorization": basic("00000000-0000-0000-0000-000000000000", refresh)},
    )
    assert response.status_code == 200


async def test_anonymous_grant_is_refused_unless_anonymous_pull(emulator_client):
    """grant_type=password with no credentials is 401 on a registry without anonymous pull."""
    response = await emulator_client.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "service": SERVICE,
            "scope": "registry:catalog:*",
            "refresh_token": "",
        },
    )
    assert response.status_code == 401


async def test_anonymous_pull_reads_but_cannot_delete(seeded, emulator, emulator_client):
    """With anonymous pull an anonymous token lists and pulls; a delete is insufficient_scope."""
    emulator.anonymous_pull = True
    response = await emulator_client.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "service": SERVICE,
            "scope": ["registry:catalog:*", "repository:team-a/api:pull,delete"],
            "refresh_token": "",
        },
    )
    headers = {"authorization": "Bearer " + response.json()["access_token"]}
    catalog = await emulator_client.get("/acr/v1/_catalog", headers=headers)
    pull = await emulator_client.get("/v2/team-a/api/manifests/v1", headers=headers)
    delete = await emulator_client.delete("/acr/v1/team-a%2Fapi", headers=headers)
    assert catalog.status_code == pull.status_code == 200
    assert delete.status_code == 401
    assert "insufficient_scope" in delete.headers["www-authenticate"]
    assert "team-a/api" in emulator.registry.repositories


@pytest.mark.parametrize(
    ("roles", "method", "path", "allowed"),
    [
        (["AcrPull"], "GET", "/acr/v1/team-a%2Fapi/_tags", True),
        (["AcrPull"], "DELETE", "/acr/v1/team-a%2Fapi/_tags/v1", False),
        (["AcrPull", "AcrDelete"], "DELETE", "/acr/v1/team-a%2Fapi/_tags/v1", True),
        (["AcrDelete"], "GET", "/acr/v1/team-a%2Fapi/_tags", False),
        (["AcrDelete"], "GET", "/acr/v1/_catalog", False),
        (["AcrPush"], "DELETE", "/acr/v1/team-a%2Fapi/_tags/v1", False),
        (["AcrPull"], "PATCH", "/acr/v1/team-a%2Fapi/_tags/v1", False),
        (["AcrMetadataWriter"], "PATCH", "/acr/v1/team-a%2Fapi/_tags/v1", True),
        (["Reader"], "GET", "/acr/v1/_catalog", True),
        (["Owner"], "DELETE", "/acr/v1/team-a%2Fapi", True),
    ],
)
async def test_rbac_roles_grant_what_acr_s_roles_grant(
    seeded, emulator, emulator_client, roles, method, path, allowed
):
    """Each built-in role allows exactly its actions; the rest is 401 insufficient_scope."""
    for role in roles:
        emulator.grant("p-roles", role)
    challenge = await emulator_client.request(
        method, path, json={"deleteEnabled": True} if method == "PATCH" else None
    )
    scope = challenge.headers["www-authenticate"].split('scope="')[1].split('"')[0]
    headers = await bearer(emulator_client, "p-roles", scope)
    response = await emulator_client.request(
        method, path, headers=headers, json={"deleteEnabled": True} if method == "PATCH" else None
    )
    assert (response.status_code != 401) is allowed
    if not allowed:
        assert "insufficient_scope" in response.headers["www-authenticate"]


@pytest.fixture
async def abac():
    emu = Emulator(EmulatorConfig(abac=True))
    emu.seed(FIXTURE)
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://acr.test") as client:
        yield emu, client


@pytest.mark.parametrize(
    ("roles", "method", "path", "allowed"),
    [
        (["AcrPull", "AcrDelete", "Owner"], "GET", "/acr/v1/team-a%2Fapi/_tags", False),
        (["Container Registry Repository Reader"], "GET", "/acr/v1/team-a%2Fapi/_tags", True),
        (["Container Registry Repository Reader"], "GET", "/acr/v1/_catalog", False),
        (["Container Registry Repository Catalog Lister"], "GET", "/acr/v1/_catalog", True),
        (
            ["Container Registry Repository Writer"],
            "DELETE",
            "/acr/v1/team-a%2Fapi/_tags/v1",
            False,
        ),
        (
            ["Container Registry Repository Contributor"],
            "DELETE",
            "/acr/v1/team-a%2Fapi/_tags/v1",
            True,
        ),
    ],
)
async def test_abac_mode_honours_only_repository_roles(abac, roles, method, path, allowed):
    """In ABAC mode Acr*/Owner give nothing; repository roles and Catalog Lister do their part."""
    emulator, emulator_client = abac
    for role in roles:
        emulator.grant("p-abac", role)
    challenge = await emulator_client.request(method, path)
    scope = challenge.headers["www-authenticate"].split('scope="')[1].split('"')[0]
    response = await emulator_client.request(
        method, path, headers=await bearer(emulator_client, "p-abac", scope)
    )
    assert (response.status_code != 401) is allowed


async def test_abac_conditions_limit_a_role_to_repository_prefixes(abac):
    """A Contributor conditioned on team-a/ can delete there but not in team-b/."""
    emulator, emulator_client = abac
    emulator.grant("p-cond", "Container Registry Repository Contributor", repositories=("team-a/",))
    headers = await bearer(
        emulator_client, "p-cond", "repository:team-a/api:delete", "repository:team-b/web:delete"
    )
    inside = await emulator_client.delete("/acr/v1/team-a%2Fapi/_tags/v1", headers=headers)
    outside = await emulator_client.delete("/acr/v1/team-b%2Fweb/_tags/v1", headers=headers)
    assert inside.status_code == 202
    assert outside.status_code == 401
    assert "v1" in emulator.registry.repositories["team-b/web"].tags


async def test_a_revoked_principal_can_do_nothing(seeded, emulator, emulator_client):
    """revoke() leaves a principal with no permissions, even read."""
    emulator.revoke("p-none")
    headers = await bearer(emulator_client, "p-none", "registry:catalog:*")
    response = await emulator_client.get("/acr/v1/_catalog", headers=headers)
    assert response.status_code == 401


async def test_token_lifetimes_are_configurable(emulator_client):
    """access_token_lifetime and refresh_token_lifetime set each token's exp - iat."""
    emu = Emulator(EmulatorConfig(access_token_lifetime=5, refresh_token_lifetime=60))
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://acr.test") as client:
        refresh = await refresh_token(client)
        access = await access_token(client, refresh, "registry:catalog:*")
    assert claims(refresh)["exp"] - claims(refresh)["iat"] == 60
    assert claims(access)["exp"] - claims(access)["iat"] == 5

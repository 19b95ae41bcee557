"""Tokens die at their `exp`; ACR tokens with scope maps get only their scope map's actions."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from acr_emulator import Emulator, EmulatorConfig, ScopedToken
from tests.emulator.helpers import basic
from tests.emulator.test_auth import FIXTURE, SERVICE, access_token, claims, refresh_token

SCOPED = ScopedToken(
    "ci-reader",
    "s3cret-pass",
    ("repositories/team-a/api/content/read", "repositories/team-a/api/metadata/read"),
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        tokens_use_clock=True,
        access_token_lifetime=60,
        refresh_token_lifetime=120,
        frozen_clock=True,
        scoped_tokens=(SCOPED,),
    )


@pytest.fixture
def seeded(emulator: Emulator) -> Emulator:
    emulator.seed(FIXTURE)
    return emulator


async def test_an_access_token_past_its_exp_is_refused(seeded, emulator_client):
    """A token accepted shortly before its exp gets a plain 401 challenge once exp has passed."""
    refresh = await refresh_token(emulator_client)
    token = await access_token(emulator_client, refresh, "repository:team-a/api:metadata_read")
    headers = {"authorization": f"Bearer {token}"}
    # exp is whole seconds on the registry clock: 59 to 60 s ahead of it.
    assert 59 < claims(token)["exp"] - seeded.clock.peek().timestamp() <= 60

    seeded.clock.advance(timedelta(seconds=58))
    before = await emulator_client.get("/acr/v1/team-a%2Fapi/_tags", headers=headers)
    seeded.clock.advance(timedelta(seconds=3))
    after = await emulator_client.get("/acr/v1/team-a%2Fapi/_tags", headers=headers)

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "insufficient_scope" not in after.headers["www-authenticate"]
    assert 'scope="repository:team-a/api:metadata_read"' in after.headers["www-authenticate"]


async def test_a_refresh_token_past_its_exp_buys_no_access_token(seeded, emulator_client):
    """/oauth2/token answers 401 for a refresh token whose exp has passed."""
    refresh = await refresh_token(emulator_client)
    seeded.clock.advance(timedelta(seconds=121))
    response = await emulator_client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "service": SERVICE,
            "scope": "registry:catalog:*",
            "refresh_token": refresh,
        },
    )
    assert response.status_code == 401
    assert "expired" in response.json()["errors"][0]["message"]


async def scoped_token(client, scope: str, password: str = SCOPED.password):
    return await client.get(
        "/oauth2/token",
        params={"service": SERVICE, "scope": scope},
        headers={"authorization": basic(SCOPED.username, password)},
    )


async def test_a_scoped_token_reads_what_its_scope_map_allows(seeded, emulator_client):
    """content/read + metadata/read on team-a/api: the tag list and a pull succeed."""
    response = await scoped_token(emulator_client, "repository:team-a/api:pull,metadata_read")
    headers = {"authorization": "Bearer " + response.json()["access_token"]}
    tags = await emulator_client.get("/acr/v1/team-a%2Fapi/_tags", headers=headers)
    pull = await emulator_client.get(
        "/v2/team-a/api/manifests/v1",
        headers={**headers, "accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 200
    assert [t["name"] for t in tags.json()["tags"]] == ["v1", "v2"]
    assert pull.status_code == 200


@pytest.mark.parametrize(
    ("scope", "method", "path"),
    [
        ("repository:team-a/api:delete", "DELETE", "/acr/v1/team-a%2Fapi/_tags/v1"),
        ("repository:team-a/api:metadata_write", "PATCH", "/acr/v1/team-a%2Fapi/_tags/v1"),
        ("repository:team-b/web:metadata_read", "GET", "/acr/v1/team-b%2Fweb/_tags"),
        ("registry:catalog:*", "GET", "/acr/v1/_catalog"),
    ],
)
async def test_an_action_outside_the_scope_map_is_insufficient_scope(
    seeded, emulator_client, scope, method, path
):
    """The token is issued without the action, and the call is 401 insufficient_scope."""
    response = await scoped_token(emulator_client, scope)
    token = response.json()["access_token"]
    refused = await emulator_client.request(
        method, path, headers={"authorization": f"Bearer {token}"}, json={}
    )
    assert claims(token)["access"] == []
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].endswith(',error="insufficient_scope"')
    assert "v1" in seeded.registry.repositories["team-a/api"].tags


async def test_a_scoped_token_works_with_the_password_grant_too(seeded, emulator_client):
    """POST /oauth2/token grant_type=password with the token's credentials is cut to its map."""
    response = await emulator_client.post(
        "/oauth2/token",
        data={
            "grant_type": "password",
            "service": SERVICE,
            "scope": "repository:team-a/api:pull,delete",
            "username": SCOPED.username,
            "password": SCOPED.password,
        },
    )
    assert claims(response.json()["access_token"])["access"] == [
        {"type": "repository", "name": "team-a/api", "actions": ["pull"]}
    ]


async def test_a_scoped_token_with_a_wrong_password_is_refused(seeded, emulator_client):
    """Basic auth with the token's name and another password is 401."""
    response = await scoped_token(emulator_client, "repository:team-a/api:pull", "wrong")
    assert response.status_code == 401


async def test_a_wildcard_scope_map_covers_repositories_under_its_prefix(seeded):
    """`repositories/team-a/*/content/delete` lets a token delete in team-a/api, not team-b."""
    seeded.add_scoped_token("cleaner", "pw", ["repositories/team-a/*/content/delete"])
    transport = httpx.ASGITransport(app=seeded.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://acr.test") as client:
        response = await client.get(
            "/oauth2/token",
            params={
                "service": SERVICE,
                "scope": ["repository:team-a/api:delete", "repository:team-b/web:delete"],
            },
            headers={"authorization": basic("cleaner", "pw")},
        )
    assert claims(response.json()["access_token"])["access"] == [
        {"type": "repository", "name": "team-a/api", "actions": ["delete"]}
    ]


@pytest.mark.parametrize(
    "action",
    ["team-a/api/content/read", "repositories/team-a/api/content/erase", "repositories//x"],
)
def test_a_malformed_scope_map_action_is_refused_by_name(action):
    """A scope-map action that is not repositories/<name>/<action> raises naming it."""
    with pytest.raises(ValueError, match="scope-map action"):
        ScopedToken("t", "p", (action,))

"""Tokens that expire by `exp` mid-listing, ACR tokens with scope maps, and the AAD audience."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from acr_core import AuthenticationError, PermissionDeniedError
from acr_emulator import Emulator, EmulatorConfig, ScopedToken
from acr_emulator.testing import AsyncFakeCredential
from tests.client.conftest import Connect

CLEANER = ScopedToken(
    "app-cleaner",
    "scoped-pass",
    (
        "repositories/app/content/read",
        "repositories/app/metadata/read",
        "repositories/app/content/delete",
    ),
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    # Tokens read the frozen registry clock, so only `emu.clock.advance` expires them; the
    # client reads `exp - iat` (1 s for access tokens) and renews 0.75 s after receipt.
    return EmulatorConfig(
        tokens_use_clock=True,
        frozen_clock=True,
        access_token_lifetime=1,
        refresh_token_lifetime=30,
        scoped_tokens=(CLEANER,),
    )


def fixture(count: int, name: str = "app") -> dict[str, Any]:
    return {
        "repositories": [
            {"name": name, "manifests": [{"salt": str(i), "tags": [f"v{i}"]} for i in range(count)]}
        ]
    }


async def test_tokens_expiring_mid_listing_are_renewed_or_recovered(
    emulator: Emulator, connect: Connect
) -> None:
    """A listing completes in order, recovering from tokens past exp with one re-exchange and
    renewing a token near its exp before it is refused."""
    emulator.seed(fixture(20))

    def tokens(status: int) -> int:
        return emulator.counters.count(endpoint="/oauth2/token", method="POST", status=status)

    def pages_refused() -> int:
        return emulator.counters.count(endpoint="/acr/v1/{name}/_manifests", status=401)

    seen: list[str] = []
    async with connect() as client:
        async for manifest in client.list_manifest_properties(
            "app", order_by="timeasc", results_per_page=5
        ):
            seen.append(manifest.digest)
            if len(seen) == 5:
                # Both tokens are past their exp for the registry, still fresh for the client.
                emulator.clock.advance(timedelta(seconds=60))
            if len(seen) == 10:
                assert pages_refused() == 2
                assert tokens(401) == 1
                renewed_before = tokens(200)
                await asyncio.sleep(0.8)  # past the client's renewal point, short of exp
            if len(seen) == 15:
                assert tokens(200) == renewed_before + 1
                assert pages_refused() == 2
        stats = client.stats
    state = emulator.registry.repositories["app"].manifests.values()
    assert seen == [m.digest for m in sorted(state, key=lambda m: m.updated)]
    assert stats.exchanges == emulator.counters.count(endpoint="/oauth2/exchange") == 2
    assert tokens(200) == 3
    assert pages_refused() == 2


async def test_a_scoped_token_cleans_inside_its_scope_map_only(
    emulator: Emulator, connect: Connect
) -> None:
    """An ACR token lists and deletes in its repository, and anything else is refused as
    insufficient scope, changing nothing."""
    emulator.seed(fixture(3))
    emulator.seed(fixture(1, "other"))
    digests = sorted(emulator.registry.repositories["app"].manifests)
    async with connect(username=CLEANER.username, password=CLEANER.password) as client:
        listed = [m.digest async for m in client.list_manifest_properties("app")]
        assert await client.delete_manifest("app", digests[0]) is True
        with pytest.raises(PermissionDeniedError) as lock:
            await client.update_tag_properties("app", "v1", can_delete=False)
        with pytest.raises(PermissionDeniedError) as elsewhere:
            await client.get_repository_properties("other")
        assert client.stats.exchanges == 0
    assert sorted(listed) == digests
    assert lock.value.scope == "repository:app:metadata_write"
    assert elsewhere.value.scope == "repository:other:metadata_read"
    assert lock.value.status == 401
    assert "repositories/app/metadata/write in the token's scope map" in str(lock.value)
    assert "repositories/other/metadata/read" in str(elsewhere.value)
    remaining = emulator.registry.repositories["app"]
    assert set(remaining.manifests) == set(digests[1:])
    assert all(t.attributes.delete_enabled for t in remaining.tags.values())
    assert emulator.counters.count(endpoint="/oauth2/token", method="GET", status=401) == 0


async def test_a_scoped_token_with_a_wrong_password_is_an_authentication_error(
    emulator: Emulator, connect: Connect
) -> None:
    """The token's name with another password fails with AuthenticationError, not a loop."""
    emulator.seed(fixture(1))
    async with connect(username=CLEANER.username, password="not-it") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_repository_properties("app")
    assert "not-it" not in str(caught.value)
    assert emulator.counters.count(endpoint="/oauth2/token", status=401) == 1


@pytest.mark.parametrize(
    ("audience", "asked", "accepted"),
    [
        (None, "https://containerregistry.azure.net/.default", True),
        ("https://management.azure.com", "https://management.azure.com/.default", True),
        (
            "https://management.core.windows.net/",
            "https://management.core.windows.net/.default",
            True,
        ),
        (
            "https://management.usgovcloudapi.net",
            "https://management.usgovcloudapi.net/.default",
            False,
        ),
    ],
)
async def test_the_credential_is_asked_for_the_audience_s_default_scope(
    emulator: Emulator, connect: Connect, audience: str | None, asked: str, accepted: bool
) -> None:
    """AcrClient(audience=...) asks the credential for `<audience>/.default`, once."""
    emulator.seed(fixture(1))
    credential = AsyncFakeCredential()
    async with connect(credential, audience=audience) as client:
        if accepted:
            assert (await client.get_repository_properties("app")).name == "app"
        else:
            with pytest.raises(AuthenticationError, match="audience"):
                await client.get_repository_properties("app")
    assert credential.calls == [(asked,)]

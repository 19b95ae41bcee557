"""Auth modes, permission errors, token expiry, throttling and faults, against the emulator."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from acr_core import (
    AcrClient,
    AcrConnectionError,
    AuthenticationError,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    ThrottledError,
    UnsupportedOperationError,
)
from acr_emulator import Emulator, Faults, ServerInfo, ThrottleConfig
from acr_emulator.testing import DEFAULT_OID, AsyncFakeCredential
from tests.client.conftest import Connect


def fixture(count: int, name: str = "app") -> dict[str, Any]:
    return {
        "repositories": [
            {
                "name": name,
                "manifests": [
                    {"salt": str(i), "tags": [f"v{i}"] if i % 2 else []} for i in range(count)
                ],
            }
        ]
    }


def no_wait() -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    return RetryPolicy(attempts=10, sleep=sleep)


async def test_token_expiry_in_the_middle_of_a_long_listing(
    emulator: Emulator, connect: Connect
) -> None:
    """When every token dies between pages, the client logs in again and the listing completes."""
    emulator.seed(fixture(60))
    seen: list[str] = []
    async with connect() as client:
        async for manifest in client.list_manifest_properties("app", results_per_page=5):
            seen.append(manifest.digest)
            if len(seen) == 12:
                emulator.revoke_tokens()
        stats = client.stats
    assert sorted(seen) == sorted(emulator.registry.repositories["app"].manifests)
    assert stats.exchanges == 2  # the refresh token died too: exchanged once more, not per page
    # 401s: the first challenge, the page after the revocation, and the refused refresh token.
    assert stats.challenges == 3
    assert emulator.counters.count(endpoint="/acr/v1/{name}/_manifests", status=401) == 2
    assert emulator.counters.count(endpoint="/oauth2/token", status=401) == 1


async def test_insufficient_scope_names_the_missing_role(
    emulator: Emulator, connect: Connect
) -> None:
    """An identity with AcrPull only cannot delete: PermissionDeniedError names AcrDelete."""
    emulator.seed(fixture(3))
    emulator.grant(DEFAULT_OID, "AcrPull")
    digest = sorted(emulator.registry.repositories["app"].manifests)[0]
    async with connect() as client:
        assert len([m async for m in client.list_manifest_properties("app")]) == 3
        with pytest.raises(PermissionDeniedError) as caught:
            await client.delete_manifest("app", digest)
    assert caught.value.scope == "repository:app:delete"
    assert "AcrDelete" in str(caught.value)
    assert digest in emulator.registry.repositories["app"].manifests
    # One retry with a fresh grant, then the error: two 401s on the delete, no loop.
    assert emulator.counters.count(endpoint="/v2/{name}/manifests/{reference}", status=401) == 2


async def test_least_privilege_pull_and_delete_is_enough_to_clean(
    emulator: Emulator, connect: Connect
) -> None:
    """AcrPull + AcrDelete list and delete; changing a lock needs metadata write and says so."""
    emulator.seed(fixture(4))
    emulator.grant(DEFAULT_OID, "AcrPull")
    emulator.grant(DEFAULT_OID, "AcrDelete")
    async with connect() as client:
        digests = [m.digest async for m in client.list_manifest_properties("app")]
        assert await client.delete_manifest("app", digests[0]) is True
        with pytest.raises(PermissionDeniedError, match="metadata/write"):
            await client.update_tag_properties("app", "v1", can_delete=False)
    assert digests[0] not in emulator.registry.repositories["app"].manifests


async def test_anonymous_pull_reads_but_cannot_delete(emulator: Emulator, connect: Connect) -> None:
    """Anonymously, a registry with anonymous pull lists and reads but refuses deletes."""
    emulator.seed(fixture(3))
    emulator.anonymous_pull = True
    digest = sorted(emulator.registry.repositories["app"].manifests)[0]
    async with connect(None) as client:
        assert [n async for n in client.list_repository_names()] == ["app"]
        assert (await client.get_manifest("app", digest)).digest == digest
        with pytest.raises(PermissionDeniedError):
            await client.delete_manifest("app", digest)
        assert client.stats.exchanges == 0
    assert digest in emulator.registry.repositories["app"].manifests


async def test_anonymous_without_anonymous_pull_is_refused(
    emulator: Emulator, connect: Connect
) -> None:
    """Without credentials on a private registry the client fails with AuthenticationError."""
    emulator.seed(fixture(1))
    async with connect(None) as client:
        with pytest.raises(AuthenticationError):
            await client.get_repository_properties("app")


async def test_admin_basic_auth(emulator: Emulator, connect: Connect) -> None:
    """The admin user gets scope tokens with Basic on GET /oauth2/token and can delete."""
    emulator.seed(fixture(3))
    user, password = emulator.config.admin_username, emulator.admin_password
    digest = sorted(emulator.registry.repositories["app"].manifests)[0]
    async with connect(username=user, password=password) as client:
        assert len([m async for m in client.list_manifest_properties("app")]) == 3
        assert await client.delete_manifest("app", digest) is True
        assert await client.delete_manifest(
            "app", sorted(emulator.registry.repositories["app"].manifests)[0]
        )
    assert emulator.counters.count(endpoint="/oauth2/token", method="GET", status=200) == 2
    assert emulator.counters.count(endpoint="/oauth2/exchange") == 0
    assert len(emulator.registry.repositories["app"].manifests) == 1
    async with connect(username=user, password="wrong-" + password) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_repository_properties("app")
    assert password not in str(caught.value)


async def test_expired_aad_token_is_an_authentication_error(
    emulator: Emulator, connect: Connect
) -> None:
    """An AAD token the exchange refuses surfaces as AuthenticationError, not a retry loop."""
    emulator.seed(fixture(1))
    async with connect(AsyncFakeCredential(lifetime=-60)) as client:
        with pytest.raises(AuthenticationError, match="/oauth2/exchange"):
            await client.get_repository_properties("app")
    assert emulator.counters.count(endpoint="/oauth2/exchange") == 1


async def test_delete_by_tag_on_the_wire_is_unsupported(
    emulator: Emulator, connect: Connect
) -> None:
    """ACR's 405 UNSUPPORTED for a manifest DELETE by tag maps to UnsupportedOperationError."""
    emulator.seed(fixture(2))
    async with connect() as client:
        # The public delete_manifest refuses tags before sending; this checks the mapping itself.
        with pytest.raises(UnsupportedOperationError) as caught:
            await client._send("DELETE", "/v2/app/manifests/v1")
    assert caught.value.code == "UNSUPPORTED"
    assert "v1" in emulator.registry.repositories["app"].tags


async def test_throttling_is_waited_out(emulator: Emulator, connect: Connect) -> None:
    """Deletes over the write budget get 429s, wait Retry-After, and all succeed in the end."""
    emulator.seed(fixture(8))
    # 60 writes a minute with time running 20x: one write per 50 ms and no burst to spend, so
    # back-to-back deletes are throttled however fast the machine is.
    emulator.throttle.configure(ThrottleConfig(6000, 60, burst_seconds=0.05, time_scale=20))
    waited: list[float] = []

    async def scaled_sleep(seconds: float) -> None:
        waited.append(seconds)
        await asyncio.sleep(seconds / 20)

    heard: list[float | None] = []
    digests = sorted(emulator.registry.repositories["app"].manifests)
    async with connect(retry=RetryPolicy(attempts=10, sleep=scaled_sleep)) as client:
        client.add_throttle_listener(heard.append)
        for digest in digests:
            assert await client.delete_manifest("app", digest) is True
        throttled = client.stats.throttled
    assert "app" not in emulator.registry.repositories
    assert throttled >= 1
    assert heard
    assert all(value is not None and value >= 1 for value in heard)
    assert waited[: len(heard)] == heard


async def test_throttling_without_retries_raises(emulator: Emulator, connect: Connect) -> None:
    """With retries off, a 429 is raised at once as ThrottledError carrying Retry-After."""
    emulator.seed(fixture(1))
    emulator.throttle.configure(ThrottleConfig(1, 1, burst_seconds=1))
    async with connect() as client:
        # The first request (its 401) spends the one-request burst; the token call is throttled.
        with pytest.raises(ThrottledError) as caught:
            await client.get_repository_properties("app")
    assert caught.value.retry_after is not None
    assert caught.value.retry_after >= 1


async def test_injected_faults_are_retried_to_the_right_end_state(
    emulator: Emulator, connect: Connect
) -> None:
    """5xx answers and dropped connections are retried: listing and deleting finish exactly."""
    emulator.seed(fixture(40))
    emulator.faults = Faults(error_rate=0.2, drop_rate=0.1, seed=7)
    async with connect(retry=no_wait()) as client:
        listed = [
            m.digest async for m in client.list_manifest_properties("app", results_per_page=5)
        ]
        outcomes = await asyncio.gather(*(client.delete_manifest("app", d) for d in listed[:20]))
        stats = client.stats
    emulator.faults = Faults()
    remaining = emulator.registry.repositories["app"].manifests
    assert len(listed) == 40
    assert set(remaining) == set(listed[20:])
    # The emulator drops a connection before the handler runs, so no injected fault loses a
    # delete that was done: each delete reports True, and the registry answered each one 202
    # exactly once (a retry of a done delete would have been a 404 and reported False).
    assert outcomes == [True] * 20
    deletes = "/v2/{name}/manifests/{reference}"
    assert emulator.counters.count(endpoint=deletes, method="DELETE", status=202) == 20
    assert emulator.counters.count(endpoint=deletes, method="DELETE", status=404) == 0
    assert stats.retries >= 1
    assert stats.connection_errors + stats.by_status[503] >= 1


@pytest.mark.parametrize(
    ("faults", "error"),
    [(Faults(error_rate=1.0), ServerError), (Faults(drop_rate=1.0), AcrConnectionError)],
)
async def test_persistent_faults_end_in_transient_errors(
    emulator: Emulator, connect: Connect, faults: Faults, error: type[Exception]
) -> None:
    """A registry that keeps failing ends the call with ServerError or AcrConnectionError."""
    emulator.seed(fixture(1))
    emulator.faults = faults
    async with connect(retry=RetryPolicy(attempts=3, sleep=no_wait().sleep)) as client:
        with pytest.raises(error):
            await client.get_repository_properties("app")
        assert client.stats.retries == 2


async def test_many_concurrent_deletes_share_one_token(
    emulator: Emulator, connect: Connect
) -> None:
    """A hundred concurrent deletes in one repository cost one exchange, one token, one 401."""
    emulator.seed(fixture(100))
    digests = sorted(emulator.registry.repositories["app"].manifests)
    async with connect() as client:
        results = await asyncio.gather(*(client.delete_manifest("app", d) for d in digests))
    assert results == [True] * 100
    assert "app" not in emulator.registry.repositories
    assert emulator.counters.count(endpoint="/oauth2/exchange") == 1
    assert emulator.counters.count(endpoint="/oauth2/token") == 1
    assert emulator.counters.count(status=401) == 1


async def test_many_concurrent_scopes_share_one_challenge_and_one_exchange(
    emulator: Emulator, connect: Connect
) -> None:
    """Fifty repositories read at once: one 401, one exchange, one token per scope; after every
    token is revoked, the next burst re-exchanges once and still succeeds."""
    emulator.seed(
        {"repositories": [{"name": f"r{i}", "manifests": [{"tags": ["v1"]}]} for i in range(50)]}
    )
    async with connect() as client:
        first = await asyncio.gather(*(client.get_tag_properties(f"r{i}", "v1") for i in range(50)))
        assert emulator.counters.count(status=401) == 1
        assert emulator.counters.count(endpoint="/oauth2/exchange") == 1
        assert emulator.counters.count(endpoint="/oauth2/token") == 50
        emulator.revoke_tokens()
        emulator.counters.reset()
        again = await asyncio.gather(*(client.get_tag_properties(f"r{i}", "v1") for i in range(50)))
    assert [t.name for t in first] == [t.name for t in again] == ["v1"] * 50
    assert emulator.counters.count(endpoint="/oauth2/exchange") == 1
    assert emulator.counters.count(endpoint="/oauth2/token", status=200) == 50


def test_transport_errors_keep_the_url_redacted() -> None:
    """A connection failure names the method and URL without the query values."""
    from acr_core.registry.errors import error_from_transport

    request = httpx.Request("GET", "https://r.io/acr/v1/_catalog?last=secret&n=1")
    error = error_from_transport(httpx.ConnectError("refused"), request)
    assert str(error) == "GET https://r.io/acr/v1/_catalog?last=***&n=***: ConnectError: refused"


async def test_tokens_never_reach_logs_or_errors_over_https(
    emulator: Emulator, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Across exchange, token grants and a permission error, no token shows in logs or errors."""
    caplog.set_level(logging.DEBUG)
    emulator.seed(fixture(2))
    emulator.grant(DEFAULT_OID, "AcrPull")
    credential = AsyncFakeCredential()
    digest = sorted(emulator.registry.repositories["app"].manifests)[0]
    async with connect(credential) as client:
        await client.get_manifest("app", digest)
        with pytest.raises(PermissionDeniedError) as caught:
            await client.delete_manifest("app", digest)
        auth = client._auth  # the cached tokens, read to know what must not leak
        secrets = [t.value for t in auth._tokens.values()]
        secrets.append(auth._refresh.value if auth._refresh else "")
        texts = [caplog.text, str(caught.value), repr(caught.value), repr(client), repr(auth)]
    # The fake AAD token differs per call, but its header segment is fixed: look for that.
    aad = (await credential.get_token("https://containerregistry.azure.net/.default")).token
    secrets = [s for s in secrets if s]
    assert len(secrets) >= 3
    for text in texts:
        for secret in secrets:
            assert secret not in text
            assert secret.split(".")[1] not in text
        assert aad.split(".")[0] + "." not in text


async def test_untrusted_certificate_fails_fast_with_advice(
    emulator: Emulator, emulator_server: ServerInfo
) -> None:
    """An untrusted registry certificate fails at once, without retries, and says to pass verify."""
    client = AcrClient(emulator_server.url, AsyncFakeCredential(), retry=no_wait())
    async with client:
        with pytest.raises(AcrConnectionError, match="verify=") as caught:
            await client.get_repository_properties("app")
        assert client.stats.retries == 0
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert emulator.counters.total == 0

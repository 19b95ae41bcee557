"""Token requests the token service refuses or fails: transient when a retry can succeed.

A refused refresh token is exchanged again once; a token service that fails (5xx, 429) or that
refuses even the refresh token an exchange has just issued (a revocation storm) gives an error
that `is_transient` retries later; an identity the exchange refuses stays a permanent failure.
"""

from __future__ import annotations

import httpx
import pytest

from acr_core import (
    AcrClient,
    AuthenticationError,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    ThrottledError,
    is_transient,
)
from acr_core.registry.errors import TokenRevokedError
from acr_emulator import Emulator, Faults
from acr_emulator.testing import DEFAULT_OID, AsyncFakeCredential
from tests.client.fake_acr import ENDPOINT, FakeAcr, StaticCredential

APP = {"repositories": [{"name": "app", "manifests": [{"salt": "1", "tags": ["v1"]}]}]}


def repo_props() -> dict[str, object]:
    return {
        "registry": "fake.azurecr.io",
        "imageName": "app",
        "createdTime": "2024-01-01T00:00:00Z",
        "lastUpdateTime": "2024-01-01T00:00:00Z",
        "manifestCount": 1,
        "tagCount": 1,
        "changeableAttributes": {
            "deleteEnabled": True,
            "writeEnabled": True,
            "readEnabled": True,
            "listEnabled": True,
        },
    }


def fake_with_app() -> FakeAcr:
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props())
    return fake


def fake_client(fake: FakeAcr, **kwargs: object) -> AcrClient:
    if "username" not in kwargs:
        kwargs["credential"] = StaticCredential()
    return AcrClient(ENDPOINT, transport=fake.transport(), retry=RetryPolicy.off(), **kwargs)  # type: ignore[arg-type]


def refusal(status: int) -> httpx.Response:
    code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS"}.get(status, "SERVICE_UNAVAILABLE")
    return httpx.Response(status, json={"errors": [{"code": code, "message": "refused"}]})


class RevokeAfterExchange(httpx.AsyncBaseTransport):
    """The emulator in-process, revoking every token right after each of the next `times`
    exchanges: the refresh token it just issued is refused when used, as in a revocation storm."""

    def __init__(self, emulator: Emulator, times: int) -> None:
        self._inner = httpx.ASGITransport(app=emulator.app)
        self._emulator = emulator
        self.times = times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path == "/oauth2/exchange" and response.status_code == 200 and self.times:
            self.times -= 1
            self._emulator.revoke_tokens()
        return response


def emulator_client(emulator: Emulator, transport: httpx.AsyncBaseTransport) -> AcrClient:
    return AcrClient(
        "https://acr.test", AsyncFakeCredential(), transport=transport, retry=RetryPolicy.off()
    )


@pytest.mark.parametrize(
    ("path", "status", "cls"),
    [
        ("/oauth2/token", 503, ServerError),
        ("/oauth2/token", 500, ServerError),
        ("/oauth2/token", 429, ThrottledError),
        ("/oauth2/exchange", 503, ServerError),
    ],
)
async def test_a_failing_token_service_is_a_transient_error(
    path: str, status: int, cls: type[Exception]
) -> None:
    """A 5xx or 429 from the exchange or the token endpoint is its transient class, naming it."""
    fake = fake_with_app()
    fake.faults.append((path, refusal(status)))
    async with fake_client(fake) as client:
        with pytest.raises(cls) as caught:
            await client.get_repository_properties("app")
    assert is_transient(caught.value)
    assert path in str(caught.value)


async def test_a_revoked_session_meeting_a_token_service_outage_is_transient() -> None:
    """Tokens revoked while the token service answers 503 fail transiently, then recover."""
    emulator = Emulator()
    emulator.seed(APP)
    async with emulator_client(emulator, httpx.ASGITransport(app=emulator.app)) as client:
        assert (await client.get_repository_properties("app")).name == "app"
        emulator.revoke_tokens()
        emulator.faults = Faults(error_rate=1.0, methods=frozenset({"POST"}))
        with pytest.raises(ServerError) as caught:
            await client.get_repository_properties("app")
        assert is_transient(caught.value)
        emulator.faults = Faults()
        assert (await client.get_repository_properties("app")).name == "app"


async def test_a_refused_refresh_token_is_exchanged_again_once() -> None:
    """The refresh token revoked right after its exchange is replaced by one more exchange."""
    emulator = Emulator()
    emulator.seed(APP)
    transport = RevokeAfterExchange(emulator, times=1)
    async with emulator_client(emulator, transport) as client:
        assert (await client.get_repository_properties("app")).name == "app"
    assert emulator.counters.count(endpoint="/oauth2/exchange") == 2


async def test_refresh_tokens_revoked_as_soon_as_issued_fail_transiently() -> None:
    """A storm that revokes the re-exchanged refresh token too is transient, not a bad login."""
    emulator = Emulator()
    emulator.seed(APP)
    transport = RevokeAfterExchange(emulator, times=2)
    async with emulator_client(emulator, transport) as client:
        with pytest.raises(TokenRevokedError) as caught:
            await client.get_repository_properties("app")
        assert is_transient(caught.value)
        assert "/oauth2/token" in str(caught.value)
        assert emulator.counters.count(endpoint="/oauth2/exchange") == 2
        assert (await client.get_repository_properties("app")).name == "app"


async def test_an_identity_the_exchange_refuses_stays_a_permanent_failure() -> None:
    """An AAD token the exchange refuses is AuthenticationError, which no retry can fix."""
    emulator = Emulator()
    emulator.seed(APP)
    transport = httpx.ASGITransport(app=emulator.app)
    credential = AsyncFakeCredential(lifetime=-60)
    async with AcrClient(
        "https://acr.test", credential, transport=transport, retry=RetryPolicy.off()
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_repository_properties("app")
    assert not is_transient(caught.value)


async def test_an_identity_without_a_role_stays_a_permanent_failure() -> None:
    """An identity whose grants are gone gets PermissionDeniedError, not a transient error."""
    emulator = Emulator()
    emulator.seed(APP)
    emulator.revoke(DEFAULT_OID)
    async with emulator_client(emulator, httpx.ASGITransport(app=emulator.app)) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await client.get_repository_properties("app")
    assert not is_transient(caught.value)


async def test_a_wrong_password_stays_a_permanent_failure() -> None:
    """Basic credentials the token endpoint refuses are AuthenticationError, not transient."""
    fake = fake_with_app()
    fake.admin = ("admin", "right")
    async with fake_client(fake, username="admin", password="wrong") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_repository_properties("app")
    assert not is_transient(caught.value)

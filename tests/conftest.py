"""Shared fixtures: an in-process emulator, a client on it, and the emulator over real HTTPS.

- `emulator`: a fresh `Emulator` (admin user on, auth required, clock running).
- `emulator_client`: an `httpx.AsyncClient` driving `emulator.app` in-process at
  `https://acr.test` (so the emulator's login server is `acr.test`).
- `emulator_server`: the same `emulator` served over HTTPS on 127.0.0.1 from a background
  thread (works for sync and async tests); has `url`, `ca_file`, `login_server`,
  `admin_username`, `admin_password`.
- `fake_credential` / `async_fake_credential`: azure-core-shaped credentials whose AAD tokens
  the emulator's /oauth2/exchange accepts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential, FakeCredential

ASGI_BASE_URL = "https://acr.test"


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """The CLI's default manifest cache goes to a temporary directory, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Override in a test module to change how `emulator` is built."""
    return EmulatorConfig()


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Emulator:
    return Emulator(emulator_config)


@pytest.fixture
async def emulator_client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url=ASGI_BASE_URL) as client:
        yield client


@pytest.fixture
def emulator_server(emulator: Emulator) -> Iterator[ServerInfo]:
    with emulator.serve_in_thread() as server:
        yield server


@pytest.fixture
def fake_credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def async_fake_credential() -> AsyncFakeCredential:
    return AsyncFakeCredential()

"""Fixtures for client tests on the emulator: the same tests run in-process and over HTTPS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from acr_core import AcrClient, RetryPolicy
from acr_emulator import Emulator
from acr_emulator.testing import AsyncFakeCredential

Connect = Callable[..., AcrClient]
_DEFAULT = object()


@pytest.fixture(params=["asgi", "https"])
def connect(request: pytest.FixtureRequest, emulator: Emulator) -> Connect:
    """Build an `AcrClient` on `emulator`: in-process (ASGI) or over real HTTPS on loopback.

    Retries are off unless a test passes `retry=`; the credential defaults to a fake AAD
    identity the emulator's exchange accepts (`credential=None` means anonymous).
    """
    server = request.getfixturevalue("emulator_server") if request.param == "https" else None

    def make(credential: Any = _DEFAULT, **kwargs: Any) -> AcrClient:
        if credential is _DEFAULT and "username" not in kwargs:
            credential = AsyncFakeCredential()
        elif credential is _DEFAULT:
            credential = None
        kwargs.setdefault("retry", RetryPolicy.off())
        if server is None:
            transport = httpx.ASGITransport(app=emulator.app)
            return AcrClient("https://acr.test", credential, transport=transport, **kwargs)
        return AcrClient(server.url, credential, verify=server.ca_file or True, **kwargs)

    make.mode = request.param  # type: ignore[attr-defined]
    make.server = server  # type: ignore[attr-defined]
    return make

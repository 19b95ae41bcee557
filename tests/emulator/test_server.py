"""Serving over real sockets: HTTPS with a generated CA, plain HTTP, loopback only."""

from __future__ import annotations

import ssl

import httpx
import pytest

from acr_emulator import Emulator


async def test_plain_http_serving_challenges_with_an_http_realm():
    """serve(tls=False) answers on http:// and names an http:// realm and host:port service."""
    emu = Emulator()
    async with emu.serve(tls=False) as server, httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/v2/")
    assert server.url.startswith("http://127.0.0.1:")
    assert server.ca_file is None
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{server.url}/oauth2/token",service="{server.login_server}"'
    )


def test_https_serving_uses_its_own_ca(emulator_server):
    """The HTTPS server's certificate verifies against ca_file and fails without it."""
    context = ssl.create_default_context(cafile=emulator_server.ca_file)
    with httpx.Client(verify=context) as client:
        assert client.get(f"{emulator_server.url}/v2/").status_code == 401
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"{emulator_server.url}/v2/")


async def test_serving_off_loopback_is_refused():
    """serve(host=...) accepts only loopback addresses."""
    with pytest.raises(ValueError, match="loopback"):
        async with Emulator().serve(host="0.0.0.0"):  # noqa: S104
            pass

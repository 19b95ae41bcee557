"""`Emulator.before_request`: a callback that runs just before a request is handled."""

from __future__ import annotations

import asyncio

import httpx

from acr_emulator import Arrival, Emulator, Faults
from tests.emulator.helpers import admin_headers, push_image


async def test_a_change_made_by_the_hook_is_what_the_request_sees(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """A hook that locks the manifest on its DELETE makes that very DELETE refused."""
    headers = await admin_headers(emulator_client, emulator)
    digest, _ = await push_image(emulator_client, headers, "apps/a", "v1")
    manifests = emulator.registry.repositories["apps/a"].manifests

    def lock_on_delete(arrival: Arrival) -> None:
        if arrival.method == "DELETE":
            manifests[digest].attributes.update({"deleteEnabled": False})

    emulator.before_request(lock_on_delete)
    response = await emulator_client.delete(f"/v2/apps/a/manifests/{digest}", headers=headers)
    assert response.status_code == 405
    assert digest in manifests


async def test_the_hook_sees_method_path_route_and_count(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """Each data-plane request reaches the hook once, numbered from 1; admin requests do not."""
    headers = await admin_headers(emulator_client, emulator)
    await push_image(emulator_client, headers, "apps/a", "v1")
    seen: list[Arrival] = []
    remove = emulator.before_request(seen.append)
    await emulator_client.get("/acr/v1/apps/a/_tags/v1", headers=headers)
    await emulator_client.get("/_emulator/counters")
    await emulator_client.get("/acr/v1/apps/a", headers=headers)
    remove()
    await emulator_client.get("/acr/v1/apps/a", headers=headers)
    assert seen == [
        Arrival("GET", "/acr/v1/apps/a/_tags/v1", "/acr/v1/{name}/_tags/{tag}", 1),
        Arrival("GET", "/acr/v1/apps/a", "/acr/v1/{name}", 2),
    ]


async def test_a_request_the_guard_refuses_never_reaches_the_hook(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """An injected 503 answers before the hook runs, so the hook changes nothing for it."""
    seen: list[Arrival] = []
    emulator.before_request(seen.append)
    emulator.faults = Faults(error_rate=1.0)
    assert (await emulator_client.get("/acr/v1/_catalog")).status_code == 503
    assert seen == []


async def test_an_async_hook_holds_the_request_until_it_returns(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """An awaited hook delays its request: the response waits for the hook to finish."""
    release = asyncio.Event()
    reached = asyncio.Event()

    async def hold(arrival: Arrival) -> None:
        reached.set()
        await release.wait()

    emulator.before_request(hold)
    request = asyncio.create_task(emulator_client.get("/acr/v1/_catalog"))
    await reached.wait()
    await asyncio.sleep(0.01)
    assert not request.done()
    release.set()
    assert (await request).status_code in (200, 401)

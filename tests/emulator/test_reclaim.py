"""The emulator reclaims a deleted manifest's unreferenced blobs after `reclaim_blobs_after`,
as ACR does asynchronously: the same manifest can be pushed again until then, not after."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from acr_emulator import Emulator, EmulatorConfig
from tests.emulator.helpers import admin_headers, digest_of, push_image

DELAY = timedelta(minutes=10)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(reclaim_blobs_after=DELAY)


async def _push_then_delete(
    client: httpx.AsyncClient, emulator: Emulator
) -> tuple[dict[str, str], bytes]:
    headers = await admin_headers(client, emulator)
    digest, body = await push_image(client, headers, "app", "v1", layer=b"only mine")
    await push_image(client, headers, "app", "v2", layer=b"shared", architecture="arm64")
    deleted = await client.delete(f"/v2/app/manifests/{digest}", headers=headers)
    assert deleted.status_code == 202
    return headers, body


async def _put(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> httpx.Response:
    media_type = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    return await client.put(
        f"/v2/app/manifests/{digest_of(body)}", content=body, headers={**headers, **media_type}
    )


async def test_a_deleted_manifest_goes_back_before_its_blobs_are_reclaimed(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """Within the delay the blobs are still there, and the same bytes are accepted again."""
    headers, body = await _push_then_delete(emulator_client, emulator)
    emulator.clock.advance(DELAY - timedelta(seconds=1))
    assert (await _put(emulator_client, headers, body)).status_code == 201
    emulator.clock.advance(DELAY * 2)
    layer = json.loads(body)["layers"][0]["digest"]
    found = await emulator_client.head(f"/v2/app/blobs/{layer}", headers=headers)
    assert found.status_code == 200  # referenced again: never reclaimed


async def test_after_the_delay_the_blobs_are_gone_and_the_manifest_is_refused(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """After the delay HEAD answers 404 for each blob only it used, and its PUT is refused."""
    headers, body = await _push_then_delete(emulator_client, emulator)
    emulator.clock.advance(DELAY)
    document = json.loads(body)
    for blob in (document["config"]["digest"], document["layers"][0]["digest"]):
        assert (
            await emulator_client.head(f"/v2/app/blobs/{blob}", headers=headers)
        ).status_code == 404
    refused = await _put(emulator_client, headers, body)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"

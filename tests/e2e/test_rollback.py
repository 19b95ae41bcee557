"""A rollback re-tags an old image; the cleanup must treat it as the newest, whatever ACR does
to the manifest's own lastUpdateTime when a tag moves onto it (docs/acr-facts.md 1.4 documents only
the tag's time moving)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from acr_core.planning.policy import load_policy
from acr_core.registry.client import AcrClient
from acr_core.run.service import run_cleanup
from acr_emulator import Emulator, EmulatorConfig
from scripts.oci_push import OCI_MANIFEST, BasicTokenAuth, push_image

BASE_URL = "https://acr.test"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = {
    "version": 1,
    "rules": [{"name": "apps", "repositories": ["app"], "keepLatest": 2, "minAge": "0s"}],
}


@pytest.mark.parametrize("retag_moves_manifest_time", [True, False])
async def test_an_old_image_re_tagged_prod_is_kept_as_the_newest(
    retag_moves_manifest_time: bool,
) -> None:
    """keepLatest: 2 after `prod` moves back onto the oldest image keeps it and the newest."""
    emulator = Emulator(
        EmulatorConfig(now=NOW, retag_moves_manifest_time=retag_moves_manifest_time)
    )
    transport = httpx.ASGITransport(app=emulator.app)
    auth = BasicTokenAuth(emulator.config.admin_username, emulator.admin_password)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth) as http:
        pushed = {}
        for days_ago, tag in ((30, "1"), (20, "2"), (10, "3")):
            emulator.clock.set(NOW - timedelta(days=days_ago))
            pushed[tag] = await push_image(http, "app", tag, label=tag)
        emulator.clock.set(NOW - timedelta(hours=1))
        raw = await http.get(f"/v2/app/manifests/{pushed['1'].digest}")
        raw.raise_for_status()
        retag = await http.put(
            "/v2/app/manifests/prod", content=raw.content, headers={"Content-Type": OCI_MANIFEST}
        )
        retag.raise_for_status()
    emulator.clock.set(NOW)

    async with AcrClient(
        BASE_URL,
        username=emulator.config.admin_username,
        password=emulator.admin_password,
        transport=httpx.ASGITransport(app=emulator.app),
    ) as client:
        await run_cleanup(client, load_policy(POLICY), dry_run=False, now=NOW)

    remaining = set(emulator.registry.repositories["app"].manifests)
    assert remaining == {pushed["1"].digest, pushed["3"].digest}

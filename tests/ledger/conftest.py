"""A registry served over HTTPS, a pusher that uploads real blobs, a client, and a ledger.

Images are pushed with `scripts.oci_push` (config and layer blobs uploaded), so a deleted
manifest can be put back while the emulator still has its blobs, and not after it reclaimed
them (`EmulatorConfig.reclaim_blobs_after`, five minutes on the registry clock here).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from acr_core.ledger.ledger import Ledger
from acr_core.ledger.recorder import LedgerRecorder
from acr_core.planning.policy import Policy, load_policy
from acr_core.registry.client import AcrClient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.report import RunReport
from acr_core.run.service import run_cleanup
from acr_core.storage.objects import DirectoryStore
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from scripts.oci_push import BasicTokenAuth

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(days=10)  # every image pushed at T0 is older than any minAge here
RECLAIM_AFTER = timedelta(minutes=5)
# Keep the newest image of each repository; no safety limit gets in the way.
POLICY = {
    "version": 1,
    "rules": [{"name": "newest", "repositories": ["**"], "keepLatest": 1, "minAge": "1h"}],
    "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
}


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=T0, reclaim_blobs_after=RECLAIM_AFTER)


@dataclass
class Stage:
    emulator: Emulator
    server: ServerInfo
    http: httpx.AsyncClient  # pushes as CI does (admin user)
    client: AcrClient  # the cleaner's client (Azure AD, the fake credential's oid)
    ledger: Ledger
    policy: Policy

    async def run(self, *, dry_run: bool = False, now: datetime = LATER) -> RunReport:
        recorder = LedgerRecorder(self.ledger, self.client, self.policy, trigger="test")
        return await run_cleanup(
            self.client, self.policy, dry_run=dry_run, now=now, recorder=recorder
        )

    def digests(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)
        return set(repo.manifests) if repo else set()

    def tags(self, repository: str) -> dict[str, str]:
        repo = self.emulator.registry.repositories.get(repository)
        return {name: tag.digest for name, tag in repo.tags.items()} if repo else {}


@pytest.fixture
async def stage(
    emulator: Emulator, emulator_server: ServerInfo, tmp_path: Path
) -> AsyncIterator[Stage]:
    verify = ssl.create_default_context(cafile=emulator_server.ca_file)
    auth = BasicTokenAuth(emulator_server.admin_username, emulator_server.admin_password)
    async with (
        httpx.AsyncClient(base_url=emulator_server.url, verify=verify, auth=auth) as http,
        AcrClient(
            emulator_server.url,
            AsyncFakeCredential(),
            verify=verify,
            retry=RetryPolicy(attempts=2, deadline=5.0, backoff_base=0.01, backoff_max=0.05),
        ) as client,
    ):
        ledger = Ledger(DirectoryStore(tmp_path / "ledger"))
        yield Stage(emulator, emulator_server, http, client, ledger, load_policy(POLICY))

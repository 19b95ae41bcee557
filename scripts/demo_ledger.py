"""The demo's last act: one deletion as the ledger recorded it, and `restore` putting it back.

The function wrote every run into its ledger (a local directory standing in for the storage
account's immutable container). This picks a deletion of a tagged image whose blobs the
registry still has, prints its entry, restores it with its tags through the real client, and
checks the registry's state.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import httpx

from acr_core.ledger.entries import Entry
from acr_core.ledger.ledger import Ledger
from acr_core.ledger.restore import State, restore
from acr_core.registry.client import AcrClient
from acr_emulator import Emulator
from acr_emulator.testing import AsyncFakeCredential
from scripts.demo_view import Screen
from scripts.oci_push import BasicTokenAuth, push_image

# The seeded history describes its layers without storing them (they would be gigabytes), so
# none of it could be put back. One old experiment is pushed for real, layers and all, before the
# demo starts; sandbox's keepLatest 1 deletes it, and the last act restores it.
OLD_EXPERIMENT = ("sandbox/spikes", "try-0")


async def push_old_experiment(
    emulator: Emulator, url: str, ca_file: str, user: str, password: str
) -> None:
    """Push sandbox/spikes:try-0 as if three weeks ago, with real config and layer blobs."""
    verify = ssl.create_default_context(cafile=ca_file)
    now = emulator.clock.now()
    emulator.clock.set(now - timedelta(days=21))
    try:
        async with httpx.AsyncClient(
            base_url=url, verify=verify, auth=BasicTokenAuth(user, password)
        ) as http:
            await push_image(http, *OLD_EXPERIMENT, label="try-0")
    finally:
        emulator.clock.set(now)


async def ledger_and_restore(
    screen: Screen, ledger: Ledger, emulator: Emulator, url: str, ca_file: str
) -> None:
    entries = [e for e in await ledger.entries() if e.deleted]
    runs = {e.info.run for e in entries}
    screen.section("4. The deletion ledger, and a restore")
    screen.note(
        f"{len(entries)} deletions in {len(runs)} runs were recorded in {ledger.description} "
        "before they were made, each with the manifest's bytes (in Azure: the storage "
        "account's immutable container acr-cleanup-ledger).",
        indent=2,
    )
    async with AcrClient(url, AsyncFakeCredential(), verify=ca_file) as client:
        now = datetime.now(UTC)
        chosen = None
        # The old experiment first; any other deletion whose blobs are still there would do.
        ours = (OLD_EXPERIMENT[0], (OLD_EXPERIMENT[1],))
        for entry in sorted(entries, key=lambda e: (e.repository, e.tags) != ours):
            dry = await restore(ledger, client, [entry], now=now, dry_run=True)
            if dry.results and all(r.state is State.WOULD_RESTORE for r in dry.results):
                chosen = entry
                break
        if chosen is None:
            screen.note("nothing restorable: the registry reclaimed every deleted blob", indent=2)
            return
        _show(screen, chosen)
        screen.step(
            f"acr-cleanup restore --registry {client.login_server} --digest {chosen.digest}"
        )
        done = await restore(ledger, client, [chosen], now=now)
    for result in done.results:
        tags = ", ".join(result.tags_restored) or "no tags"
        screen.print(
            f"    {screen.green('restored')} {result.repository}@{result.digest[:19]}  {tags}"
        )
    repo = emulator.registry.repositories.get(chosen.repository)
    back = repo is not None and chosen.digest in repo.manifests
    screen.note(
        f"{'back in the registry' if back else 'NOT back'} with its original digest; protected "
        f"from age-based deletion until {done.protect_until:%Y-%m-%d %H:%M} UTC, so the run its "
        "push triggers does not delete it again for its age.",
        indent=4,
    )


def _show(screen: Screen, entry: Entry) -> None:
    screen.step(f"acr-cleanup ledger show {entry.digest}")
    rows = [
        ("run", f"{entry.info.run}  (trigger {entry.info.trigger}, {entry.info.event_id})"),
        ("principal", str(entry.info.principal)),
        ("policy", f"{entry.info.policy_hash[:19]}…  rule {entry.rule}"),
        ("deleted", f"{entry.repository}@{entry.digest[:19]}  tags {', '.join(entry.tags) or '-'}"),
        ("why", entry.reason),
        ("outcome", f"{entry.outcome} at {entry.time:%H:%M:%S} UTC, {entry.size} bytes"),
        ("with it", f"{len(entry.cascades)} referrer(s) ACR deleted along, each recorded too"),
    ]
    for name, value in rows:
        screen.note(f"{name:<10} {value}", indent=4)

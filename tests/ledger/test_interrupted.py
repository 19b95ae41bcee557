"""A run interrupted while applying still records what it did, as its interrupted report says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from acr_core.ledger.ledger import Ledger
from acr_core.ledger.recorder import LedgerRecorder
from acr_core.planning.policy import load_policy
from acr_core.run.service import RunInterrupted, run_cleanup
from acr_core.storage.objects import DirectoryStore
from tests.ledger.conftest import POLICY
from tests.unit.emulated_registry import EmulatedRegistry, later


async def test_an_interrupted_run_records_its_report_so_far(tmp_path: Path) -> None:
    """Cancelled with one DELETE in flight: the ledger's entries are the interrupted report's,
    the finished deletion `applied` and the stalled one `planned`, bytes recorded for both."""
    registry = EmulatedRegistry()
    first = registry.push("app", "v1", tags=("v1",), updated=later(0))
    second = registry.push("app", "v2", tags=("v2",), updated=later(1))
    registry.push("app", "v3", tags=("v3",), updated=later(2))
    registry.wire.stalled = second  # its DELETE never answers
    policy = load_policy(POLICY)
    ledger = Ledger(DirectoryStore(tmp_path / "ledger"))
    recorder = LedgerRecorder(ledger, registry.client, policy, trigger="test")
    run = asyncio.ensure_future(
        run_cleanup(registry.client, policy, dry_run=False, now=later(30), recorder=recorder)
    )
    await registry.wire.reached.wait()
    while first in registry.digests("app"):  # the other deletion finishes first
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(RunInterrupted) as caught:
        await run
    report = caught.value.report
    entries = await ledger.entries()
    assert [(e.digest, e.outcome, e.detail) for e in entries] == [
        (o.action.digest, o.outcome.value, o.detail) for o in report.outcomes
    ]
    assert {e.digest: e.outcome for e in entries} == {first: "applied", second: "planned"}
    assert all(e.manifest is not None and e.manifest.raw for e in entries)

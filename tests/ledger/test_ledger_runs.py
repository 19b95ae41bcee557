"""The ledger a run writes: what it records, when, and that it fails closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from acr_core.ledger.ledger import Ledger, LedgerError, Query
from acr_core.ledger.recorder import LedgerRecorder, policy_hash
from acr_core.run.executor import Outcome
from acr_core.run.service import run_cleanup
from acr_core.storage.objects import DirectoryStore
from acr_emulator.testing import DEFAULT_OID
from scripts.oci_push import push_image, push_multi_arch, push_referrer
from tests.ledger.conftest import LATER, Stage

SIGNATURE = "application/vnd.cncf.notary.signature"


async def _stage_three_repositories(stage: Stage) -> None:
    """app: v1 (signed) then v2; multi: two multi-arch tags; each run deletes the older."""
    v1 = await push_image(stage.http, "app", "v1", label="1")
    await push_referrer(stage.http, "app", v1, artifact_type=SIGNATURE, label="sig")
    await push_image(stage.http, "app", "v2", label="2")
    await push_multi_arch(stage.http, "multi", "v1", label="1")
    await push_multi_arch(stage.http, "multi", "v2", label="2")


async def test_a_runs_ledger_entries_match_its_report_exactly(stage: Stage) -> None:
    """One entry per action of the report, with its kind, digest, tags, rule, reason and outcome."""
    await _stage_three_repositories(stage)
    report = await stage.run()
    assert sum(o.outcome is Outcome.APPLIED for o in report.outcomes) >= 4
    entries = await stage.ledger.entries()
    from_report = [
        (o.action.kind.value, o.action.repository, o.action.digest, o.action.tags,
         o.action.rule, o.action.reason, o.outcome.value, o.detail, o.action.size_in_bytes)
        for o in report.outcomes
    ]  # fmt: skip
    from_ledger = [
        (e.kind, e.repository, e.digest, e.tags, e.rule, e.reason, e.outcome, e.detail, e.size)
        for e in entries
    ]
    assert from_ledger == from_report
    assert {e.info.principal for e in entries} == {DEFAULT_OID}
    assert {(e.info.trigger, e.info.dry_run) for e in entries} == {("test", False)}
    assert {e.info.policy_hash for e in entries} == {policy_hash(stage.policy)}
    cascaded = [c.digest for e in entries for c in e.cascades]
    assert len(cascaded) == 1  # the signature went with app:v1
    for entry in entries:
        for recorded in (entry.manifest, *entry.cascades):
            assert recorded is not None
            assert recorded.raw is not None
            assert entry.media_type is not None


async def test_a_dry_run_records_its_plan_as_planned_and_deletes_nothing(stage: Stage) -> None:
    """Dry, every planned action is in the ledger as `planned`, flagged dry, without bytes."""
    await _stage_three_repositories(stage)
    before = {name: stage.digests(name) for name in ("app", "multi")}
    report = await stage.run(dry_run=True)
    entries = await stage.ledger.entries()
    assert [(e.digest, e.outcome) for e in entries] == [
        (a.digest, "planned") for a in report.plan.actions
    ]
    assert all(e.info.dry_run for e in entries)
    assert {name: stage.digests(name) for name in ("app", "multi")} == before


async def test_a_ledger_that_cannot_be_written_stops_the_run_before_any_deletion(
    stage: Stage, tmp_path: Path
) -> None:
    """A ledger directory that cannot be created (a file is in the way) deletes nothing."""
    await _stage_three_repositories(stage)
    before = {name: (stage.digests(name), stage.tags(name)) for name in ("app", "multi")}
    (tmp_path / "blocked").write_text("a file, not a directory")
    broken = Ledger(DirectoryStore(tmp_path / "blocked" / "ledger"))
    recorder = LedgerRecorder(broken, stage.client, stage.policy, trigger="test")
    with pytest.raises(LedgerError, match="cannot write the deletion ledger"):
        await run_cleanup(stage.client, stage.policy, dry_run=False, now=LATER, recorder=recorder)
    assert {name: (stage.digests(name), stage.tags(name)) for name in ("app", "multi")} == before


async def test_entries_are_found_by_repository_digest_rule_and_run(stage: Stage) -> None:
    """Each filter keeps exactly the entries it names; a cascaded referrer finds its entry."""
    await _stage_three_repositories(stage)
    await stage.run()
    entries = await stage.ledger.entries()
    app = [e for e in entries if e.repository == "app"]
    assert await stage.ledger.entries(Query(repository="app")) == app
    signature = app[0].cascades[0].digest
    assert await stage.ledger.entries(Query(digest=signature)) == app
    assert await stage.ledger.entries(Query(rule="nope")) == []
    assert await stage.ledger.entries(Query(run=entries[0].info.run)) == entries
    assert await stage.ledger.entries(Query(until=LATER.replace(year=2020))) == []

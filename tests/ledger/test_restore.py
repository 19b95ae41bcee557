"""`restore` puts what a run deleted back, byte for byte, with its tags, and protects it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from acr_core.ledger.ledger import Ledger, LedgerError, Query
from acr_core.ledger.restore import RestoreReport, State, restore, select
from acr_core.planning.policy import load_policy
from acr_core.run.executor import Outcome
from acr_core.storage.objects import DirectoryStore, StoreError
from scripts.oci_push import push_image, push_multi_arch, push_referrer
from tests.ledger.conftest import LATER, RECLAIM_AFTER, Stage

SIGNATURE = "application/vnd.cncf.notary.signature"


async def _deleted_run(stage: Stage) -> str:
    report = await stage.run()
    assert any(o.outcome is Outcome.APPLIED for o in report.outcomes)
    [run] = {e.info.run for e in await stage.ledger.entries()}
    return run


async def _restore_run(stage: Stage, run: str, *, dry_run: bool = False) -> RestoreReport:
    entries = await stage.ledger.entries(Query(run=run))
    now = stage.emulator.clock.peek()
    return await restore(stage.ledger, stage.client, entries, now=now, dry_run=dry_run)


async def test_an_image_comes_back_with_its_digest_and_tags(stage: Stage) -> None:
    """A tagged image deleted for keepLatest is back under its digest with both its tags."""
    old = await push_image(stage.http, "app", "v1", label="1")
    await stage.http.put(
        "/v2/app/manifests/stable",
        content=stage.emulator.registry.repositories["app"].manifests[old.digest].body,
        headers={"Content-Type": old.media_type},
    )
    await push_image(stage.http, "app", "v2", label="2")
    before = (stage.digests("app"), stage.tags("app"))
    run = await _deleted_run(stage)
    assert old.digest not in stage.digests("app")
    report = await _restore_run(stage, run)
    assert [(r.digest, r.state, sorted(r.tags_restored)) for r in report.results] == [
        (old.digest, State.RESTORED, ["stable", "v1"])
    ]
    assert (stage.digests("app"), stage.tags("app")) == before


async def test_a_multi_arch_index_comes_back_after_its_children(stage: Stage) -> None:
    """The index and its platform images are all back, the children put first."""
    index, children = await push_multi_arch(stage.http, "multi", "v1", label="1")
    await push_multi_arch(stage.http, "multi", "v2", label="2")
    before = (stage.digests("multi"), stage.tags("multi"))
    run = await _deleted_run(stage)
    assert index.digest not in stage.digests("multi")
    report = await _restore_run(stage, run)
    order = [r.digest for r in report.results]
    assert set(order) == {index.digest, *(c.digest for c in children)}
    assert order[-1] == index.digest
    assert {r.state for r in report.results} == {State.RESTORED}
    assert (stage.digests("multi"), stage.tags("multi")) == before


async def test_restoring_an_index_by_digest_brings_its_children_back_first(stage: Stage) -> None:
    """--digest of an index selects its children's deletions too, so the index can go back."""
    index, children = await push_multi_arch(stage.http, "multi", "v1", label="1")
    await push_multi_arch(stage.http, "multi", "v2", label="2")
    before = (stage.digests("multi"), stage.tags("multi"))
    await _deleted_run(stage)
    entries = await select(stage.ledger, Query(digest=index.digest))
    assert {e.digest for e in entries} == {index.digest, *(c.digest for c in children)}
    report = await restore(stage.ledger, stage.client, entries, now=LATER)
    assert {r.state for r in report.results} == {State.RESTORED}
    assert (stage.digests("multi"), stage.tags("multi")) == before


async def test_a_signed_image_comes_back_with_its_signature(stage: Stage) -> None:
    """The subject goes back before the referrer ACR deleted with it; both are back."""
    image = await push_image(stage.http, "app", "v1", label="1")
    signature = await push_referrer(stage.http, "app", image, artifact_type=SIGNATURE, label="s")
    await push_image(stage.http, "app", "v2", label="2")
    before = (stage.digests("app"), stage.tags("app"))
    run = await _deleted_run(stage)
    assert {image.digest, signature.digest} & stage.digests("app") == set()
    report = await _restore_run(stage, run)
    assert [r.digest for r in report.results] == [image.digest, signature.digest]
    assert (stage.digests("app"), stage.tags("app")) == before


async def test_after_reclamation_restore_names_exactly_the_missing_blobs(stage: Stage) -> None:
    """Once the registry reclaimed the image's blobs, it reports its config and layer missing."""
    old = await push_image(stage.http, "app", "v1", label="1")
    await push_image(stage.http, "app", "v2", label="2")
    body = stage.emulator.registry.repositories["app"].manifests[old.digest].body
    run = await _deleted_run(stage)
    stage.emulator.clock.advance(RECLAIM_AFTER + timedelta(seconds=1))
    dry = await _restore_run(stage, run, dry_run=True)
    report = await _restore_run(stage, run)
    document = json.loads(body)
    blobs = (document["config"]["digest"], *(layer["digest"] for layer in document["layers"]))
    for result in (dry.results[0], report.results[0]):
        assert (result.state, result.missing) == (State.MISSING, blobs)
    assert old.digest not in stage.digests("app")


async def test_a_tag_that_now_names_another_image_is_left_alone(stage: Stage) -> None:
    """The manifest comes back untagged where its tag was moved; the tag keeps its new image."""
    old = await push_image(stage.http, "app", "v1", label="1")
    await push_image(stage.http, "app", "v2", label="2")
    run = await _deleted_run(stage)
    moved = await push_image(stage.http, "app", "v1", label="3")
    report = await _restore_run(stage, run)
    [result] = report.results
    assert (result.state, result.tags_restored, result.tags_skipped) == (
        State.RESTORED,
        (),
        {"v1": moved.digest},
    )
    assert old.digest in stage.digests("app")
    assert stage.tags("app")["v1"] == moved.digest


async def test_restored_images_are_kept_for_the_protection_period_only(stage: Stage) -> None:
    """A restored untagged image the policy deletes for its age is kept by the next runs for
    --protect-for (7 days by default), and deleted by the first run after that."""
    stage.policy = load_policy(
        {
            "version": 1,
            "rules": [{"name": "old", "repositories": ["**"], "untagged": {"olderThan": "1d"}}],
        }
    )
    await push_image(stage.http, "app", "v2", label="2")
    old = await push_image(stage.http, "app", None, label="1")
    run = await _deleted_run(stage)
    assert old.digest not in stage.digests("app")
    entries = await stage.ledger.entries(Query(run=run))
    await restore(stage.ledger, stage.client, entries, now=LATER)
    assert old.digest in stage.digests("app")
    await stage.run(now=LATER + timedelta(days=6))
    assert old.digest in stage.digests("app")
    await stage.run(now=LATER + timedelta(days=7, seconds=1))
    assert old.digest not in stage.digests("app")


class _NoReports(DirectoryStore):
    """A ledger directory that takes a run's intent and then refuses its report, as if the
    run had died after deleting (the process killed, storage gone)."""

    async def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        if key.endswith("/report.json"):
            raise StoreError(f"cannot write {key}: storage went away")
        return await super().put(key, data, overwrite=overwrite)


async def test_a_run_that_stopped_before_its_report_can_still_be_restored(
    stage: Stage, tmp_path: Path
) -> None:
    """The intent's bytes are enough: its deletions show `pending`, and restore puts them back."""
    old = await push_image(stage.http, "app", "v1", label="1")
    await push_image(stage.http, "app", "v2", label="2")
    stage.ledger = Ledger(_NoReports(tmp_path / "half"))
    with pytest.raises(LedgerError, match="storage went away"):
        await stage.run()
    assert old.digest not in stage.digests("app")
    [entry] = await stage.ledger.entries()
    assert (entry.digest, entry.outcome) == (old.digest, "pending")
    report = await restore(stage.ledger, stage.client, [entry], now=LATER)
    assert [(r.digest, r.state) for r in report.results] == [(old.digest, State.RESTORED)]
    assert stage.tags("app")["v1"] == old.digest

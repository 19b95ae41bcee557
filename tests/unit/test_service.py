"""`run_cleanup` on the real client and the emulator: gather, plan and apply as one path."""

from __future__ import annotations

from datetime import timedelta

from acr_core.planning.plan import Plan
from acr_core.planning.policy import load_policy
from acr_core.run.executor import Outcome
from acr_core.run.report import RunReport, Status
from acr_core.run.service import ProgressEvent, run_cleanup
from acr_emulator import EmulatorConfig
from acr_emulator.testing import DEFAULT_OID
from tests.unit.emulated_registry import T0, EmulatedRegistry, later

NOW = T0 + timedelta(days=30)
POLICY = load_policy(
    {
        "version": 1,
        "rules": [{"name": "apps", "repositories": ["apps/**"], "keepLatest": 1}],
    }
)


def registry_with_two_apps(config: EmulatorConfig | None = None) -> EmulatedRegistry:
    """In each of apps/a and apps/b: a kept multi-arch 2.0 and an older single image 1.0."""
    registry = EmulatedRegistry(config)
    for repository in ("apps/a", "apps/b"):
        registry.push(repository, f"{repository}-1.0", tags=("1.0",), updated=later(1))
        amd = registry.push(repository, f"{repository}-amd", updated=later(2))
        arm = registry.push(repository, f"{repository}-arm", updated=later(2))
        registry.push(
            repository, f"{repository}-2.0", tags=("2.0",), children=(amd, arm), updated=later(2)
        )
    registry.push("other", "other-1", tags=("x",))
    return registry


async def test_dry_run_changes_nothing_and_reports_the_plan():
    """A dry run reads, plans and stops: the registry is as it was, every action `planned`."""
    registry = registry_with_two_apps()
    before = registry.state()
    report = await run_cleanup(registry.client, POLICY, now=NOW)
    assert registry.state() == before
    assert report.dry_run
    assert report.status is Status.DONE
    assert report.totals.planned_deletions == 2
    assert {r.outcome for p in report.plan.repositories for r in report.results(p)} == {
        Outcome.PLANNED
    }


async def test_apply_deletes_the_old_image_and_keeps_the_multi_arch_children():
    """keepLatest 1 deletes 1.0 in both repositories; 2.0 keeps its untagged children."""
    registry = registry_with_two_apps()
    report = await run_cleanup(registry.client, POLICY, now=NOW, dry_run=False)
    assert report.status is Status.DONE
    assert report.totals.deleted == 2
    for repository in ("apps/a", "apps/b"):
        assert registry.tags(repository) == {"2.0"}
        assert len(registry.digests(repository)) == 3
    assert len(registry.digests("other")) == 1


async def test_an_unreadable_repository_fails_alone():
    """A permission error in one repository is reported; the other repository is still cleaned."""
    # ABAC: the identity may list the catalog and work in apps/b, not in apps/a.
    registry = registry_with_two_apps(EmulatorConfig(now=T0, abac=True))
    grant = registry.emulator.grant
    grant(DEFAULT_OID, "Container Registry Repository Catalog Lister")
    grant(DEFAULT_OID, "Container Registry Repository Contributor", repositories=("apps/b",))
    report = await run_cleanup(registry.client, POLICY, now=NOW, dry_run=False)
    assert report.status is Status.FAILED
    [issue] = report.issues
    assert (issue.repository, issue.status, issue.transient) == ("apps/a", Status.FAILED, False)
    assert "metadata_read" in issue.detail
    assert len(registry.digests("apps/a")) == 4
    assert len(registry.digests("apps/b")) == 3


async def test_a_repository_named_but_gone_is_skipped():
    """A repository that does not exist (404) is reported gone, and the run is still done."""
    registry = registry_with_two_apps()
    report = await run_cleanup(
        registry.client, POLICY, now=NOW, dry_run=False, repositories=["apps/a", "apps/gone"]
    )
    assert report.status is Status.DONE
    assert [(i.repository, i.status) for i in report.issues] == [("apps/gone", Status.GONE)]
    assert len(registry.digests("apps/a")) == 3
    assert len(registry.digests("apps/b")) == 4


async def test_a_named_repository_no_rule_covers_is_untouched():
    """Naming a repository the policy does not cover reports it and changes nothing there."""
    registry = registry_with_two_apps()
    report = await run_cleanup(
        registry.client, POLICY, now=NOW, dry_run=False, repositories=["other"]
    )
    assert [(i.repository, i.status) for i in report.issues] == [("other", Status.NOT_COVERED)]
    assert len(registry.digests("other")) == 1


async def test_a_declined_confirmation_applies_nothing():
    """When `confirm` says no, the plan is reported as cancelled and nothing is deleted."""
    registry = registry_with_two_apps()
    before = registry.state()
    seen: list[Plan] = []

    async def decline(preview: RunReport) -> bool:
        seen.append(preview.plan)
        return False

    report = await run_cleanup(registry.client, POLICY, now=NOW, dry_run=False, confirm=decline)
    assert report.cancelled
    assert registry.state() == before
    assert len(seen[0].actions) == 2


async def test_progress_and_request_counts_are_reported():
    """Progress reaches every repository and action; throttles are counted in the report."""
    registry = registry_with_two_apps()
    registry.wire.throttle_writes = 1
    events: list[ProgressEvent] = []
    report = await run_cleanup(
        registry.client, POLICY, now=NOW, dry_run=False, progress=events.append
    )
    assert report.totals.deleted == 2
    assert ("gather", 2, 2) in [(e.phase, e.done, e.total) for e in events]
    assert ("apply", 2, 2) in [(e.phase, e.done, e.total) for e in events]
    assert report.requests.throttled == 1
    assert report.requests.requests == registry.client.stats.requests


async def test_a_manifest_that_cannot_be_read_fails_its_repository_and_deletes_nothing_there():
    """One raw-manifest read failing (503) leaves that repository whole; the other is cleaned."""
    registry = EmulatedRegistry()
    broken = {}
    for repository in ("apps/a", "apps/b"):
        registry.push(repository, f"{repository}-1.0", tags=("1.0",), updated=later(1))
        amd = registry.push(repository, f"{repository}-amd", updated=later(2))
        broken[repository] = registry.push(
            repository, f"{repository}-2.0", tags=("2.0",), children=(amd,), updated=later(2)
        )
    registry.wire.broken = broken["apps/a"]  # its raw read answers 503
    report = await run_cleanup(registry.client, POLICY, now=NOW, dry_run=False)
    assert [(i.repository, i.status, i.transient) for i in report.issues] == [
        ("apps/a", Status.FAILED, True)
    ]
    assert len(registry.digests("apps/a")) == 3
    assert len(registry.digests("apps/b")) == 2


async def test_the_report_times_each_repository_it_read_planned_and_applied():
    """Every repository read gets its own durations; apply time only where something applied."""
    registry = registry_with_two_apps()
    dry = await run_cleanup(registry.client, POLICY, now=NOW)
    assert set(dry.repository_durations) == {"apps/a", "apps/b"}
    assert all(d.apply == 0.0 for d in dry.repository_durations.values())
    applied = await run_cleanup(registry_with_two_apps().client, POLICY, now=NOW, dry_run=False)
    for name, durations in applied.repository_durations.items():
        assert 0.0 < durations.gather <= applied.durations.gather, name
        assert 0.0 < durations.plan <= applied.durations.plan, name
        assert 0.0 < durations.apply <= applied.durations.apply, name


async def test_a_manifest_that_cannot_be_read_is_kept_and_the_rest_is_cleaned():
    """A manifest with readEnabled=false is kept unread; the repository's other deletions go on."""
    registry = EmulatedRegistry()
    registry.push("apps/a", "1.0", tags=("1.0",), updated=later(1))
    registry.push("apps/a", "2.0", tags=("2.0",), updated=later(2))
    hidden = registry.push("apps/a", "leftover", updated=later(1))
    leftover = registry.push("apps/a", "leftover-2", updated=later(1))
    await registry.client.update_manifest_properties("apps/a", hidden, can_read=False)
    policy = load_policy(
        {
            "version": 1,
            "rules": [
                {
                    "name": "apps",
                    "repositories": ["apps/**"],
                    "keepLatest": 1,
                    "untagged": {"olderThan": "1d"},
                }
            ],
        }
    )
    report = await run_cleanup(registry.client, policy, now=NOW, dry_run=False)
    assert report.status is Status.DONE
    assert report.issues == ()
    assert registry.tags("apps/a") == {"2.0"}
    assert hidden in registry.digests("apps/a")
    assert leftover not in registry.digests("apps/a")
    [kept] = [k for p in report.plan.repositories for k in p.kept if k.digest == hidden]
    assert "not read" in kept.reason


async def test_an_unreadable_protected_referrer_keeps_every_image_it_may_belong_to():
    """A young signature that cannot be read may be any image's: nothing in its repository goes."""
    registry = EmulatedRegistry()
    old = registry.push("apps/a", "1.0", tags=("1.0",), updated=later(1))
    registry.push("apps/a", "2.0", tags=("2.0",), updated=later(2))
    signature = registry.push(
        "apps/a", "1.0-signature", subject=old, updated=NOW - timedelta(hours=1)
    )
    await registry.client.update_manifest_properties("apps/a", signature, can_read=False)
    policy = load_policy(
        {
            "version": 1,
            "rules": [
                {"name": "apps", "repositories": ["apps/**"], "keepLatest": 1, "minAge": "1d"}
            ],
        }
    )
    report = await run_cleanup(registry.client, policy, now=NOW, dry_run=False)
    assert {old, signature} <= registry.digests("apps/a")
    assert report.totals.deleted == 0
    [kept] = [k for p in report.plan.repositories for k in p.kept if k.digest == old]
    assert "could not be read" in kept.reason

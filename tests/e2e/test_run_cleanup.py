"""`run_cleanup` over `AcrClient` against the emulator in-process: the registry's final state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from acr_core.planning.plan import ActionKind
from acr_core.planning.policy import load_policy
from acr_core.registry.client import AcrClient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.executor import Outcome
from acr_core.run.limiter import ExecutionLimits
from acr_core.run.report import RunReport, Status
from acr_core.run.service import run_cleanup
from acr_emulator import Emulator, EmulatorConfig, Faults, ThrottleConfig
from acr_emulator.generate import generate
from scripts.oci_push import BasicTokenAuth
from tests.e2e.registry import (
    API_AFTER,
    API_BEFORE,
    FIXTURE,
    NOW,
    POLICY,
    digests,
    state,
    tag_locked,
)

BASE_URL = "https://acr.test"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    # Seeded layers exist by digest only; re-tagging a seeded manifest must not need them.
    return EmulatorConfig(now=NOW, require_blobs=False)


@pytest.fixture
def seeded(emulator: Emulator) -> Emulator:
    emulator.seed(FIXTURE)
    return emulator


@pytest.fixture
async def client(seeded: Emulator) -> AsyncIterator[AcrClient]:
    transport = httpx.ASGITransport(app=seeded.app)
    async with AcrClient(
        BASE_URL,
        username=seeded.config.admin_username,
        password=seeded.admin_password,
        transport=transport,
    ) as acr:
        yield acr


async def cleanup(client: AcrClient, **kwargs: object) -> RunReport:
    return await run_cleanup(client, load_policy(POLICY), now=NOW, **kwargs)  # type: ignore[arg-type]


async def test_apply_reaches_the_state_the_policy_describes(seeded, client):
    """Old images go; kept multi-arch children, kept signatures, locked images stay."""
    assert state(seeded, "services/api") == API_BEFORE
    blocked_before = digests(seeded, "services/blocked")
    other_before = digests(seeded, "other/thing")

    report = await cleanup(client, dry_run=False)

    assert state(seeded, "services/api") == API_AFTER
    assert tag_locked(seeded, "services/api", "v1.0.0")
    assert digests(seeded, "services/blocked") == blocked_before
    assert tag_locked(seeded, "services/blocked", "b12")  # a blocked repository still gets locks
    assert digests(seeded, "other/thing") == other_before
    assert report.status is Status.BLOCKED
    assert report.totals.failed == 0
    assert report.totals.deleted == 7  # 1.0's signature is a cascade, not a deletion


async def test_dry_run_changes_nothing(seeded, client):
    """The same run with dry_run=True leaves every manifest, tag and lock as it was."""
    before = {r: state(seeded, r) for r in ("services/api", "services/blocked", "other/thing")}
    report = await cleanup(client, dry_run=True)
    after = {r: state(seeded, r) for r in ("services/api", "services/blocked", "other/thing")}
    assert after == before
    assert not tag_locked(seeded, "services/api", "v1.0.0")
    assert report.totals.planned_deletions == 7 + 11
    assert seeded.counters.count(method="DELETE") == 0
    assert seeded.counters.count(method="PATCH") == 0


async def test_apply_does_what_the_dry_run_showed(seeded, client):
    """The plan a dry run reports is exactly the plan the following apply carries out."""
    shown = await cleanup(client, dry_run=True)
    done = await cleanup(client, dry_run=False)
    assert done.plan == shown.plan
    assert {r.outcome for p in done.plan.repositories for r in done.results(p)} == {
        Outcome.APPLIED,
        Outcome.SKIPPED_BLOCKED,
    }


async def test_a_second_apply_finds_nothing_to_do(seeded, client):
    """Cleaning is idempotent: right after an apply, the next run plans no action."""
    await cleanup(client, dry_run=False, repositories=["services/api"])
    again = await cleanup(client, dry_run=False, repositories=["services/api"])
    assert again.plan.actions == ()
    assert state(seeded, "services/api") == API_AFTER


async def test_an_image_tagged_between_plan_and_apply_survives(seeded, client):
    """CI tags 1.0 as `prod` after the plan: the apply skips it, keeping its signature, and
    stops deleting in the repository; the next run re-plans it from fresh state."""

    async def retag_then_confirm(preview: RunReport) -> bool:
        auth = BasicTokenAuth(seeded.config.admin_username, seeded.admin_password)
        transport = httpx.ASGITransport(app=seeded.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth) as ci:
            accept = "application/vnd.oci.image.manifest.v1+json"
            got = await ci.get("/v2/services/api/manifests/1.0", headers={"Accept": accept})
            got.raise_for_status()
            put = await ci.put(
                "/v2/services/api/manifests/prod",
                content=got.content,
                headers={"Content-Type": got.headers["content-type"]},
            )
            put.raise_for_status()
        return True

    report = await cleanup(client, dry_run=False, confirm=retag_then_confirm)

    retagged = API_BEFORE - {"1.0", "1.0.sig"} | {"1.0+prod", "1.0+prod.sig"}
    assert state(seeded, "services/api") == retagged
    deletions = [
        r
        for p in report.plan.repositories
        if p.repository == "services/api"
        for r in report.results(p)
        if r.action.kind is ActionKind.DELETE_MANIFEST
    ]
    # Children wait for their index, which was skipped: they are skipped as dependencies.
    assert {r.outcome for r in deletions} == {Outcome.SKIPPED_CHANGED, Outcome.SKIPPED_DEPENDENCY}
    [retag] = [r for r in deletions if r.action.tags == ("1.0",)]
    assert "re-planned next run" in retag.detail
    await cleanup(client, dry_run=False, repositories=["services/api"])
    assert state(seeded, "services/api") == API_AFTER | {"1.0+prod", "1.0+prod.sig"}


async def test_an_image_deleted_by_someone_else_counts_as_gone(seeded, client):
    """Another cleaner deletes 1.1 after the plan: the apply records it as already gone."""

    async def delete_then_confirm(preview: RunReport) -> bool:
        [digest] = [a.digest for a in preview.plan.actions if a.tags == ("1.1",)]
        auth = BasicTokenAuth(seeded.config.admin_username, seeded.admin_password)
        transport = httpx.ASGITransport(app=seeded.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth) as other:
            gone = await other.delete(f"/v2/services/api/manifests/{digest}")
            gone.raise_for_status()
        return True

    report = await cleanup(client, dry_run=False, confirm=delete_then_confirm)

    assert state(seeded, "services/api") == API_AFTER
    outcomes = {
        r.action.tags: r.outcome for p in report.plan.repositories for r in report.results(p)
    }
    assert outcomes[("1.1",)] is Outcome.ALREADY_GONE
    assert report.totals.failed == 0


async def test_only_the_named_repository_is_touched(seeded, client):
    """`repositories=[...]` limits the run to those repositories."""
    blocked_before = digests(seeded, "services/blocked")
    report = await cleanup(client, dry_run=False, repositories=["services/api"])
    assert state(seeded, "services/api") == API_AFTER
    assert digests(seeded, "services/blocked") == blocked_before
    assert report.status is Status.DONE


class TestThrottled:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        # 600 writes a minute with one second of burst: 10 deletes at once, then 429s.
        return EmulatorConfig(now=NOW, throttle=ThrottleConfig(60_000, 600))

    async def test_a_throttled_sweep_fails_nothing(self, seeded, client):
        """Against a registry that answers 429, every deletion still succeeds."""
        fixture = {
            "repositories": [
                {
                    "name": "bulk/images",
                    "manifests": [
                        {"id": f"i{i}", "tags": [f"t{i}"], "pushed": f"2026-04-01T00:{i:02d}:00Z"}
                        for i in range(45)
                    ],
                }
            ]
        }
        seeded.seed(fixture)
        policy = {
            "version": 1,
            "rules": [{"name": "bulk", "repositories": ["bulk/**"], "keepLatest": 5}],
            "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
        }
        report = await run_cleanup(
            client,
            load_policy(policy),
            now=NOW,
            dry_run=False,
            limits=ExecutionLimits(max_concurrency=32),
        )
        assert report.totals.failed == 0
        assert report.totals.deleted == 40
        assert len(digests(seeded, "bulk/images")) == 5
        assert report.requests.throttled > 0


class TestUnreliableRegistry:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        faults = Faults(error_rate=0.1, drop_rate=0.05, seed=7)
        return EmulatorConfig(now=NOW, require_blobs=False, faults=faults)

    async def test_5xx_and_dropped_connections_change_nothing_in_the_outcome(self, seeded):
        """With 10% 503s and 5% dropped connections the registry ends in the same state."""
        quick = RetryPolicy(attempts=8, backoff_base=0.01, backoff_max=0.05)
        async with AcrClient(
            BASE_URL,
            username=seeded.config.admin_username,
            password=seeded.admin_password,
            transport=httpx.ASGITransport(app=seeded.app),
            retry=quick,
        ) as flaky:
            report = await cleanup(flaky, dry_run=False, repositories=["services/api"])
        assert state(seeded, "services/api") == API_AFTER
        assert tag_locked(seeded, "services/api", "v1.0.0")
        assert report.totals.failed == 0
        assert report.requests.retries > 0


HIDDEN_POLICY = {
    "version": 1,
    "rules": [{"name": "hidden", "repositories": ["hidden/**"], "untagged": {"olderThan": "7d"}}],
    "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
}


def _hidden_fixture(index: dict[str, object]) -> dict[str, object]:
    old = "2026-04-01T00:00:00Z"
    return {
        "repositories": [
            {
                "name": "hidden/app",
                "manifests": [
                    {"id": "amd", "architecture": "amd64", "pushed": old},
                    {"id": "arm", "architecture": "arm64", "pushed": old},
                    {"id": "idx", "manifests": ["amd", "arm"], "pushed": old, **index},
                ],
            }
        ]
    }


@pytest.mark.parametrize(
    "index",
    [
        pytest.param({"attributes": {"listEnabled": False}}, id="untagged-hidden-index"),
        pytest.param(
            {"attributes": {"listEnabled": False}, "tags": ["1.0"]}, id="tagged-hidden-index"
        ),
    ],
)
async def test_children_of_an_index_hidden_from_listings_are_kept(seeded, client, index):
    """An index or tag with listEnabled=false is missing from the listings; nothing is deleted."""
    seeded.seed(_hidden_fixture(index))
    before = digests(seeded, "hidden/app")
    report = await run_cleanup(
        client, load_policy(HIDDEN_POLICY), now=NOW, dry_run=False, repositories=["hidden/app"]
    )
    assert digests(seeded, "hidden/app") == before
    [repository] = report.plan.repositories
    assert repository.deletions == ()
    assert all("listEnabled=false" in kept.reason for kept in repository.kept)


async def test_a_tag_hidden_from_the_tag_listing_protects_only_its_image(seeded, client):
    """A listEnabled=false tag still shows on its manifest: that image stays, the rest is judged."""
    old = "2026-04-01T00:00:00Z"
    hidden_tag = {"name": "secret", "attributes": {"listEnabled": False}}
    seeded.seed(
        {
            "repositories": [
                {
                    "name": "hidden/tags",
                    "manifests": [
                        {"id": "kept", "tags": [hidden_tag], "pushed": old},
                        {"id": "plain", "tags": ["1"], "pushed": old},
                    ],
                }
            ]
        }
    )
    policy = {
        **HIDDEN_POLICY,
        "rules": [{"name": "tags", "repositories": ["hidden/**"], "keepLatest": 0}],
    }
    report = await run_cleanup(
        client, load_policy(policy), now=NOW, dry_run=False, repositories=["hidden/tags"]
    )
    assert state(seeded, "hidden/tags") == {"secret"}
    assert report.totals.deleted == 1


async def test_the_example_policy_has_work_to_do_on_the_demo_registry():
    """examples/policy.json covers every demo repository and plans locks and deletions there."""
    policy = load_policy((Path(__file__).parents[2] / "examples" / "policy.json").read_text())
    demo = generate("demo", now=NOW)
    emulator = Emulator(EmulatorConfig(now=NOW))
    emulator.seed(demo)
    transport = httpx.ASGITransport(app=emulator.app)
    async with AcrClient(
        BASE_URL,
        username=emulator.config.admin_username,
        password=emulator.admin_password,
        transport=transport,
    ) as acr:
        report = await run_cleanup(acr, policy, now=NOW)
    names = sorted(r["name"] for r in demo["repositories"])
    assert names
    assert [r.repository for r in report.plan.repositories] == names
    for repository in report.plan.repositories:
        assert repository.rule == "services"
        assert repository.blocked is None
        assert repository.locks, repository.repository
        assert repository.deletions, repository.repository
        # Releases (1.2.3) are locked and kept; only untagged leftovers go.
        assert all(not a.tags for a in repository.deletions), repository.repository

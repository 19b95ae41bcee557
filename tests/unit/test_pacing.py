"""Pacing by category against the emulator's throttle: a run told the registry's limits stays
under them (no 429) and leaves exactly the registry the plan says; one not told hits them.

The emulator's limits are its 2026 model (a bucket per category and identity, RateLimits) and
its retired ReadOps/WriteOps model (DELETEs count as writes), time scaled so that a minute's
budget passes in a fraction of the time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta

import httpx

from acr_core.planning import planner
from acr_core.planning.policy import load_policy
from acr_core.run.executor import Executor, Outcome, _Probe, _SharedProbes
from acr_core.run.limiter import ExecutionLimits, Governor
from acr_core.run.service import run_cleanup
from acr_emulator import EmulatorConfig
from acr_emulator.faults import Faults
from acr_emulator.ratelimit import RateLimits
from acr_emulator.throttle import ThrottleConfig
from tests.unit.emulated_registry import T0, EmulatedRegistry, later

NOW = later(30)
KEEP = 3
IMAGES = 40
POLICY = load_policy(
    {
        "version": 1,
        "rules": [{"name": "app", "repositories": ["app"], "keepLatest": KEEP}],
        "safety": {"maxDeletesPerRepository": 1000, "maxDeleteFraction": 1.0},
    }
)
# Standard's per-identity DataplaneDelete and DataplaneRead (docs/acr-facts.md section 4.1),
# twice as fast: about 17 deletes and 170 reads a second.
SCALE = 2.0
DELETES, READS = 500, 5000


def registry(config: EmulatorConfig) -> tuple[EmulatedRegistry, set[str]]:
    """`IMAGES` tagged images in `app`, one an hour; returns the registry and the kept ones."""
    staged = EmulatedRegistry(config)
    digests = [
        staged.push("app", f"app-{n}", tags=(f"v{n}",), updated=T0 + timedelta(hours=n))
        for n in range(IMAGES)
    ]
    return staged, set(digests[-KEEP:])


def throttled() -> EmulatorConfig:
    return EmulatorConfig(now=NOW, throttle=ThrottleConfig(READS, DELETES, time_scale=SCALE))


async def test_a_run_paced_at_the_registrys_limits_is_never_throttled():
    """Told the registry's own limits, the run sends no request that is answered 429, and
    deletes exactly what the plan says."""
    staged, kept = registry(throttled())
    limits = ExecutionLimits(deletes_per_minute=DELETES * SCALE, reads_per_minute=READS * SCALE)
    report = await run_cleanup(staged.client, POLICY, now=NOW, dry_run=False, limits=limits)
    assert staged.client.stats.by_status[429] == 0
    assert report.requests.throttled == 0
    assert staged.digests("app") == kept
    assert report.totals.deleted == IMAGES - KEEP


async def test_a_run_not_told_the_limits_is_throttled():
    """Unpaced, the same run bursts into 429s (the control for the test above); what the
    client's retries could not delete fails as transient, and everything kept is still there.
    (The test's client retries without waiting out Retry-After.)"""
    staged, kept = registry(throttled())
    report = await run_cleanup(staged.client, POLICY, now=NOW, dry_run=False)
    assert report.requests.throttled > 0
    assert kept <= staged.digests("app")
    failed = [o for o in report.outcomes if o.outcome is Outcome.FAILED]
    assert all(o.transient for o in failed)
    assert len(staged.digests("app")) == KEEP + len(failed)


async def test_the_report_says_how_many_requests_were_in_flight_on_average():
    """With every request taking 20 ms, the run's effective concurrency is reported, more
    than one request at a time and never more than it was allowed."""
    staged, kept = registry(EmulatorConfig(now=NOW, faults=Faults(latency=0.02)))
    limits = ExecutionLimits(max_concurrency=8)
    report = await run_cleanup(staged.client, POLICY, now=NOW, dry_run=False, limits=limits)
    assert staged.digests("app") == kept
    assert 1.0 < report.requests.concurrency <= 8
    assert json.loads(report.to_json())["requests"]["concurrency"] == round(
        report.requests.concurrency, 2
    )


class Timeline:
    """A fake clock whose sleeps go into the same log as the requests the wire sees."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.log.append("sleep")
        self.now += seconds
        await asyncio.sleep(0)


async def test_no_wait_for_the_budget_comes_between_a_recheck_and_its_delete():
    """Paced at one DELETE a second, each deletion waits for its token before its re-check
    reads: the DELETE follows its re-check with no pause between them."""
    staged, kept = registry(EmulatorConfig(now=NOW))
    timeline = Timeline()
    forward = staged.wire.handle_async_request

    async def logged(request: httpx.Request) -> httpx.Response:
        timeline.log.append(f"{request.method} {request.url.path}")
        return await forward(request)

    staged.wire.handle_async_request = logged  # type: ignore[method-assign]
    snapshots = await staged.snapshots()
    plan = planner.plan(list(snapshots.values()), POLICY, NOW)
    governor = Governor(
        ExecutionLimits(max_concurrency=1, deletes_per_minute=60),
        clock=timeline.clock,
        sleep=timeline.sleep,
    )
    timeline.log.clear()
    outcomes = await Executor(staged.client, governor, snapshots).apply(plan)
    assert {o.outcome for o in outcomes} == {Outcome.APPLIED}
    assert staged.digests("app") == kept
    deletes = [i for i, entry in enumerate(timeline.log) if entry.startswith("DELETE ")]
    assert len(deletes) == IMAGES - KEEP
    assert timeline.log.count("sleep") >= len(deletes) - 1  # the pace was felt
    for index in deletes:
        digest = timeline.log[index].rsplit("/", 1)[-1]
        # The re-check reads the manifest itself, or (enough deletions to share it) the
        # repository's manifest listing.
        rechecks = (f"GET /acr/v1/app/_manifests/{digest}", "GET /acr/v1/app/_manifests")
        recheck = max(i for i, entry in enumerate(timeline.log[:index]) if entry in rechecks)
        assert "sleep" not in timeline.log[recheck:index], timeline.log[recheck : index + 1]


async def test_a_shared_recheck_serves_only_the_deletions_that_asked_before_it_was_sent():
    """Deletions asking for the repository-wide re-check before it is sent share it; one that
    asks after it was sent gets a read of its own, sent after it asked, and only once the one
    in flight for that repository is answered (other repositories do not wait)."""
    sending, answer = asyncio.Event(), asyncio.Event()
    probes: list[str] = []

    async def probe(
        repository: str, sent: Callable[[], None], waiting: Callable[[], int]
    ) -> _Probe:
        number = len(probes)
        probes.append(repository)
        await sending.wait()
        sent()
        await answer.wait()
        return _Probe(None, None, None, confirmed=number)

    shared = _SharedProbes(probe)
    first = asyncio.create_task(shared.read("app"))
    second = asyncio.create_task(shared.read("app"))
    await asyncio.sleep(0)
    sending.set()
    await asyncio.sleep(0)
    late = asyncio.create_task(shared.read("app"))
    other = asyncio.create_task(shared.read("other"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert probes == ["app", "other"]  # the late one waits for the first to be answered
    answer.set()
    results = await asyncio.gather(first, second, late, other)
    assert [r.confirmed for r in results] == [0, 0, 2, 1]
    assert probes == ["app", "other", "app"]


async def test_a_delete_waits_out_a_pause_that_began_during_its_recheck_and_reads_again():
    """When one DELETE is answered 429 (Retry-After 5 s), no other DELETE is sent while the
    pause lasts: a deletion whose re-check was out waits the pause out, re-checks, then
    deletes; the registry ends exactly as planned."""
    staged, kept = registry(EmulatorConfig(now=NOW))
    timeline = Timeline()
    forward = staged.wire.handle_async_request
    sent_while_paused: list[str] = []
    seen: set[str] = set()
    governor = Governor(
        ExecutionLimits(max_concurrency=4), clock=timeline.clock, sleep=timeline.sleep
    )

    async def first_delete_throttled(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            digest = request.url.path.rsplit("/", 1)[-1]
            if digest not in seen and governor.deletes.budget.paused:
                sent_while_paused.append(digest)
            if not seen:
                seen.add(digest)
                body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "throttled"}]}
                return httpx.Response(429, json=body, headers={"retry-after": "5"})
            seen.add(digest)
        return await forward(request)

    staged.wire.handle_async_request = first_delete_throttled  # type: ignore[method-assign]
    staged.client.add_throttle_listener(governor.throttled)
    snapshots = await staged.snapshots()
    plan = planner.plan(list(snapshots.values()), POLICY, NOW)
    outcomes = await Executor(staged.client, governor, snapshots).apply(plan)
    assert {o.outcome for o in outcomes} == {Outcome.APPLIED}
    assert staged.digests("app") == kept
    assert governor.throttle_count == 1
    assert timeline.log.count("sleep") >= 1
    assert sent_while_paused == []


def standard_2026(capacity_seconds: float) -> EmulatorConfig:
    """The emulator's 2026 model at Standard's published limits, twice as fast."""
    limits = RateLimits.sku("standard", time_scale=SCALE, capacity_seconds=capacity_seconds)
    return EmulatorConfig(now=NOW, rate_limits=limits)


async def test_paced_at_standards_2026_limits_no_request_is_throttled():
    """Under the 2026 model (a bucket per category and identity, one second of capacity: a
    strict registry), a run told Standard's per-identity limits gets no 429 and deletes
    exactly what the plan says."""
    staged, kept = registry(standard_2026(capacity_seconds=1.0))
    limits = ExecutionLimits(
        deletes_per_minute=500 * SCALE,
        reads_per_minute=5000 * SCALE,
        writes_per_minute=1000 * SCALE,
        tokens_per_minute=10_000 * SCALE,
    )
    report = await run_cleanup(staged.client, POLICY, now=NOW, dry_run=False, limits=limits)
    assert staged.client.stats.by_status[429] == 0
    assert staged.digests("app") == kept
    assert report.totals.deleted == IMAGES - KEEP


async def test_unpaced_under_standards_2026_limits_the_run_is_throttled():
    """The control: the same run with no pace bursts past DataplaneDelete and gets 429s."""
    staged, kept = registry(standard_2026(capacity_seconds=1.0))
    report = await run_cleanup(staged.client, POLICY, now=NOW, dry_run=False)
    assert report.requests.throttled > 0
    assert kept <= staged.digests("app")

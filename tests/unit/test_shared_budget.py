"""One budget per instance: the runs of one process draw from the same token buckets, so the
instance's share is used by whichever run has a request ready and never exceeded by all of
them together (fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from acr_core.run.limiter import (
    BURST_SECONDS,
    SAFETY_MARGIN,
    Category,
    ExecutionLimits,
    Governor,
)
from acr_core.run.shared_budget import SharedBudgets
from tests.unit.test_limiter import FakeTime

LIMITS = ExecutionLimits(deletes_per_minute=600, reads_per_minute=6000)
PACE = 600 * SAFETY_MARGIN / 60  # deletes a second
BURST = PACE * BURST_SECONDS


async def _deletes(governor: Governor, count: int, time: FakeTime, granted: list[float]) -> None:
    for _ in range(count):
        await governor.deletes.take()
        granted.append(time.now)


def _never_above_pace(granted: list[float]) -> None:
    """In every window from the start, at most pace x t + burst tokens were granted."""
    for n, at in enumerate(sorted(granted), start=1):
        assert n <= PACE * at + BURST + 1 + 1e-6


async def test_runs_sharing_an_instances_budget_together_keep_to_its_pace() -> None:
    """Three runs deleting at once get the instance's pace between them, not three times it."""
    time = FakeTime()
    shared = SharedBudgets(clock=time.clock, sleep=time.sleep)
    runs = [Governor(LIMITS, budgets=shared.for_run("r.azurecr.io", "", LIMITS)) for _ in range(3)]
    granted: list[float] = []
    await asyncio.gather(*(_deletes(run, 40, time, granted) for run in runs))
    _never_above_pace(granted)
    assert len(granted) / time.now == pytest.approx(PACE, rel=0.03)


async def test_a_run_that_reads_leaves_the_instances_share_to_one_that_deletes() -> None:
    """While one run is busy elsewhere (listing, reading), the other deletes at the instance's
    whole pace: the share an idle run would have had is not lost."""
    time = FakeTime()
    shared = SharedBudgets(clock=time.clock, sleep=time.sleep)
    budgets = shared.for_run("r.azurecr.io", "", LIMITS)
    deleting, _reading = Governor(LIMITS, budgets=budgets), Governor(LIMITS, budgets=budgets)
    granted: list[float] = []
    await _deletes(deleting, 2, time, granted)  # the burst
    began = time.now
    await _deletes(deleting, 60, time, granted)
    assert 60 / (time.now - began) == pytest.approx(PACE, rel=0.02)
    _never_above_pace(granted)


async def test_the_instances_budget_is_kept_from_run_to_run() -> None:
    """A run that starts right after another finds the bucket as the last one left it: no fresh
    burst per run, so back-to-back runs cannot go over the pace."""
    time = FakeTime()
    shared = SharedBudgets(clock=time.clock, sleep=time.sleep)
    granted: list[float] = []
    for _ in range(10):
        run = Governor(LIMITS, budgets=shared.for_run("r.azurecr.io", "", LIMITS))
        await _deletes(run, 5, time, granted)
    _never_above_pace(granted)
    assert len(granted) / time.now == pytest.approx(PACE, rel=0.05)


async def test_a_429_in_one_run_pauses_the_category_for_every_run_of_the_instance() -> None:
    """Retry-After holds for the identity: a 429 reported inside one run's delete slot holds
    the other run's deletes back too, and not its reads."""
    time = FakeTime()
    shared = SharedBudgets(clock=time.clock, sleep=time.sleep)
    first = Governor(LIMITS, budgets=shared.for_run("r.azurecr.io", "", LIMITS))
    second = Governor(LIMITS, budgets=shared.for_run("r.azurecr.io", "", LIMITS))
    async with first.deletes.slot():
        first.throttled(5.0)
    async with second.reads.slot():
        assert time.now == 0.0
    async with second.deletes.slot():
        assert time.now >= 5.0
    assert (first.throttle_count, second.throttle_count) == (1, 0)


async def test_budgets_are_shared_per_registry_identity_and_limits() -> None:
    """Another registry, another identity or other limits get budgets of their own."""
    shared = SharedBudgets()
    one = shared.for_run("a.azurecr.io", "", LIMITS)
    assert shared.for_run("a.azurecr.io", "", LIMITS) is one
    assert shared.for_run("a.azurecr.io", "", ExecutionLimits(32, 600, 6000)) is one
    assert shared.for_run("b.azurecr.io", "", LIMITS) is not one
    assert shared.for_run("a.azurecr.io", "client-id", LIMITS) is not one
    other = ExecutionLimits(deletes_per_minute=300, reads_per_minute=6000)
    assert shared.for_run("a.azurecr.io", "", other) is not one
    assert one[Category.DELETE].bucket is not None


def test_each_event_loop_has_budgets_of_its_own() -> None:
    """A bucket's lock belongs to one loop: a new loop (a test, a CLI run) starts afresh."""
    shared = SharedBudgets()

    async def budgets() -> object:
        return shared.for_run("a.azurecr.io", "", LIMITS)

    assert asyncio.run(budgets()) is not asyncio.run(budgets())

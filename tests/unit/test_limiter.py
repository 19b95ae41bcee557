"""The limiter: per-category budgets, Retry-After pauses and AIMD concurrency, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from acr_core.run.limiter import (
    SAFETY_MARGIN,
    AdaptiveLimiter,
    Category,
    ExecutionLimits,
    Governor,
    Lane,
    TokenBucket,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[str] = []  # the task that slept, per sleep

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.sleepers.append(task.get_name() if task is not None else "")
        self.now += seconds
        await asyncio.sleep(0)


async def test_limiter_grows_to_its_cap_while_requests_succeed():
    """Without 429s the limit climbs to `max_concurrency` and no further."""
    limiter = AdaptiveLimiter(8, initial=1)
    for _ in range(50):
        async with limiter.slot():
            pass
    assert limiter.limit == 8


async def test_limiter_starts_at_its_cap():
    """Unthrottled, a run has all its slots from the first request: the budgets pace it."""
    assert AdaptiveLimiter(32).limit == 32


async def test_limiter_halves_once_per_burst_of_429s():
    """A burst of throttled responses halves the limit once, not once per response."""
    time = FakeTime()
    limiter = AdaptiveLimiter(32, initial=16, clock=time.clock, decrease_interval=1.0)
    for _ in range(10):
        limiter.throttled()
    assert limiter.limit == 8
    time.now += 2.0
    limiter.throttled()
    assert limiter.limit == 4


async def test_limiter_grows_slowly_after_the_first_429():
    """After a throttle the limit grows by about one per round of successes, not per success."""
    time = FakeTime()
    limiter = AdaptiveLimiter(32, initial=16, clock=time.clock)
    limiter.throttled()
    for _ in range(16):
        async with limiter.slot():
            pass
    assert limiter.limit == 9


async def test_limiter_adds_up_the_seconds_requests_are_in_flight():
    """Two requests held for 3 s together count 6 request-seconds: 2 in flight on average."""
    time = FakeTime()
    limiter = AdaptiveLimiter(4, clock=time.clock)

    async with limiter.slot(), limiter.slot():
        time.now += 3.0
    time.now += 5.0  # nothing in flight
    async with limiter.slot():
        pass
    assert limiter.request_seconds == pytest.approx(6.0)


async def test_token_bucket_paces_writes_to_the_budget():
    """A 120-per-minute budget lets 2 requests through per second after its burst: 0.2 s of
    the rate, at least one request."""
    time = FakeTime()
    bucket = TokenBucket(120, clock=time.clock, sleep=time.sleep)
    for _ in range(12):
        await bucket.take()
    assert time.now == pytest.approx(5.5)


def test_limits_reject_nonsense():
    """Zero concurrency or a non-positive budget is refused with the field named."""
    with pytest.raises(ValueError, match="max_concurrency"):
        ExecutionLimits(max_concurrency=0)
    with pytest.raises(ValueError, match="writes_per_minute"):
        ExecutionLimits(writes_per_minute=0)
    with pytest.raises(ValueError, match="deletes_per_minute"):
        ExecutionLimits(deletes_per_minute=-5)
    with pytest.raises(ValueError, match="sku must be one of basic, standard, premium"):
        ExecutionLimits.for_sku("gold")


@pytest.mark.parametrize(
    ("sku", "deletes", "reads", "writes"),
    [("basic", 500, 5000, 1000), ("standard", 500, 5000, 1000), ("premium", 2000, 10000, 2000)],
)
def test_sku_limits_are_the_published_per_identity_numbers(
    sku: str, deletes: int, reads: int, writes: int
) -> None:
    """Each SKU's limits are docs/acr-facts.md section 4.1's, paced at the safety margin."""
    limits = ExecutionLimits.for_sku(sku)
    assert (limits.deletes_per_minute, limits.reads_per_minute, limits.writes_per_minute) == (
        deletes,
        reads,
        writes,
    )
    assert limits.pace(Category.DELETE) == pytest.approx(deletes * SAFETY_MARGIN)


def test_a_share_and_explicit_numbers_adjust_the_sku():
    """A run given a quarter of the identity's budget gets a quarter; a number given wins."""
    limits = ExecutionLimits.for_sku("standard", share=0.25, writes_per_minute=40)
    assert limits.deletes_per_minute == 125
    assert limits.reads_per_minute == 1250
    assert limits.writes_per_minute == 40


async def test_each_category_is_paced_below_its_limit():
    """After their bursts, deletes and reads each run at the safety margin of their
    own limit: 600 and 6,000 a minute become 570 and 5,700."""
    time = FakeTime()
    governor = Governor(
        ExecutionLimits(deletes_per_minute=600, reads_per_minute=6000),
        clock=time.clock,
        sleep=time.sleep,
    )

    async def sustained(lane: Lane, burst: int, count: int) -> float:
        for _ in range(burst):
            async with lane.slot():
                pass
        began = time.now
        for _ in range(count):
            async with lane.slot():
                pass
        return count / (time.now - began) * 60

    assert await sustained(governor.deletes, 1, 100) == pytest.approx(570, rel=0.02)
    assert await sustained(governor.reads, 19, 1000) == pytest.approx(5700, rel=0.02)


async def test_a_spent_delete_budget_does_not_hold_reads_back():
    """Reads go on at their own pace while the deletes wait for tokens."""
    time = FakeTime()
    governor = Governor(ExecutionLimits(deletes_per_minute=60), clock=time.clock, sleep=time.sleep)
    await governor.deletes.take()  # the one-token burst

    async def read() -> None:
        async with governor.reads.slot():
            pass

    await asyncio.gather(
        asyncio.create_task(governor.deletes.take(), name="delete"),
        asyncio.create_task(read(), name="read"),
    )
    assert set(time.sleepers) == {"delete"}
    assert time.now >= 1.0 / SAFETY_MARGIN - 1e-9


async def test_a_429_pauses_its_own_category_for_retry_after():
    """A 429 reported inside a delete's slot holds deletes back for Retry-After, not reads,
    and slows the delete budget."""
    time = FakeTime()
    governor = Governor(ExecutionLimits(deletes_per_minute=600), clock=time.clock, sleep=time.sleep)
    async with governor.deletes.slot():
        governor.throttled(7.0)
    async with governor.reads.slot():
        assert time.now == 0.0
    bucket = governor.deletes.budget.bucket
    assert bucket is not None
    assert bucket.rate_per_minute < 600 * SAFETY_MARGIN
    async with governor.deletes.slot():
        assert time.now >= 7.0
    assert governor.throttle_count == 1


async def test_a_429_without_retry_after_backs_off_and_outside_a_slot_pauses_all():
    """A 429 the run cannot place pauses every category; without Retry-After, for a backoff."""
    time = FakeTime()
    governor = Governor(clock=time.clock, sleep=time.sleep)
    governor.throttled(None)
    async with governor.reads.slot():
        first = time.now
    assert first >= 1.0
    assert governor.window.limit == 16


async def test_the_slowed_budget_recovers_its_pace_within_a_throttling_period():
    """After a 429 the rate climbs back to its pace within RECOVERY_SECONDS."""
    time = FakeTime()
    bucket = TokenBucket(600, clock=time.clock, sleep=time.sleep)
    bucket.slow()
    assert bucket.rate_per_minute == pytest.approx(300)
    time.now += 61.0
    await bucket.take()
    assert bucket.rate_per_minute == pytest.approx(600)


async def test_a_cancelled_waiter_leaves_no_slot_behind():
    """Cancelling a request that waits for a slot neither takes nor loses one."""
    limiter = AdaptiveLimiter(1, initial=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            await release.wait()

    async def wait_for_slot() -> None:
        async with limiter.slot():
            pass

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(wait_for_slot())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with asyncio.timeout(1):
        async with limiter.slot():
            pass


async def test_waiters_are_served_in_arrival_order():
    """Requests queued for a slot get it first come, first served."""
    limiter = AdaptiveLimiter(1, initial=1)
    order: list[int] = []

    async def request(n: int) -> None:
        async with limiter.slot():
            order.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(*(request(n) for n in range(6)))
    assert order == list(range(6))


async def test_token_requests_wait_for_the_oauth_budget_and_nothing_else_does():
    """The client's pacer holds token requests to the OAuth budget; other requests pass (their
    categories were paced where the run sent them)."""
    time = FakeTime()
    governor = Governor(
        ExecutionLimits(tokens_per_minute=60, reads_per_minute=60),
        clock=time.clock,
        sleep=time.sleep,
    )
    for _ in range(5):
        await governor.pace("GET", "/v2/app/manifests/latest")
    assert time.now == 0.0
    await governor.pace("POST", "/oauth2/exchange")
    await governor.pace("POST", "/oauth2/token")
    assert time.now == pytest.approx(1 / SAFETY_MARGIN)


async def test_each_page_of_a_listing_in_one_read_slot_pays_for_its_own_read():
    """A read slot's first request was paid for with the slot; its later pages (and retries)
    each wait for a read token, and a DELETE's retry waits for none."""
    time = FakeTime()
    governor = Governor(
        ExecutionLimits(reads_per_minute=60, deletes_per_minute=60),
        clock=time.clock,
        sleep=time.sleep,
    )
    async with governor.reads.slot():
        await governor.pace("GET", "/acr/v1/app/_manifests")
        assert time.now == 0.0
        await governor.pace("GET", "/acr/v1/app/_manifests")
        await governor.pace("GET", "/acr/v1/app/_manifests")
    assert time.now == pytest.approx(2 / SAFETY_MARGIN)  # the first came from the burst
    before = time.now
    async with governor.deletes.slot(taken=True):
        await governor.pace("DELETE", "/v2/app/manifests/sha256:1")
        await governor.pace("DELETE", "/v2/app/manifests/sha256:1")
    assert time.now == before

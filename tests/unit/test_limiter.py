"""The limiter: AIMD concurrency, Retry-After pauses and token buckets, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from acr_core.run.limiter import AdaptiveLimiter, ExecutionLimits, TokenBucket


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_limiter_grows_to_its_cap_while_requests_succeed():
    """Without 429s the limit climbs to `max_concurrency` and no further."""
    limiter = AdaptiveLimiter(8, initial=1)
    for _ in range(50):
        async with limiter.slot():
            pass
    assert limiter.limit == 8


async def test_limiter_halves_once_per_burst_of_429s():
    """A burst of throttled responses halves the limit once, not once per response."""
    time = FakeTime()
    limiter = AdaptiveLimiter(32, initial=16, clock=time.clock, decrease_interval=1.0)
    for _ in range(10):
        limiter.throttled(0.0)
    assert limiter.limit == 8
    time.now += 2.0
    limiter.throttled(0.0)
    assert limiter.limit == 4


async def test_limiter_holds_new_requests_for_retry_after():
    """After a 429 with Retry-After: 7, the next request starts no sooner than 7 s later."""
    time = FakeTime()
    limiter = AdaptiveLimiter(4, clock=time.clock, sleep=time.sleep)
    limiter.throttled(7.0)
    async with limiter.slot():
        started = time.now
    assert started >= 7.0


async def test_limiter_grows_slowly_after_the_first_429():
    """After a throttle the limit grows by about one per round of successes, not per success."""
    time = FakeTime()
    limiter = AdaptiveLimiter(32, initial=16, clock=time.clock, sleep=time.sleep)
    limiter.throttled(0.0)
    for _ in range(16):
        async with limiter.slot():
            pass
    assert limiter.limit == 9


async def test_token_bucket_paces_writes_to_the_budget():
    """A 120-per-minute budget lets 2 requests through per second after a one-second burst."""
    time = FakeTime()
    bucket = TokenBucket(120, clock=time.clock, sleep=time.sleep)
    for _ in range(12):
        await bucket.take()
    assert time.now == pytest.approx(5.0)


def test_limits_reject_nonsense():
    """Zero concurrency or a non-positive budget is refused with the field named."""
    with pytest.raises(ValueError, match="max_concurrency"):
        ExecutionLimits(max_concurrency=0)
    with pytest.raises(ValueError, match="writes_per_minute"):
        ExecutionLimits(writes_per_minute=0)


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

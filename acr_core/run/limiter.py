"""How hard a run may push the registry: AIMD concurrency and optional token buckets.

One `Governor` per run, shared by every repository, holds a limiter for reads and one for
writes. Concurrency grows while requests succeed and halves when ACR answers 429, and new
requests wait out `Retry-After`. Token buckets can cap it below the SKU's published budget
(docs/acr-facts.md section 4: WriteOps per minute Basic 100, Standard 500, Premium 2000; ReadOps
1000, 3000, 10000), so a large sweep runs just under the limit instead of bouncing off it.

The limiters only set the pace; they never retry. Retrying a 429 is the client transport's job
(acr_core.registry.transport), which tells the run of each 429 once, through its listener.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

# acr purge caps parallel deletes at 32, "the max number of parallel delete requests recommended
# by ACR server" (Azure/acr-cli cmd/acr/purge.go, docs/acr-facts.md section 4).
DEFAULT_MAX_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    """Caps on how hard a run may push the registry; `None` rates mean "adapt to 429s only".

    `writes_per_minute` is the SKU's WriteOps budget or less (deletes and lock changes);
    `reads_per_minute` its ReadOps budget (listings, property reads, manifest reads).
    """

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    writes_per_minute: float | None = None
    reads_per_minute: float | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        for name in ("writes_per_minute", "reads_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or unset, got {value}")


class TokenBucket:
    """`rate_per_minute` tokens a minute, with at most one second's worth in a burst.

    ACR throttles bursts "even when the average rate is within registry limits"
    (docs/acr-facts.md section 4), hence the small burst.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate = rate_per_minute / 60.0
        self._capacity = max(1.0, self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await self._sleep((1.0 - self._tokens) / self._rate)


class AdaptiveLimiter:
    """Additive-increase, multiplicative-decrease concurrency for one kind of request.

    Starts small and grows by one per success (slow start) until the first 429, then by about
    one per round trip; a 429 halves the limit (at most once per `decrease_interval`, since a
    burst of in-flight requests is throttled together) and holds new requests back for the
    `Retry-After` the registry sent, or an exponential backoff when it sent none.
    """

    def __init__(
        self,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        rate_per_minute: float | None = None,
        *,
        initial: int = 4,
        base_backoff: float = 1.0,
        max_backoff: float = 30.0,
        decrease_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.max_concurrency = max_concurrency
        self._limit = float(min(initial, max_concurrency))
        self._slow_start = True
        self._in_flight = 0
        self._paused_until = 0.0
        self._last_decrease = -float("inf")
        self._backoff = base_backoff
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._decrease_interval = decrease_interval
        self._clock = clock
        self._sleep = sleep
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._bucket = (
            TokenBucket(rate_per_minute, clock=clock, sleep=sleep) if rate_per_minute else None
        )
        self.throttle_count = 0
        self.peak = 0

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    def throttled(self, retry_after: float | None = None) -> None:
        """The registry answered 429: shrink, and hold new requests back for a while."""
        self.throttle_count += 1
        now = self._clock()
        if now - self._last_decrease >= self._decrease_interval:
            self._limit = max(1.0, self._limit / 2)
            self._last_decrease = now
            self._slow_start = False
        if retry_after is None:
            delay = self._backoff
            self._backoff = min(self._max_backoff, self._backoff * 2)
        else:
            delay = max(0.0, retry_after)
        self._paused_until = max(self._paused_until, now + delay)

    def _succeeded(self) -> None:
        self._backoff = self._base_backoff
        step = 1.0 if self._slow_start else 1.0 / self._limit
        self._limit = min(float(self.max_concurrency), self._limit + step)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot; leaving normally counts as a success."""
        await self._acquire()
        ok = False
        try:
            while (wait := self._paused_until - self._clock()) > 0:
                await self._sleep(wait)
            if self._bucket is not None:
                await self._bucket.take()
            yield
            ok = True
        finally:
            self._in_flight -= 1
            if ok:
                self._succeeded()
            self._wake()

    async def _acquire(self) -> None:
        # First come, first served; a release hands its slot to exactly one waiter, so a
        # gather with thousands of queued reads costs no thundering herd of wake-ups.
        if self._in_flight < self.limit and not self._waiters:
            self._take()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._in_flight -= 1  # the slot was handed over just as we were cancelled
                self._wake()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _take(self) -> None:
        self._in_flight += 1
        self.peak = max(self.peak, self._in_flight)

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)


class Governor:
    """The read and write limiters one run shares across all its repositories."""

    def __init__(self, limits: ExecutionLimits | None = None) -> None:
        limits = limits or ExecutionLimits()
        self.limits = limits
        self.reads = AdaptiveLimiter(limits.max_concurrency, limits.reads_per_minute)
        self.writes = AdaptiveLimiter(limits.max_concurrency, limits.writes_per_minute)

    def throttled(self, retry_after: float | None = None) -> None:
        """A 429 from the client's listener: ACR budgets reads and writes separately, but the
        listener cannot tell which budget ran out, so both back off."""
        self.reads.throttled(retry_after)
        self.writes.throttled(retry_after)

    @property
    def throttle_count(self) -> int:
        return max(self.reads.throttle_count, self.writes.throttle_count)

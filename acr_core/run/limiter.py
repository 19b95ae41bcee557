"""How hard a run may push the registry: a budget per ACR rate category, and AIMD concurrency.

ACR's 2026 limits (docs/acr-facts.md section 4.1) are token buckets per category and per
identity: DataplaneRead (GET, HEAD), DataplaneWrite (PUT, PATCH, POST), DataplaneDelete
(DELETE), ListReferrers, and OAuth (token requests, per registry only). A 429 there can hold a
category back for up to a minute, so a run paces itself below the limit instead of probing
for it. One `Governor` per run, shared by every repository, holds:

- a `Budget` per category: a token bucket at `SAFETY_MARGIN` of the limit the run may use (the
  SKU's per-identity number, a share of it, or a number given), and the pause a 429's
  `Retry-After` asks for. A category without a limit is paced by 429s alone.
- one `AdaptiveLimiter` over all requests in flight (`max_concurrency`): AIMD, halved by a 429.

Safety margin: 0.95. Paced at 95 % of the limit, the registry's bucket, which starts full and
refills at 100 %, can never empty from our requests alone: a 2,000-image cleanup under
Standard (500 deletes a minute per identity) paces at 475 a minute, above the 90 % the issue
asks for, and the 5 % covers clock drift and what else the identity sends. ACR calls its
numbers "best-effort approximate maximums", so the 429 path still slows the run.

The limiters only set the pace; they never retry. Retrying a 429 is the client transport's job
(acr_core.registry.transport), which tells the run of each 429 once, through its listener; the
listener runs inside the request's task, so the category of the slot it holds says which
budget ran out.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

# acr purge caps parallel deletes at 32, "the max number of parallel delete requests recommended
# by ACR server" (Azure/acr-cli cmd/acr/purge.go, docs/acr-facts.md section 4.2).
DEFAULT_MAX_CONCURRENCY = 32
# The run paces each category at this fraction of its limit (see the module docstring).
SAFETY_MARGIN = 0.95
# After a 429 a bucket's rate halves, then climbs back to its pace over one throttling period
# ("throttled for up to a full minute after a large burst", docs/acr-facts.md section 4.1).
RECOVERY_SECONDS = 60.0
# Seconds of a budget's rate a run may send at once (see `TokenBucket`).
BURST_SECONDS = 0.2


class Category(StrEnum):
    """ACR's request-rate categories (docs/acr-facts.md section 4.1)."""

    READ = "DataplaneRead"
    WRITE = "DataplaneWrite"
    DELETE = "DataplaneDelete"
    OAUTH = "OAuth"
    LIST_REFERRERS = "ListReferrers"


@dataclass(frozen=True, slots=True)
class SkuLimits:
    """Requests a minute one identity may send to one registry, per category; `oauth` is the
    registry's own limit (OAuth has no per-identity one)."""

    reads: int
    writes: int
    deletes: int
    list_referrers: int
    oauth: int


# docs/acr-facts.md section 4.1, per identity per registry (OAuth: per registry).
SKU_LIMITS: Mapping[str, SkuLimits] = {
    "basic": SkuLimits(reads=5_000, writes=1_000, deletes=500, list_referrers=250, oauth=10_000),
    "standard": SkuLimits(reads=5_000, writes=1_000, deletes=500, list_referrers=250, oauth=10_000),
    "premium": SkuLimits(
        reads=10_000, writes=2_000, deletes=2_000, list_referrers=1_000, oauth=20_000
    ),
}
SKUS = tuple(SKU_LIMITS)


@dataclass(frozen=True, slots=True)
class ExecutionLimits:
    """What one run may send: requests in flight, and per category the requests a minute the
    registry allows it (`None`: no fixed limit, paced by 429s alone).

    The numbers are limits, not the pace: the run paces each at `SAFETY_MARGIN` of it.
    `deletes_per_minute` is DataplaneDelete (manifest DELETEs); `reads_per_minute`
    DataplaneRead (listings, property and manifest reads, the re-checks); `writes_per_minute`
    DataplaneWrite (tag locks); `tokens_per_minute` OAuth (token requests).
    """

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    deletes_per_minute: float | None = None
    reads_per_minute: float | None = None
    writes_per_minute: float | None = None
    tokens_per_minute: float | None = None

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        for name in _RATE_FIELDS.values():
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or unset, got {value}")

    @classmethod
    def for_sku(
        cls,
        sku: str | None,
        *,
        share: float = 1.0,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        deletes_per_minute: float | None = None,
        reads_per_minute: float | None = None,
        writes_per_minute: float | None = None,
    ) -> ExecutionLimits:
        """The SKU's per-identity limits times `share` (this run's part of them, when several
        runs share one identity); a number given explicitly wins over the SKU's. Without a
        SKU, only the numbers given are limits."""
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if sku is None:
            return cls(max_concurrency, deletes_per_minute, reads_per_minute, writes_per_minute)
        limits = SKU_LIMITS.get(sku.lower())
        if limits is None:
            raise ValueError(f"sku must be one of {', '.join(SKUS)}, got {sku!r}")
        return cls(
            max_concurrency=max_concurrency,
            deletes_per_minute=deletes_per_minute or limits.deletes * share,
            reads_per_minute=reads_per_minute or limits.reads * share,
            writes_per_minute=writes_per_minute or limits.writes * share,
            # OAuth is limited per registry, for all its clients together: the same share.
            tokens_per_minute=limits.oauth * share,
        )

    def limit(self, category: Category) -> float | None:
        """The requests a minute this run may send in `category`, or None."""
        name = _RATE_FIELDS.get(category)
        return None if name is None else getattr(self, name)

    def pace(self, category: Category) -> float | None:
        """The requests a minute the run paces `category` at: its limit less the margin."""
        limit = self.limit(category)
        return None if limit is None else limit * SAFETY_MARGIN


_RATE_FIELDS: Mapping[Category, str] = {
    Category.DELETE: "deletes_per_minute",
    Category.READ: "reads_per_minute",
    Category.WRITE: "writes_per_minute",
    Category.OAUTH: "tokens_per_minute",
}


class TokenBucket:
    """`rate_per_minute` tokens a minute, with at most `BURST_SECONDS` of them in a burst.

    The burst is small on purpose. A request takes its token before it waits for a slot (and
    a DELETE before its re-check reads), so requests reach the registry up to that wait later
    than their tokens were taken, and tokens taken apart can arrive together. The registry's
    bucket, one second of its rate or more (its capacity is not published, docs/acr-facts.md
    section 4.1), absorbs that as long as our burst plus the delays stay under it: with 0.2 s
    of burst at 95 % of the rate, delays of up to about 0.8 s. `slow()` halves the rate (a
    429 says the registry's bucket is empty, whatever ours thinks) and empties this one; the
    rate then climbs back linearly to `rate_per_minute` over `RECOVERY_SECONDS`.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._target = rate_per_minute / 60.0
        self._rate = self._target
        self._capacity = max(1.0, self._target * BURST_SECONDS)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()

    @property
    def rate_per_minute(self) -> float:
        """The rate the bucket refills at now (lower than its pace for a while after `slow`)."""
        return self._rate * 60.0

    async def take(self) -> None:
        async with self._lock:
            while True:
                self._refill()
                # The tolerance: a wait computed to the token must not end a rounding error short.
                if self._tokens >= 1.0 - 1e-9:
                    self._tokens -= 1.0
                    return
                await self._sleep((1.0 - self._tokens) / self._rate)

    def slow(self) -> None:
        self._refill()
        self._rate = max(self._target / 10, self._rate / 2)
        self._tokens = min(self._tokens, 0.0)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        self._rate = min(self._target, self._rate + self._target * elapsed / RECOVERY_SECONDS)


class Budget:
    """One category's pace: an optional token bucket, and the pause a 429 asks for.

    A 429 holds the category's new requests back for its `Retry-After` (ACR's counts down to
    the end of the throttling period, docs/acr-facts.md section 4.1), or an exponential backoff
    when it sent none, and slows the bucket; other categories go on.
    """

    def __init__(
        self,
        category: Category,
        rate_per_minute: float | None,
        *,
        base_backoff: float = 1.0,
        max_backoff: float = 30.0,
        decrease_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.category = category
        self.bucket = (
            TokenBucket(rate_per_minute, clock=clock, sleep=sleep) if rate_per_minute else None
        )
        self._paused_until = -float("inf")
        self._last_slowed = -float("inf")
        self._backoff = base_backoff
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._decrease_interval = decrease_interval
        self._clock = clock
        self._sleep = sleep
        self.throttle_count = 0

    async def take(self) -> None:
        """Wait out any pause, then for a token (a 429 while waiting pauses again)."""
        await self.wait_pause()
        if self.bucket is not None:
            await self.bucket.take()
            await self.wait_pause()

    def throttled(self, retry_after: float | None) -> None:
        self.throttle_count += 1
        now = self._clock()
        if retry_after is None:
            delay = self._backoff
            self._backoff = min(self._max_backoff, self._backoff * 2)
        else:
            delay = max(0.0, retry_after)
            self._backoff = self._base_backoff
        self._paused_until = max(self._paused_until, now + delay)
        # A burst of requests in flight is throttled together: slow down once for it.
        if self.bucket is not None and now - self._last_slowed >= self._decrease_interval:
            self.bucket.slow()
            self._last_slowed = now

    @property
    def paused(self) -> bool:
        """True while a 429's pause holds this category back."""
        return self._paused_until > self._clock()

    async def wait_pause(self) -> None:
        """Until no 429's pause holds this category back."""
        while (wait := self._paused_until - self._clock()) > 0:
            await self._sleep(wait)


class AdaptiveLimiter:
    """Additive-increase, multiplicative-decrease concurrency over all of a run's requests.

    Starts at `initial` and grows by one per success (slow start) until the first 429, then by
    about one per round trip; a 429 halves the limit, at most once per `decrease_interval`
    (a burst of in-flight requests is throttled together). `request_seconds` adds up the time
    each slot was held: divided by the run's wall time, the requests it had in flight on
    average (its effective concurrency).
    """

    def __init__(
        self,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        *,
        initial: int | None = None,
        decrease_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrency = max_concurrency
        # Starting at the cap is safe: the budgets, not this, keep the run below ACR's limits.
        self._limit = float(min(initial or max_concurrency, max_concurrency))
        self._slow_start = True
        self._in_flight = 0
        self._last_decrease = -float("inf")
        self._decrease_interval = decrease_interval
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._stamp = clock()
        self.request_seconds = 0.0
        self.peak = 0

    @property
    def limit(self) -> int:
        return max(1, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def throttled(self) -> None:
        """The registry answered 429: halve the requests in flight."""
        now = self._clock()
        if now - self._last_decrease >= self._decrease_interval:
            self._limit = max(1.0, self._limit / 2)
            self._last_decrease = now
            self._slow_start = False

    def _succeeded(self) -> None:
        step = 1.0 if self._slow_start else 1.0 / self._limit
        self._limit = min(float(self.max_concurrency), self._limit + step)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request slot; leaving normally counts as a success."""
        await self._acquire()
        ok = False
        try:
            yield
            ok = True
        finally:
            self._count(-1)
            if ok:
                self._succeeded()
            self._wake()

    async def _acquire(self) -> None:
        # First come, first served; a release hands its slot to exactly one waiter, so a
        # gather with thousands of queued reads costs no thundering herd of wake-ups.
        if self._in_flight < self.limit and not self._waiters:
            self._count(+1)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._count(-1)  # the slot was handed over just as we were cancelled
                self._wake()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _count(self, change: int) -> None:
        now = self._clock()
        self.request_seconds += self._in_flight * (now - self._stamp)
        self._stamp = now
        self._in_flight += change
        self.peak = max(self.peak, self._in_flight)

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count(+1)
                waiter.set_result(None)


@dataclass(slots=True)
class _Held:
    """The slot the current task holds: its category, and whether the one request its token
    paid for has been sent."""

    category: Category
    paid: bool = True


# The slot the current task holds. A 429 reported from inside that request (the transport calls
# its listeners in the request's task) is charged to that budget, and the requests a read slot
# sends beyond its first (a listing's later pages, a retry after a 401) wait for tokens too.
_HELD: contextvars.ContextVar[_Held | None] = contextvars.ContextVar(
    "acr_cleanup_held", default=None
)


class Lane:
    """Requests of one category: each takes a token from its budget, then a slot."""

    def __init__(self, budget: Budget, window: AdaptiveLimiter) -> None:
        self.budget = budget
        self._window = window

    @property
    def throttle_count(self) -> int:
        return self.budget.throttle_count

    async def take(self) -> None:
        """Only the budget's token: for a request sent later with `request(taken=True)`."""
        await self.budget.take()

    @asynccontextmanager
    async def slot(self, *, taken: bool = False) -> AsyncIterator[None]:
        """One request of this category in flight; `taken`: its token was taken already.
        The token comes before the slot, so a request waiting for its budget holds no slot
        another category could use."""
        if not taken:
            await self.budget.take()
        async with self._window.slot():
            token = _HELD.set(_Held(self.budget.category))
            try:
                yield
            finally:
                _HELD.reset(token)


class Governor:
    """The budgets and the concurrency one run shares across all its repositories."""

    def __init__(
        self,
        limits: ExecutionLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        limits = limits or ExecutionLimits()
        self.limits = limits
        self.window = AdaptiveLimiter(limits.max_concurrency, clock=clock)
        self.budgets: dict[Category, Budget] = {
            category: Budget(category, limits.pace(category), clock=clock, sleep=sleep)
            for category in Category
        }
        self.reads = Lane(self.budgets[Category.READ], self.window)
        self.writes = Lane(self.budgets[Category.WRITE], self.window)
        self.deletes = Lane(self.budgets[Category.DELETE], self.window)
        self.throttle_count = 0  # 429s reported to this run

    def throttled(self, retry_after: float | None = None) -> None:
        """A 429 from the client's listener: the budget of the request that got it pauses and
        slows (all of them when it came from outside any slot), and concurrency halves."""
        self.throttle_count += 1
        held = _HELD.get()
        category = None if held is None else held.category
        for budget in self.budgets.values():
            if category is None or budget.category is category:
                budget.throttled(retry_after)
        self.window.throttled()

    async def pace(self, method: str, path: str) -> None:
        """Before each request the client sends: token requests (`/oauth2/`, sent by its auth
        flow, not by the run) wait for the OAuth budget; a read slot's first request was paid
        for when the slot was taken, and each further one (pages, retries) waits for a read
        token. DELETEs and locks send one request per slot; their retries wait out the
        transport's Retry-After instead, so no wait comes between a re-check and its DELETE."""
        if path.startswith("/oauth2/"):
            await self.budgets[Category.OAUTH].take()
            return
        held = _HELD.get()
        if held is None or held.category is not Category.READ:
            return
        if held.paid:
            held.paid = False
            return
        await self.budgets[Category.READ].take()

    @property
    def request_seconds(self) -> float:
        """Seconds of requests in flight, summed over the run's requests."""
        return self.window.request_seconds

"""ACR's 2026 request-rate limits: token buckets per category, per registry and per identity.

The model (docs/acr-facts.md section 4.1): five categories, DataplaneRead, DataplaneWrite,
DataplaneDelete, ListReferrers and OAuth; each has a per-registry limit and (except OAuth) a
per-identity one. A request draws one token from every bucket of every category it falls in (a
referrers listing is ListReferrers and DataplaneRead), and is refused if any of them is empty.
A refused request takes nothing.

Buckets refill continuously at the per-minute rate and hold `capacity_seconds` of it. ACR does
not publish the capacity (UNCERTAIN); the default, one minute of refill, is the largest that
fits "throttled for up to a full minute after a large burst". When a request finds a bucket
empty, that bucket's throttling period starts and lasts until it has refilled to capacity;
every request drawing from it until then is answered 429 with `Retry-After` = the whole seconds
left, so the value counts down across consecutive throttled requests (60, then 50 ten seconds
later, as in the documentation). That the period lasts until the bucket is full again is our
reading of "rejected ... until capacity refills" (UNCERTAIN).

`time_scale` speeds the registry's minute up: with `time_scale=20` every rate is 20x and a
60-second throttling period lasts 3 clock seconds, so benchmarks see the shape of a minute in
a few seconds. The clock is injectable (the emulator passes its registry clock, which tests
freeze and advance instead of sleeping).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

READ, WRITE, DELETE = "DataplaneRead", "DataplaneWrite", "DataplaneDelete"
REFERRERS, OAUTH = "ListReferrers", "OAuth"
CATEGORIES = (READ, WRITE, DELETE, REFERRERS, OAUTH)

# Category -> (the RateLimits field of its per-registry limit, of its per-identity limit).
LIMIT_FIELDS: dict[str, tuple[str, str | None]] = {
    READ: ("read_per_registry", "read_per_identity"),
    WRITE: ("write_per_registry", "write_per_identity"),
    DELETE: ("delete_per_registry", "delete_per_identity"),
    REFERRERS: ("referrers_per_registry", "referrers_per_identity"),
    OAUTH: ("oauth_per_registry", None),
}

# The published numbers per minute (docs/acr-facts.md section 4.1), in LIMIT_FIELDS order:
# read, write, delete, referrers (registry, identity each), then OAuth (registry only).
_BASIC_STANDARD = (10_000, 5_000, 2_000, 1_000, 1_000, 500, 500, 250, 10_000)
_PREMIUM = (20_000, 10_000, 4_000, 2_000, 4_000, 2_000, 2_000, 1_000, 20_000)
SKU_PRESETS: dict[str, tuple[int, ...]] = {
    "basic": _BASIC_STANDARD,
    "standard": _BASIC_STANDARD,
    "premium": _PREMIUM,
}
DEFAULT_CAPACITY_SECONDS = 60.0  # UNCERTAIN: ACR does not publish the bucket's capacity


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests per minute for each category and scope; None leaves that bucket out.

    `RateLimits.sku("standard")` gives the published numbers; `RateLimits(delete_per_identity=
    100)` limits deletions alone. `capacity_seconds`: how many seconds of refill a bucket holds
    (a burst of that much passes at once, and an emptied bucket throttles for that long).
    `time_scale`: every rate is multiplied by it (the registry's minute lasts 60/time_scale s).
    """

    read_per_registry: float | None = None
    read_per_identity: float | None = None
    write_per_registry: float | None = None
    write_per_identity: float | None = None
    delete_per_registry: float | None = None
    delete_per_identity: float | None = None
    referrers_per_registry: float | None = None
    referrers_per_identity: float | None = None
    oauth_per_registry: float | None = None
    capacity_seconds: float = DEFAULT_CAPACITY_SECONDS
    time_scale: float = 1.0

    @classmethod
    def sku(cls, name: str, **overrides: Any) -> RateLimits:
        """The published limits of `basic`, `standard` or `premium`, with any field replaced."""
        key = name.lower()
        if key not in SKU_PRESETS:
            raise ValueError(f"unknown SKU {name!r}; expected one of {', '.join(SKU_PRESETS)}")
        names = [f for pair in LIMIT_FIELDS.values() for f in pair if f is not None]
        return cls(**dict(zip(names, map(float, SKU_PRESETS[key]), strict=True)), **overrides)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name not in ("capacity_seconds", "time_scale"):
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"rate limit {f.name} must be a positive number, not {value!r}")

    def limit(self, category: str, scope: str) -> float | None:
        """The per-minute limit of `category` for `scope` ("registry" or "identity")."""
        registry, identity = LIMIT_FIELDS[category]
        name = registry if scope == "registry" else identity
        return None if name is None else getattr(self, name)

    def with_(self, **changes: Any) -> RateLimits:
        """A copy with some fields replaced (validated like a new one)."""
        return replace(self, **changes)


class Bucket:
    """A continuously refilling token bucket with a throttling period once found empty."""

    __slots__ = ("capacity", "per_second", "stamp", "throttled_until", "tokens")

    def __init__(self, per_second: float, capacity: float, now: float) -> None:
        self.per_second = per_second
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now
        self.throttled_until = -math.inf

    def refill(self, now: float) -> None:
        elapsed = now - self.stamp
        if elapsed < 0:  # the clock was set back: keep the period's remaining length
            self.throttled_until += elapsed
        else:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
        self.stamp = now

    def refusal(self, now: float) -> float | None:
        """None if a token may be taken now; else the seconds left in the throttling period
        (which starts here if the bucket has just been found empty)."""
        if self.throttled_until > now:
            return self.throttled_until - now
        if self.tokens >= 1.0:
            return None
        self.throttled_until = now + (self.capacity - self.tokens) / self.per_second
        return self.throttled_until - now


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is throttled: the bucket with the longest period left, and how long."""

    category: str
    scope: str
    retry_after: int


class RateCounters:
    """Requests by (category, identity, status): what each identity sent and what was 429.

    Counted whether or not limits are on, so a benchmark can read the traffic mix of any run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, categories: Iterable[str], identity: str, status: int) -> None:
        with self._lock:
            for category in categories:
                self._counts[(category, identity, status)] += 1

    def count(
        self,
        category: str | None = None,
        identity: str | None = None,
        status: int | None = None,
    ) -> int:
        """Requests matching every filter given (None matches anything). A referrers listing
        counts once under ListReferrers and once under DataplaneRead."""
        with self._lock:
            return sum(
                n
                for (c, i, s), n in self._counts.items()
                if (category is None or c == category)
                and (identity is None or i == identity)
                and (status is None or s == status)
            )

    def throttled(self, category: str | None = None, identity: str | None = None) -> int:
        """How many of those requests were answered 429."""
        return self.count(category, identity, 429)

    def identities(self) -> list[str]:
        with self._lock:
            return sorted({i for (_, i, _) in self._counts})

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """`{identity: {category: {"requests": n, "throttled": m}}}` for every one seen."""
        result: dict[str, dict[str, dict[str, int]]] = {}
        with self._lock:
            items = list(self._counts.items())
        for (category, identity, status), n in items:
            entry = result.setdefault(identity, {}).setdefault(
                category, {"requests": 0, "throttled": 0}
            )
            entry["requests"] += n
            if status == 429:
                entry["throttled"] += n
        return result

    def snapshot(self) -> list[dict[str, Any]]:
        """Every non-zero counter as `{"category", "identity", "status", "count"}`, sorted."""
        with self._lock:
            items = sorted(self._counts.items())
        return [{"category": c, "identity": i, "status": s, "count": n} for (c, i, s), n in items]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class RateLimiter:
    """The buckets of one registry; `configure(None)` switches the limits off (counting goes on).

    `clock` returns seconds (any origin); the emulator passes its registry clock.
    """

    def __init__(
        self, limits: RateLimits | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.counters = RateCounters()
        self.limits: RateLimits | None = None
        # (category, "registry", "") or (category, "identity", identity) -> its bucket
        self._buckets: dict[tuple[str, str, str], Bucket] = {}
        self.configure(limits)

    def configure(self, limits: RateLimits | None) -> None:
        """New limits with fresh (full) buckets; None switches throttling off."""
        with self._lock:
            self.limits = limits
            self._buckets = {}

    def admit(self, categories: Iterable[str], identity: str) -> Refusal | None:
        """Take a token from every bucket the request draws from, or none and say why not."""
        with self._lock:
            limits = self.limits
            if limits is None:
                return None
            now = self._clock()
            buckets = self._buckets_for(limits, tuple(categories), identity, now)
            worst: tuple[float, str, str] | None = None
            for (category, scope), bucket in buckets:
                bucket.refill(now)
                wait = bucket.refusal(now)
                if wait is not None and (worst is None or wait > worst[0]):
                    worst = (wait, category, scope)
            if worst is not None:
                return Refusal(worst[1], worst[2], max(1, math.ceil(worst[0] - 1e-9)))
            for _, bucket in buckets:
                bucket.tokens -= 1.0
            return None

    def _buckets_for(
        self, limits: RateLimits, categories: tuple[str, ...], identity: str, now: float
    ) -> list[tuple[tuple[str, str], Bucket]]:
        found: list[tuple[tuple[str, str], Bucket]] = []
        for category in categories:
            for scope, key in (("registry", ""), ("identity", identity)):
                per_minute = limits.limit(category, scope)
                if per_minute is None:
                    continue
                bucket = self._buckets.get((category, scope, key))
                if bucket is None:
                    per_second = per_minute / 60.0 * limits.time_scale
                    capacity = per_minute / 60.0 * limits.capacity_seconds
                    bucket = Bucket(per_second, capacity, now)
                    self._buckets[(category, scope, key)] = bucket
                found.append(((category, scope), bucket))
        return found

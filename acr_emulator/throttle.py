"""Throttling like ACR's: per-minute ReadOps/WriteOps budgets that still punish bursts.

ACR throttles bursts "even when the average rate is within registry limits"
(mgmt-docs/container-registry-skus.md), so each budget is a token bucket that refills
continuously at limit/60 per second and holds only `burst_seconds` of it: spending a whole
minute's budget at once is not possible. `time_scale` speeds time up for benchmarks: with
`time_scale=10` a Standard registry allows 10x its per-minute budget per real minute, so a
test sees the same shape of throttling in a tenth of the time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# ReadOps / WriteOps per minute (docs/acr-facts.md section 4, "minimum estimates" in the docs).
SKU_LIMITS: dict[str, tuple[int, int]] = {
    "Basic": (1_000, 100),
    "Standard": (3_000, 500),
    "Premium": (10_000, 2_000),
}


@dataclass(frozen=True, slots=True)
class ThrottleConfig:
    read_per_minute: float
    write_per_minute: float
    burst_seconds: float = 1.0
    time_scale: float = 1.0

    @classmethod
    def sku(
        cls, name: str, *, burst_seconds: float = 1.0, time_scale: float = 1.0
    ) -> ThrottleConfig:
        """The budgets of an ACR SKU: Basic, Standard or Premium."""
        key = name.capitalize()
        if key not in SKU_LIMITS:
            raise ValueError(f"unknown SKU {name!r}; expected one of {', '.join(SKU_LIMITS)}")
        read, write = SKU_LIMITS[key]
        return cls(read, write, burst_seconds, time_scale)

    def __post_init__(self) -> None:
        for name in ("read_per_minute", "write_per_minute", "burst_seconds", "time_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"throttle {name} must be positive")


class Bucket:
    """A continuously refilling token bucket."""

    def __init__(self, per_second: float, capacity: float, now: float) -> None:
        self.per_second = per_second
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """Spend one token; return 0, or the seconds until one will be available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.per_second


class Throttle:
    """Read and write buckets for the whole registry; `configure(None)` switches it off."""

    def __init__(
        self, config: ThrottleConfig | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.config: ThrottleConfig | None = None
        self._buckets: dict[str, Bucket] = {}
        self.configure(config)

    def configure(self, config: ThrottleConfig | None) -> None:
        with self._lock:
            self.config = config
            self._buckets = {}
            if config is None:
                return
            for kind, per_minute in (
                ("read", config.read_per_minute),
                ("write", config.write_per_minute),
            ):
                per_second = per_minute / 60.0 * config.time_scale
                capacity = per_second * config.burst_seconds
                self._buckets[kind] = Bucket(per_second, capacity, self._clock())

    def admit(self, kind: str) -> int | None:
        """None when admitted; otherwise the Retry-After seconds for a 429."""
        with self._lock:
            bucket = self._buckets.get(kind)
            if bucket is None:
                return None
            wait = bucket.take(self._clock())
        return None if wait == 0.0 else max(1, math.ceil(wait))

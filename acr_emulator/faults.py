"""Injected latency, server errors and dropped connections, switchable at any time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Faults:
    """What to do to each data-plane request (admin endpoints are never touched).

    `latency` seconds (plus up to `jitter` more) before answering; `error_rate` of requests
    answered with `error_status`; `drop_rate` of requests whose connection is closed with no
    complete response. Rates are probabilities in [0, 1]; `seed` makes them repeatable.
    `methods` limits all of it to requests with those HTTP methods (None: every method), so a
    test can fail writes while reads succeed.
    """

    latency: float = 0.0
    jitter: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    seed: int | None = None
    methods: frozenset[str] | None = None
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"fault {name} must not be negative")
        for name in ("error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"fault {name} must be between 0 and 1")
        if not 500 <= self.error_status <= 599:
            raise ValueError("fault error_status must be a 5xx status")
        if self.methods is not None:
            given: object = self.methods  # the admin endpoint passes JSON through unchecked
            if isinstance(given, str) or not all(isinstance(m, str) for m in self.methods):
                raise ValueError('fault methods must be a set of HTTP methods, e.g. ["DELETE"]')
            self.methods = frozenset(m.upper() for m in self.methods)
        self._random = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return bool(self.latency or self.jitter or self.error_rate or self.drop_rate)

    def applies_to(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods

    def delay(self) -> float:
        return self.latency + (self._random.random() * self.jitter if self.jitter else 0.0)

    def roll(self) -> str | None:
        """ "drop", "error" or None for one request."""
        if self.drop_rate and self._random.random() < self.drop_rate:
            return "drop"
        if self.error_rate and self._random.random() < self.error_rate:
            return "error"
        return None


class DroppedConnection(ConnectionResetError):
    """Raised in-process when a fault drops the connection (a closed socket over HTTP)."""

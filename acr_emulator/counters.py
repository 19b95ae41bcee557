"""Request counters by endpoint, method and status, for tests and benchmarks."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Counters:
    """Counts answered requests; `endpoint` is a route name like `/v2/{name}/tags/list`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, endpoint: str, method: str, status: int) -> None:
        with self._lock:
            self._counts[(endpoint, method, status)] += 1

    def count(
        self, endpoint: str | None = None, method: str | None = None, status: int | None = None
    ) -> int:
        """Requests matching every filter given (None matches anything)."""
        with self._lock:
            return sum(
                n
                for (e, m, s), n in self._counts.items()
                if (endpoint is None or e == endpoint)
                and (method is None or m == method)
                and (status is None or s == status)
            )

    @property
    def total(self) -> int:
        return self.count()

    def by_status(self) -> dict[int, int]:
        result: Counter[int] = Counter()
        with self._lock:
            for (_, _, status), n in self._counts.items():
                result[status] += n
        return dict(result)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every non-zero counter as `{"endpoint", "method", "status", "count"}`, sorted."""
        with self._lock:
            items = sorted(self._counts.items())
        return [{"endpoint": e, "method": m, "status": s, "count": n} for (e, m, s), n in items]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

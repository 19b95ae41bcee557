"""The registry's notion of "now", which tests can set and advance.

Every timestamp the emulator stamps on a repository, tag or manifest comes from here, so ages
and orderings can be staged. Two readings never return the same instant: when the clock is
frozen (or the wall clock has not moved) each reading is one microsecond after the previous
one, so "pushed later" always means "sorts later" under `orderby=timedesc`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

_TICK = timedelta(microseconds=1)


class Clock:
    """A settable clock: runs with the wall clock from an offset, or stays frozen."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen
        self._offset = timedelta(0)
        self._fixed = _wall()
        self._last = datetime.min.replace(tzinfo=UTC)
        if start is not None:
            self.set(start)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def now(self) -> datetime:
        """The current registry time (UTC), strictly later than any earlier reading."""
        with self._lock:
            base = self._fixed if self._frozen else _wall() + self._offset
            value = max(base, self._last + _TICK)
            self._last = value
            return value

    def peek(self) -> datetime:
        """The current registry time without consuming a tick."""
        with self._lock:
            base = self._fixed if self._frozen else _wall() + self._offset
            return max(base, self._last)

    def set(self, when: datetime) -> None:
        """Make `when` the current time; a naive datetime is taken as UTC."""
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
        with self._lock:
            self._fixed = when
            self._offset = when - _wall()
            self._last = when - _TICK

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        self.set(self.peek() + delta)

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) the clock at the current reading."""
        current = self.peek()
        with self._lock:
            self._frozen = frozen
        self.set(current)


def _wall() -> datetime:
    return datetime.now(UTC)


def format_acr_time(when: datetime) -> str:
    """ACR's /acr/v1 timestamp: UTC with 7 fractional digits (docs/acr-facts.md section 1.0)."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0Z"


def format_event_time(when: datetime) -> str:
    """Event Grid `data.timestamp`: 9 fractional digits (docs/acr-facts.md section 5)."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}000Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (up to 9 fractional digits); naive means UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, sep, tail = value.partition(".")
    if sep:
        digits = ""
        rest = tail
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        value = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

"""The sweep's queue messages and its budgeted catalog listing, as plain data.

The timer lists the catalog and queues one message per covered repository. A listing cut off
by `CLEANUP_SWEEP_BUDGET_SECONDS`, or stopped by an error (transient or not) after listing
something, also queues a continuation that resumes after the last name listed: ACR lists names
"lexically after last" (docs/acr-facts.md section 1.2), so nothing is skipped or listed twice.

Messages are JSON objects with exactly one key: `{"repository": name}` cleans one repository,
`{"continueAfter": name}` lists the catalog on after `name`. Anything else is not a message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field

from acr_core.names import is_repository_name


def sweep_message(repository: str) -> str:
    """The queue message that has `sweep_repository` clean one repository."""
    return json.dumps({"repository": repository})


def continuation_message(after: str) -> str:
    """The queue message that has `sweep_repository` list the catalog on after `after`."""
    return json.dumps({"continueAfter": after})


def read_sweep_message(body: bytes) -> str | None:
    """The repository a sweep message names, or None if the message is not one of those."""
    return _read_name(body, "repository")


def read_continuation(body: bytes) -> str | None:
    """The name a continuation message resumes after, or None if it is not one."""
    return _read_name(body, "continueAfter")


def _read_name(body: bytes, key: str) -> str | None:
    """`name` from a message that is exactly `{key: name}`, name a valid repository name."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or list(data) != [key]:
        return None
    name = data[key]
    if not isinstance(name, str) or not is_repository_name(name):
        return None
    return name


@dataclass
class Listing:
    """How far one catalog listing (from the start, or after `after`) got, and how it ended."""

    after: str | None = None
    covered: list[str] = field(default_factory=list)
    listed: int = 0
    last: str | None = None  # the last name listed: everything up to it has been seen
    completed: bool = False  # the catalog's end was reached
    cut_off: bool = False  # the budget ran out

    async def take(self, names: AsyncIterable[str], covers: Callable[[str], bool]) -> None:
        """Record every name `names` yields, keeping those `covers` accepts, then mark the
        listing completed; whatever stops it early leaves what was listed so far."""
        async for name in names:
            self.listed += 1
            self.last = name
            if covers(name):
                self.covered.append(name)
        self.completed = True

    @property
    def resume(self) -> str | None:
        """Where a continuation resumes: the last name listed, whenever the listing stopped
        short of the catalog's end (budget, transient or permanent error), so the rest of the
        catalog is not left to the next sweep. Each continuation lists at least one name or
        queues none, so a failure that repeats cannot chain forever."""
        return None if self.completed else self.last

    def messages(self) -> list[str]:
        """One message per covered repository, then the continuation if there is one."""
        messages = [sweep_message(name) for name in self.covered]
        if self.resume is not None:
            messages.append(continuation_message(self.resume))
        return messages

    def summary(
        self, *, cause: str | None, past_due: bool | None, seconds: float
    ) -> dict[str, object]:
        """The fields of the `acr-cleanup sweep {...}` line (docs/operations.md)."""
        return {
            "trigger": "schedule" if self.after is None else "continuation",
            "cause": cause,
            "pastDue": past_due,
            "after": self.after,
            "listed": self.listed,
            "enqueued": len(self.covered),
            "cutOff": self.cut_off,
            "listingFailed": not self.cut_off and not self.completed,
            "continueAfter": self.resume,
            "durationSeconds": round(seconds, 3),
        }

"""What the history remembers of one tag, and how two memories of it merge. Pure.

A tag's memory is the digests it was seen pointing to, each with the latest time it was seen
there (an `ImagePushed` event's `data.timestamp`, or the tag's `lastUpdateTime` in a run's
listing), newest first. The current digest is the newest; the ones after it are the digests
the tag pointed to before, most recent first.

Events arrive at least once, out of order and duplicated, and several function instances write
the same tag, so `merge` is built to make the order irrelevant: it keeps, per digest, the
latest time seen, orders by (time, digest), and keeps the first `DEPTH + 1`. That is a
commutative, associative and idempotent merge, and cutting to the first `DEPTH + 1` before or
after merging gives the same result (a digest cut from one side has `DEPTH + 1` digests newer
than it on that side, so it is cut from the merge too). Whatever order the observations come
in, and however often, the result is the one the whole set of observations gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# Digests kept per tag before its current one: the most a `previousDigests` clause may ask for.
DEPTH = 20
FORMAT = 1  # the version of `encode`'s JSON


class HistoryError(Exception):
    """The history cannot be read or written; the message names the store and what to do."""


@dataclass(frozen=True, slots=True, order=True)
class Seen:
    """A digest a tag pointed to, and the latest time it was seen pointing there."""

    at: datetime
    digest: str


@dataclass(frozen=True, slots=True)
class Observation:
    """One tag-to-digest fact the cleaner learnt: `tag` pointed to `digest` at `at`."""

    tag: str
    digest: str
    at: datetime


TagMemory = tuple[Seen, ...]  # newest first, distinct digests, at most DEPTH + 1


def merge(*memories: Iterable[Seen]) -> TagMemory:
    """The memory that all of `memories` together give (order and repetition do not matter)."""
    latest: dict[str, datetime] = {}
    for memory in memories:
        for seen in memory:
            known = latest.get(seen.digest)
            if known is None or seen.at > known:
                latest[seen.digest] = seen.at
    ordered = sorted((Seen(at, digest) for digest, at in latest.items()), reverse=True)
    return tuple(ordered[: DEPTH + 1])


def previous(memory: TagMemory) -> tuple[str, ...]:
    """The digests the tag pointed to before its current one, most recent first."""
    return tuple(seen.digest for seen in memory[1:])


def encode(memory: TagMemory) -> str:
    """The memory as compact JSON text, for a table property or a file."""
    return json.dumps([[s.digest, s.at.isoformat()] for s in memory], separators=(",", ":"))


def decode(text: str) -> TagMemory:
    """Read what `encode` wrote; raises ValueError on anything else."""
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("a tag's history is not a JSON array")
    seen = []
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], str)
        ):
            raise ValueError("a tag's history entry is not [digest, time]")
        at = datetime.fromisoformat(item[1])
        seen.append(Seen(at if at.tzinfo else at.replace(tzinfo=UTC), item[0]))
    return merge(seen)


def observations_by_tag(observations: Iterable[Observation]) -> dict[str, list[Seen]]:
    """Group observations by tag, as `merge` takes them."""
    grouped: dict[str, list[Seen]] = {}
    for o in observations:
        at = o.at if o.at.tzinfo else o.at.replace(tzinfo=UTC)
        grouped.setdefault(o.tag, []).append(Seen(at, o.digest))
    return grouped

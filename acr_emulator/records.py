"""What a registry holds: repositories, manifests, tags and their changeable attributes.

A `Repository` also keeps its listing orders sorted, so that `store.Registry` can keep them in
step with every push, re-tag and delete by bisection instead of re-sorting.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from acr_emulator.content import Child
from acr_emulator.errors import invalid

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
ATTRIBUTE_KEYS = {
    "deleteEnabled": "delete_enabled",
    "writeEnabled": "write_enabled",
    "readEnabled": "read_enabled",
    "listEnabled": "list_enabled",
}


@dataclass(slots=True)
class Attributes:
    """ACR's `changeableAttributes`: four independent switches."""

    delete_enabled: bool = True
    write_enabled: bool = True
    read_enabled: bool = True
    list_enabled: bool = True

    @property
    def deletable(self) -> bool:
        # writeEnabled=false denies delete as well as push (docs/acr-facts.md section 3).
        return self.delete_enabled and self.write_enabled

    def to_wire(self) -> dict[str, bool]:
        return {
            "deleteEnabled": self.delete_enabled,
            "writeEnabled": self.write_enabled,
            "readEnabled": self.read_enabled,
            "listEnabled": self.list_enabled,
        }

    def update(self, patch: Any) -> None:
        """Apply a partial `changeableAttributes` object; unknown keys are rejected."""
        if not isinstance(patch, dict):
            raise invalid("BAD_REQUEST", "the body must be a JSON object of changeable attributes")
        changes: dict[str, bool] = {}
        for key, value in patch.items():
            if key not in ATTRIBUTE_KEYS:
                raise invalid(
                    "BAD_REQUEST",
                    f"unknown attribute {key!r}; expected one of {', '.join(ATTRIBUTE_KEYS)}",
                )
            if not isinstance(value, bool):
                raise invalid("BAD_REQUEST", f"attribute {key!r} must be true or false")
            changes[ATTRIBUTE_KEYS[key]] = value
        for name, value in changes.items():
            setattr(self, name, value)

    @classmethod
    def from_wire(cls, value: Any) -> Attributes:
        attributes = cls()
        if value is not None:
            attributes.update(value)
        return attributes


@dataclass(slots=True)
class Manifest:
    digest: str
    body: bytes
    media_type: str
    created: datetime
    updated: datetime
    config_media_type: str | None = None
    architecture: str | None = None
    os: str | None = None
    image_size: int = 0
    children: tuple[Child, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    attributes: Attributes = field(default_factory=Attributes)
    tags: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Tag:
    name: str
    digest: str
    created: datetime
    updated: datetime
    attributes: Attributes = field(default_factory=Attributes)


@dataclass(frozen=True, slots=True)
class Deleted:
    """A manifest that a delete removed, for the ImageDeleted event and the response."""

    repository: str
    digest: str
    media_type: str
    tags: tuple[str, ...]


def ticks(when: datetime) -> int:
    """Microseconds since the epoch: an exact, sortable key for a timestamp."""
    return (when - _EPOCH) // _MICROSECOND


class Repository:
    """One repository: manifests by digest, tags by name, referrers by subject digest."""

    def __init__(self, name: str, now: datetime) -> None:
        self.name = name
        self.created = now
        self.updated = now
        self.attributes = Attributes()
        self.manifests: dict[str, Manifest] = {}
        self.tags: dict[str, Tag] = {}
        self.referrers: dict[str, set[str]] = {}
        self._orders: dict[tuple[str, str], list[tuple[Any, ...]]] = {}

    def touch(self, now: datetime) -> None:
        self.updated = max(self.updated, now)

    def ordered(self, kind: str, order: str) -> list[tuple[Any, ...]]:
        """Sort keys for `kind` ("tags"/"manifests") in `order` ("", "timeasc", "timedesc")."""
        keys = self._orders.get((kind, order))
        if keys is None:
            items: Iterable[Tag | Manifest] = (
                self.tags.values() if kind == "tags" else self.manifests.values()
            )
            keys = sorted(sort_key(item, order) for item in items)
            self._orders[(kind, order)] = keys
        return keys

    def forget(self, item: Tag | Manifest) -> None:
        """Take `item` out of the kept orders: before it is removed or its time changes."""
        kind = _kind(item)
        for (of, order), keys in self._orders.items():
            if of != kind:
                continue
            key = sort_key(item, order)
            index = bisect.bisect_left(keys, key)
            if index < len(keys) and keys[index] == key:
                del keys[index]
            else:  # out of step (a change made without forget): rebuild on the next listing
                self.invalidate()
                return

    def remember(self, item: Tag | Manifest) -> None:
        """Put `item` into the kept orders: after it is added or its time changed."""
        kind = _kind(item)
        for (of, order), keys in self._orders.items():
            if of != kind:
                continue
            key = sort_key(item, order)
            index = bisect.bisect_left(keys, key)
            if index == len(keys) or keys[index] != key:
                keys.insert(index, key)

    def invalidate(self) -> None:
        """Drop the kept orders (bulk seeding); the next listing sorts afresh."""
        self._orders.clear()


def sort_key(item: Tag | Manifest, order: str) -> tuple[Any, ...]:
    """Where `item` sorts in a listing: by name or digest, or by lastUpdateTime then name."""
    name = item.name if isinstance(item, Tag) else item.digest
    if order == "timeasc":
        return (ticks(item.updated), name)
    if order == "timedesc":
        return (-ticks(item.updated), name)
    return (name,)


def _kind(item: Tag | Manifest) -> str:
    return "tags" if isinstance(item, Tag) else "manifests"

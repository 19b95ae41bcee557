"""The planner's output: what to do to each repository, and why.

A plan is plain data. The executor applies it, the CLI prints it, the function logs it; a dry
run is a plan that is not applied. Every action and every kept image names the rule that decided
it and a sentence saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum


class ActionKind(StrEnum):
    DELETE_MANIFEST = "delete_manifest"
    LOCK_TAG = "lock_tag"


@dataclass(frozen=True, slots=True)
class Action:
    """One change to the registry.

    `delete_manifest`: delete `digest` (by digest; ACR removes its tags and its referrers, listed
    in `cascades`). `lock_tag`: set `writeEnabled=false, deleteEnabled=false` on `tags[0]`.
    `after` lists digests whose deletion must succeed first (an index before its children).
    """

    kind: ActionKind
    repository: str
    digest: str
    tags: tuple[str, ...]
    reason: str
    rule: str
    size_in_bytes: int = 0
    cascades: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Kept:
    """A manifest the plan keeps, and why (protected, within keepLatest, child of a kept index)."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    reason: str
    rule: str


# The planner builds an action or a kept manifest for each of tens of thousands of manifests. A
# frozen dataclass's __init__ sets every field through `object.__setattr__`, several times slower
# than calling each slot's own setter: `deletion` and `kept_manifest` build the same values so.
_ACTION_FIELDS = (
    *("kind", "repository", "digest", "tags", "reason", "rule"),
    *("size_in_bytes", "cascades", "after"),
)
_KEPT_FIELDS = ("repository", "digest", "tags", "reason", "rule")
assert tuple(f.name for f in fields(Action)) == _ACTION_FIELDS
assert tuple(f.name for f in fields(Kept)) == _KEPT_FIELDS
_ACTION_SETTERS = tuple(getattr(Action, name).__set__ for name in _ACTION_FIELDS)
_KEPT_SETTERS = tuple(getattr(Kept, name).__set__ for name in _KEPT_FIELDS)


def deletion(
    repository: str,
    digest: str,
    tags: tuple[str, ...],
    reason: str,
    rule: str,
    size_in_bytes: int,
    cascades: tuple[str, ...],
    after: tuple[str, ...],
) -> Action:
    """`Action(ActionKind.DELETE_MANIFEST, ...)` with every field given, built faster."""
    kind_, repository_, digest_, tags_, reason_, rule_, size_, cascades_, after_ = _ACTION_SETTERS
    action = object.__new__(Action)
    kind_(action, ActionKind.DELETE_MANIFEST)
    repository_(action, repository)
    digest_(action, digest)
    tags_(action, tags)
    reason_(action, reason)
    rule_(action, rule)
    size_(action, size_in_bytes)
    cascades_(action, cascades)
    after_(action, after)
    return action


def kept_manifest(
    repository: str, digest: str, tags: tuple[str, ...], reason: str, rule: str
) -> Kept:
    """`Kept(repository, digest, tags, reason, rule)`, built faster."""
    repository_, digest_, tags_, reason_, rule_ = _KEPT_SETTERS
    item = object.__new__(Kept)
    repository_(item, repository)
    digest_(item, digest)
    tags_(item, tags)
    reason_(item, reason)
    rule_(item, rule)
    return item


@dataclass(frozen=True, slots=True)
class RepositoryPlan:
    repository: str
    rule: str
    actions: tuple[Action, ...]
    kept: tuple[Kept, ...]
    # Set when a safety limit stops this repository's deletions: says which limit and which
    # setting to change. The deletions stay listed, so the user sees what tripped the limit,
    # but none of them is applied; lock actions of a blocked repository are still applied.
    blocked: str | None = None

    @property
    def deletions(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind is ActionKind.DELETE_MANIFEST)

    @property
    def locks(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind is ActionKind.LOCK_TAG)


@dataclass(frozen=True, slots=True)
class Plan:
    repositories: tuple[RepositoryPlan, ...]

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(a for r in self.repositories for a in r.actions)

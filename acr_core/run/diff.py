"""What-if: what a new policy would delete and keep that the current one does not.

`acr-cleanup diff` reads the registry once, plans both policies on that one snapshot (so the
difference is the policies', never a push in between), and compares the two plans manifest by
manifest. Nothing is applied; the only requests are reads, as `plan` sends. The JSON shape is
in docs/cli.md ("diff") and `diff.schema.json`.

A manifest is deleted by a plan when the plan has a deletion for it or a deletion takes it
along (a referrer ACR deletes with its subject, `Action.cascades`). Deletions a safety limit
holds back still count as the plan's deletions here, and the repository's entry says it is
blocked: the point is the policies' difference, and a limit is not a policy decision.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from acr_core.models import RepositorySnapshot
from acr_core.planning import planner
from acr_core.planning.plan import ActionKind, RepositoryPlan
from acr_core.planning.policy import Policy
from acr_core.registry.errors import AcrError, NotFoundError, is_transient
from acr_core.run._tasks import first_failure
from acr_core.run.coverage import list_catalog
from acr_core.run.limiter import ExecutionLimits, Governor
from acr_core.run.report import SCHEMA_VERSION, RepositoryIssue, Status
from acr_core.run.service import (
    REPOSITORY_CONCURRENCY,
    Progress,
    ProgressEvent,
    RegistryClient,
    RepositoryNotFoundError,
    gather_repository,
)

NOT_GOVERNED = "no rule of this policy governs the repository: never touched"
NOT_DELETED = "not deleted"
NOT_LOCKED = "not locked: no lockTags pattern matches the tag"


@dataclass(frozen=True, slots=True)
class Change:
    """One manifest the two plans treat differently: `reason` is the new policy's decision,
    `against_reason` the current one's."""

    digest: str
    tags: tuple[str, ...]
    size_in_bytes: int
    reason: str
    against_reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "tags": list(self.tags),
            "sizeInBytes": self.size_in_bytes,
            "reason": self.reason,
            "againstReason": self.against_reason,
        }


@dataclass(frozen=True, slots=True)
class RepositoryDiff:
    """One repository both policies were planned on (or one of them: the other governs none)."""

    repository: str
    rule: str | None
    against_rule: str | None
    blocked: str | None
    against_blocked: str | None
    newly_deleted: tuple[Change, ...]
    newly_kept: tuple[Change, ...]
    # Tags one plan locks and the other does not (`tags` holds the one tag, size 0): locks
    # are not undone by this tool, so a change to `lockTags` is shown too.
    newly_locked: tuple[Change, ...] = ()
    no_longer_locked: tuple[Change, ...] = ()

    @property
    def changed(self) -> bool:
        """Anything treated differently, a safety limit hit under one policy only included."""
        return bool(
            self.newly_deleted
            or self.newly_kept
            or self.newly_locked
            or self.no_longer_locked
            or (self.blocked is None) != (self.against_blocked is None)
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "rule": self.rule,
            "againstRule": self.against_rule,
            "blocked": self.blocked,
            "againstBlocked": self.against_blocked,
            "newlyDeleted": [c.to_dict() for c in self.newly_deleted],
            "newlyKept": [c.to_dict() for c in self.newly_kept],
            "newlyLocked": [c.to_dict() for c in self.newly_locked],
            "noLongerLocked": [c.to_dict() for c in self.no_longer_locked],
        }


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """The whole comparison: `policy` and `against` are the labels shown (the file names)."""

    registry: str
    now: datetime
    policy: str
    against: str
    repositories: tuple[RepositoryDiff, ...]
    issues: tuple[RepositoryIssue, ...]

    @property
    def changed(self) -> tuple[RepositoryDiff, ...]:
        return tuple(r for r in self.repositories if r.changed)

    @property
    def failed(self) -> bool:
        return any(issue.status is Status.FAILED for issue in self.issues)

    def totals(self) -> dict[str, int]:
        deleted = [c for r in self.repositories for c in r.newly_deleted]
        kept = [c for r in self.repositories for c in r.newly_kept]
        return {
            "repositories": len(self.repositories),
            "changedRepositories": len(self.changed),
            "failedRepositories": sum(1 for i in self.issues if i.status is Status.FAILED),
            "newlyDeleted": len(deleted),
            "bytesNewlyDeleted": sum(c.size_in_bytes for c in deleted),
            "newlyKept": len(kept),
            "bytesNewlyKept": sum(c.size_in_bytes for c in kept),
            "newlyLocked": sum(len(r.newly_locked) for r in self.repositories),
            "noLongerLocked": sum(len(r.no_longer_locked) for r in self.repositories),
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "registry": self.registry,
            "now": self.now.isoformat(),
            "policy": self.policy,
            "against": self.against,
            "totals": self.totals(),
            "repositories": [r.to_dict() for r in self.repositories],
            "issues": [
                {"repository": i.repository, "status": i.status.value, "error": i.detail}
                for i in self.issues
            ],
        }


async def diff_policies(
    client: RegistryClient,
    policy: Policy,
    against: Policy,
    *,
    labels: tuple[str, str] = ("policy", "against"),
    repositories: Sequence[str] | None = None,
    now: datetime | None = None,
    limits: ExecutionLimits | None = None,
    progress: Progress | None = None,
) -> PolicyDiff:
    """Read every repository either policy governs (or the named ones) once, plan both
    policies on what was read, and compare. Raises `AcrError` when the catalog cannot be
    listed, `RepositoryNotFoundError` when a named repository does not exist. `progress` hears
    one "gather" event per repository read, as `run_cleanup`'s do."""
    moment = now or datetime.now(UTC)
    names, issues = await _select(client, (policy, against), repositories)
    snapshots, failed = await _gather(client, names, Governor(limits), progress)
    missing = [i.repository for i in failed if i.status is Status.GONE]
    if repositories is not None and missing:
        raise RepositoryNotFoundError(missing)
    compared = tuple(
        compare(snapshot, _plan(snapshot, policy, moment), _plan(snapshot, against, moment))
        for snapshot in (snapshots[name] for name in sorted(snapshots))
    )
    return PolicyDiff(
        registry=client.login_server,
        now=moment,
        policy=labels[0],
        against=labels[1],
        repositories=compared,
        issues=tuple(sorted([*issues, *failed], key=lambda i: i.repository)),
    )


def _plan(snapshot: RepositorySnapshot, policy: Policy, now: datetime) -> RepositoryPlan | None:
    plans = planner.plan([snapshot], policy, now).repositories
    return plans[0] if plans else None


async def _select(
    client: RegistryClient, policies: Sequence[Policy], repositories: Sequence[str] | None
) -> tuple[list[str], list[RepositoryIssue]]:
    """The repositories either policy governs, and an issue for each named one neither does."""
    names = sorted(set(repositories)) if repositories is not None else await list_catalog(client)
    governed = [n for n in names if any(p.covers(n) for p in policies)]
    issues = [
        RepositoryIssue(n, Status.NOT_COVERED, "neither policy has a rule for it; left untouched")
        for n in names
        if repositories is not None and n not in governed
    ]
    return governed, issues


async def _gather(
    client: RegistryClient, names: Sequence[str], governor: Governor, progress: Progress | None
) -> tuple[dict[str, RepositorySnapshot], list[RepositoryIssue]]:
    """One snapshot per repository, read a few at a time; a failed read is an issue."""
    snapshots: dict[str, RepositorySnapshot] = {}
    issues: list[RepositoryIssue] = []
    pending = iter(names)

    async def reader() -> None:
        for name in pending:
            try:
                snapshots[name] = await gather_repository(client, name, governor)
            except NotFoundError:
                issues.append(RepositoryIssue(name, Status.GONE, "deleted while it was read"))
            except AcrError as exc:
                issues.append(
                    RepositoryIssue(name, Status.FAILED, str(exc), is_transient(exc), cause=exc)
                )
            if progress is not None:
                done = len(snapshots) + len(issues)
                progress(ProgressEvent("gather", done, len(names), name))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(REPOSITORY_CONCURRENCY, len(names))):
                group.create_task(reader())
    except BaseExceptionGroup as failures:
        raise first_failure(failures) from None
    return snapshots, issues


def compare(
    snapshot: RepositorySnapshot, new: RepositoryPlan | None, old: RepositoryPlan | None
) -> RepositoryDiff:
    """The manifests `new` deletes and `old` does not (newly deleted), and the reverse."""
    new_deleted, old_deleted = _deleted(new), _deleted(old)
    new_kept, old_kept = _kept(new), _kept(old)
    sizes = {m.digest: m.size_in_bytes or 0 for m in snapshot.manifests}
    tags = {m.digest: m.tags for m in snapshot.manifests}

    def entry(digest: str, reason: str, against_reason: str) -> Change:
        return Change(digest, tags.get(digest, ()), sizes.get(digest, 0), reason, against_reason)

    return RepositoryDiff(
        repository=snapshot.name,
        rule=new.rule if new else None,
        against_rule=old.rule if old else None,
        blocked=new.blocked if new else None,
        against_blocked=old.blocked if old else None,
        newly_deleted=tuple(
            entry(d, why, _why_kept(d, old, old_kept))
            for d, why in new_deleted.items()
            if d not in old_deleted
        ),
        newly_kept=tuple(
            entry(d, _why_kept(d, new, new_kept), why)
            for d, why in old_deleted.items()
            if d not in new_deleted
        ),
        newly_locked=_lock_changes(new, old),
        no_longer_locked=_lock_changes(old, new, swapped=True),
    )


def _lock_changes(
    one: RepositoryPlan | None, other: RepositoryPlan | None, *, swapped: bool = False
) -> tuple[Change, ...]:
    """The tags `one` locks and `other` does not; with `swapped`, the reasons are given as
    (`other`'s, `one`'s), so `reason` is always the new policy's."""
    theirs = {(a.digest, a.tags) for a in other.locks} if other else set()
    missing = NOT_GOVERNED if other is None else NOT_LOCKED
    return tuple(
        Change(a.digest, a.tags, 0, *((missing, a.reason) if swapped else (a.reason, missing)))
        for a in (one.locks if one else ())
        if (a.digest, a.tags) not in theirs
    )


def _deleted(plan: RepositoryPlan | None) -> dict[str, str]:
    """Each manifest the plan deletes, in the plan's order (a subject's referrers after it),
    with the reason."""
    deleted: dict[str, str] = {}
    for action in plan.actions if plan else ():
        if action.kind is ActionKind.DELETE_MANIFEST:
            deleted[action.digest] = action.reason
            for referrer in action.cascades:
                deleted.setdefault(
                    referrer, f"deleted by ACR with its subject {action.digest[:19]}"
                )
    return deleted


def _kept(plan: RepositoryPlan | None) -> dict[str, str]:
    return {k.digest: k.reason for k in plan.kept} if plan else {}


def _why_kept(digest: str, plan: RepositoryPlan | None, kept: Mapping[str, str]) -> str:
    if plan is None:
        return NOT_GOVERNED
    return kept.get(digest, NOT_DELETED)


def diff_json(diff: PolicyDiff) -> str:
    """`diff --output json`: one JSON document, indented, with a final newline."""
    return json.dumps(diff.to_dict(), indent=2) + "\n"

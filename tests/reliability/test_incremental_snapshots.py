"""Push runs read a repository incrementally; their plan must be the plan of a full re-read.

Random sequences of pushes (images, multi-arch indexes, referrers), re-tags, tag deletes,
manifest deletes, lock changes and cleanups are applied to the emulator. After each step a dry
run that brings the kept snapshot up to date (pages of two items, so the newest-first reads
really stop early) is compared with a dry run that lists everything, same policy, same `now`.

The one documented difference (docs/reliability.md, "Incremental snapshots"): a lock set or
cleared by someone else since the last full listing, on an item not on the pages read, is not
seen. Where that makes the plans differ, the incremental plan is applied for real, and nothing
may be deleted that the full re-read's plan does not delete: the executor's re-check before
each DELETE must catch it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from acr_core.planning.plan import Plan
from acr_core.planning.policy import load_policy
from acr_core.registry.errors import AcrError
from acr_core.run.gathering import Reading
from acr_core.run.service import run_cleanup
from acr_core.run.snapshots import SnapshotStore
from acr_core.storage.objects import MemoryStore
from acr_emulator import EmulatorConfig
from acr_emulator.errors import RegistryError
from tests.reliability.conftest import CHAOS
from tests.unit.emulated_registry import T0, EmulatedRegistry

REPO = "apps/a"
MINUTE = timedelta(minutes=1)
TAGS = ("v1", "v2", "v3", "latest", "stable", "rel-1")
PAGE = 2
POLICY = load_policy(
    {
        "version": 1,
        "rules": [
            {
                "name": "apps",
                "repositories": ["apps/**"],
                "keepLatest": 2,
                "keepTags": ["stable"],
                "lockTags": ["rel-*"],
                "untagged": {"olderThan": "1h"},
            }
        ],
        "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
    }
)

# Repeated kinds are drawn more often: enough pushes for the pages read to leave items out,
# and enough lock changes on those items.
KINDS = (
    *("image",) * 3,
    *("index", "retag", "lock", "lock-tag", "cleanup") * 2,
    *("referrer", "untag", "delete"),
)


@dataclass(frozen=True)
class Op:
    """One step: `kind`, with the tag, item (an index into the sorted digests or tags) and
    lock switch it uses (each kind reads only the fields it needs)."""

    kind: str
    tag: str | None
    item: int
    locked: bool


ops = st.builds(
    Op,
    kind=st.sampled_from(KINDS),
    tag=st.sampled_from((None, *TAGS)),
    item=st.integers(0, 50),
    locked=st.booleans(),
)
# Minutes between steps: 0 gives equal timestamps; 61 outlives the snapshot's maximum age.
steps = st.lists(st.tuples(ops, st.sampled_from((0, 1, 1, 1, 61))), min_size=8, max_size=16)


@dataclass
class World:
    """The emulator, the time, and what the test knows about changes no timestamp shows."""

    registry: EmulatedRegistry
    store: SnapshotStore
    time: datetime = T0
    pushed: int = 0
    locks_since: list[datetime] = field(default_factory=list)  # when locks were changed
    named: dict[str, str] = field(default_factory=dict)  # name pushed -> digest

    def digests(self) -> list[str]:
        return sorted(self.registry.digests(REPO))

    def tags(self) -> list[str]:
        return sorted(self.registry.tags(REPO))

    def name(self) -> str:
        self.pushed += 1
        return f"m{self.pushed}"

    def push(self, tag: str | None = None, **kwargs: object) -> str:
        """Push a new manifest at the world's time (unless `updated` says); returns its digest."""
        name = self.name()
        kwargs.setdefault("updated", self.time)
        digest = self.registry.push(REPO, name, tags=(tag,) if tag else (), **kwargs)  # type: ignore[arg-type]
        self.named[name] = digest
        return digest


def _world() -> World:
    registry = EmulatedRegistry(EmulatorConfig(now=T0, frozen_clock=True))
    world = World(registry, SnapshotStore(MemoryStore()))
    world.store = SnapshotStore(MemoryStore(), clock=lambda: world.time)  # the test's time
    # A start with more items than one page: three releases, the oldest signed, a multi-arch
    # image and an untagged leftover, a minute apart.
    for minute, tag in enumerate(("v1", "v2", "v3")):
        world.time = T0 + minute * MINUTE
        digest = world.push(tag)  # m1, m3, m4
        if tag == "v1":
            world.push(subject=digest)  # m2
    world.time = T0 + 3 * MINUTE
    children = (world.push(), world.push())
    world.push("latest", children=children)
    world.time = T0 + 4 * MINUTE
    world.push()
    world.time = T0 + 5 * MINUTE
    return world


async def _apply(world: World, op: Op) -> None:
    """One change made by "someone else" (the cleanup op is this cleaner's own run)."""
    client, registry = world.registry.client, world.registry
    digests, tags = world.digests(), world.tags()
    digest = digests[op.item % len(digests)] if digests else None
    tag = tags[op.item % len(tags)] if tags else None
    try:
        if op.kind == "image":
            world.push(op.tag)
        elif op.kind == "index":
            world.push(op.tag, children=(world.push(), world.push()))
        elif op.kind == "referrer" and digest:
            world.push(subject=digest)
        elif op.kind == "retag" and digest:
            registry.tag(REPO, op.tag or "latest", digest, updated=world.time)
        elif op.kind == "untag" and tag:
            await client.delete_tag(REPO, tag)
        elif op.kind == "delete" and digest:
            await client.delete_manifest(REPO, digest)
        elif op.kind == "lock" and digest:
            world.locks_since.append(world.time)
            await client.update_manifest_properties(
                REPO, digest, can_delete=not op.locked, can_write=not op.locked
            )
        elif op.kind == "lock-tag" and tag:
            world.locks_since.append(world.time)
            await client.update_tag_properties(
                REPO, tag, can_delete=not op.locked, can_write=not op.locked
            )
        elif op.kind == "cleanup":
            await _run(world, incremental=True, dry_run=False)
    except (AcrError, RegistryError):
        pass  # refused (a lock), or gone with its repository: the registry said no


async def _run(world: World, *, incremental: bool, dry_run: bool = True) -> Plan:
    reading = (
        Reading(snapshots=world.store, incremental=True, page_size=PAGE)
        if incremental
        else Reading(page_size=PAGE)
    )
    now = world.time + timedelta(hours=2)
    report = await run_cleanup(
        world.registry.client, POLICY, repositories=[REPO], now=now, dry_run=dry_run,
        reading=reading,
    )  # fmt: skip
    return report.plan


def event(what: str) -> None:
    """A hypothesis statistic inside the property test; nothing in the one-case tests."""
    with contextlib.suppress(InvalidArgument):
        hypothesis_event(what)


def _deleted(plan: Plan) -> set[str]:
    return {d for a in plan.actions if a.kind == "delete_manifest" for d in (a.digest, *a.cascades)}


async def _listed_at(world: World) -> datetime | None:
    stored = await world.store.load(world.registry.client.login_server, REPO)
    return None if stored is None else stored.listed_at


async def _check(world: World) -> None:
    """The incremental plan is the full one, or differs only by an unseen lock, which the
    executor then refuses to act on."""
    listed_at = await _listed_at(world)
    incremental = await _run(world, incremental=True)
    after = await _listed_at(world)
    event("read incrementally" if after is not None and after < world.time else "listed in full")
    full = await _run(world, incremental=False)
    if incremental == full:
        event("same plan")
        return
    unseen = listed_at is not None and any(t >= listed_at for t in world.locks_since)
    assert unseen, f"plans differ without an unseen lock change:\n{incremental}\n{full}"
    event("differs by an unseen lock")
    before = set(world.digests())
    await _run(world, incremental=True, dry_run=False)
    gone = before - set(world.digests())
    assert gone <= _deleted(full), f"deleted {gone - _deleted(full)}, which a full read keeps"


def _scenario(drawn: list[tuple[Op, int]]) -> Callable[[], None]:
    async def scenario() -> None:
        world = _world()
        try:
            await _check(world)
            for op, minutes in drawn:
                world.time += timedelta(minutes=minutes)
                world.registry.emulator.clock.set(world.time)
                await _apply(world, op)
                await _check(world)
        finally:
            await world.registry.client.close()

    return lambda: asyncio.run(scenario())


@settings(
    max_examples=300 if CHAOS else 15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(drawn=steps)
def test_incremental_plan_is_the_full_plan(drawn: list[tuple[Op, int]]) -> None:
    """After every step, the incremental plan equals a full re-read's, or differs only by a
    lock change it could not see and then deletes nothing a full re-read keeps."""
    _scenario(drawn)()


# --- the hard cases, one by one ------------------------------------------------------------


def _by_name(world: World, name: str) -> str:
    """The digest of the manifest the world pushed as `name` (m1, m2, ...)."""
    return world.named[name]


async def _steps(world: World, *changes: Op) -> None:
    await _check(world)
    for op in changes:
        world.time += MINUTE
        world.registry.emulator.clock.set(world.time)
        await _apply(world, op)
        await _check(world)


def _digest_index(world: World, digest: str) -> int:
    return world.digests().index(digest)


async def test_a_referrer_tagged_later_is_planned_as_a_full_read_plans_it() -> None:
    """A signature read while untagged, then tagged: the kept content must not make the plan
    differ from a full read's, which does not read a tagged image's content."""
    world = _world()
    try:
        await _check(world)
        signature = next(d for d, c in world.registry.emulator.registry.repositories[REPO]
                         .manifests.items() if c.subject is not None)  # fmt: skip
        await _steps(world, Op("retag", "v3", _digest_index(world, signature), False))
    finally:
        await world.registry.client.close()


async def test_a_lock_on_an_old_manifest_is_unseen_but_the_executor_keeps_it() -> None:
    """A lock set by someone else on a manifest older than the pages read: the incremental plan
    still deletes it, and applying that plan leaves it in the registry."""
    world = _world()
    try:
        # Two new releases, the keepLatest winners, on the first page; v1 is beaten, and older.
        await _steps(world, Op("image", "v7", 0, False), Op("image", "v8", 0, False))
        oldest = _by_name(world, "m1")
        assert oldest in _deleted(await _run(world, incremental=True))
        world.time += MINUTE
        world.registry.emulator.clock.set(world.time)
        await world.registry.client.update_manifest_properties(
            REPO, oldest, can_delete=False, can_write=False
        )
        world.locks_since.append(world.time)
        assert oldest in _deleted(await _run(world, incremental=True))  # unseen
        assert oldest not in _deleted(await _run(world, incremental=False))
        await _run(world, incremental=True, dry_run=False)
        assert oldest in world.digests()
    finally:
        await world.registry.client.close()


async def test_a_lock_on_an_old_kept_image_makes_the_run_list_in_full() -> None:
    """A lock on a kept image that was not read this run could free a keepLatest place: the
    run lists the repository in full, and both plans are the same."""
    world = _world()
    try:
        await _check(world)
        kept = _by_name(world, "m3")  # v2: with the index (latest), one of the two newest
        world.time += MINUTE
        world.registry.emulator.clock.set(world.time)
        for _ in range(2):  # new untagged leftovers push v2 off the first page
            world.push()
        await _check(world)
        await world.registry.client.update_tag_properties(
            REPO, "v2", can_delete=False, can_write=False
        )
        world.locks_since.append(world.time)
        assert kept in world.digests()
        incremental, full = (
            await _run(world, incremental=True),
            await _run(world, incremental=False),
        )
        assert incremental == full
    finally:
        await world.registry.client.close()


async def test_a_deletion_by_someone_else_makes_the_run_list_in_full() -> None:
    """An old manifest deleted by someone else moves no timestamp; the counts show it."""
    world = _world()
    try:
        await _check(world)
        await _steps(world, Op("delete", None, _digest_index(world, _by_name(world, "m1")), False))
        assert await _listed_at(world) == world.time
    finally:
        await world.registry.client.close()


async def test_pushes_with_the_newest_timestamp_are_not_missed() -> None:
    """Two pages of pushes sharing the snapshot's newest timestamp are all read."""
    world = _world()
    try:
        await _check(world)
        await _steps(world, Op("image", "v7", 0, False), Op("image", "v8", 0, False))
        newest = world.time  # v8's time, the snapshot's watermark
        world.time += MINUTE
        for _ in range(2 * PAGE + 1):
            world.push(updated=newest)
        await _check(world)
        listed_at = await _listed_at(world)
        assert listed_at is not None
        assert listed_at < world.time  # read incrementally, and the plans were equal
    finally:
        await world.registry.client.close()

"""The executor on the real client and the emulator: what survives, what is skipped, and why."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acr_core.models import RepositorySnapshot
from acr_core.planning.plan import Action, ActionKind, Plan, RepositoryPlan
from acr_core.registry.transport import RetryPolicy
from acr_core.run.executor import CHANGED, REPLANNED, Executor, Outcome
from acr_core.run.limiter import ExecutionLimits, Governor
from acr_emulator import Faults
from acr_emulator.hooks import Arrival
from acr_emulator.testing import DEFAULT_OID
from tests.unit.emulated_registry import LOCKED, EmulatedRegistry, later
from tests.unit.recheck_modes import recheck  # noqa: F401 (autouse: every test three ways)

REPO = "team/app"


def delete(
    digest: str,
    *,
    after: tuple[str, ...] = (),
    repository: str = REPO,
    tags: tuple[str, ...] = (),
    cascades: tuple[str, ...] = (),
) -> Action:
    return Action(
        ActionKind.DELETE_MANIFEST,
        repository,
        digest,
        tags,
        "older than keepLatest",
        "r",
        size_in_bytes=1000,
        cascades=cascades,
        after=after,
    )


def undeletable(registry: EmulatedRegistry) -> None:
    """The client's identity may read and change locks, but not delete."""
    registry.emulator.grant(DEFAULT_OID, "AcrPull")
    registry.emulator.grant(DEFAULT_OID, "AcrMetadataWriter")
    registry.emulator.revoke_tokens()  # a role change counts from the client's next token


def lock(tag: str, digest: str, *, repository: str = REPO) -> Action:
    return Action(ActionKind.LOCK_TAG, repository, digest, (tag,), "matches lockTags", "r")


def plan_of(*actions: Action, blocked: Mapping[str, str] | None = None) -> Plan:
    repositories = sorted({a.repository for a in actions} | set(blocked or {}))
    return Plan(
        tuple(
            RepositoryPlan(
                repository=name,
                rule="r",
                actions=tuple(a for a in actions if a.repository == name),
                kept=(),
                blocked=(blocked or {}).get(name),
            )
            for name in repositories
        )
    )


async def run(
    registry: EmulatedRegistry,
    plan: Plan,
    taken: dict[str, RepositorySnapshot] | None = None,
    limits: ExecutionLimits | None = None,
) -> dict[str, Outcome]:
    taken = taken or await registry.snapshots()
    executor = Executor(registry.client, Governor(limits), taken)
    outcomes = await executor.apply(plan)
    assert [o.action for o in outcomes] == list(plan.actions)
    return {f"{o.action.kind.value}:{o.action.digest}": o.outcome for o in outcomes}


async def test_deletes_an_index_before_its_children():
    """Children listed in `after` are deleted only once their index is gone."""
    registry = EmulatedRegistry()
    amd, arm = registry.push(REPO, "amd"), registry.push(REPO, "arm")
    index = registry.push(REPO, "index", children=(amd, arm))
    plan = plan_of(delete(amd, after=(index,)), delete(arm, after=(index,)), delete(index))
    outcomes = await run(registry, plan)
    assert set(outcomes.values()) == {Outcome.APPLIED}
    assert registry.digests(REPO) == set()
    assert registry.wire.deleted[0] == index


async def test_children_survive_when_their_index_is_locked():
    """An index the registry refuses to delete keeps its children: they are skipped, not deleted."""
    registry = EmulatedRegistry()
    amd = registry.push(REPO, "amd")
    index = registry.push(REPO, "index", children=(amd,), attributes=LOCKED)
    outcomes = await run(registry, plan_of(delete(amd, after=(index,)), delete(index)))
    assert outcomes[f"delete_manifest:{index}"] is Outcome.SKIPPED_LOCKED
    assert outcomes[f"delete_manifest:{amd}"] is Outcome.SKIPPED_DEPENDENCY
    assert registry.digests(REPO) == {amd, index}


async def test_a_manifest_tagged_after_the_snapshot_survives():
    """Someone tags the image `prod` between plan and apply: it is skipped and kept."""
    registry = EmulatedRegistry()
    old = registry.push(REPO, "old", tags=("1.0",))
    taken = await registry.snapshots()
    registry.tag(REPO, "prod", old)
    outcomes = await run(registry, plan_of(delete(old, tags=("1.0",))), taken)
    assert outcomes[f"delete_manifest:{old}"] is Outcome.SKIPPED_CHANGED
    assert old in registry.digests(REPO)


async def test_a_manifest_that_lost_a_planned_tag_survives():
    """The plan judged it with a tag the manifest listing missed; that tag is gone: skip it."""
    registry = EmulatedRegistry()
    old = registry.push(REPO, "old")
    outcomes = await run(registry, plan_of(delete(old, tags=("1.0",))))
    assert outcomes[f"delete_manifest:{old}"] is Outcome.SKIPPED_CHANGED
    assert old in registry.digests(REPO)


async def test_a_manifest_whose_tag_was_locked_after_the_snapshot_survives():
    """A tag locked between plan and apply protects its manifest."""
    registry = EmulatedRegistry()
    old = registry.push(REPO, "old", tags=("1.0",))
    taken = await registry.snapshots()
    await registry.client.update_tag_properties(REPO, "1.0", can_delete=False)
    executor = Executor(registry.client, Governor(), taken)
    [outcome] = await executor.apply(plan_of(delete(old, tags=("1.0",))))
    assert outcome.outcome is Outcome.SKIPPED_CHANGED
    assert outcome.detail == f"tag 1.0 was locked; {CHANGED}"
    assert old in registry.digests(REPO)


async def test_a_manifest_updated_after_the_snapshot_survives():
    """A changed lastUpdateTime means the planner's view is stale: skip it."""
    registry = EmulatedRegistry()
    old = registry.push(REPO, "old", tags=("1.0",))
    taken = await registry.snapshots()
    registry.tag(REPO, "1.0", old, updated=later(3))
    outcomes = await run(registry, plan_of(delete(old, tags=("1.0",))), taken)
    assert outcomes[f"delete_manifest:{old}"] is Outcome.SKIPPED_CHANGED
    assert old in registry.digests(REPO)


async def test_a_repository_locked_after_the_snapshot_keeps_everything():
    """A repository-level lock that appeared since the snapshot stops every deletion in it."""
    registry = EmulatedRegistry()
    old = registry.push(REPO, "old")
    taken = await registry.snapshots()
    await registry.client.update_repository_properties(REPO, can_write=False)
    outcomes = await run(registry, plan_of(delete(old)), taken)
    assert outcomes[f"delete_manifest:{old}"] is Outcome.SKIPPED_CHANGED
    assert old in registry.digests(REPO)


async def test_a_push_after_the_snapshot_stops_that_repository_only():
    """A manifest pushed since the snapshot skips every deletion in its repository, saying what
    changed and that the next run re-plans; another repository's deletions go ahead."""
    registry = EmulatedRegistry()
    old = [registry.push(REPO, f"old{i}") for i in range(3)]
    elsewhere = registry.push("team/other", "elsewhere")
    taken = await registry.snapshots()
    pushed = registry.push(REPO, "new", updated=later(1))
    plan = plan_of(*(delete(d) for d in old), delete(elsewhere, repository="team/other"))
    executor = Executor(registry.client, Governor(), taken)
    outcomes = {o.action.digest: o for o in await executor.apply(plan)}
    assert {outcomes[d].outcome for d in old} == {Outcome.SKIPPED_CHANGED}
    assert all(REPLANNED in outcomes[d].detail for d in old)
    assert any(pushed in outcomes[d].detail for d in old)
    assert outcomes[elsewhere].outcome is Outcome.APPLIED
    assert registry.digests(REPO) == {*old, pushed}


async def test_a_hidden_push_after_the_snapshot_stops_that_repository():
    """A manifest pushed with listEnabled=false shows in no listing, only in the repository's
    count, and that is enough to stop the repository's deletions."""
    registry = EmulatedRegistry()
    old = [registry.push(REPO, f"old{i}") for i in range(2)]
    taken = await registry.snapshots()
    hidden = registry.push(REPO, "hidden", updated=later(-1))
    await registry.client.update_manifest_properties(REPO, hidden, can_list=False)
    executor = Executor(registry.client, Governor(), taken)
    outcomes = {o.action.digest: o for o in await executor.apply(plan_of(*map(delete, old)))}
    assert {outcomes[d].outcome for d in old} == {Outcome.SKIPPED_CHANGED}
    assert any("manifests, more than the snapshot" in outcomes[d].detail for d in old)
    assert registry.digests(REPO) == {*old, hidden}


async def test_a_referrer_locked_after_the_snapshot_keeps_its_subject():
    """A signature locked since the snapshot would go with its subject: the subject survives."""
    registry = EmulatedRegistry()
    image = registry.push(REPO, "image")
    signature = registry.push(REPO, "sig", subject=image)
    taken = await registry.snapshots()
    await registry.client.update_manifest_properties(REPO, signature, can_delete=False)
    executor = Executor(registry.client, Governor(), taken)
    [outcome] = await executor.apply(plan_of(delete(image, cascades=(signature,))))
    assert outcome.outcome is Outcome.SKIPPED_CHANGED
    assert "was locked" in outcome.detail
    assert {image, signature} <= registry.digests(REPO)


async def test_the_runs_own_tag_locks_do_not_stop_its_deletions():
    """Locking a release tag (a lockTags action) is this run's own change, not someone's push,
    even if the lock moves the tag's lastUpdateTime (ACR does not document whether it does)."""
    registry = EmulatedRegistry()
    release = registry.push(REPO, "release", tags=("v1.0.0",), updated=later(2))
    old = registry.push(REPO, "old")

    def lock_moves_the_tag(arrival: Arrival) -> None:
        if arrival.method == "PATCH" and arrival.path.endswith("/_tags/v1.0.0"):
            registry.emulator.registry.repositories[REPO].tags["v1.0.0"].updated = later(3)

    registry.emulator.before_request(lock_moves_the_tag)
    plan = plan_of(lock("v1.0.0", release), delete(old))
    outcomes = await run(registry, plan, limits=ExecutionLimits(max_concurrency=1))
    assert outcomes == {
        f"lock_tag:{release}": Outcome.APPLIED,
        f"delete_manifest:{old}": Outcome.APPLIED,
    }
    assert registry.digests(REPO) == {release}


async def test_a_manifest_already_gone_counts_as_deleted():
    """A 404 before or on delete is success, and its children still follow."""
    registry = EmulatedRegistry()
    child = registry.push(REPO, "child")
    index = registry.push(REPO, "index", children=(child,))
    taken = await registry.snapshots()
    await registry.client.delete_manifest(REPO, index)
    outcomes = await run(registry, plan_of(delete(child, after=(index,)), delete(index)), taken)
    assert outcomes[f"delete_manifest:{index}"] is Outcome.ALREADY_GONE
    assert outcomes[f"delete_manifest:{child}"] is Outcome.APPLIED
    assert registry.digests(REPO) == set()


async def test_an_index_hidden_from_listings_is_not_taken_for_gone():
    """Hidden (`listEnabled=false`) after the snapshot, an index is missing from the listings a
    re-check may read; it is still there, so it is deleted (not counted as already gone, which
    would let its children go while it points at them), and then its children."""
    registry = EmulatedRegistry()
    amd, arm = registry.push(REPO, "amd"), registry.push(REPO, "arm")
    index = registry.push(REPO, "index", children=(amd, arm))
    taken = await registry.snapshots()
    await registry.client.update_manifest_properties(REPO, index, can_list=False)
    plan = plan_of(delete(amd, after=(index,)), delete(arm, after=(index,)), delete(index))
    outcomes = await run(registry, plan, taken)
    assert outcomes[f"delete_manifest:{index}"] is Outcome.APPLIED
    assert set(outcomes.values()) == {Outcome.APPLIED}
    assert registry.digests(REPO) == set()
    assert registry.wire.deleted[0] == index


async def test_a_blocked_repository_gets_its_locks_but_no_deletions():
    """Safety-blocked deletions are not applied; the same repository's lock actions are."""
    registry = EmulatedRegistry()
    old = registry.push(REPO, "old")
    release = registry.push(REPO, "release", tags=("v1.0.0",))
    plan = plan_of(delete(old), lock("v1.0.0", release), blocked={REPO: "over the limit"})
    outcomes = await run(registry, plan)
    assert outcomes[f"delete_manifest:{old}"] is Outcome.SKIPPED_BLOCKED
    assert outcomes[f"lock_tag:{release}"] is Outcome.APPLIED
    assert old in registry.digests(REPO)
    tag = await registry.client.get_tag_properties(REPO, "v1.0.0")
    assert tag.attributes.fully_locked


async def test_a_child_whose_index_is_not_in_the_plan_is_not_deleted():
    """`after` naming a digest the plan does not delete keeps the dependent."""
    registry = EmulatedRegistry()
    child = registry.push(REPO, "child")
    index = registry.push(REPO, "index", children=(child,))
    outcomes = await run(registry, plan_of(delete(child, after=(index,))))
    assert outcomes[f"delete_manifest:{child}"] is Outcome.SKIPPED_DEPENDENCY
    assert registry.digests(REPO) == {child, index}


async def test_a_cycle_in_the_plan_deletes_nothing_in_it():
    """Two actions that each wait for the other fail instead of hanging."""
    registry = EmulatedRegistry()
    a, b = registry.push(REPO, "a"), registry.push(REPO, "b")
    plan = plan_of(delete(a, after=(b,)), delete(b, after=(a,)))
    reported: list[str] = []
    executor = Executor(
        registry.client,
        Governor(),
        await registry.snapshots(),
        on_done=lambda o: reported.append(o.action.digest),
    )
    outcomes = {o.action.digest: o.outcome for o in await executor.apply(plan)}
    assert set(outcomes.values()) <= {Outcome.FAILED, Outcome.SKIPPED_DEPENDENCY}
    assert Outcome.FAILED in outcomes.values()
    assert sorted(reported) == sorted([a, b])  # each action is reported done exactly once
    assert registry.digests(REPO) == {a, b}


async def test_deleting_a_subject_takes_its_referrers_along():
    """Referrers are not actions of their own; ACR removes them with their subject."""
    registry = EmulatedRegistry()
    image = registry.push(REPO, "image")
    signature = registry.push(REPO, "sig", subject=image)
    outcomes = await run(registry, plan_of(delete(image)))
    assert outcomes == {f"delete_manifest:{image}": Outcome.APPLIED}
    assert signature not in registry.digests(REPO)


async def test_throttled_writes_back_off_and_all_succeed():
    """429s the client's transport retries slow the run down but fail nothing."""
    registry = EmulatedRegistry()
    digests = [registry.push(REPO, f"m{i}") for i in range(20)]
    registry.wire.throttle_writes = 5
    outcomes = await run(registry, plan_of(*(delete(d) for d in digests)))
    assert set(outcomes.values()) == {Outcome.APPLIED}
    assert registry.digests(REPO) == set()
    assert registry.client.stats.throttled == 5


async def test_a_delete_throttled_beyond_the_retries_fails_transient_and_the_next_run_deletes_it():
    """Each 429 reaches the limiter once and the DELETE goes out `attempts` times, no more; the
    action fails as transient, and a fresh run (the platform's retry) deletes the manifest."""
    registry = EmulatedRegistry()
    digest = registry.push(REPO, "m")
    attempts = RetryPolicy().attempts
    governor = Governor()
    registry.client.add_throttle_listener(governor.throttled)
    executor = Executor(registry.client, governor, await registry.snapshots())
    registry.wire.throttle_writes = attempts
    [outcome] = await executor.apply(plan_of(delete(digest)))
    assert (outcome.outcome, outcome.transient) == (Outcome.FAILED, True)
    assert registry.client.stats.by_status[429] == governor.throttle_count == attempts
    assert registry.digests(REPO) == {digest}
    assert await run(registry, plan_of(delete(digest))) == {
        f"delete_manifest:{digest}": Outcome.APPLIED
    }
    assert registry.digests(REPO) == set()


async def test_concurrency_never_exceeds_the_cap():
    """`max_concurrency` bounds the requests in flight, whatever the limiter learns."""
    registry = EmulatedRegistry()
    registry.emulator.faults = Faults(latency=0.002)
    digests = [registry.push(REPO, f"m{i}") for i in range(60)]
    limits = ExecutionLimits(max_concurrency=3)
    outcomes = await run(registry, plan_of(*(delete(d) for d in digests)), limits=limits)
    assert set(outcomes.values()) == {Outcome.APPLIED}
    assert 1 < registry.wire.peak <= 3


async def test_a_lock_on_a_tag_that_vanished_is_skipped():
    """Locking a tag deleted since the snapshot is a skip that the next run re-plans."""
    registry = EmulatedRegistry()
    release = registry.push(REPO, "release", tags=("v1.0.0",))
    await registry.client.delete_tag(REPO, "v1.0.0")
    executor = Executor(registry.client, Governor(), await registry.snapshots())
    [outcome] = await executor.apply(plan_of(lock("v1.0.0", release)))
    assert outcome.outcome is Outcome.SKIPPED_CHANGED
    assert CHANGED in outcome.detail


async def test_a_missing_delete_permission_is_asked_once_per_repository():
    """After one 401 insufficient_scope on delete, the repository's other deletions fail unsent."""
    registry = EmulatedRegistry()
    digests = [registry.push(REPO, f"m{i}") for i in range(5)]
    undeletable(registry)
    plan = plan_of(*(delete(d) for d in digests))
    outcomes = await run(registry, plan, limits=ExecutionLimits(max_concurrency=1))
    assert set(outcomes.values()) == {Outcome.FAILED}
    assert len(registry.wire.delete_sent) == 1
    assert registry.digests(REPO) == set(digests)


@st.composite
def index_graphs(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """Some images, indexes over random subsets of them, and a random set of locked manifests."""
    images = [f"img{i}" for i in range(draw(st.integers(1, 8)))]
    indexes = {
        f"idx{i}": draw(st.lists(st.sampled_from(images), min_size=1, max_size=4, unique=True))
        for i in range(draw(st.integers(1, 4)))
    }
    locked = set(draw(st.lists(st.sampled_from(images + list(indexes)), unique=True)))
    return images, indexes, locked


@settings(max_examples=60, deadline=None)
@given(index_graphs())
async def test_children_go_only_after_every_parent_and_otherwise_always_go(graph):
    """Whatever is locked, a child is deleted only after all its indexes, and if they all went."""
    images, indexes, locked = graph
    registry = EmulatedRegistry()
    digest = {
        name: registry.push(REPO, name, attributes=LOCKED if name in locked else None)
        for name in images
    }
    for name, children in indexes.items():
        kids = tuple(digest[c] for c in children)
        attributes = LOCKED if name in locked else None
        digest[name] = registry.push(REPO, name, children=kids, attributes=attributes)
    parents = {img: [i for i, kids in indexes.items() if img in kids] for img in images}
    actions = [delete(digest[i]) for i in indexes]
    actions += [
        delete(digest[img], after=tuple(digest[p] for p in parents[img]))
        for img in images
        if parents[img]
    ]
    await run(registry, plan_of(*actions))
    order = registry.wire.deleted
    for img in images:
        if not parents[img]:
            continue
        gone = [digest[p] not in registry.digests(REPO) for p in parents[img]]
        if digest[img] in order:
            assert all(gone)
            assert all(order.index(digest[p]) < order.index(digest[img]) for p in parents[img])
        else:
            assert img in locked or not all(gone)
    for name in indexes:
        assert (digest[name] in order) == (name not in locked)


async def test_a_run_cancelled_while_deleting_an_index_leaves_its_children():
    """Cancelled while the index delete is in flight, the run has deleted none of its children."""
    registry = EmulatedRegistry()
    amd, arm = registry.push(REPO, "amd"), registry.push(REPO, "arm")
    index = registry.push(REPO, "index", children=(amd, arm))
    other = registry.push(REPO, "other")
    registry.wire.stalled = index  # its DELETE never answers, as a run cut off mid-request
    plan = plan_of(delete(amd, after=(index,)), delete(arm, after=(index,)), delete(index))
    executor = Executor(registry.client, Governor(), await registry.snapshots())
    run_task = asyncio.ensure_future(executor.apply(plan))
    await registry.wire.reached.wait()
    run_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_task
    assert registry.digests(REPO) == {amd, arm, index, other}
    assert registry.wire.deleted == []


async def test_a_delete_that_keeps_failing_with_a_5xx_is_a_transient_failure():
    """A 503 that outlives the client's retries fails the action as transient, so the function
    can raise for a platform retry; a refusal for lack of a role is not transient."""
    registry = EmulatedRegistry()
    digest = registry.push(REPO, "m")
    registry.emulator.faults = Faults(error_rate=1.0, methods=frozenset({"DELETE"}))
    executor = Executor(registry.client, Governor(), await registry.snapshots())
    [outcome] = await executor.apply(plan_of(delete(digest)))
    assert (outcome.outcome, outcome.transient) == (Outcome.FAILED, True)
    assert registry.digests(REPO) == {digest}

    registry.emulator.faults = Faults()
    undeletable(registry)
    executor = Executor(registry.client, Governor(), await registry.snapshots())
    [outcome] = await executor.apply(plan_of(delete(digest)))
    assert (outcome.outcome, outcome.transient) == (Outcome.FAILED, False)


async def test_apply_seconds_span_each_repositorys_first_start_to_last_end():
    """Each repository's apply time runs from its first action's start to its last action's end."""
    registry = EmulatedRegistry()
    a1, a2 = registry.push(REPO, "a1"), registry.push(REPO, "a2")
    b1 = registry.push("team/other", "b1")
    held = registry.push("team/held", "h1")
    ticks = iter(range(100))
    executor = Executor(
        registry.client,
        Governor(ExecutionLimits(max_concurrency=1)),  # one action at a time: a known order
        await registry.snapshots(),
        clock=lambda: float(next(ticks)),
    )
    plan = plan_of(
        delete(a1),
        delete(a2),
        delete(b1, repository="team/other"),
        delete(held, repository="team/held"),
        blocked={"team/held": "over the limit"},
    )
    await executor.apply(plan)
    # team/app: ticks 0-1 and 2-3; team/held: never started; team/other: ticks 4-5.
    assert executor.apply_seconds() == {REPO: 3.0, "team/other": 1.0}

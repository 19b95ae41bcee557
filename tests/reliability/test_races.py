"""Races between a run's deletions and changes to the registry, staged at exact points.

Each trial stages a repository of old untagged images, reads the plan, then runs it for real
while an emulator hook lands a change just as the k-th DELETE arrives (k differs each trial).
With `WORKERS` deletions in flight at most, every planned deletion from plan position
k - 1 + WORKERS on has not started yet, so its re-check reads come strictly after the change,
more than one round trip before its DELETE: nothing the change protects may be deleted, and a
change that concerns the whole repository stops every later deletion in it. The residual
window is pinned too: a change landing after the re-check reads, as the DELETE arrives, is not
seen (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import pytest

from acr_core.planning.plan import ActionKind
from acr_core.planning.policy import load_policy
from acr_core.run.executor import PUSHED, Outcome, Stop
from acr_core.run.limiter import ExecutionLimits
from acr_core.run.report import RunReport
from acr_core.run.service import run_cleanup
from acr_emulator import Arrival
from tests.unit.emulated_registry import EmulatedRegistry, later
from tests.unit.recheck_modes import recheck  # noqa: F401 (autouse: every test three ways)

REPO = "team/app"
IMAGES = 16
WORKERS = 4
LIMITS = ExecutionLimits(max_concurrency=WORKERS)
POLICY = load_policy(
    {
        "version": 1,
        "rules": [
            {
                "name": "team",
                "repositories": ["team/**"],
                "keepLatest": 1,
                "untagged": {"olderThan": "1d"},
            }
        ],
        "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
    }
)


@dataclass
class Stage:
    """A staged repository, its plan's deletions in order, and what a change added to it."""

    registry: EmulatedRegistry
    planned: list[str]
    added: set[str] = field(default_factory=set)  # manifests the change pushed
    tag: str | None = None  # a tag the change pointed at the target

    @property
    def now(self) -> datetime:
        return self.registry.emulator.clock.now()


# A change to the registry, made in the emulator while a request waits: (stage, target).
Change = Callable[[Stage, str], None]


def lock_repository(stage: Stage, target: str) -> None:
    stage.registry.emulator.registry.repositories[REPO].attributes.update({"deleteEnabled": False})


def push_referrer(stage: Stage, target: str) -> None:
    signature = stage.registry.push(REPO, f"sig-{target}", subject=target, updated=stage.now)
    stage.added.add(signature)


def push_index(stage: Stage, target: str) -> None:
    index = stage.registry.push(
        REPO, f"index-{target}", children=(target,), tags=("v2",), updated=stage.now
    )
    stage.added.add(index)


def retag(stage: Stage, target: str) -> None:
    stage.registry.tag(REPO, "prod", target, updated=stage.now)
    stage.tag = "prod"


def lock_manifest(stage: Stage, target: str) -> None:
    manifest = stage.registry.emulator.registry.repositories[REPO].manifests[target]
    manifest.attributes.update({"deleteEnabled": False})


# (change, whether it concerns the whole repository, so that every later deletion stops too)
RACES: dict[str, tuple[Change, bool]] = {
    "repository locked": (lock_repository, True),
    "referrer pushed onto the target": (push_referrer, True),
    "index pushed listing the target": (push_index, True),
    "target re-tagged": (retag, True),
    "target locked": (lock_manifest, False),
}


async def staged() -> Stage:
    """Sixteen untagged images weeks old (all planned for deletion) and one kept tagged image."""
    registry = EmulatedRegistry()
    for i in range(IMAGES):
        registry.push(REPO, f"old-{i}", updated=later(-40 + i))
    registry.push(REPO, "current", tags=("latest",), updated=later(-2))
    stage = Stage(registry, [])
    dry = await run_cleanup(registry.client, POLICY, repositories=[REPO], now=stage.now)
    stage.planned = [a.digest for a in dry.plan.actions if a.kind is ActionKind.DELETE_MANIFEST]
    assert len(stage.planned) == IMAGES
    return stage


class Tripwire:
    """A hook that runs `change` just before the `at`-th DELETE is handled, and logs DELETEs."""

    def __init__(self, at: int, change: Callable[[], None]) -> None:
        self.at = at
        self.change = change
        self.deletes: list[str] = []  # the manifest of each DELETE, in order of arrival

    def __call__(self, arrival: Arrival) -> None:
        if arrival.method != "DELETE":
            return
        self.deletes.append(arrival.path.rsplit("/", 1)[-1])
        if len(self.deletes) == self.at:
            self.change()

    @property
    def after(self) -> list[str]:
        """DELETEs that arrived after the change (the one it landed before not counted)."""
        return self.deletes[self.at :]


async def apply(stage: Stage, tripwire: Tripwire, stop: Stop | None = None) -> RunReport:
    stage.registry.emulator.before_request(tripwire)
    return await run_cleanup(
        stage.registry.client,
        POLICY,
        repositories=[REPO],
        dry_run=False,
        now=stage.now,
        limits=LIMITS,
        stop=stop,
    )


def position(trial: int) -> int:
    """Which DELETE the change lands before: a different one each trial (1 to 12)."""
    return 1 + trial % (IMAGES - WORKERS)


@pytest.mark.parametrize("race", list(RACES))
async def test_a_change_before_the_re_check_protects_what_it_protects(
    race: str, trials: Callable[[int, int], int]
) -> None:
    """A change landing before a deletion's re-check reads keeps every manifest it protects."""
    change, repository_wide = RACES[race]
    for trial in range(trials(5, 120)):
        stage = await staged()
        k = position(trial)
        unstarted = stage.planned[k - 1 + WORKERS :]  # not begun when the change lands
        target = unstarted[trial % len(unstarted)]
        tripwire = Tripwire(k, partial(change, stage, target))
        report = await apply(stage, tripwire)
        kept = stage.registry.digests(REPO)
        protected = {target, *stage.added} | (set(unstarted) if repository_wide else set())
        assert protected <= kept, f"trial {trial}: deleted {sorted(protected - kept)}"
        if stage.tag is not None:
            assert stage.tag in stage.registry.tags(REPO)
        if repository_wide:
            # Only deletions already past their re-check when the change landed may follow it.
            assert len(tripwire.after) <= WORKERS - 1
        skipped = {o.action.digest: o for o in report.outcomes}
        assert skipped[target].outcome is Outcome.SKIPPED_CHANGED
        assert "re-plan" in skipped[target].detail


# (change, whether the manifest is deleted anyway when the change lands as its DELETE arrives)
WINDOW: dict[str, tuple[Change, bool]] = {
    "target re-tagged": (retag, True),
    "referrer pushed onto the target": (push_referrer, True),
    "index pushed listing the target": (push_index, True),
    "target locked": (lock_manifest, False),  # ACR itself refuses to delete a locked manifest
}


@pytest.mark.parametrize("race", list(WINDOW))
async def test_a_change_after_the_re_check_is_not_seen(race: str) -> None:
    """The residual window: a change landing after the re-check reads, as the DELETE arrives,
    is not seen, so the manifest (with a new referrer or tag) goes; only locks still hold."""
    change, deleted = WINDOW[race]
    stage = await staged()
    target = stage.planned[-1]
    tripwire = Tripwire(0, lambda: None)

    def on_its_delete(arrival: Arrival) -> None:
        if arrival.method == "DELETE" and arrival.path.endswith(target):
            change(stage, target)

    stage.registry.emulator.before_request(on_its_delete)
    report = await apply(stage, tripwire)
    assert (target not in stage.registry.digests(REPO)) is deleted
    [outcome] = [o for o in report.outcomes if o.action.digest == target]
    assert outcome.outcome is (Outcome.APPLIED if deleted else Outcome.SKIPPED_LOCKED)
    if race == "referrer pushed onto the target":
        assert not stage.added & stage.registry.digests(REPO)  # gone with its subject


async def test_a_push_arriving_while_deleting_stops_the_deletes(
    trials: Callable[[int, int], int],
) -> None:
    """Once `stop` says a push arrived, no DELETE starts: only those in flight finish."""
    for trial in range(trials(5, 120)):
        stage = await staged()
        k = position(trial)
        pushed: set[str] = set()
        tripwire = Tripwire(k, partial(pushed.add, REPO))
        report = await apply(stage, tripwire, stop=pushed.__contains__)
        unstarted = set(stage.planned[k - 1 + WORKERS :])
        assert unstarted <= stage.registry.digests(REPO)
        assert len(tripwire.after) <= WORKERS - 1
        for outcome in report.outcomes:
            if outcome.action.digest in unstarted:
                assert (outcome.outcome, outcome.detail) == (Outcome.SKIPPED_CHANGED, PUSHED)

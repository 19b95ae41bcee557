"""The planner's invariants, checked on random registries (hypothesis).

A random registry has images, indexes (nested, sharing children), referrers (chains of them, and
some whose subject is gone), cosign signature tags, locks at every level, missing and fresh
timestamps and uninspected manifests; the policy is random too. The invariants are stated
independently of the planner's code, from the semantics in docs/policy.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from acr_core.models import OCI_INDEX, ChangeableAttributes, RepositorySnapshot
from acr_core.planning.patterns import NameKind, PatternSet, parse_duration
from acr_core.planning.plan import Plan, RepositoryPlan
from acr_core.planning.planner import needs_inspection, plan
from acr_core.planning.policy import Policy, load_policy
from tests.unit.planner_fixtures import NOW, RepoBuilder, apply_to_snapshot, signature_tag

TAG_POOL = ("latest", "stable", "v1", "v1.2.3", "v2.0.0", "dev-1", "dev-2", "pr-7", "b1", "b2")
KEEP_CHOICES = ("latest", "stable", "v*", "regex:pr-[0-9]+", "b?")
LOCK_CHOICES = ("v*.*.*", "stable")
AGES = (
    None,
    timedelta(minutes=5),
    timedelta(hours=2),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=8),
    timedelta(days=20),
    timedelta(days=40),
)
PROPERTY_CHECKS_OFF = [HealthCheck.too_slow]
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=PROPERTY_CHECKS_OFF
)


@dataclass(frozen=True)
class World:
    snapshot: RepositorySnapshot
    rule: dict[str, object]
    protect: frozenset[str]

    def policy(self, **changes: object) -> Policy:
        rule = {"name": "r", "repositories": ["app"], **self.rule, **changes}
        safety = {"maxDeletesPerRepository": None, "maxDeleteFraction": None}
        return load_policy({"version": 1, "rules": [rule], "safety": safety})

    def plan(self, **changes: object) -> RepositoryPlan:
        result = plan([self.snapshot], self.policy(**changes), NOW, protect={"app": self.protect})
        (repo_plan,) = result.repositories
        return repo_plan


@st.composite
def worlds(  # draw: hypothesis.DrawFn
    draw: Any, referrer_children: bool = False, crowded: bool = False
) -> World:
    """A random repository; with `referrer_children`, indexes may also list referrers (as the
    referrers tag-schema fallback index does). A `crowded` one has a keepLatest, more tagged
    images than usual and every index read, so that keepLatest usually has images to delete;
    its simplest draws (where hypothesis starts and shrinks to) are old, unlocked and dated."""

    def one_in(n: int) -> bool:
        drawn: int = draw(st.integers(0, n - 1))
        return drawn == (n - 1 if crowded else 0)

    repo_locked = draw(st.sampled_from([False] * 12 + [True])) and not crowded
    b = RepoBuilder(attributes=ChangeableAttributes(write_enabled=not repo_locked))
    keys: list[str] = []
    free_tags = list(TAG_POOL)
    used_signatures: set[str] = set()  # a tag names one digest
    count = draw(st.integers(4 if crowded else 1, 14))
    for i in range(count):
        key = f"m{i}"
        ages = AGES[::-1] if crowded else AGES
        age = None if one_in(16) else draw(st.sampled_from(ages))
        locked = one_in(16)
        tags: list[str] = []
        for _ in range(draw(st.integers(1 if crowded else 0, 2))):
            if free_tags and (crowded or draw(st.booleans())):
                tags.append(free_tags.pop(draw(st.integers(0, len(free_tags) - 1))))
        locked_tags = tuple(t for t in tags if one_in(10))
        kind = draw(st.sampled_from(["image"] * 4 + ["index"] * 2 + ["referrer", "signature"]))
        # An unread index stops every deletion in the repository (tested on its own).
        inspected = not one_in(15) or (crowded and kind == "index")
        if kind == "index":
            candidates = [k for k in keys if referrer_children or k not in referrer_keys(b)]
            children = (
                draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True))
                if candidates
                else []
            )
            listed_referrers = sorted(referrer_keys(b) - set(children)) if referrer_children else []
            if listed_referrers and draw(st.booleans()):  # rare by chance alone
                children.append(draw(st.sampled_from(listed_referrers)))
            b.index(
                key,
                tuple(children),
                *tags,
                age=age or timedelta(days=9),
                locked=locked,
                inspected=inspected,
                references=draw(st.booleans()),
            )
        elif kind == "referrer" and keys:
            subject = draw(st.sampled_from([*keys, "gone"]))
            b.referrer(key, subject, age=age or timedelta(days=9), locked=locked)
        elif kind == "signature" and keys:
            subject = draw(st.sampled_from([*keys, "gone"]))
            tag = signature_tag(b.digest(subject))
            b.image(key, *([tag] if tag not in used_signatures else []), age=age, locked=locked)
            used_signatures.add(tag)
        else:
            b.image(
                key, *tags, age=age, locked=locked, locked_tags=locked_tags, inspected=inspected
            )
        keys.append(key)
    rule: dict[str, object] = {
        "keepTags": draw(st.lists(st.sampled_from(KEEP_CHOICES), max_size=1, unique=True)),
        "lockTags": draw(st.lists(st.sampled_from(LOCK_CHOICES), max_size=1, unique=True)),
        "minAge": draw(st.sampled_from(["0s", "0s", "1h", "2d"])),
    }
    keep_latest = draw(st.sampled_from([0, 1, 2, 3] if crowded else [None, 0, 1, 1, 2, 2, 3, 4]))
    if keep_latest is not None:
        rule["keepLatest"] = keep_latest
    older_than = draw(st.sampled_from([None, "1d", "1d", "7d"]))
    if older_than is not None:
        rule["untagged"] = {"olderThan": older_than}
    protect = draw(st.lists(st.sampled_from(keys), max_size=2, unique=True))
    return World(b.build(), rule, frozenset(b.digest(k) for k in protect))


def referrer_keys(b: RepoBuilder) -> set[str]:
    return {b.keys[d] for d, c in b.contents.items() if c.subject is not None}


# --- facts stated from the snapshot alone, independent of the planner --------------------


def removed(repo_plan: RepositoryPlan) -> set[str]:
    return {a.digest for a in repo_plan.deletions} | {
        d for a in repo_plan.deletions for d in a.cascades
    }


def statically_protected(world: World) -> set[str]:
    """Locks, keep/lock tag matches, minAge, missing timestamps, the caller's digests."""
    rule, snap = world.rule, world.snapshot
    keep = PatternSet.compile([*rule["keepTags"], *rule["lockTags"]], NameKind.TAG)  # type: ignore[misc]
    min_age = parse_duration(str(rule["minAge"]))
    tag_locked = {t.digest for t in snap.tags if not t.attributes.deletable}
    result = set()
    for m in snap.manifests:
        if (
            not snap.attributes.deletable
            or not m.attributes.deletable
            or m.digest in tag_locked
            or any(keep.matches(t) for t in m.tags)
            or m.last_updated_on is None
            or m.created_on is None
            or NOW - m.last_updated_on < min_age
            or m.digest in world.protect
        ):
            result.add(m.digest)
    return result


def subjects_of(snapshot: RepositorySnapshot) -> dict[str, str]:
    return {d: c.subject for d, c in snapshot.contents.items() if c.subject is not None}


def children_of(snapshot: RepositorySnapshot) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for m in snapshot.manifests:
        kids = {r.digest for r in m.references}
        if m.digest in snapshot.contents:
            kids |= {c.digest for c in snapshot.contents[m.digest].children}
        if kids:
            result[m.digest] = kids
    return result


def subject_chain(subjects: dict[str, str], digest: str) -> list[str]:
    """The subject of `digest`, that subject's subject, and so on."""
    chain: list[str] = []
    current = subjects.get(digest)
    while current is not None and current not in chain:
        chain.append(current)
        current = subjects.get(current)
    return chain


def unprotected_tagged_images(world: World, snapshot: RepositorySnapshot) -> set[str]:
    """Tagged manifests that are images (no parent, no subject, not a signature tag) and that
    nothing protects, their referrers included, in `snapshot`. An image whose referrer an index
    lists is anchored by that index (deleting it would pull the referrer out of the index), unless
    the index is that image's own referrer and goes with it."""
    protected = statically_protected(replace(world, snapshot=snapshot))
    subjects = subjects_of(snapshot)
    for referrer in sorted(protected & set(subjects)):
        protected.update(subject_chain(subjects, referrer))
    listed_by: dict[str, set[str]] = {}
    for parent, kids in children_of(snapshot).items():
        for kid in kids:
            listed_by.setdefault(kid, set()).add(parent)
    for referrer in subjects:
        for parent in listed_by.get(referrer, set()):
            goes_with_parent = set(subject_chain(subjects, parent))
            protected.update(set(subject_chain(subjects, referrer)) - goes_with_parent)
    children = set(listed_by)
    return {
        m.digest
        for m in snapshot.manifests
        if m.tags
        and not all(t.startswith("sha256-") for t in m.tags)
        and m.digest not in subjects
        and m.digest not in children
        and m.digest not in protected
        and not (needs_inspection(m) and m.digest not in snapshot.contents)  # kept by a guard
    }


# --- the invariants -----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)))
def test_nothing_protected_is_ever_deleted(world: World) -> None:
    """No locked, kept-tag, young, undated or caller-protected manifest is removed."""
    assert not removed(world.plan()) & statically_protected(world)


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)))
def test_children_of_kept_indexes_and_referrers_of_kept_manifests_survive(world: World) -> None:
    """No child of a kept index and no referrer of a kept manifest is removed."""
    gone = removed(world.plan())
    kept = {m.digest for m in world.snapshot.manifests} - gone
    for parent, kids in children_of(world.snapshot).items():
        if parent in kept:
            assert not kids & gone
    for referrer, subject in subjects_of(world.snapshot).items():
        if subject in kept:
            assert referrer not in gone


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)))
def test_referrers_are_never_deleted_directly_and_after_names_earlier_deletions(
    world: World,
) -> None:
    """Deletions never target a referrer, and each one's `after` digests are deleted before it."""
    repo_plan = world.plan()
    subjects = subjects_of(world.snapshot)
    seen: set[str] = set()
    for action in repo_plan.deletions:
        assert action.digest not in subjects
        assert set(action.after) <= seen
        seen.add(action.digest)


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)))
def test_a_deleted_child_waits_for_every_index_listing_it(world: World) -> None:
    """Each parent index of a deleted child is removed, and named in the child's `after`."""
    repo_plan = world.plan()
    removed_by: dict[str, str] = {}
    for action in repo_plan.deletions:
        removed_by[action.digest] = action.digest
        removed_by.update((referrer, action.digest) for referrer in action.cascades)
    parents: dict[str, set[str]] = {}
    for parent, kids in children_of(world.snapshot).items():
        for kid in kids:
            parents.setdefault(kid, set()).add(parent)
    for action in repo_plan.deletions:
        for parent in parents.get(action.digest, set()) - {action.digest}:
            assert removed_by[parent] in action.after


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)), st.data())
def test_a_manifest_hidden_from_the_listing_stops_every_deletion(
    world: World, data: st.DataObject
) -> None:
    """With one manifest missing from the listing (listEnabled=false), nothing is deleted."""
    manifests = world.snapshot.manifests
    if not manifests:
        return
    hidden = data.draw(st.sampled_from(manifests))
    snapshot = replace(
        world.snapshot,
        manifests=tuple(m for m in manifests if m is not hidden),
        manifest_count=len(manifests),
    )
    assert replace(world, snapshot=snapshot).plan().deletions == ()


# The test keeps only worlds with more candidates than keepLatest (about two in three crowded
# worlds); an unlucky start can trip the filtering health check without anything being wrong.
@settings(
    PROPERTY_SETTINGS, suppress_health_check=[*PROPERTY_CHECKS_OFF, HealthCheck.filter_too_much]
)
@given(st.one_of(worlds(crowded=True), worlds(crowded=True, referrer_children=True)))
def test_exactly_keep_latest_unprotected_tagged_images_survive(world: World) -> None:
    """With more than keepLatest unprotected tagged images, exactly keepLatest remain afterwards."""
    keep_latest = world.rule.get("keepLatest")
    snapshot = world.snapshot
    assume(isinstance(keep_latest, int))
    assert isinstance(keep_latest, int)  # for mypy: assume() does not narrow
    # An unread index, or an unread manifest that is protected (it may be any image's
    # referrer), stops every deletion in the repository (each tested on its own).
    indexes = [m for m in snapshot.manifests if m.media_type == OCI_INDEX]
    assume(all(m.digest in snapshot.contents for m in indexes))
    unread = [m for m in snapshot.manifests if needs_inspection(m)]
    assume(all(m.digest in snapshot.contents for m in unread))
    assume(len(unprotected_tagged_images(world, snapshot)) > keep_latest)
    after = apply_to_snapshot(world.snapshot, Plan((world.plan(),)))
    assert len(unprotected_tagged_images(world, after)) == keep_latest


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)))
def test_planning_the_applied_state_deletes_nothing_more(world: World) -> None:
    """Applying a plan reaches a fixed point: the next plan has no actions at all."""
    policy = world.policy()
    first = plan([world.snapshot], policy, NOW, protect={"app": world.protect})
    after = apply_to_snapshot(world.snapshot, first)
    second = plan([after], policy, NOW, protect={"app": world.protect})
    assert second.actions == ()


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)), st.integers(1, 3))
def test_raising_keep_latest_never_deletes_more(world: World, extra: int) -> None:
    """A larger keepLatest removes a subset of what the smaller one removes."""
    base = world.rule.get("keepLatest")
    if base is None:
        return
    assert removed(world.plan(keepLatest=int(base) + extra)) <= removed(world.plan())  # type: ignore[call-overload]


@PROPERTY_SETTINGS
@given(st.one_of(worlds(), worlds(referrer_children=True)), st.sampled_from(KEEP_CHOICES))
def test_adding_a_keep_pattern_never_deletes_more(world: World, pattern: str) -> None:
    """Another keepTags pattern removes a subset of what the policy removed without it."""
    keep_tags = list(world.rule["keepTags"])  # type: ignore[call-overload]
    if pattern in keep_tags:
        return
    assert removed(world.plan(keepTags=[*keep_tags, pattern])) <= removed(world.plan())

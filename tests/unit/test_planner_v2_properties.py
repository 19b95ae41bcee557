"""Policy version 2's invariants on random registries (hypothesis, derandomized): keep wins,
exactly N per group survive, SemVer order agrees with a reference implementation, a v1 policy
plans as its v2 translation does, and applying a plan reaches a fixed point.

The registries are those of tests/unit/test_planner_properties.py; the facts checked are
stated from the snapshot and the policy alone, independently of the planner's code.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from acr_core.planning import semver
from acr_core.planning.document import policy_document
from acr_core.planning.patterns import NameKind, PatternSet, parse_duration
from acr_core.planning.plan import RepositoryPlan
from acr_core.planning.planner import plan
from acr_core.planning.policy import Policy, load_policy
from tests.unit.planner_fixtures import NOW, SIGNATURE_TYPE, RepoBuilder, apply_to_snapshot
from tests.unit.test_planner_properties import (
    PROPERTY_CHECKS_OFF,
    World,
    children_of,
    removed,
    statically_protected,
    worlds,
)

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=PROPERTY_CHECKS_OFF
)
NO_SAFETY = {"maxDeletesPerRepository": None, "maxDeleteFraction": None}
# A group per kind of tag in the registries' tag pool: latest, stable, v1.2.3, dev-1, pr-7, b1.
KIND = "regex:^(?P<kind>[a-z]+)-?[0-9.]*$"

protecting = st.sampled_from(
    [
        {"tags": ["latest"]},
        {"tags": ["v*"]},
        {"tags": ["regex:pr-[0-9]+", "b?"]},
        {"pushedWithin": "2d"},
        {"tags": ["dev-*"], "pushedWithin": "10d"},
    ]
)
counting = st.builds(
    lambda base, n: {**base, "newest": n},
    st.sampled_from(
        [
            {},
            {"tags": ["dev-*", "b?"]},
            {"pushedWithin": "10d"},
            {"tags": [KIND], "per": "kind"},
            {"orderBy": "semver"},
            {"tags": ["regex:^v(?P<version>.*)$"], "orderBy": "semver"},
        ]
    ),
    st.integers(0, 3),
)
ages = st.sampled_from([None, "0s", "1d", "7d"])


@st.composite
def v2_rules(draw: Any) -> dict[str, Any]:
    """A random v2 rule: keep clauses of every kind, delete entries, referrer rules."""
    rule: dict[str, Any] = {
        "keep": draw(st.lists(protecting | counting, max_size=3)),
        "minAge": draw(st.sampled_from(["0s", "0s", "1h", "2d"])),
        "lockTags": draw(st.lists(st.sampled_from(["v*.*.*", "stable"]), max_size=1)),
    }
    delete: dict[str, Any] = {}
    for kind in ("tagged", "untagged"):
        if draw(st.booleans()):
            older_than = draw(ages)
            delete[kind] = {} if older_than is None else {"olderThan": older_than}
    rule["delete"] = delete
    referrer: dict[str, Any] = {"artifactType": SIGNATURE_TYPE}
    if draw(st.booleans()):
        referrer["keepNewest"] = draw(st.integers(0, 2))
    if draw(st.booleans()) or "keepNewest" not in referrer:
        referrer["olderThan"] = draw(st.sampled_from(["1d", "7d"]))
    if draw(st.booleans()):
        rule["referrers"] = [referrer]
    return rule


def v2_policy(rule: dict[str, Any]) -> Policy:
    rule = {"name": "r", "repositories": ["app"], **rule}
    return load_policy({"version": 2, "rules": [rule], "safety": NO_SAFETY})


def v2_plan(world: World, rule: dict[str, Any]) -> RepositoryPlan:
    (repo_plan,) = plan(
        [world.snapshot], v2_policy(rule), NOW, protect={"app": world.protect}
    ).repositories
    return repo_plan


any_world = st.one_of(worlds(), worlds(referrer_children=True))


def selected_by_protecting_clauses(world: World, rule: dict[str, Any]) -> set[str]:
    """Manifests a clause without newest selects: its tags and pushedWithin filters, ANDed."""
    updated = {m.digest: m.last_updated_on for m in world.snapshot.manifests}
    for tag in world.snapshot.tags:  # a tag's time counts, as minAge counts it
        current = updated.get(tag.digest)
        if current is not None and tag.last_updated_on and tag.last_updated_on > current:
            updated[tag.digest] = tag.last_updated_on
    selected: set[str] = set()
    for clause in rule["keep"]:
        if "newest" in clause:
            continue
        tags = PatternSet.compile(clause.get("tags", []), NameKind.TAG)
        within = parse_duration(clause["pushedWithin"]) if "pushedWithin" in clause else None
        for m in world.snapshot.manifests:
            when = updated[m.digest]
            if "tags" in clause and not any(tags.matches(t) for t in m.tags):
                continue
            if within is not None and (when is None or NOW - when >= within):
                continue
            selected.add(m.digest)
    return selected


@SETTINGS
@given(any_world, v2_rules())
def test_keep_wins_nothing_a_protecting_clause_selects_is_removed(
    world: World, rule: dict[str, Any]
) -> None:
    """Whatever delete says, no manifest a clause without newest selects, and nothing locked,
    young or caller-protected, is deleted or cascaded."""
    gone = removed(v2_plan(world, rule))
    assert not gone & selected_by_protecting_clauses(world, rule)
    static = replace(world, rule={"keepTags": [], "lockTags": rule["lockTags"], **rule})
    assert not gone & statically_protected(static)


@SETTINGS
@given(worlds(referrer_children=True), v2_rules())
def test_children_of_kept_indexes_survive_v2_plans(world: World, rule: dict[str, Any]) -> None:
    """No child of a kept index is removed, by a deletion of its own or by a cascade (a
    referrer rule deleting the subject of a referrer that an index lists)."""
    gone = removed(v2_plan(world, rule))
    for parent, kids in children_of(world.snapshot).items():
        if parent not in gone:
            assert not kids & gone


@SETTINGS
@given(any_world, v2_rules())
def test_applying_a_v2_plan_reaches_a_fixed_point(world: World, rule: dict[str, Any]) -> None:
    """Planning the registry a v2 plan leaves behind deletes and locks nothing more."""
    policy = v2_policy(rule)
    first = plan([world.snapshot], policy, NOW, protect={"app": world.protect})
    after = apply_to_snapshot(world.snapshot, first)
    assert plan([after], policy, NOW, protect={"app": world.protect}).actions == ()


def shape(repo_plan: RepositoryPlan) -> tuple[object, ...]:
    """A plan without its reasons: actions in order, kept digests, and whether it is blocked."""
    actions = tuple(
        (a.kind, a.digest, a.tags, a.rule, a.size_in_bytes, a.cascades, a.after)
        for a in repo_plan.actions
    )
    return actions, tuple(k.digest for k in repo_plan.kept), repo_plan.blocked is None


@SETTINGS
@given(st.one_of(any_world, worlds(crowded=True), worlds(crowded=True, referrer_children=True)))
def test_a_v1_policy_plans_as_its_v2_translation(world: World) -> None:
    """Semantics 6: the v1 rule and its v2 form (keepTags -> keep tags, keepLatest -> newest
    plus delete.tagged 0s, untagged -> delete.untagged) make the same plan, reasons aside."""
    v1 = world.policy()
    translated = load_policy(policy_document(v1))
    assert translated.version == 2
    protect = {"app": world.protect}
    (before,) = plan([world.snapshot], v1, NOW, protect=protect).repositories
    (after,) = plan([world.snapshot], translated, NOW, protect=protect).repositories
    assert shape(before) == shape(after)


# --- groups ---------------------------------------------------------------------------------


@st.composite
def grouped(draw: Any) -> tuple[RepoBuilder, dict[str, set[str]], set[str], int]:
    """Plain images tagged `g<group>-<i>`, some locked or young; the groups' unprotected
    members, the protected images, and N."""
    b = RepoBuilder()
    groups: dict[str, set[str]] = {}
    protected: set[str] = set()
    for i in range(draw(st.integers(1, 14))):
        group = f"g{draw(st.integers(0, 3))}"
        locked = draw(st.integers(0, 7)) == 0
        age = draw(
            st.sampled_from(
                [timedelta(minutes=10), *(timedelta(days=d) for d in (1, 2, 5)), timedelta(days=9)]
            )
        )
        digest = b.image(f"m{i}", f"{group}-{i}", age=age, locked=locked)
        if locked or age < timedelta(hours=1):
            protected.add(digest)
        else:
            groups.setdefault(group, set()).add(digest)
    return b, groups, protected, draw(st.integers(0, 3))


@SETTINGS
@given(grouped())
def test_exactly_n_unprotected_images_of_each_group_survive(
    drawn: tuple[RepoBuilder, dict[str, set[str]], set[str], int],
) -> None:
    """With `per`, each group keeps min(N, its unprotected images) of them, the newest, plus
    every protected one."""
    b, groups, protected, n = drawn
    rule = {
        "keep": [{"tags": ["regex:^(?P<g>g[0-9])-[0-9]+$"], "newest": n, "per": "g"}],
        "delete": {"tagged": {}},
    }
    snapshot = b.build()
    result = plan([snapshot], v2_policy({**rule, "minAge": "1h"}), NOW)
    left = {m.digest for m in apply_to_snapshot(snapshot, result).manifests}
    assert protected <= left
    updated = {m.digest: m.last_updated_on or NOW for m in snapshot.manifests}
    for members in groups.values():
        newest = sorted(members, key=lambda d: (updated[d], d), reverse=True)
        survivors = members & left
        assert len(survivors) == min(n, len(members))
        # The survivors are the newest (ties: this fixture gives equal times distinct digests).
        times = sorted((updated[d] for d in newest[:n]), reverse=True)
        assert sorted((updated[d] for d in survivors), reverse=True) == times


# --- semver ---------------------------------------------------------------------------------


def reference_valid(text: str) -> bool:
    """SemVer 2.0.0 validity, from the specification's items 2, 9 and 10, by splitting."""
    core, plus, build = text.partition("+")
    if plus and not _identifiers(build, numeric_rule=False):
        return False
    core, dash, pre = core.partition("-")
    if dash and not _identifiers(pre, numeric_rule=True):
        return False
    parts = core.split(".")
    return len(parts) == 3 and all(_number(p) for p in parts)


def _number(part: str) -> bool:
    return part.isascii() and part.isdigit() and (part == "0" or not part.startswith("0"))


def _identifiers(text: str, *, numeric_rule: bool) -> bool:
    allowed = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
    for identifier in text.split("."):
        if not identifier or not set(identifier) <= allowed:
            return False
        if numeric_rule and identifier.isdigit() and not _number(identifier):
            return False
    return True


def reference_compare(a: str, b: str) -> int:
    """SemVer 2.0.0 item 11, step by step: -1, 0 or 1."""
    a_core, _, a_pre = a.partition("+")[0].partition("-")
    b_core, _, b_pre = b.partition("+")[0].partition("-")
    for x, y in zip(a_core.split("."), b_core.split("."), strict=True):
        if int(x) != int(y):
            return -1 if int(x) < int(y) else 1
    if not a_pre or not b_pre:  # a release is above its pre-releases
        return (not a_pre) - (not b_pre)
    a_ids, b_ids = a_pre.split("."), b_pre.split(".")
    for x, y in zip(a_ids, b_ids, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1  # numeric identifiers are lower
        return -1 if x < y else 1  # ASCII order
    return (len(a_ids) > len(b_ids)) - (len(a_ids) < len(b_ids))


identifier = st.one_of(
    st.sampled_from(["0", "1", "2", "10", "01", "alpha", "beta", "rc", "x-y", "-", "a1", "1a"]),
    st.text("0123456789abz-", min_size=1, max_size=4),
)
versions = st.builds(
    lambda nums, pre, build: (
        ".".join(nums)
        + (f"-{'.'.join(pre)}" if pre else "")
        + (f"+{'.'.join(build)}" if build else "")
    ),
    st.lists(st.sampled_from(["0", "1", "2", "10", "01", "007", "9"]), min_size=2, max_size=4),
    st.lists(identifier, max_size=3),
    st.lists(identifier, max_size=2),
)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(versions, versions)
def test_semver_precedence_agrees_with_the_reference(a: str, b: str) -> None:
    """Which strings are versions, and how two versions order, as the specification says."""
    parsed_a, parsed_b = semver.parse(a), semver.parse(b)
    assert (parsed_a is not None) == reference_valid(a)
    assert (parsed_b is not None) == reference_valid(b)
    if parsed_a is not None and parsed_b is not None:
        mine = (parsed_b.key < parsed_a.key) - (parsed_a.key < parsed_b.key)
        assert mine == reference_compare(a, b)


tag_versions = versions.filter(lambda v: "+" not in v and reference_valid(v))


@SETTINGS
@given(st.lists(tag_versions, min_size=1, max_size=8, unique=True), st.integers(0, 3), st.data())
def test_orderby_semver_keeps_the_highest_versions(
    tags: list[str], n: int, data: st.DataObject
) -> None:
    """`orderBy: semver` keeps the N images whose versions the reference ranks highest; equal
    precedence falls back to the newest."""
    b = RepoBuilder()
    ages = data.draw(st.lists(st.integers(1, 30), min_size=len(tags), max_size=len(tags)))
    written = {}
    for i, (tag, age) in enumerate(zip(tags, ages, strict=True)):
        with_v = f"v{tag}" if data.draw(st.booleans()) else tag
        written[b.image(f"m{i}", with_v, age=timedelta(days=age, seconds=i))] = (tag, age, i)

    def better(x: str, y: str) -> int:  # the best first
        (tx, ax, ix), (ty, ay, iy) = written[x], written[y]
        order = reference_compare(ty, tx)
        return order or ((ax, ix) > (ay, iy)) - ((ax, ix) < (ay, iy))

    rule = {"keep": [{"orderBy": "semver", "newest": n}], "delete": {"tagged": {}}}
    snapshot = b.build()
    result = plan([snapshot], v2_policy(rule), NOW)
    left = {m.digest for m in apply_to_snapshot(snapshot, result).manifests}
    assert left == set(sorted(written, key=functools.cmp_to_key(better))[:n])


def test_the_translation_of_every_v1_field_loads_and_reads_back() -> None:
    """The v2 document of a v1 policy with every field validates and keeps what it says."""
    v1 = load_policy(
        {
            "version": 1,
            "description": "d",
            "rules": [
                {
                    "name": "r",
                    "description": "rd",
                    "repositories": ["app", "svc/**"],
                    "keepLatest": 4,
                    "keepTags": ["latest", "regex:^v\\d+$"],
                    "lockTags": ["v*.*.*"],
                    "minAge": "14d",
                    "untagged": {"olderThan": "2w"},
                }
            ],
            "safety": {"maxDeletesPerRepository": 5, "maxDeleteFraction": None},
        }
    )
    assert policy_document(v1) == {
        "version": 2,
        "description": "d",
        "rules": [
            {
                "name": "r",
                "description": "rd",
                "repositories": ["app", "svc/**"],
                "minAge": "14d",
                "keep": [{"tags": ["latest", "regex:^v\\d+$"]}, {"newest": 4}],
                "delete": {"tagged": {"olderThan": "0s"}, "untagged": {"olderThan": "2w"}},
                "lockTags": ["v*.*.*"],
            }
        ],
        "safety": {"maxDeletesPerRepository": 5, "maxDeleteFraction": None},
    }
    assert policy_document(load_policy(policy_document(v1))) == policy_document(v1)

"""The planner's rules, one table row each, plus ordering, locks, safety and purity of output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest

from acr_core.models import OCI_INDEX, ChangeableAttributes, RepositorySnapshot
from acr_core.planning.plan import ActionKind, Plan, RepositoryPlan
from acr_core.planning.planner import attached_subject, needs_inspection, plan
from acr_core.planning.policy import Policy, load_policy
from tests.unit.planner_fixtures import NOW, RepoBuilder, apply_to_snapshot, signature_tag

NO_SAFETY = {"maxDeletesPerRepository": None, "maxDeleteFraction": None}


def days(n: float) -> timedelta:
    return timedelta(days=n)


def policy_for(rule: dict[str, object], safety: dict[str, object] | None = None) -> Policy:
    return load_policy(
        {
            "version": 1,
            "rules": [{"name": "r", "repositories": ["app"], **rule}],
            "safety": NO_SAFETY if safety is None else safety,
        }
    )


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[RepoBuilder], object]
    rule: dict[str, object]
    deleted: frozenset[str]
    reasons: dict[str, str] = field(default_factory=dict)  # key -> part of its reason
    protect: tuple[str, ...] = ()


def c(
    id: str,
    build: Callable[[RepoBuilder], object],
    rule: dict[str, object],
    deleted: set[str],
    reasons: dict[str, str] | None = None,
    protect: tuple[str, ...] = (),
) -> Case:
    return Case(id, build, rule, frozenset(deleted), reasons or {}, protect)


CASES = [
    c(
        "keepLatest keeps the N newest tagged images and deletes the rest",
        lambda b: (
            b.image("a", "1", age=days(1)),
            b.image("b", "2", age=days(2)),
            b.image("c", "3", age=days(3)),
        ),
        {"keepLatest": 2},
        {"c"},
        {"c": "keepLatest", "a": "newest"},
    ),
    c(
        "on equal lastUpdateTime the newer createdTime wins",
        lambda b: (
            b.image("old-created", "1", age=days(5), created_age=days(9)),
            b.image("new-created", "2", age=days(5), created_age=days(6)),
        ),
        {"keepLatest": 1},
        {"old-created"},
    ),
    c(
        "on equal timestamps the smaller digest wins",
        lambda b: (b.image("x", "1", age=days(5)), b.image("y", "2", age=days(5))),
        {"keepLatest": 1},
        {max(("x", "y"), key=lambda k: RepoBuilder().digest(k))},
    ),
    c(
        "without keepLatest tagged images are never deleted",
        lambda b: (b.image("a", "1", age=days(900)), b.image("b", "2", age=days(800))),
        {"untagged": {"olderThan": "1d"}},
        set(),
        {"a": "no keepLatest"},
    ),
    c(
        "keepLatest 0 deletes every unprotected tagged image",
        lambda b: (b.image("a", "1"), b.image("b", "latest")),
        {"keepLatest": 0, "keepTags": ["latest"]},
        {"a"},
    ),
    c(
        "a keepTags match protects the image and does not use up keepLatest",
        lambda b: (
            b.image("latest", "latest", age=days(50)),
            b.image("a", "a1", age=days(1)),
            b.image("b", "b1", age=days(2)),
        ),
        {"keepLatest": 1, "keepTags": ["latest"]},
        {"b"},
        {"latest": "keepTags pattern 'latest'"},
    ),
    c(
        "one kept tag keeps the digest with all its other tags",
        lambda b: (
            b.image("a", "build-7", "stable", age=days(9)),
            b.image("b", "build-8", age=days(1)),
        ),
        {"keepLatest": 0, "keepTags": ["stable"]},
        {"b"},
    ),
    c(
        "a lockTags match protects the image",
        lambda b: (b.image("rel", "v1.2.3", age=days(90)), b.image("a", "dev", age=days(1))),
        {"keepLatest": 0, "lockTags": ["v*.*.*"]},
        {"a"},
        {"rel": "lockTags pattern 'v*.*.*'"},
    ),
    c(
        "a locked manifest is protected and does not use up keepLatest",
        lambda b: (
            b.image("locked", "1", age=days(1), locked=True),
            b.image("a", "2", age=days(2)),
            b.image("b", "3", age=days(3)),
        ),
        {"keepLatest": 1},
        {"b"},
        {"locked": "the manifest is locked"},
    ),
    c(
        "a locked tag protects its manifest",
        lambda b: (b.image("a", "1", "2", locked_tags=("2",)), b.image("b", "3", age=days(1))),
        {"keepLatest": 0},
        {"b"},
        {"a": "tag '2' is locked"},
    ),
    c(
        "a manifest updated within minAge is protected",
        lambda b: (
            b.image("fresh", "1", age=timedelta(minutes=10)),
            b.image("a", "2", age=days(1)),
        ),
        {"keepLatest": 0, "minAge": "1h"},
        {"a"},
        {"fresh": "minAge (1h)"},
    ),
    c(
        "minAge defaults to one hour",
        lambda b: (
            b.image("fresh", "1", age=timedelta(minutes=59)),
            b.image("old", "2", age=timedelta(minutes=61)),
        ),
        {"keepLatest": 0},
        {"old"},
    ),
    c(
        "a manifest whose timestamps are missing is protected",
        lambda b: (b.image("nodate", "1", age=None), b.image("u", age=None), b.image("a", "2")),
        {"keepLatest": 0, "untagged": {"olderThan": "1d"}},
        {"a"},
        {"nodate": "missing", "u": "missing"},
    ),
    c(
        "the digest the caller protects is kept",
        lambda b: (b.image("pushed", "1", age=days(40)), b.image("a", "2", age=days(1))),
        {"keepLatest": 0},
        {"a"},
        {"pushed": "protected by the caller"},
        protect=("pushed",),
    ),
    c(
        "untagged images older than untagged.olderThan are deleted, younger ones kept",
        lambda b: (b.image("old", age=days(8)), b.image("young", age=days(6))),
        {"untagged": {"olderThan": "7d"}},
        {"old"},
        {"old": "untagged, not updated for more than 7d", "young": "within untagged.olderThan"},
    ),
    c(
        "a fresh untagged manifest no index lists yet (a child pushed before its index) is kept",
        lambda b: (b.image("child", age=timedelta(minutes=5)), b.image("old", age=days(8))),
        {"untagged": {"olderThan": "0s"}},
        {"old"},
        {"child": "minAge (1h)"},
    ),
    c(
        "the digest the caller protects is kept even as an untagged child of a deleted index",
        lambda b: (
            b.image("pushed", age=days(40)),
            b.index("old", ("pushed",), "1", age=days(40)),
            b.image("a", "2", age=days(1)),
        ),
        {"keepLatest": 1},
        {"old"},
        {"pushed": "protected by the caller"},
        protect=("pushed",),
    ),
    c(
        "without untagged.olderThan untagged images are kept",
        lambda b: b.image("old", age=days(800)),
        {"keepLatest": 0},
        set(),
        {"old": "no untagged.olderThan"},
    ),
    c(
        "untagged images do not use up keepLatest",
        lambda b: (
            b.image("u", age=timedelta(hours=5)),
            b.image("a", "1", age=days(1)),
            b.image("b", "2", age=days(2)),
        ),
        {"keepLatest": 1},
        {"b"},
    ),
    c(
        "children of a kept index are kept even when untagged and old",
        lambda b: (
            b.image("amd64", age=days(90)),
            b.image("arm64", age=days(90)),
            b.index("idx", ("amd64", "arm64"), "1"),
        ),
        {"keepLatest": 1, "untagged": {"olderThan": "1d"}},
        set(),
        {"amd64": "child of kept index"},
    ),
    c(
        "children of a kept index are kept through nested indexes",
        lambda b: (
            b.image("leaf", age=days(90)),
            b.index("inner", ("leaf",), age=days(90)),
            b.index("outer", ("inner",), "1"),
        ),
        {"keepLatest": 1, "untagged": {"olderThan": "1d"}},
        set(),
    ),
    c(
        "children of a deleted index are deleted with it",
        lambda b: (
            b.image("c1", age=days(9)),
            b.image("c2", age=days(9)),
            b.index("old", ("c1", "c2"), "1", age=days(9)),
            b.image("new", "2", age=days(1)),
        ),
        {"keepLatest": 1},
        {"old", "c1", "c2"},
        {"c1": "its last parent index is deleted"},
    ),
    c(
        "an untagged index older than untagged.olderThan goes with its untagged children",
        lambda b: (b.image("c1", age=days(9)), b.index("idx", ("c1",), age=days(9))),
        {"untagged": {"olderThan": "7d"}},
        {"idx", "c1"},
    ),
    c(
        "a child another kept index lists is kept",
        lambda b: (
            b.image("shared", age=days(9)),
            b.image("only-old", age=days(9)),
            b.index("old", ("shared", "only-old"), "1", age=days(9)),
            b.index("new", ("shared",), "2", age=days(1)),
        ),
        {"keepLatest": 1},
        {"old", "only-old"},
        {"shared": "child of kept index"},
    ),
    c(
        "a locked child of a deleted index is kept",
        lambda b: (
            b.image("c1", age=days(9), locked=True),
            b.index("old", ("c1",), "1", age=days(9)),
        ),
        {"keepLatest": 0},
        {"old"},
        {"c1": "locked"},
    ),
    c(
        "a recently updated child of a deleted index is kept (a push may be in flight)",
        lambda b: (
            b.image("c1", age=timedelta(minutes=5)),
            b.index("old", ("c1",), "1", age=days(9)),
        ),
        {"keepLatest": 0},
        {"old"},
    ),
    c(
        "a tagged child of a deleted index is judged as an image in the same run",
        lambda b: (
            b.image("arm", "1.0-arm64", age=days(1)),
            b.image("amd", age=days(9)),
            b.index("idx", ("arm", "amd"), "1.0", age=days(9)),
            b.image("mid", "mid", age=days(5)),
        ),
        {"keepLatest": 1},
        {"idx", "amd", "mid"},
        {"arm": "keepLatest"},
    ),
    c(
        "a tagged child of a deleted index is deleted when older than the kept images",
        lambda b: (
            b.image("arm", "1.0-arm64", age=days(9)),
            b.index("idx", ("arm",), "1.0", age=days(8)),
            b.image("new", "2.0", age=days(1)),
        ),
        {"keepLatest": 1},
        {"idx", "arm"},
    ),
    c(
        "a referrer of a kept image is kept, even untagged and old",
        lambda b: (b.image("img", "1", age=days(90)), b.referrer("sig", "img", age=days(90))),
        {"keepLatest": 1, "untagged": {"olderThan": "1d"}},
        set(),
        {"sig": "referrer of kept"},
    ),
    c(
        "a referrer of a deleted image is not deleted directly; ACR removes it with its subject",
        lambda b: (
            b.image("img", "1", age=days(90)),
            b.referrer("sig", "img"),
            b.image("new", "2", age=days(1)),
        ),
        {"keepLatest": 1},
        {"img"},
    ),
    c(
        "a referrer whose subject is gone is never deleted",
        lambda b: (b.referrer("sig", "absent", age=days(90)),),
        {"untagged": {"olderThan": "1d"}},
        set(),
        {"sig": "never deleted directly"},
    ),
    c(
        "a locked referrer protects its subject",
        lambda b: (
            b.image("img", "1", age=days(90)),
            b.referrer("sig", "img", locked=True),
            b.image("new", "2", age=days(1)),
        ),
        {"keepLatest": 1},
        set(),
        {"img": "its referrer"},
    ),
    c(
        "an image whose referrer a kept index also lists is kept (ACR would cascade the referrer)",
        lambda b: (
            b.image("img", "old", age=days(90)),
            b.referrer("sig", "img"),
            b.index("idx", ("sig",), "keep"),
        ),
        {"keepLatest": 0, "keepTags": ["keep"]},
        set(),
        {"img": "lists one of its referrers"},
    ),
    c(
        "an image whose referrer a deleted index lists is deleted after that index",
        lambda b: (
            b.image("img", "old", age=days(90)),
            b.referrer("sig", "img"),
            b.index("idx", ("sig",), "other"),
        ),
        {"keepLatest": 0},
        {"img", "idx"},
    ),
    c(
        "a child of a kept index survives a deleted index that lists two of its referrers",
        lambda b: (
            b.image("img"),
            b.referrer("sig", "img"),
            b.referrer("sbom", "img"),
            b.index("idx", ("sig", "sbom")),
            b.index("kept", ("img",), "keep"),
        ),
        {"keepTags": ["keep"], "untagged": {"olderThan": "1d"}},
        {"idx"},
        {"img": "child of kept index"},
    ),
    c(
        "a manifest that would be deleted but was not inspected is kept",
        lambda b: (b.image("u", age=days(90), inspected=False), b.image("v", age=days(90))),
        {"untagged": {"olderThan": "1d"}},
        {"v"},
        {"u": "was not read"},
    ),
    c(
        "an uninspected index whose children are unknown stops every deletion in the repository",
        lambda b: (
            b.image("maybe-child", age=days(90)),
            b.index("idx", ("maybe-child",), "1", inspected=False),
            b.image("old", "2", age=days(90)),
        ),
        {"keepLatest": 0, "untagged": {"olderThan": "1d"}},
        set(),
        {"maybe-child": "children is unknown", "old": "children is unknown"},
    ),
    c(
        "an uninspected index whose listing names its children is kept while others are judged",
        lambda b: (
            b.image("child", age=days(90)),
            b.index("idx", ("child",), "1", inspected=False, references=True),
            b.image("old", age=days(90)),
        ),
        {"keepLatest": 1, "untagged": {"olderThan": "1d"}},
        {"old"},
        {"child": "child of kept index"},
    ),
    c(
        "a manifest with no media type that was not inspected may be an index: nothing is deleted",
        lambda b: (
            b.image("odd", "1", media_type=None, inspected=False),
            b.image("old", age=days(90)),
        ),
        {"untagged": {"olderThan": "1d"}},
        set(),
    ),
    c(
        "a cosign signature tag of a kept image is kept and does not use up keepLatest",
        lambda b: (
            b.image("img", "1", age=days(3)),
            b.image("sig", signature_tag(RepoBuilder().digest("img")), age=days(1)),
            b.image("older", "0", age=days(9)),
        ),
        {"keepLatest": 1},
        {"older"},
        {"sig": "attached artifact"},
    ),
    c(
        "a cosign signature tag is deleted after its subject",
        lambda b: (
            b.image("img", "1", age=days(9)),
            b.image("sig", signature_tag(RepoBuilder().digest("img")), age=days(9)),
            b.image("new", "2", age=days(1)),
        ),
        {"keepLatest": 1},
        {"img", "sig"},
        {"sig": "its subject is deleted"},
    ),
    c(
        "a signature tag whose subject is gone is judged like an untagged image",
        lambda b: (
            b.image("sig", signature_tag(RepoBuilder().digest("gone"), ".att"), age=days(9)),
        ),
        {"keepLatest": 0, "untagged": {"olderThan": "7d"}},
        {"sig"},
        {"sig": "its subject is gone"},
    ),
    c(
        "a signature tag matching keepTags is protected even after its subject",
        lambda b: (
            b.image("img", "1", age=days(9)),
            b.image("sig", signature_tag(RepoBuilder().digest("img")), age=days(9)),
        ),
        {"keepLatest": 0, "keepTags": ["regex:sha256-.*"]},
        {"img"},
    ),
]


def run_case(case: Case) -> tuple[RepoBuilder, RepositoryPlan]:
    builder = RepoBuilder()
    case.build(builder)
    protect = {"app": frozenset(builder.digest(k) for k in case.protect)}
    result = plan([builder.build()], policy_for(case.rule), NOW, protect=protect)
    (repo_plan,) = result.repositories
    return builder, repo_plan


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rule(case: Case) -> None:
    """Each planner rule deletes exactly the manifests its row names, for the reason given."""
    builder, repo_plan = run_case(case)
    deleted = {builder.keys[a.digest] for a in repo_plan.deletions}
    assert deleted == case.deleted
    reasons = {builder.keys[a.digest]: a.reason for a in repo_plan.deletions}
    reasons.update({builder.keys[k.digest]: k.reason for k in repo_plan.kept})
    for key, text in case.reasons.items():
        assert text in reasons[key], (key, reasons[key])
    assert repo_plan.blocked is None


def test_every_manifest_is_either_kept_or_removed_exactly_once() -> None:
    """A plan accounts for every manifest once: deleted, cascaded with its subject, or kept."""
    for case in CASES:
        builder, repo_plan = run_case(case)
        removed = [a.digest for a in repo_plan.deletions]
        removed += [d for a in repo_plan.deletions for d in a.cascades]
        kept = [k.digest for k in repo_plan.kept]
        assert sorted(removed + kept) == sorted(builder.keys), case.id


def test_children_are_ordered_after_their_index_and_referrers_are_cascades() -> None:
    """A child's delete names its index in `after` and comes later; referrers are cascades."""
    b = RepoBuilder()
    b.image("c1", age=days(9))
    b.referrer("sig", "idx")
    b.index("idx", ("c1",), "1", age=days(9))
    (repo_plan,) = plan([b.build()], policy_for({"keepLatest": 0}), NOW).repositories
    actions = repo_plan.deletions
    assert [b.keys[a.digest] for a in actions] == ["idx", "c1"]
    assert actions[0].cascades == (b.digest("sig"),)
    assert actions[0].tags == ("1",)
    assert actions[1].after == (b.digest("idx"),)
    assert all(a.rule == "r" for a in actions)


def test_a_pinned_subject_is_deleted_after_the_index_that_lists_its_referrer() -> None:
    """When the index listing a referrer goes, the referrer's subject follows it (`after`)."""
    b = RepoBuilder()
    b.image("img", "old", age=days(90))
    b.referrer("sig", "img")
    b.index("idx", ("sig",), "other", age=days(80))
    (repo_plan,) = plan([b.build()], policy_for({"keepLatest": 0}), NOW).repositories
    assert [b.keys[a.digest] for a in repo_plan.deletions] == ["idx", "img"]
    assert repo_plan.deletions[1].after == (b.digest("idx"),)
    assert repo_plan.deletions[1].cascades == (b.digest("sig"),)


def test_children_of_a_cascaded_referrer_index_wait_for_the_subject() -> None:
    """Children of a referrer index removed with its subject are deleted after that subject."""
    b = RepoBuilder()
    b.image("img", "1", age=days(9))
    b.image("part", age=days(9))
    b._add(
        "sbom-index",
        (),
        age=days(9),
        created_age=None,
        media_type=OCI_INDEX,
        config=None,
        locked=False,
        locked_tags=(),
        inspected=True,
        subject=b.digest("img"),
        children=("part",),
    )
    (repo_plan,) = plan([b.build()], policy_for({"keepLatest": 0}), NOW).repositories
    by_key = {b.keys[a.digest]: a for a in repo_plan.deletions}
    assert set(by_key) == {"img", "part"}
    assert by_key["img"].cascades == (b.digest("sbom-index"),)
    assert by_key["part"].after == (b.digest("img"),)


def test_lock_tags_locks_only_tags_not_locked_both_ways() -> None:
    """lockTags adds a lock for each matching tag unless it is already locked both ways."""
    b = RepoBuilder()
    b.image("a", "v1.0.0", "dev")
    b.image("b", "v2.0.0", locked_tags=("v2.0.0",))
    b.image("c", "v3.0.0")
    snapshot = b.build()
    half_locked = ChangeableAttributes(delete_enabled=False, write_enabled=True)
    tags = tuple(
        t if t.name != "v3.0.0" else replace(t, attributes=half_locked) for t in snapshot.tags
    )
    snapshot = replace(snapshot, tags=tags)
    (repo_plan,) = plan([snapshot], policy_for({"lockTags": ["v*.*.*"]}), NOW).repositories
    assert [(a.tags, b.keys[a.digest]) for a in repo_plan.locks] == [
        (("v1.0.0",), "a"),
        (("v3.0.0",), "c"),
    ]
    assert all(a.kind is ActionKind.LOCK_TAG and "v*.*.*" in a.reason for a in repo_plan.locks)


@pytest.mark.parametrize(
    ("attributes", "text"),
    [
        (ChangeableAttributes(write_enabled=False), "writeEnabled=false"),
        (ChangeableAttributes(delete_enabled=False), "deleteEnabled=false"),
    ],
)
def test_a_locked_repository_deletes_nothing(attributes: ChangeableAttributes, text: str) -> None:
    """A repository with deleteEnabled or writeEnabled off has every manifest protected."""
    b = RepoBuilder(attributes=attributes)
    b.image("a", "1", age=days(90))
    b.image("u", age=days(90))
    policy = policy_for({"keepLatest": 0, "untagged": {"olderThan": "1d"}})
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert repo_plan.deletions == ()
    assert all(f"the repository is locked ({text})" in k.reason for k in repo_plan.kept)


def test_the_first_matching_rule_governs_and_unmatched_repositories_are_left_out() -> None:
    """The first rule that matches a repository decides; a repository no rule matches is absent."""
    policy = load_policy(
        {
            "version": 1,
            "rules": [
                {"name": "keep-all", "repositories": ["team/prod-*"]},
                {"name": "trim", "repositories": ["team/**"], "keepLatest": 0},
            ],
        }
    )
    snapshots = []
    for name in ("team/prod-api", "team/dev/api", "other"):
        b = RepoBuilder(name)
        b.image("a", "1", age=days(9))
        snapshots.append(b.build())
    result = plan(snapshots, policy, NOW)
    by_name = {r.repository: r for r in result.repositories}
    assert set(by_name) == {"team/dev/api", "team/prod-api"}
    assert by_name["team/prod-api"].rule == "keep-all"
    assert by_name["team/prod-api"].deletions == ()
    assert by_name["team/dev/api"].rule == "trim"
    assert len(by_name["team/dev/api"].deletions) == 1


def _many_old_images(count: int, untagged: int = 0) -> RepoBuilder:
    b = RepoBuilder()
    for i in range(count):
        b.image(f"t{i}", f"build-{i}", age=days(10 + i))
    for i in range(untagged):
        b.image(f"u{i}", age=days(10 + i))
    return b


def test_safety_max_deletes_blocks_but_still_lists_the_deletions() -> None:
    """Over maxDeletesPerRepository the plan is blocked, names the setting, lists its deletions."""
    b = _many_old_images(6)
    policy = policy_for(
        {"keepLatest": 1}, {"maxDeletesPerRepository": 4, "maxDeleteFraction": None}
    )
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert len(repo_plan.deletions) == 5
    assert repo_plan.blocked is not None
    assert "safety.maxDeletesPerRepository (4)" in repo_plan.blocked
    assert "would delete 5 manifests" in repo_plan.blocked


def test_safety_max_delete_fraction_counts_cascaded_referrers() -> None:
    """maxDeleteFraction compares manifests removed, referrers included, with the repository's."""
    b = _many_old_images(2)
    b.referrer("sig", "t1")
    policy = policy_for({"keepLatest": 1}, {"maxDeleteFraction": 0.5})
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert repo_plan.blocked is not None
    assert "2 of 3 manifests" in repo_plan.blocked
    assert "safety.maxDeleteFraction (0.5)" in repo_plan.blocked


def test_safety_defaults_are_on() -> None:
    """With no safety section, deleting every manifest of a repository is blocked."""
    b = _many_old_images(0, untagged=3)
    policy = load_policy(
        {"version": 1, "rules": [{"repositories": ["app"], "untagged": {"olderThan": "1d"}}]}
    )
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert len(repo_plan.deletions) == 3
    assert repo_plan.blocked is not None
    assert "maxDeleteFraction (0.9)" in repo_plan.blocked


def test_locks_of_a_blocked_repository_remain_in_the_plan() -> None:
    """A blocked plan still carries its lock actions."""
    b = _many_old_images(3)
    b.image("rel", "v1.0.0")
    policy = policy_for({"keepLatest": 0, "lockTags": ["v*"]}, {"maxDeletesPerRepository": 1})
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert repo_plan.blocked is not None
    assert [a.tags for a in repo_plan.locks] == [("v1.0.0",)]


def test_a_tag_missing_from_the_tag_listing_protects_its_manifest() -> None:
    """A tag the manifest listing shows but the tag listing lacks protects the manifest."""
    b = RepoBuilder()
    b.image("a", "1", "racing", age=days(9))
    b.image("b", "2", age=days(1))
    snapshot = b.build()
    tags = tuple(t for t in snapshot.tags if t.name != "racing")
    snapshot = replace(snapshot, tags=tags)
    (repo_plan,) = plan([snapshot], policy_for({"keepLatest": 0}), NOW).repositories
    assert {b.keys[a.digest] for a in repo_plan.deletions} == {"b"}


def _listing_gaps() -> list[object]:
    """Snapshots whose listings miss something the repository has, and the words the plan uses."""
    b = RepoBuilder()
    b.image("old", "1", age=days(9))
    b.image("stray", age=days(9))
    whole = b.build()
    hidden = b.index("hidden", ("stray",), "2", age=days(9))  # listEnabled=false on the index
    with_hidden = b.build()
    listed = tuple(m for m in with_hidden.manifests if m.digest != hidden)
    return [
        pytest.param(
            replace(whole, manifest_count=len(whole.manifests) + 1),
            "reports 3 manifests but its listing showed 2",
            id="manifest-count",
        ),
        pytest.param(
            replace(whole, tag_count=len(whole.tags) + 1),
            "reports 2 tags but its listings showed 1",
            id="tag-count",
        ),
        pytest.param(
            replace(with_hidden, manifests=listed),
            "tag '2' names",
            id="tag-on-unlisted-manifest",
        ),
    ]


@pytest.mark.parametrize(("snapshot", "words"), _listing_gaps())
def test_a_repository_whose_listings_miss_something_deletes_nothing(
    snapshot: RepositorySnapshot, words: str
) -> None:
    """A manifest or tag hidden from the listings (listEnabled=false) stops every deletion."""
    rule = {"keepLatest": 0, "untagged": {"olderThan": "1d"}}
    (repo_plan,) = plan([snapshot], policy_for(rule), NOW).repositories
    assert repo_plan.deletions == ()
    assert {k.digest for k in repo_plan.kept} == {m.digest for m in snapshot.manifests}
    assert all(words in k.reason for k in repo_plan.kept)


def test_a_tag_only_the_tag_listing_hides_protects_just_its_manifest() -> None:
    """A tag hidden from the tag listing but shown on its manifest is counted as seen."""
    b = RepoBuilder()
    b.image("hidden-tag", "1", "secret", age=days(9))
    b.image("old", "2", age=days(9))
    snapshot = b.build()
    listed = tuple(t for t in snapshot.tags if t.name != "secret")
    snapshot = replace(snapshot, tags=listed, tag_count=len(listed) + 1)
    (repo_plan,) = plan([snapshot], policy_for({"keepLatest": 0}), NOW).repositories
    assert {b.keys[a.digest] for a in repo_plan.deletions} == {"old"}


def test_listings_that_match_the_counts_are_planned_normally() -> None:
    """Counts equal to what the listings showed change nothing in the plan."""
    b = RepoBuilder()
    b.image("old", "1", age=days(9))
    b.image("stray", age=days(9))
    snapshot = b.build()
    counted = replace(snapshot, manifest_count=2, tag_count=1)
    rule = policy_for({"keepLatest": 0, "untagged": {"olderThan": "1d"}})
    assert plan([counted], rule, NOW) == plan([snapshot], rule, NOW)
    assert len(plan([counted], rule, NOW).repositories[0].deletions) == 2


def test_the_plan_is_deterministic_whatever_the_input_order() -> None:
    """Shuffled snapshots and manifests give an identical plan."""
    snapshots = []
    for name in ("app", "app2"):
        b = RepoBuilder(name)
        for i in range(30):
            b.image(f"t{i}", f"t{i}", age=days(5 + i % 7))
        b.image("c", age=days(9))
        b.index("idx", ("c",), "idx", age=days(9))
        snapshots.append(b.build())
    policy = load_policy(
        {"version": 1, "rules": [{"repositories": ["app*"], "keepLatest": 4}], "safety": NO_SAFETY}
    )
    first = plan(snapshots, policy, NOW)
    reversed_snapshots = [
        replace(s, manifests=tuple(reversed(s.manifests)), tags=tuple(reversed(s.tags)))
        for s in reversed(snapshots)
    ]
    assert plan(reversed_snapshots, policy, NOW) == first
    assert [r.repository for r in first.repositories] == ["app", "app2"]


def test_applying_the_plan_reaches_a_state_the_next_run_keeps() -> None:
    """After applying a plan with an orphaned tagged child, planning again deletes nothing."""
    b = RepoBuilder()
    b.image("arm", "1.0-arm64", age=days(1))
    b.index("idx", ("arm",), "1.0", age=days(9))
    b.image("mid", "mid", age=days(5))
    snapshot = b.build()
    policy = policy_for({"keepLatest": 1})
    first = plan([snapshot], policy, NOW)
    after = apply_to_snapshot(snapshot, first)
    assert plan([after], policy, NOW).actions == ()
    assert {m.digest for m in after.manifests} == {b.digest("arm")}


def test_needs_inspection_says_which_manifests_the_gatherer_must_read() -> None:
    """Indexes, untagged and non-image manifests need reading; tagged plain images do not."""
    b = RepoBuilder()
    b.image("plain", "1")
    b.image("untagged")
    b.image("nomedia", "2", media_type=None)
    b.index("idx", (), "3")
    b.referrer("sig", "plain", "4")
    wanted = {b.keys[m.digest] for m in b.build().manifests if needs_inspection(m)}
    assert wanted == {"untagged", "nomedia", "idx", "sig"}


def test_attached_subject_reads_the_referrers_tag_schema() -> None:
    """Tags of the form sha256-<64 hex>[.suffix] name their subject; others do not."""
    hex64 = "a" * 64
    assert attached_subject(f"sha256-{hex64}") == f"sha256:{hex64}"
    assert attached_subject(f"sha256-{hex64}.sig") == f"sha256:{hex64}"
    assert attached_subject(f"sha256-{hex64[:-1]}.sig") is None
    assert attached_subject("v1.0") is None


def test_a_twenty_thousand_manifest_repository_keeps_exactly_the_right_manifests() -> None:
    """At 20,000 manifests the 100 newest indexes keep their children, the rest go with theirs."""
    b = RepoBuilder()
    age_of = {i: 3 + i % 50 for i in range(4000)}
    for i, age in age_of.items():
        b.image(f"a{i}", age=days(age))
        b.image(f"r{i}", age=days(age))
        b.index(f"i{i}", (f"a{i}", f"r{i}"), f"t{i}", age=days(age))
        b.referrer(f"s{i}", f"i{i}", age=days(age))
        b.image(f"u{i}", age=days(age))
    snapshot = b.build()
    result: Plan = plan(
        [snapshot], policy_for({"keepLatest": 100, "untagged": {"olderThan": "7d"}}), NOW
    )
    (repo_plan,) = result.repositories
    # Newest first; equal times fall back to the digest (docs/policy.md, keepLatest).
    newest = sorted(age_of, key=lambda i: (age_of[i], b.digest(f"i{i}")))[:100]
    kept_indexes = set(newest)
    deleted = {b.keys[a.digest]: a for a in repo_plan.deletions}
    expected = {f"u{i}" for i, age in age_of.items() if age > 7}
    for i in set(age_of) - kept_indexes:
        expected |= {f"i{i}", f"a{i}", f"r{i}"}
    assert set(deleted) == expected
    for i in set(age_of) - kept_indexes:
        assert deleted[f"i{i}"].cascades == (b.digest(f"s{i}"),)  # its signature goes with it
        assert deleted[f"a{i}"].after == deleted[f"r{i}"].after == (b.digest(f"i{i}"),)
    # Every deletion comes after those it waits for. One growing set, not a set of the prefix
    # per deletion: that was quadratic, 16,000 deletions took most of a minute.
    earlier: set[str] = set()
    for action in repo_plan.deletions:
        assert set(action.after) <= earlier, action
        earlier.add(action.digest)
    cascaded = {f"s{i}" for i in set(age_of) - kept_indexes}
    assert {b.keys[k.digest] for k in repo_plan.kept} == set(b.keys.values()) - expected - cascaded


def test_docs_example_keep_the_newest_five_builds_and_the_releases() -> None:
    """docs/policy.md example 1: v1.0 protects build-3; five other newest builds stay."""
    b = RepoBuilder()
    for i in range(1, 10):
        tags = (f"build-{i}", "v1.0") if i == 3 else (f"build-{i}",)
        b.image(f"b{i}", *tags, age=days(10 - i))
    b.image("untagged", age=days(30))
    policy = policy_for({"keepLatest": 5, "keepTags": ["v*"]})
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert {b.keys[a.digest] for a in repo_plan.deletions} == {"b4", "b2", "b1"}


@pytest.mark.parametrize(
    ("arm_age", "deleted"),
    [
        (days(20), {"1.0", "amd64-1", "arm64-1"}),
        (days(1), {"1.0", "amd64-1", "2.0", "amd64-2", "arm64-2"}),
    ],
)
def test_docs_example_multi_platform_images(arm_age: timedelta, deleted: set[str]) -> None:
    """docs/policy.md example 2: indexes compete, children follow, a tagged child is ranked."""
    b = RepoBuilder("web")
    b.image("amd64-2", age=days(3))
    b.image("arm64-2", age=days(3))
    b.index("2.0", ("amd64-2", "arm64-2"), "2.0", age=days(3))
    b.referrer("sig", "2.0", age=days(3))
    b.image("amd64-1", age=days(30))
    b.image("arm64-1", "1.0-arm64", age=arm_age)
    b.index("1.0", ("amd64-1", "arm64-1"), "1.0", age=days(30))
    policy = load_policy(
        {
            "version": 1,
            "rules": [{"repositories": ["web"], "keepLatest": 1, "untagged": {"olderThan": "7d"}}],
            "safety": NO_SAFETY,
        }
    )
    snapshot = b.build()
    result = plan([snapshot], policy, NOW)
    (repo_plan,) = result.repositories
    assert {b.keys[a.digest] for a in repo_plan.deletions} == deleted
    by_key = {b.keys[a.digest]: a for a in repo_plan.deletions}
    assert by_key["amd64-1"].after == (b.digest("1.0"),)
    assert plan([apply_to_snapshot(snapshot, result)], policy, NOW).actions == ()


def test_a_naive_now_is_refused_before_anything_is_planned() -> None:
    """`now` without a timezone is an error, since ACR's timestamps are UTC."""
    b = RepoBuilder()
    b.image("a", "1")
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([b.build()], policy_for({"keepLatest": 0}), NOW.replace(tzinfo=None))


def _rolled_back() -> tuple[RepoBuilder, RepositorySnapshot]:
    """Three images; the oldest was just re-tagged `prod` (a rollback): its tag moved an hour
    ago, while the manifest's own lastUpdateTime stayed where it was (ACR documents only the
    tag's time moving, docs/acr-facts.md 1.4)."""
    b = RepoBuilder()
    b.image("old", "1", "prod", age=days(30))
    b.image("mid", "2", age=days(20))
    b.image("new", "3", age=days(10))
    snapshot = b.build()
    moved = NOW - timedelta(hours=1)
    tags = tuple(
        replace(t, last_updated_on=moved) if t.name == "prod" else t for t in snapshot.tags
    )
    return b, replace(snapshot, tags=tags)


def test_a_re_tagged_image_counts_as_new_for_keep_latest() -> None:
    """An image whose tag was just moved onto it ranks by that move, so keepLatest keeps it."""
    b, snapshot = _rolled_back()
    (repo_plan,) = plan([snapshot], policy_for({"keepLatest": 2, "minAge": "0s"}), NOW).repositories
    assert {b.keys[a.digest] for a in repo_plan.deletions} == {"mid"}


def test_a_re_tagged_image_counts_as_young_for_min_age() -> None:
    """An image whose tag moved onto it within minAge is protected as young."""
    b, snapshot = _rolled_back()
    (repo_plan,) = plan([snapshot], policy_for({"keepLatest": 0, "minAge": "1d"}), NOW).repositories
    assert {b.keys[a.digest] for a in repo_plan.deletions} == {"mid", "new"}
    kept = {b.keys[k.digest]: k.reason for k in repo_plan.kept}
    assert "tagged less than minAge" in kept["old"]

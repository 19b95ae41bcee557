"""Policy version 2 in the planner: one table row per semantic rule of issue 13 (numbered as
there), each naming what is deleted and the cause each decision gives (semantics 7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from acr_core.models import ChangeableAttributes
from acr_core.planning.plan import Plan, RepositoryPlan
from acr_core.planning.planner import plan
from acr_core.planning.policy import Policy, load_policy
from tests.unit.planner_fixtures import NOW, RepoBuilder, apply_to_snapshot

NO_SAFETY = {"maxDeletesPerRepository": None, "maxDeleteFraction": None}
SIG = "application/vnd.cncf.notary.signature"
SBOM = "application/spdx+json"


def days(n: float) -> timedelta:
    return timedelta(days=n)


def v2_policy(rule: dict[str, Any], safety: dict[str, Any] | None = None) -> Policy:
    return load_policy(
        {
            "version": 2,
            "rules": [{"name": "r", "repositories": ["app"], "minAge": "1h", **rule}],
            "safety": NO_SAFETY if safety is None else safety,
        }
    )


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[RepoBuilder], object]
    rule: dict[str, Any]
    deleted: frozenset[str]
    reasons: dict[str, str] = field(default_factory=dict)  # key -> part of its reason
    protect: tuple[str, ...] = ()
    attributes: ChangeableAttributes = field(default_factory=ChangeableAttributes)


def c(
    id: str,
    build: Callable[[RepoBuilder], object],
    rule: dict[str, Any],
    deleted: set[str],
    reasons: dict[str, str] | None = None,
    **extra: Any,
) -> Case:
    return Case(id, build, rule, frozenset(deleted), reasons or {}, **extra)


def builds(*steps: Callable[[RepoBuilder], object]) -> Callable[[RepoBuilder], object]:
    def build(b: RepoBuilder) -> None:
        for step in steps:
            step(b)

    return build


def images(*specs: tuple[str, tuple[str, ...], float]) -> Callable[[RepoBuilder], object]:
    """Images by (key, tags, age in days)."""
    return lambda b: [b.image(key, *tags, age=days(age)) for key, tags, age in specs]


TAGGED_ALL: dict[str, Any] = {"tagged": {}}
BUILDS = images(("b1", ("b-1",), 1), ("b2", ("b-2",), 2), ("b3", ("b-3",), 3), ("b4", ("b-4",), 40))

CASES = [
    # 1. Protection, the graph and safety are as in v1.
    c(
        "1: a locked image is kept whatever delete says",
        lambda b: (b.image("a", "x", age=days(90), locked=True), b.image("b", "y", age=days(90))),
        {"delete": TAGGED_ALL},
        {"b"},
        {"a": "protected: the manifest is locked", "b": "delete.tagged: tagged, and no keep"},
    ),
    c(
        "1: minAge protects an image from delete, and it does not count for newest",
        images(("young", ("n",), 0.01), ("old1", ("o1",), 5), ("old2", ("o2",), 6)),
        {"keep": [{"newest": 1}], "delete": TAGGED_ALL},
        {"old2"},
        {"young": "less than minAge (1h)", "old1": "keep[0]: newest 1"},
    ),
    c(
        "1: lockTags protects its images",
        images(("rel", ("v1.0.0",), 90), ("dev", ("dev",), 90)),
        {"lockTags": ["v*.*.*"], "delete": TAGGED_ALL},
        {"dev"},
        {"rel": "matches lockTags pattern 'v*.*.*'"},
    ),
    c(
        "1: the pushed digest is protected",
        images(("pushed", ("p",), 90), ("other", ("o",), 90)),
        {"delete": TAGGED_ALL},
        {"other"},
        {"pushed": "protected by the caller"},
        protect=("pushed",),
    ),
    c(
        "1: a locked repository keeps everything",
        images(("a", ("x",), 90)),
        {"delete": TAGGED_ALL},
        set(),
        {"a": "the repository is locked"},
        attributes=ChangeableAttributes(delete_enabled=False),
    ),
    c(
        "1: children stay with a kept index and go after a deleted one",
        lambda b: (
            b.image("c1", age=days(50)),
            b.image("c2", age=days(50)),
            b.index("new", ("c1",), "2.0", age=days(40)),
            b.index("old", ("c2",), "1.0", age=days(50)),
        ),
        {"keep": [{"newest": 1}], "delete": TAGGED_ALL},
        {"old", "c2"},
        {"c1": "child of kept index", "c2": "its last parent index is deleted"},
    ),
    # 2. Candidates: only what `delete` names.
    c(
        "2: without delete.tagged no tagged image is deleted",
        BUILDS,
        {"keep": [{"newest": 1}], "delete": {"untagged": {}}},
        set(),
        {"b4": "tagged, and the rule has no delete.tagged"},
    ),
    c(
        "2: delete.tagged.olderThan makes only older tagged images candidates",
        BUILDS,
        {"delete": {"tagged": {"olderThan": "30d"}}},
        {"b4"},
        {
            "b4": "delete.tagged (olderThan 30d): tagged, not updated for more than 30d, and no",
            "b3": "updated within delete.tagged.olderThan (30d)",
        },
    ),
    c(
        "2: delete.tagged without olderThan means any age",
        BUILDS,
        {"delete": TAGGED_ALL},
        {"b1", "b2", "b3", "b4"},
    ),
    c(
        "2: without delete.untagged untagged images stay",
        images(("u", (), 90)),
        {"delete": TAGGED_ALL},
        set(),
        {"u": "untagged, and the rule has no delete.untagged"},
    ),
    c(
        "2/4: delete.untagged.olderThan deletes only older untagged images",
        images(("old", (), 10), ("new", (), 3)),
        {"delete": {"untagged": {"olderThan": "7d"}}},
        {"old"},
        {
            "old": "delete.untagged (olderThan 7d): untagged, not updated for more than 7d",
            "new": "updated within delete.untagged.olderThan (7d)",
        },
    ),
    # 3. Keep clauses.
    c(
        "3: a clause without newest protects what it selects, and keep beats delete",
        images(("prod", ("prod", "b-9"), 90), ("dev", ("dev",), 90)),
        {"keep": [{"tags": ["prod"]}], "delete": TAGGED_ALL},
        {"dev"},
        {"prod": "protected: keep[0]: tags prod (tag 'prod')"},
    ),
    c(
        "3: pushedWithin alone protects tagged and untagged manifests alike",
        images(("t", ("t",), 5), ("u", (), 5), ("old", ("o",), 20), ("old-u", (), 20)),
        {"keep": [{"pushedWithin": "14d"}], "delete": {"tagged": {}, "untagged": {}}},
        {"old", "old-u"},
        {"u": "protected: keep[0]: pushed within 14d", "t": "keep[0]: pushed within 14d"},
    ),
    c(
        "3: filters are ANDed",
        images(("new-rel", ("release-2",), 5), ("old-rel", ("release-1",), 100), ("b", ("b",), 5)),
        {"keep": [{"tags": ["release-*"], "pushedWithin": "90d"}], "delete": TAGGED_ALL},
        {"old-rel", "b"},
        {"new-rel": "keep[0]: tags release-* pushed within 90d (tag 'release-2')"},
    ),
    c(
        "3: a protecting clause that selects a referrer keeps its subject, as in v1",
        lambda b: (
            b.image("img", "b-1", age=days(90)),
            b.referrer("sig", "img", "sig-kept", age=days(90)),
        ),
        {"keep": [{"tags": ["sig-*"]}], "delete": TAGGED_ALL},
        set(),
        {"img": "its referrer", "sig": "keep[0]: tags sig-*"},
    ),
    c(
        "3: newest N keeps the N newest unprotected images; protected ones are kept on top",
        images(("p", ("prod",), 0.5), ("a", ("a",), 1), ("b", ("b",), 2), ("c", ("c",), 3)),
        {"keep": [{"tags": ["prod"]}, {"newest": 2}], "delete": TAGGED_ALL},
        {"c"},
        {"a": "keep[1]: newest 2", "b": "keep[1]: newest 2", "c": "delete.tagged: tagged"},
    ),
    c(
        "3: images too young to be candidates still count for newest",
        images(("n1", ("n1",), 1), ("n2", ("n2",), 2), ("o1", ("o1",), 40), ("o2", ("o2",), 50)),
        {"keep": [{"newest": 2}], "delete": {"tagged": {"olderThan": "30d"}}},
        {"o1", "o2"},
        {"n1": "keep[0]: newest 2", "o1": "delete.tagged (olderThan 30d)"},
    ),
    c(
        "3: two counting clauses are independent, an image both select counts in both",
        images(
            ("m3", ("main-3",), 1), ("m2", ("main-2",), 2), ("m1", ("main-1",), 3), ("x", ("x",), 4)
        ),
        {"keep": [{"newest": 1}, {"tags": ["main-*"], "newest": 2}], "delete": TAGGED_ALL},
        {"m1", "x"},
        {"m3": "keep[0]: newest 1", "m2": "keep[1]: newest 2 with tags main-*"},
    ),
    c(
        "3: newest 0 keeps none",
        BUILDS,
        {"keep": [{"newest": 0}], "delete": TAGGED_ALL},
        {"b1", "b2", "b3", "b4"},
    ),
    c(
        "3: per keeps the newest N of each group",
        images(
            ("a1", ("pr-1-a",), 1),
            ("a2", ("pr-1-b",), 2),
            ("a3", ("pr-1-c",), 3),
            ("b1", ("pr-2-a",), 5),
            ("b2", ("pr-2-b",), 6),
        ),
        {
            "keep": [{"tags": ["regex:^pr-(?P<pr>[0-9]+)-.+$"], "newest": 1, "per": "pr"}],
            "delete": TAGGED_ALL,
        },
        {"a2", "a3", "b2"},
        {"a1": "keep[0]: newest 1 per pr with tags", "b1": "(pr 2)"},
    ),
    c(
        "3: an image with matching tags in two groups belongs to each",
        images(("both", ("pr-1-x", "pr-2-x"), 1), ("one", ("pr-1-y",), 2), ("two", ("pr-2-y",), 3)),
        {
            "keep": [{"tags": ["regex:^pr-(?P<pr>[0-9]+)-.+$"], "newest": 1, "per": "pr"}],
            "delete": TAGGED_ALL,
        },
        {"one", "two"},
        {"both": "(pr 1)"},
    ),
    c(
        "3: a matching tag in which the group took no part puts the image in no group",
        images(("nogroup", ("build",), 1), ("g", ("build-7",), 2)),
        {
            "keep": [{"tags": ["regex:^build(-(?P<n>[0-9]+))?$"], "newest": 1, "per": "n"}],
            "delete": TAGGED_ALL,
        },
        {"nogroup"},
        {"g": "(n 7)"},
    ),
    c(
        "3: semver orders by SemVer precedence, a pre-release below its release",
        images(
            ("v110", ("v1.10.0",), 30),
            ("v19", ("v1.9.0",), 2),
            ("rc", ("v1.10.0-rc.1",), 1),
            ("v2rc", ("2.0.0-rc.1",), 1),
        ),
        {"keep": [{"orderBy": "semver", "newest": 2}], "delete": TAGGED_ALL},
        {"v19", "rc"},
        {"v2rc": "keep[0]: newest 2 by semver", "v110": "keep[0]: newest 2 by semver"},
    ),
    c(
        "3: semver reads the version group when the pattern has one",
        images(("a", ("app-1.2.0",), 1), ("b", ("app-1.10.0",), 5), ("c", ("app-0.9.9",), 0.5)),
        {
            "keep": [
                {
                    "tags": ["regex:^app-(?P<version>[0-9.]+)$"],
                    "orderBy": "semver",
                    "newest": 1,
                }
            ],
            "delete": TAGGED_ALL,
        },
        {"a", "c"},
        {"b": "keep[0]: newest 1 by semver"},
    ),
    c(
        "3: semver: equal versions fall back to time; no SemVer tag: not selected",
        images(("new", ("1.0.0",), 1), ("old", ("v1.0.0",), 2), ("latest", ("latest",), 0.5)),
        {"keep": [{"orderBy": "semver", "newest": 1}], "delete": TAGGED_ALL},
        {"old", "latest"},
        {"new": "keep[0]: newest 1 by semver", "latest": "delete.tagged"},
    ),
    c(
        "3: semver: an image's version is the highest of its matching tags",
        images(("multi", ("v0.1.0", "v3.0.0"), 9), ("two", ("v2.0.0",), 1)),
        {"keep": [{"orderBy": "semver", "newest": 1}], "delete": TAGGED_ALL},
        {"two"},
    ),
    # 4. Untagged images are never selected by counting clauses.
    c(
        "4: untagged images are never selected by newest",
        images(("t", ("t",), 5), ("u", (), 5)),
        {"keep": [{"newest": 5}], "delete": {"tagged": {}, "untagged": {}}},
        {"u"},
        {"t": "keep[0]: newest 5", "u": "delete.untagged: untagged, and no keep clause keeps it"},
    ),
    # 5. Referrer rules.
    c(
        "5: keepNewest keeps the N newest referrers of each subject and type",
        lambda b: (
            b.image("img", "latest", age=days(10)),
            b.referrer("s1", "img", age=days(1), artifact_type=SIG),
            b.referrer("s2", "img", age=days(2), artifact_type=SIG),
            b.referrer("s3", "img", age=days(3), artifact_type=SIG),
            b.referrer("sbom", "img", age=days(9), artifact_type=SBOM),
        ),
        {"referrers": [{"artifactType": SIG, "keepNewest": 1}]},
        {"s2", "s3"},
        {
            "s2": "referrers[0]: application/vnd.cncf.notary.signature, keepNewest 1: not one of",
            "s1": "referrers[0]: application/vnd.cncf.notary.signature, keepNewest 1: kept",
            "sbom": "referrer of kept",
        },
    ),
    c(
        "5: olderThan deletes older referrers; either condition deletes",
        lambda b: (
            b.image("img", "latest", age=days(40)),
            b.referrer("new", "img", age=days(1), artifact_type=SBOM),
            b.referrer("old", "img", age=days(35), artifact_type=SBOM),
            b.referrer("sig-new", "img", age=days(1), artifact_type=SIG),
            b.referrer("sig-mid", "img", age=days(2), artifact_type=SIG),
        ),
        {
            "referrers": [
                {"artifactType": SBOM, "olderThan": "30d"},
                {"artifactType": SIG, "keepNewest": 1, "olderThan": "30d"},
            ]
        },
        {"old", "sig-mid"},
        {"old": "referrers[0]: application/spdx+json, olderThan 30d: not updated for more than"},
    ),
    c(
        "5: protected referrers do not use up N, and keep their subject",
        lambda b: (
            b.image("img", "b-1", age=days(90)),
            b.referrer("locked", "img", age=days(1), locked=True, artifact_type=SIG),
            b.referrer("s1", "img", age=days(2), artifact_type=SIG),
            b.referrer("s2", "img", age=days(3), artifact_type=SIG),
        ),
        {"referrers": [{"artifactType": SIG, "keepNewest": 1}], "delete": TAGGED_ALL},
        {"s2"},
        {"img": "its referrer", "s1": "keepNewest 1: kept"},
    ),
    c(
        "5: referrers of a deleted subject go with it, as in v1",
        lambda b: (
            b.image("img", "b-1", age=days(90)),
            b.referrer("s1", "img", age=days(80), artifact_type=SIG),
        ),
        {"referrers": [{"artifactType": SIG, "keepNewest": 5}], "delete": TAGGED_ALL},
        {"img"},
    ),
    c(
        "5: referrers at any depth: a deleted SBOM takes its signature along",
        lambda b: (
            b.image("img", "latest", age=days(90)),
            b.referrer("sbom", "img", age=days(60), artifact_type=SBOM),
            b.referrer("sbom-sig", "sbom", age=days(60), artifact_type=SIG),
            b.referrer("sbom2", "img", age=days(2), artifact_type=SBOM),
            b.referrer("sig2a", "sbom2", age=days(1), artifact_type=SIG),
            b.referrer("sig2b", "sbom2", age=days(2), artifact_type=SIG),
        ),
        {
            "referrers": [
                {"artifactType": SBOM, "olderThan": "30d"},
                {"artifactType": SIG, "keepNewest": 1},
            ]
        },
        {"sbom", "sig2b"},
    ),
    c(
        "5: a referrer whose own referrer a kept index lists stays while that index does",
        lambda b: (
            b.image("img", "latest", age=days(90)),
            b.referrer("sbom", "img", age=days(60), artifact_type=SBOM),
            b.referrer("sbom-sig", "sbom", age=days(60), artifact_type=SIG),
            b.index("listing", ("sbom-sig",), "keep-me", age=days(60)),
        ),
        {
            "keep": [{"tags": ["keep-me"]}],
            "referrers": [{"artifactType": SBOM, "olderThan": "30d"}],
        },
        set(),
        {"sbom": "lists one of its referrers"},
    ),
]


def run_case(case: Case) -> tuple[RepoBuilder, RepositoryPlan]:
    builder = RepoBuilder(attributes=case.attributes)
    case.build(builder)
    protect = {"app": frozenset(builder.digest(k) for k in case.protect)}
    (repo_plan,) = plan([builder.build()], v2_policy(case.rule), NOW, protect=protect).repositories
    return builder, repo_plan


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_semantics(case: Case) -> None:
    """Each row deletes exactly the manifests it names, and each decision names its cause."""
    builder, repo_plan = run_case(case)
    deleted = {builder.keys[a.digest] for a in repo_plan.deletions}
    assert deleted == case.deleted
    reasons = {builder.keys[a.digest]: a.reason for a in repo_plan.deletions}
    reasons.update({builder.keys[k.digest]: k.reason for k in repo_plan.kept})
    for key, text in case.reasons.items():
        assert text in reasons[key], (key, reasons[key])


def test_every_row_accounts_for_each_manifest_once_and_reaches_a_fixed_point() -> None:
    """Each manifest is deleted, cascaded or kept exactly once; planning the result again
    deletes nothing more."""
    for case in CASES:
        builder, repo_plan = run_case(case)
        removed = [a.digest for a in repo_plan.deletions]
        removed += [d for a in repo_plan.deletions for d in a.cascades]
        kept = [k.digest for k in repo_plan.kept]
        assert sorted(removed + kept) == sorted(builder.keys), case.id
        after = apply_to_snapshot(builder.build(), Plan((repo_plan,)))
        protect = {"app": frozenset(builder.digest(k) for k in case.protect)}
        again = plan([after], v2_policy(case.rule), NOW, protect=protect).repositories[0]
        assert again.deletions == (), case.id


def test_safety_limits_block_v2_deletions_as_in_v1() -> None:
    """Semantics 1: a v2 plan over maxDeletesPerRepository is blocked, its deletions listed."""
    b = RepoBuilder()
    BUILDS(b)
    policy = v2_policy({"delete": TAGGED_ALL}, {"maxDeletesPerRepository": 2})
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert len(repo_plan.deletions) == 4
    assert repo_plan.blocked is not None
    assert "safety.maxDeletesPerRepository (2)" in repo_plan.blocked


def test_an_unread_index_holds_every_v2_deletion() -> None:
    """Semantics 1: unknown children stop every deletion in the repository, as in v1."""
    b = RepoBuilder()
    BUILDS(b)
    b.index("idx", (), "i", age=days(90), inspected=False)
    (repo_plan,) = plan([b.build()], v2_policy({"delete": TAGGED_ALL}), NOW).repositories
    assert repo_plan.deletions == ()
    assert any("was not read" in k.reason for k in repo_plan.kept)


def test_the_semver_lines_example_of_docs_policy_md() -> None:
    """docs/policy.md's base images: the 3 highest releases of each major line stay; a
    pre-release the regex does not admit, and lower releases, go."""
    b = RepoBuilder()
    for key, tag in [
        ("a", "v1.1.0"),
        ("b", "v1.2.0"),
        ("c", "v1.9.0"),
        ("d", "v1.10.0"),
        ("e", "v2.0.0"),
        ("f", "v2.0.0-rc.1"),
    ]:
        b.image(key, tag, age=days(30))
    rule = {
        "keep": [
            {
                "tags": ["regex:^v?(?P<major>[0-9]+)\\.[0-9]+\\.[0-9]+$"],
                "orderBy": "semver",
                "newest": 3,
                "per": "major",
            }
        ],
        "delete": {"tagged": {"olderThan": "14d"}},
    }
    (repo_plan,) = plan([b.build()], v2_policy(rule), NOW).repositories
    # v1.1.0 is the fourth of line 1; v2.0.0-rc.1 is selected by no clause.
    assert {b.keys[a.digest] for a in repo_plan.deletions} == {"a", "f"}
    kept = {b.keys[k.digest]: k.reason for k in repo_plan.kept}
    assert (
        kept["d"]
        == kept["c"]
        == kept["b"]
        == (
            "keep[0]: newest 3 per major by semver with tags "
            "regex:^v?(?P<major>[0-9]+)\\.[0-9]+\\.[0-9]+$ (major 1)"
        )
    )
    assert kept["e"].endswith("(major 2)")

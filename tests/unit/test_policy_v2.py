"""Policy version 2: the model it loads into, every mistake named, v1 mapped onto it, and the
JSON Schema agreeing with the loader on examples of both versions (issue 13)."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from acr_core.planning.document import policy_document
from acr_core.planning.policy import (
    Delete,
    KeepClause,
    OrderBy,
    PolicyError,
    ReferrerRule,
    load_policy,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "acr_core" / "planning" / "policy.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# The format of issue 13, as written there.
ISSUE_EXAMPLE: dict[str, Any] = {
    "version": 2,
    "rules": [
        {
            "name": "services",
            "repositories": ["services/**"],
            "minAge": "1h",
            "keep": [
                {"tags": ["latest", "prod", "stable"]},
                {"newest": 10},
                {"tags": ["main-*"], "newest": 20},
                {"tags": ["regex:^pr-(?P<pr>[0-9]+)-.+$"], "newest": 2, "per": "pr"},
                {
                    "tags": ["regex:^v?(?P<version>[0-9]+\\.[0-9]+\\.[0-9]+.*)$"],
                    "orderBy": "semver",
                    "newest": 5,
                },
                {"tags": ["release-*"], "pushedWithin": "90d"},
            ],
            "delete": {"tagged": {"olderThan": "30d"}, "untagged": {"olderThan": "7d"}},
            "lockTags": ["regex:^v[0-9]+\\.[0-9]+\\.[0-9]+$"],
            "referrers": [
                {"artifactType": "application/vnd.cncf.notary.signature", "keepNewest": 1},
                {"artifactType": "application/vnd.example.scan+json", "olderThan": "30d"},
            ],
        }
    ],
    "safety": {"maxDeletesPerRepository": 500, "maxDeleteFraction": 0.9},
}


def test_the_issue_example_loads_into_the_model() -> None:
    """Every field of the issue's example is understood, clause by clause."""
    policy = load_policy(ISSUE_EXAMPLE)
    assert policy.version == 2
    (rule,) = policy.rules
    assert rule.version == 2
    assert rule.min_age == timedelta(hours=1)
    assert [c.index for c in rule.keep] == [0, 1, 2, 3, 4, 5]
    protect, newest, main, pr, semver, release = rule.keep
    assert isinstance(main, KeepClause)  # filter clauses (KeepEntry also has previousDigests)
    assert isinstance(pr, KeepClause)
    assert isinstance(semver, KeepClause)
    assert isinstance(release, KeepClause)
    assert not protect.counting
    assert protect.tags is not None
    assert protect.tags.patterns == ("latest", "prod", "stable")
    assert newest == KeepClause(index=1, newest=10)
    assert main.newest == 20
    assert main.tags is not None
    assert main.tags.matches("main-7")
    assert pr.per == "pr"
    assert pr.newest == 2
    assert semver.order_by is OrderBy.SEMVER
    assert semver.newest == 5
    assert release.pushed_within == timedelta(days=90)
    assert not release.counting
    assert rule.delete == Delete(tagged=timedelta(days=30), untagged=timedelta(days=7))
    assert rule.lock_tags.matches("v1.2.3")
    assert rule.referrers == (
        ReferrerRule(0, "application/vnd.cncf.notary.signature", keep_newest=1),
        ReferrerRule(1, "application/vnd.example.scan+json", older_than=timedelta(days=30)),
    )
    assert VALIDATOR.is_valid(ISSUE_EXAMPLE)


def test_clauses_render_as_reasons_name_them() -> None:
    """`keep[2]: newest 20 with tags main-*`, as the issue writes it."""
    rule = load_policy(ISSUE_EXAMPLE).rules[0]
    assert [c.describe() for c in rule.keep] == [
        "keep[0]: tags latest, prod, stable",
        "keep[1]: newest 10",
        "keep[2]: newest 20 with tags main-*",
        "keep[3]: newest 2 per pr with tags regex:^pr-(?P<pr>[0-9]+)-.+$",
        "keep[4]: newest 5 by semver with tags regex:^v?(?P<version>[0-9]+\\.[0-9]+\\.[0-9]+.*)$",
        "keep[5]: tags release-* pushed within 90d",
    ]
    assert rule.referrers[0].describe() == (
        "referrers[0]: application/vnd.cncf.notary.signature, keepNewest 1"
    )


def test_empty_delete_entries_mean_any_age_and_everything_is_optional() -> None:
    """`delete.tagged: {}` is olderThan 0s; a rule with neither keep nor delete deletes nothing."""
    policy = load_policy(
        {
            "version": 2,
            "rules": [
                {"name": "a", "repositories": ["a"], "delete": {"tagged": {}, "untagged": {}}},
                {"name": "b", "repositories": ["b"]},
            ],
        }
    )
    a, b = policy.rules
    assert a.delete == Delete(tagged=timedelta(0), untagged=timedelta(0))
    assert b.delete == Delete()
    assert b.keep == ()
    assert b.referrers == ()


def test_a_v1_rule_maps_onto_keep_clauses_and_delete() -> None:
    """keepTags is a protecting clause, keepLatest a counting clause plus delete.tagged 0s,
    untagged.olderThan is delete.untagged (issue 13, semantics 6); the v1 fields read back."""
    rule = load_policy(
        {
            "version": 1,
            "rules": [
                {
                    "name": "r",
                    "repositories": ["a"],
                    "keepLatest": 3,
                    "keepTags": ["latest"],
                    "untagged": {"olderThan": "7d"},
                }
            ],
        }
    ).rules[0]
    assert rule.version == 1
    assert [c.describe() for c in rule.keep] == ["keep[0]: tags latest", "keep[1]: newest 3"]
    assert rule.delete == Delete(tagged=timedelta(0), untagged=timedelta(days=7))
    assert rule.keep_latest == 3
    assert rule.keep_tags.patterns == ("latest",)
    assert rule.untagged_older_than == timedelta(days=7)
    bare = load_policy({"version": 1, "rules": [{"repositories": ["a"]}]}).rules[0]
    assert bare.keep == ()
    assert bare.delete == Delete()
    assert bare.keep_latest is None


def v2(**fields: Any) -> dict[str, Any]:
    return {"version": 2, "rules": [{"name": "s", "repositories": ["a"], **fields}]}


BAD: list[tuple[str, Any, str]] = [
    ("version 3", {"version": 3, "rules": [{"repositories": ["a"]}]}, "versions are 1 and 2"),
    ("a v1 field in v2", v2(keepLatest=3), "rules[0] ('s'): unknown field 'keepLatest'; in vers"),
    (
        "a v2 field in v1",
        {"version": 1, "rules": [{"repositories": ["a"], "keep": []}]},
        "rules[0]: unknown field 'keep'; keep clauses need \"version\": 2",
    ),
    ("keep not a list", v2(keep={"newest": 1}), "rules[0] ('s').keep: must be a list"),
    ("a clause not an object", v2(keep=["latest"]), "rules[0] ('s').keep[0]: must be an object"),
    ("typo in a clause", v2(keep=[{"newst": 1}]), "rules[0] ('s').keep[0]: unknown field 'newst'"),
    ("negative newest", v2(keep=[{"newest": -1}]), "keep[0].newest: -1 is not a whole number"),
    ("newest as text", v2(keep=[{"newest": "5"}]), "keep[0].newest: '5' is not a whole number"),
    ("null newest", v2(keep=[{"newest": None}]), "keep[0].newest: null is not allowed"),
    ("empty tags", v2(keep=[{"tags": []}]), "keep[0].tags: must list at least one pattern"),
    ("bad tag glob", v2(keep=[{"tags": ["v[0-9]"]}]), "keep[0].tags[0]: 'v[0-9]': '['"),
    ("bad pushedWithin", v2(keep=[{"pushedWithin": "3 days"}]), "keep[0].pushedWithin: '3 days'"),
    (
        "per without newest",
        v2(keep=[{"tags": ["regex:(?P<b>.+)"], "per": "b"}]),
        'keep[0].per: keeps the newest N per group, so it needs "newest"',
    ),
    (
        "per without tags",
        v2(keep=[{"newest": 1, "per": "b"}]),
        "keep[0].per: needs tags with a regex defining the group",
    ),
    (
        "per naming a group the regex lacks",
        v2(keep=[{"tags": ["regex:^pr-(?P<pr>[0-9]+)$"], "newest": 1, "per": "branch"}]),
        "keep[0].tags[0]: 'regex:^pr-(?P<pr>[0-9]+)$' is this regex without the group 'branch'",
    ),
    (
        "per with a glob",
        v2(keep=[{"tags": ["pr-*"], "newest": 1, "per": "pr"}]),
        "keep[0].tags[0]: 'pr-*' is a glob without the group 'pr'",
    ),
    (
        "per not a name",
        v2(keep=[{"tags": ["regex:(?P<b>.+)"], "newest": 1, "per": "1b"}]),
        "keep[0].per: '1b' is not a group name",
    ),
    ("unknown orderBy", v2(keep=[{"newest": 1, "orderBy": "name"}]), "orderBy: 'name' is not al"),
    ("orderBy without newest", v2(keep=[{"orderBy": "semver"}]), "orderBy: orders the images"),
    ("delete not an object", v2(delete=["tagged"]), "rules[0] ('s').delete: must be an object"),
    ("typo in delete", v2(delete={"tagged": {}, "untaged": {}}), "delete: unknown field 'untaged'"),
    ("delete.tagged as text", v2(delete={"tagged": "30d"}), "delete.tagged: must be an object"),
    (
        "bad delete olderThan",
        v2(delete={"untagged": {"olderThan": "1M"}}),
        "rules[0] ('s').delete.untagged.olderThan: '1M' is not a duration",
    ),
    (
        "null delete olderThan",
        v2(delete={"tagged": {"olderThan": None}}),
        "delete.tagged.olderThan: null is not allowed",
    ),
    ("referrers not a list", v2(referrers={}), "rules[0] ('s').referrers: must be a list"),
    (
        "referrer rule without artifactType",
        v2(referrers=[{"keepNewest": 1}]),
        "referrers[0].artifactType: must be a media type",
    ),
    (
        "referrer rule doing nothing",
        v2(referrers=[{"artifactType": "application/x"}]),
        "referrers[0]: says nothing to do; give keepNewest, olderThan or both",
    ),
    (
        "referrer rule typo",
        v2(referrers=[{"artifactType": "application/x", "keepLatest": 1}]),
        "referrers[0]: unknown field 'keepLatest'",
    ),
    (
        "negative keepNewest",
        v2(referrers=[{"artifactType": "application/x", "keepNewest": -2}]),
        "referrers[0].keepNewest: -2 is not a whole number",
    ),
    (
        "bad referrer olderThan",
        v2(referrers=[{"artifactType": "application/x", "olderThan": 30}]),
        "referrers[0].olderThan: 30 is not a duration string",
    ),
    (
        "an artifactType twice",
        v2(
            referrers=[
                {"artifactType": "application/x", "keepNewest": 1},
                {"artifactType": "application/x", "olderThan": "1d"},
            ]
        ),
        "referrers[1].artifactType: 'application/x' is already the artifactType of referrers[0]",
    ),
]


@pytest.mark.parametrize(("source", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_every_v2_mistake_names_rule_and_field(source: Any, message: str) -> None:
    """A bad v2 policy raises PolicyError naming the rule, the clause and the field."""
    with pytest.raises(PolicyError) as caught:
        load_policy(json.dumps(source))
    assert message in str(caught.value)


# What a JSON Schema cannot say: regex syntax and groups, unique names and artifact types.
_LOADER_ONLY = ("is this regex without", "already the artifactType", "regular expression")


@pytest.mark.parametrize(("source", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_the_schema_rejects_what_the_loader_rejects(source: Any, message: str) -> None:
    """Every bad v2 policy above, bar what only the loader can check, fails the schema too."""
    if any(part in message for part in _LOADER_ONLY):
        return
    assert not VALIDATOR.is_valid(source)


GOOD: list[dict[str, Any]] = [
    ISSUE_EXAMPLE,
    v2(),
    v2(keep=[{}]),
    v2(keep=[{"pushedWithin": "14d"}], delete={"untagged": {}}),
    v2(keep=[{"newest": 0}], delete={"tagged": {"olderThan": "0s"}}),
    v2(keep=[{"newest": 3, "orderBy": "time"}]),
    v2(keep=[{"tags": ["regex:^(?P<b>[a-z]+)-[0-9]+$"], "newest": 1, "per": "b"}]),
    v2(referrers=[{"artifactType": "application/x", "keepNewest": 0, "olderThan": "1d"}]),
    {"version": 1, "rules": [{"repositories": ["a"], "keepLatest": 1, "keepTags": ["x"]}]},
]


@pytest.mark.parametrize("source", GOOD)
def test_the_schema_accepts_what_the_loader_accepts(source: dict[str, Any]) -> None:
    """Valid policies of both versions load and validate against the schema."""
    load_policy(copy.deepcopy(source))
    VALIDATOR.validate(source)


def test_all_v2_problems_are_reported_at_once() -> None:
    """Mistakes in several clauses and fields come back together, each named."""
    with pytest.raises(PolicyError) as caught:
        load_policy(
            v2(
                keep=[{"newest": -1}, {"tags": ["ok"], "pushedWithin": "x"}],
                delete={"tagged": {"olderThan": "y"}},
                referrers=[{"artifactType": ""}],
            )
        )
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "rules[0] ('s').keep[0].newest",
        "rules[0] ('s').keep[1].pushedWithin",
        "rules[0] ('s').delete.tagged.olderThan",
        "rules[0] ('s').referrers[0].artifactType",
        "rules[0] ('s').referrers[0]",
    ]


def _v2_section_blocks() -> list[Any]:
    text = (ROOT / "docs" / "policy.md").read_text()
    start = text.index("## Version 2: keep clauses")
    section = text[start : text.index("\n## ", start + 1)]
    return [
        json.loads(block)
        for block in section.split("```json\n")[1:]
        for block in [block.split("```")[0]]
    ]


def test_the_v2_examples_of_docs_policy_md_load_and_validate() -> None:
    """Every JSON example of the v2 section loads (a rule alone, in a policy of its version)
    and validates against the schema; the v1 rule there and its v2 form are one policy."""
    loaded = []
    for block in _v2_section_blocks():
        if "rules" not in block:
            block = {"version": 1 if "keepLatest" in block else 2, "rules": [block]}
        VALIDATOR.validate(block)
        loaded.append(load_policy(block))
    assert len(loaded) == 6
    v1, v2_form = loaded[-2:]
    assert v1.version == 1
    assert policy_document(v1)["rules"] == policy_document(v2_form)["rules"]


def test_the_readme_v2_example_loads_and_validates() -> None:
    """The README's v2 rule is a valid policy for the loader and the schema."""
    text = (ROOT / "README.md").read_text()
    block = text.split("Policy version 2 says")[1].split("```json\n")[1].split("```")[0]
    VALIDATOR.validate(json.loads(block))
    assert load_policy(block).version == 2


def test_with_a_bad_version_rules_are_checked_in_the_version_they_look_written_in() -> None:
    """A v1 policy with `"version": "1"` gets one problem, the version, not one per v1 field."""
    with pytest.raises(PolicyError) as caught:
        load_policy({"version": "1", "rules": [{"repositories": ["a"], "keepLatest": 3}]})
    assert caught.value.problems == (
        "version: '1' is not supported; the policy versions are 1 and 2",
    )
    with pytest.raises(PolicyError) as caught:
        load_policy({"rules": [{"repositories": ["a"], "keep": [{"newest": 3}]}]})
    assert [p.split(":")[0] for p in caught.value.problems] == ["version"]

"""Policy loading: what a valid policy means, and how every mistake is reported."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest

from acr_core.planning.policy import (
    DEFAULT_MAX_DELETE_FRACTION,
    DEFAULT_MAX_DELETES_PER_REPOSITORY,
    DEFAULT_MIN_AGE,
    PolicyError,
    load_policy,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "acr_core" / "planning" / "policy.schema.json").read_text())
EXAMPLE = (ROOT / "examples" / "policy.json").read_text()
ISSUE_EXAMPLE = {
    "version": 1,
    "rules": [
        {
            "name": "services",
            "repositories": ["services/**", "api"],
            "keepLatest": 10,
            "keepTags": ["latest", "stable", "v*"],
            "lockTags": ["v*.*.*"],
            "minAge": "1h",
            "untagged": {"olderThan": "7d"},
        }
    ],
    "safety": {"maxDeletesPerRepository": 500, "maxDeleteFraction": 0.9},
}


def test_the_documented_policy_loads_with_every_field_understood() -> None:
    """The issue's example policy loads into the rule and safety values it spells out."""
    policy = load_policy(json.dumps(ISSUE_EXAMPLE))
    (rule,) = policy.rules
    assert rule.name == "services"
    assert rule.index == 0
    assert rule.keep_latest == 10
    assert rule.keep_tags.matches("v2")
    assert not rule.keep_tags.matches("dev")
    assert rule.lock_tags.matches("v1.2.3")
    assert rule.min_age == timedelta(hours=1)
    assert rule.untagged_older_than == timedelta(days=7)
    assert policy.safety.max_deletes_per_repository == 500
    assert policy.safety.max_delete_fraction == 0.9


def test_defaults_protect() -> None:
    """Omitted fields default to: no tagged deletes, untagged kept, minAge 1h, safety on."""
    policy = load_policy({"version": 1, "rules": [{"repositories": ["app"]}]})
    (rule,) = policy.rules
    assert rule.name == "rules[0]"
    assert rule.keep_latest is None
    assert rule.untagged_older_than is None
    assert rule.min_age == DEFAULT_MIN_AGE == timedelta(hours=1)
    assert policy.safety.max_deletes_per_repository == DEFAULT_MAX_DELETES_PER_REPOSITORY
    assert policy.safety.max_delete_fraction == DEFAULT_MAX_DELETE_FRACTION


def test_safety_limits_can_be_switched_off_with_null() -> None:
    """null switches a safety limit off."""
    policy = load_policy(
        {
            "version": 1,
            "rules": [{"repositories": ["app"]}],
            "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
        }
    )
    assert policy.safety.max_deletes_per_repository is None
    assert policy.safety.max_delete_fraction is None


def test_the_first_matching_rule_governs() -> None:
    """rule_for returns the first rule that matches; covers is false when none does."""
    policy = load_policy(
        {
            "version": 1,
            "rules": [
                {"name": "exact", "repositories": ["team/api"]},
                {"name": "team", "repositories": ["team/**"]},
            ],
        }
    )
    assert policy.rule_for("team/api").name == "exact"  # type: ignore[union-attr]
    assert policy.rule_for("team/x/y").name == "team"  # type: ignore[union-attr]
    assert policy.rule_for("team") is None
    assert not policy.covers("other")
    assert policy.covers("team/web")


def test_the_example_policy_is_valid_for_the_loader_and_the_schema() -> None:
    """examples/policy.json loads, and it and the issue's example validate against the schema."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(EXAMPLE))
    jsonschema.Draft202012Validator(SCHEMA).validate(ISSUE_EXAMPLE)
    policy = load_policy(EXAMPLE)
    assert [r.name for r in policy.rules] == ["base-images", "services", "ci-builds"]
    assert policy.rule_for("pr-12/web").name == "ci-builds"  # type: ignore[union-attr]


BAD = [
    ("not json", "{", "not valid JSON at line 1"),
    ("not an object", [], "must be a JSON object"),
    ("missing version", {"rules": [{"repositories": ["a"]}]}, "version: missing"),
    ("version 3", {"version": 3, "rules": [{"repositories": ["a"]}]}, "versions are 1 and 2"),
    ("version as text", {"version": "1", "rules": [{"repositories": ["a"]}]}, "not supported"),
    ("no rules", {"version": 1, "rules": []}, "rules: must be a non-empty list"),
    (
        "unknown top-level field",
        {"version": 1, "rules": [{"repositories": ["a"]}], "rule": []},
        "the policy: unknown field 'rule'",
    ),
    (
        "typo in a rule field",
        {"version": 1, "rules": [{"name": "web", "repositories": ["a"], "keepTag": ["x"]}]},
        "rules[0] ('web'): unknown field 'keepTag'",
    ),
    (
        "missing repositories",
        {"version": 1, "rules": [{"name": "web"}]},
        "rules[0] ('web').repositories: missing",
    ),
    (
        "empty repositories",
        {"version": 1, "rules": [{"repositories": []}]},
        "rules[0].repositories: must list at least one pattern",
    ),
    (
        "repositories as a string",
        {"version": 1, "rules": [{"repositories": "app"}]},
        "rules[0].repositories: must be a list",
    ),
    (
        "bad repository glob",
        {"version": 1, "rules": [{"name": "x", "repositories": ["Team/*"]}]},
        "rules[0] ('x').repositories[0]: 'Team/*': ACR repository names are lowercase",
    ),
    (
        "bad tag regex",
        {"version": 1, "rules": [{"repositories": ["a"], "keepTags": ["regex:("]}]},
        "rules[0].keepTags[0]: 'regex:(': not a valid regular expression",
    ),
    (
        "character class in a tag glob",
        {"version": 1, "rules": [{"repositories": ["a"], "lockTags": ["v[0-9]*"]}]},
        "rules[0].lockTags[0]",
    ),
    (
        "negative keepLatest",
        {"version": 1, "rules": [{"repositories": ["a"], "keepLatest": -1}]},
        "rules[0].keepLatest: -1 is not a whole number >= 0",
    ),
    (
        "boolean keepLatest",
        {"version": 1, "rules": [{"repositories": ["a"], "keepLatest": True}]},
        "rules[0].keepLatest: True is not a whole number",
    ),
    (
        "fractional keepLatest",
        {"version": 1, "rules": [{"repositories": ["a"], "keepLatest": 2.5}]},
        "rules[0].keepLatest: 2.5",
    ),
    (
        "compound minAge",
        {"version": 1, "rules": [{"repositories": ["a"], "minAge": "1h30m"}]},
        "rules[0].minAge: '1h30m' is not a duration",
    ),
    (
        "minAge as a number",
        {"version": 1, "rules": [{"repositories": ["a"], "minAge": 3600}]},
        "rules[0].minAge: 3600 is not a duration string",
    ),
    (
        "untagged without olderThan",
        {"version": 1, "rules": [{"repositories": ["a"], "untagged": {}}]},
        "rules[0].untagged.olderThan: missing",
    ),
    (
        "null keepLatest",
        {"version": 1, "rules": [{"repositories": ["a"], "keepLatest": None}]},
        "rules[0].keepLatest: null is not allowed; leave the field out instead",
    ),
    (
        "malformed olderThan",
        {"version": 1, "rules": [{"repositories": ["a"], "untagged": {"olderThan": "1.5d"}}]},
        "rules[0].untagged.olderThan: '1.5d' is not a duration",
    ),
    (
        "typo inside untagged",
        {"version": 1, "rules": [{"repositories": ["a"], "untagged": {"olderthan": "7d"}}]},
        "rules[0].untagged: unknown field 'olderthan'",
    ),
    (
        "untagged as a string",
        {"version": 1, "rules": [{"repositories": ["a"], "untagged": "7d"}]},
        "rules[0].untagged: must be an object",
    ),
    (
        "duplicate rule names",
        {
            "version": 1,
            "rules": [{"name": "x", "repositories": ["a"]}, {"name": "x", "repositories": ["b"]}],
        },
        "rules[1].name: 'x' is already the name of rules[0]",
    ),
    (
        "empty rule name",
        {"version": 1, "rules": [{"name": " ", "repositories": ["a"]}]},
        "rules[0].name: must be a non-empty string",
    ),
    (
        "rule is not an object",
        {"version": 1, "rules": ["a"]},
        "rules[0]: must be an object",
    ),
    (
        "zero maxDeletesPerRepository",
        {
            "version": 1,
            "rules": [{"repositories": ["a"]}],
            "safety": {"maxDeletesPerRepository": 0},
        },
        "safety.maxDeletesPerRepository: 0 is not allowed",
    ),
    (
        "fraction above one",
        {"version": 1, "rules": [{"repositories": ["a"]}], "safety": {"maxDeleteFraction": 1.5}},
        "safety.maxDeleteFraction: 1.5 is not allowed; use a number greater than 0 and at most 1",
    ),
    (
        "unknown safety field",
        {"version": 1, "rules": [{"repositories": ["a"]}], "safety": {"maxDeletes": 5}},
        "safety: unknown field 'maxDeletes'",
    ),
    (
        "keepLatest above a million",
        {"version": 1, "rules": [{"repositories": ["a"], "keepLatest": 1_000_001}]},
        "rules[0].keepLatest: 1000001 is not a whole number >= 0 and at most 1000000",
    ),
    (
        "maxDeletesPerRepository above a million",
        {
            "version": 1,
            "rules": [{"repositories": ["a"]}],
            "safety": {"maxDeletesPerRepository": 1_000_001},
        },
        "safety.maxDeletesPerRepository: 1000001 is not allowed; use a whole number >= 1 and at "
        "most 1000000",
    ),
]


@pytest.mark.parametrize(("source", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_every_mistake_names_where_it_is_and_what_is_allowed(source: object, message: str) -> None:
    """A bad policy raises PolicyError naming the rule and field, and saying what is allowed."""
    text = source if isinstance(source, str) else json.dumps(source)
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("source", "message"), [b[1:] for b in BAD[1:]], ids=[b[0] for b in BAD[1:]]
)
def test_the_schema_rejects_what_the_loader_rejects(source: object, message: str) -> None:
    """Every policy the loader refuses (bar regex syntax and name clashes) fails the schema too."""
    if "regular expression" in message or "already the name" in message:
        return
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(source)


def test_all_problems_are_reported_at_once() -> None:
    """Several mistakes give one error listing each of them."""
    with pytest.raises(PolicyError) as caught:
        load_policy(
            {
                "version": 1,
                "rules": [
                    {"repositories": ["a"], "keepLatest": -1},
                    {"name": "b", "repositories": ["b"], "minAge": "soon"},
                ],
            }
        )
    assert len(caught.value.problems) == 2
    assert "rules[0].keepLatest" in caught.value.problems[0]
    assert "rules[1] ('b').minAge" in caught.value.problems[1]


def test_a_malformed_duration_is_reported_once() -> None:
    """A bad olderThan gives one problem, not a second "missing" one."""
    with pytest.raises(PolicyError) as caught:
        load_policy(
            {"version": 1, "rules": [{"repositories": ["a"], "untagged": {"olderThan": "x"}}]}
        )
    assert len(caught.value.problems) == 1


def test_duplicate_keys_in_the_json_text_are_an_error() -> None:
    """Two equal keys in one object are refused instead of silently keeping the last."""
    text = '{"version": 1, "rules": [{"repositories": ["a"], "keepTags": ["v*"], "keepTags": []}]}'
    with pytest.raises(PolicyError, match="'keepTags' appears twice"):
        load_policy(text)


def test_deeply_nested_json_is_a_policy_error():
    """JSON nested beyond the parser's recursion limit is reported, not a crash."""
    with pytest.raises(PolicyError, match="nested too deeply"):
        load_policy("[" * 100_000 + "]" * 100_000)


HUGE = "9" * 5000
# (where the huge number is, the message it gives)
HUGE_NUMBERS = [
    (
        f'{{"version": 1, "rules": [{{"repositories": ["a"], "keepLatest": {HUGE}}}]}}',
        "rules[0].keepLatest: a 5000-digit number is not a whole number >= 0 and at most 1000000",
    ),
    (
        f'{{"version": 1, "rules": [{{"repositories": ["a"], "keepLatest": -{HUGE}}}]}}',
        "rules[0].keepLatest: a 5000-digit number is not a whole number",
    ),
    (
        f'{{"version": {HUGE}, "rules": [{{"repositories": ["a"]}}]}}',
        "version: a 5000-digit number is not supported",
    ),
    (
        '{"version": 1, "rules": [{"repositories": ["a"]}], '
        f'"safety": {{"maxDeletesPerRepository": {HUGE}}}}}',
        "safety.maxDeletesPerRepository: a 5000-digit number is not allowed",
    ),
    (
        f'{{"version": 1, "rules": [{{"repositories": ["a"], "minAge": {HUGE}}}]}}',
        "rules[0].minAge: a 5000-digit number is not a duration string",
    ),
]


@pytest.mark.parametrize(("text", "message"), HUGE_NUMBERS)
def test_a_number_with_thousands_of_digits_is_a_policy_error(text: str, message: str) -> None:
    """A number past Python's 4300-digit int limit names its field instead of crashing json."""
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    assert message in str(caught.value)


def test_a_huge_number_in_a_parsed_mapping_is_shown_bounded() -> None:
    """A mapping holding an int too long to print gives a message, not a ValueError."""
    huge = 10**5000
    with pytest.raises(PolicyError, match=r"rules\[0\]\.keepLatest: a 5001-digit number"):
        load_policy({"version": 1, "rules": [{"repositories": ["a"], "keepLatest": huge}]})


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"version": 1, "rules": [{"name": "\\ud800", "repositories": ["a"]}]}', "rules[0].name"),
        (
            '{"version": 1, "rules": [{"repositories": ["regex:\\udfff"]}]}',
            "rules[0].repositories[0]",
        ),
        ('{"version": 1, "rules": [{"repositories": ["a"], "\\ud800": 1}]}', "rules[0]"),
        (
            '{"version": 1, "description": "x\\udc00y", "rules": [{"repositories": ["a"]}]}',
            "description",
        ),
    ],
)
def test_a_lone_surrogate_is_a_policy_error_naming_where(text: str, where: str) -> None:
    """A `\\ud800` escape without its pair is not text: refused, naming the field."""
    with pytest.raises(PolicyError) as caught:
        load_policy(text)
    assert f"{where}: " in str(caught.value)
    assert "lone surrogate" in str(caught.value)

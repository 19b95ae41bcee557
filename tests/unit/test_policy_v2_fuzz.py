"""Hostile version 2 policies: whatever the keep clauses, delete entries and referrer rules
hold, `load_policy` loads or raises `PolicyError` whose every problem is printable and bounded,
and what loads plans without raising (hypothesis, derandomized)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acr_core.planning.planner import plan
from acr_core.planning.policy import Policy, PolicyError, load_policy
from tests.reliability.test_policies_fuzz import durations, json_values, numbers, patterns
from tests.unit.planner_fixtures import NOW
from tests.unit.test_planner_properties import worlds

MAX_PROBLEM_LENGTH = 700
anything = json_values | numbers
group_patterns = st.sampled_from(
    ["regex:^(?P<b>[a-z]+)-[0-9]+$", "regex:(?P<b>x)?y", "regex:(?<b>.*)", "pr-*", "regex:("]
)
clauses = st.fixed_dictionaries(
    {},
    optional={
        "tags": st.lists(patterns | group_patterns, max_size=3) | anything,
        "newest": st.integers(-1, 4) | anything,
        "per": st.sampled_from(["b", "version", "1x", "", "b" * 200]) | anything,
        "orderBy": st.sampled_from(["time", "semver", "name"]) | anything,
        "pushedWithin": durations | anything,
        "previousDigest": anything,  # a misspelling
    },
)
olderthans = st.fixed_dictionaries({}, optional={"olderThan": durations | anything}) | anything
rules = st.fixed_dictionaries(
    {"name": st.text("abc", min_size=1, max_size=3), "repositories": st.just(["app"])},
    optional={
        "keep": st.lists(clauses | anything, max_size=4) | anything,
        "delete": st.fixed_dictionaries(
            {}, optional={"tagged": olderthans, "untagged": olderthans, "old": anything}
        )
        | anything,
        "referrers": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "artifactType": st.sampled_from(["application/x", ""]) | anything,
                    "keepNewest": st.integers(-1, 3) | anything,
                    "olderThan": durations | anything,
                },
            )
            | anything,
            max_size=3,
        )
        | anything,
        "minAge": st.sampled_from(["0s", "1h"]) | durations,
        "keepLatest": anything,
    },
)
QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(st.lists(rules, min_size=1, max_size=2), st.sampled_from([2, 2, 1, 3]))
def test_a_hostile_v2_policy_loads_or_names_its_problems(rules: list[Any], version: int) -> None:
    """Loading never raises anything but PolicyError, whose lines print and stay short."""
    document = {"version": version, "rules": rules}
    for source in (document, json.dumps(document)):
        problems = _problems(source)
        assert problems is None or problems
        for line in problems or ():
            line.encode("utf-8")
            assert len(line) <= MAX_PROBLEM_LENGTH, line


def _problems(source: Any) -> tuple[str, ...] | None:
    try:
        assert isinstance(load_policy(source), Policy)
    except PolicyError as exc:
        return exc.problems
    return None


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=QUIET)
@given(rules, worlds())
def test_whatever_loads_plans(rule: dict[str, Any], world: Any) -> None:
    """A v2 policy that loads plans any registry without raising."""
    try:
        policy = load_policy({"version": 2, "rules": [rule]})
    except PolicyError:
        return
    plan([world.snapshot], policy, NOW)

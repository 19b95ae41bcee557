"""`migrate`: a v1 policy's v2 form validates, means the same rules, and plans the same."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from acr_core.planning.migrate import migrate, migrate_text
from acr_core.planning.plan import RepositoryPlan
from acr_core.planning.planner import plan
from acr_core.planning.policy import Policy, PolicyError, load_policy
from tests.unit.planner_fixtures import NOW
from tests.unit.test_planner_properties import World, worlds

ROOT = Path(__file__).resolve().parents[2]


def same_rules(v1: Policy, v2: Policy) -> bool:
    """The two policies load into the same model, but for the version the reasons are worded in."""
    return (
        v2.version == 2
        and v2.safety == v1.safety
        and all(replace(new, version=1) == old for new, old in zip(v2.rules, v1.rules, strict=True))
    )


def test_the_readme_policy_becomes_its_v2_form() -> None:
    """Each v1 field becomes its v2 counterpart; defaults are written out, $schema kept."""
    v1 = {
        "$schema": "../acr_core/planning/policy.schema.json",
        "version": 1,
        "rules": [
            {
                "name": "services",
                "repositories": ["services/**"],
                "keepLatest": 10,
                "keepTags": ["latest", "regex:^v[0-9]+\\.[0-9]+\\.[0-9]+$"],
                "lockTags": ["regex:^v[0-9]+\\.[0-9]+\\.[0-9]+$"],
                "minAge": "1d",
                "untagged": {"olderThan": "7d"},
            }
        ],
        "safety": {"maxDeletesPerRepository": 500},
    }
    assert migrate(json.dumps(v1)) == {
        "$schema": "../acr_core/planning/policy.schema.json",
        "version": 2,
        "rules": [
            {
                "name": "services",
                "repositories": ["services/**"],
                "minAge": "1d",
                "keep": [
                    {"tags": ["latest", "regex:^v[0-9]+\\.[0-9]+\\.[0-9]+$"]},
                    {"newest": 10},
                ],
                "delete": {"tagged": {"olderThan": "0s"}, "untagged": {"olderThan": "7d"}},
                "lockTags": ["regex:^v[0-9]+\\.[0-9]+\\.[0-9]+$"],
            }
        ],
        "safety": {"maxDeletesPerRepository": 500, "maxDeleteFraction": 0.9},
    }


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"repositories": ["a"]}, {}),
        ({"repositories": ["a"], "keepTags": []}, {}),
        (
            {"repositories": ["a"], "keepLatest": 0},
            {"keep": [{"newest": 0}], "delete": {"tagged": {"olderThan": "0s"}}},
        ),
        (
            {"untagged": {"olderThan": "1d"}, "repositories": ["a"]},
            {"delete": {"untagged": {"olderThan": "1d"}}},
        ),
    ],
)
def test_empty_parts_are_left_out(rule: dict[str, Any], expected: dict[str, Any]) -> None:
    """No keep clause for an empty keepTags, no delete without keepLatest or untagged."""
    (migrated,) = migrate(json.dumps({"version": 1, "rules": [rule]}))["rules"]
    assert migrated == {"name": "rules[0]", "repositories": ["a"], "minAge": "1h", **expected}


def test_the_example_policy_migrates_to_the_same_rules() -> None:
    """examples/policy.json in v2 validates and loads into the same rules as in v1, and the
    text is the document `migrate` returns."""
    source = (ROOT / "examples" / "policy.json").read_text()
    assert same_rules(load_policy(source), load_policy(migrate_text(source)))
    assert json.loads(migrate_text(source)) == migrate(source)


def test_a_v2_or_invalid_policy_is_refused() -> None:
    """Migrating a v2 policy, or an invalid one, raises PolicyError saying why."""
    v2 = {"version": 2, "rules": [{"repositories": ["a"], "keep": [{"newest": 1}]}]}
    with pytest.raises(PolicyError, match="already 2; there is nothing to migrate"):
        migrate(json.dumps(v2))
    with pytest.raises(PolicyError, match="keepLatest"):
        migrate(json.dumps({"version": 1, "rules": [{"repositories": ["a"], "keepLatest": -1}]}))


def _outcome(repo_plan: RepositoryPlan) -> tuple[object, ...]:
    """A plan without its wording: each action in order, each kept digest, and blocked."""
    actions = tuple(
        (a.kind, a.digest, a.tags, a.size_in_bytes, a.cascades, a.after, a.rule)
        for a in repo_plan.actions
    )
    return actions, tuple(k.digest for k in repo_plan.kept), repo_plan.blocked is None


@settings(max_examples=150, deadline=None, derandomize=True)
@given(world=worlds())
def test_the_migrated_policy_plans_the_same_on_random_registries(world: World) -> None:
    """On random repositories, the v2 form deletes, locks and keeps exactly what v1 does."""
    v1 = world.policy()
    source = json.dumps(
        {
            "version": 1,
            "rules": [{"name": "r", "repositories": ["app"], **world.rule}],
            "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
        }
    )
    v2 = load_policy(migrate_text(source))
    assert same_rules(v1, v2)
    protect = {"app": world.protect}
    (old,) = plan([world.snapshot], v1, NOW, protect=protect).repositories
    (new,) = plan([world.snapshot], v2, NOW, protect=protect).repositories
    assert _outcome(new) == _outcome(old)

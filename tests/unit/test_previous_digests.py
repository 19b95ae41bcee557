"""The `previousDigests` keep clause: its format, and what the planner keeps with it."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acr_core.history.model import DEPTH, Observation
from acr_core.history.store import TableHistory
from acr_core.planning.document import policy_document
from acr_core.planning.plan import Plan
from acr_core.planning.planner import plan
from acr_core.planning.policy import Policy, PolicyError, PreviousDigests, load_policy
from acr_core.planning.previous import TagHistory
from acr_core.planning.rules import MAX_PREVIOUS_DIGESTS
from acr_core.run.remember import recall
from acr_core.storage.tables import MemoryTable
from tests.unit.planner_fixtures import NOW, RepoBuilder

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "acr_core" / "planning" / "policy.schema.json").read_text())
)
OLD = timedelta(days=30)


def policy(*keep: dict[str, Any], untagged: str = "1d") -> dict[str, Any]:
    return {
        "version": 2,
        "rules": [
            {
                "name": "apps",
                "repositories": ["app", "other"],
                "keep": list(keep),
                "delete": {"untagged": {"olderThan": untagged}},
            }
        ],
        "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
    }


PROD3 = {"previousDigests": {"tags": ["prod"], "count": 3}}


def deleted(result: Plan, b: RepoBuilder) -> set[str]:
    return {b.keys[a.digest] for a in result.repositories[0].deletions}


def kept_reasons(result: Plan, b: RepoBuilder) -> dict[str, str]:
    return {b.keys[k.digest]: k.reason for k in result.repositories[0].kept}


# --- the format ------------------------------------------------------------------------------


def test_the_clause_loads_with_its_tags_and_count() -> None:
    """A previousDigests clause loads as its own kind of keep clause, with a short rendering."""
    clauses = {"tags": ["latest"]}, {"previousDigests": {"tags": ["prod", "stag*"], "count": 3}}
    loaded = load_policy(policy(*clauses))
    (rule,) = loaded.rules
    clause = rule.keep[1]
    assert isinstance(clause, PreviousDigests)
    assert clause.count == 3
    assert clause.tags.matches("staging")
    assert clause.describe() == "keep[1]: previous 3 digests of prod, stag*"
    assert rule.previous_digests == (clause,)
    assert SCHEMA.is_valid(policy(PROD3))


BAD = [
    (
        {"previousDigests": {"tags": ["prod"], "count": 0}},
        "count: 0 is not a whole number from 1 to 20",
    ),
    ({"previousDigests": {"tags": ["prod"], "count": 21}}, "previousDigests.count: 21 is not"),
    ({"previousDigests": {"tags": ["prod"]}}, "previousDigests.count: missing"),
    ({"previousDigests": {"count": 3}}, "previousDigests.tags: missing"),
    ({"previousDigests": {"tags": [], "count": 3}}, "must list at least one pattern"),
    ({"previousDigests": {"tags": ["prod"], "count": 3, "newest": 1}}, "unknown field 'newest'"),
    ({"previousDigests": {"tags": ["prod"], "count": 3}, "tags": ["x"]}, "unknown field 'tags'"),
    ({"previousDigests": ["prod"]}, "must be an object such as"),
]


@pytest.mark.parametrize(("clause", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_clause_is_refused_naming_its_field(clause: dict[str, Any], message: str) -> None:
    """Each mistake names the rule, the clause and the field; the schema refuses it too."""
    with pytest.raises(PolicyError) as raised:
        load_policy(policy(clause))
    problems = raised.value.problems
    assert any(p.startswith("rules[0] ('apps').keep[0]") and message in p for p in problems)
    assert not SCHEMA.is_valid(policy(clause))


def test_the_history_remembers_what_the_largest_count_asks() -> None:
    """The history keeps at least as many digests per tag as a clause may ask for."""
    assert DEPTH >= MAX_PREVIOUS_DIGESTS


# --- what the planner keeps ------------------------------------------------------------------


def moved_prod(b: RepoBuilder) -> TagHistory:
    """prod pointed to p1, p2, p3, p4 and now cur; u was never tagged prod."""
    for key in ("p1", "p2", "p3", "p4", "u"):
        b.image(key, age=OLD)
    b.image("cur", "prod", age=OLD)
    return TagHistory({"prod": tuple(b.digest(k) for k in ("cur", "p4", "p3", "p2", "p1"))})


def run(b: RepoBuilder, source: dict[str, Any], history: dict[str, TagHistory] | None) -> Plan:
    loaded: Policy = load_policy(source)
    return plan([b.build()], loaded, NOW, history=history)


def test_the_last_digests_before_the_current_one_are_kept() -> None:
    """count 3 keeps the three digests prod pointed to last before cur; older ones and other
    untagged images go."""
    b = RepoBuilder()
    history = moved_prod(b)
    result = run(b, policy(PROD3), {"app": history})
    assert deleted(result, b) == {"p1", "u"}
    why = kept_reasons(result, b)
    assert "keep[0]: previous 3 digests of prod: prod pointed to it just before" in why["p4"]
    assert "3 digests back" in why["p2"]
    assert result.repositories[0].blocked is None


def test_without_the_clause_the_previous_digests_are_deleted() -> None:
    """The same registry without the clause deletes every old untagged image (the control)."""
    b = RepoBuilder()
    history = moved_prod(b)
    result = run(b, policy({"tags": ["prod"]}), {"app": history})
    assert deleted(result, b) == {"p1", "p2", "p3", "p4", "u"}


def test_the_listing_decides_which_digest_is_current() -> None:
    """When the history's newest digest is not where the tag points now (clocks that disagree),
    every digest but the listed one counts as earlier."""
    b = RepoBuilder()
    for key in ("a", "c"):
        b.image(key, age=OLD)
    b.image("b", "prod", age=OLD)
    history = TagHistory({"prod": (b.digest("a"), b.digest("b"), b.digest("c"))})
    result = run(b, policy({"previousDigests": {"tags": ["prod"], "count": 2}}), {"app": history})
    assert deleted(result, b) == set()


def test_a_tag_that_no_longer_exists_keeps_its_last_digests() -> None:
    """A deleted tag has no current digest: its last `count` digests are all kept."""
    b = RepoBuilder()
    for key in ("a", "b", "c"):
        b.image(key, age=OLD)
    history = TagHistory({"prod": (b.digest("a"), b.digest("b"), b.digest("c"))})
    result = run(b, policy({"previousDigests": {"tags": ["prod"], "count": 2}}), {"app": history})
    assert deleted(result, b) == {"c"}


def test_patterns_select_the_tags_and_an_index_keeps_its_children() -> None:
    """A glob selects every matching tag's history; a kept index keeps its children."""
    b = RepoBuilder()
    b.image("amd64", age=OLD)
    b.image("arm64", age=OLD)
    b.index("old-index", ("amd64", "arm64"), age=OLD)
    b.image("old-stage", age=OLD)
    b.image("stray", age=OLD)
    b.image("now", "release-1", "staging", age=OLD)
    history = TagHistory(
        {
            "release-1": (b.digest("now"), b.digest("old-index")),
            "staging": (b.digest("now"), b.digest("old-stage")),
            "dev": (b.digest("stray"),),
        }
    )
    clause = {"previousDigests": {"tags": ["release-*", "staging"], "count": 1}}
    result = run(b, policy(clause), {"app": history})
    assert deleted(result, b) == {"stray"}


@pytest.mark.parametrize(
    ("history", "why"),
    [
        (
            {"app": TagHistory(unreadable="could not be read (offline)")},
            "could not be read (offline)",
        ),
        (None, "was not given"),
        ({"other": TagHistory()}, "was not read for this repository"),
    ],
    ids=["unreadable", "not given", "not read for the repository"],
)
def test_without_a_readable_history_the_rule_deletes_nothing(
    history: dict[str, TagHistory] | None, why: str
) -> None:
    """An unreadable or missing history blocks the repository, saying why; the plan still
    lists what would have gone."""
    b = RepoBuilder()
    moved_prod(b)
    result = run(b, policy(PROD3), history)
    (repository,) = result.repositories
    assert repository.blocked is not None
    assert why in repository.blocked
    assert "keep[0]: previous 3 digests of prod needs the tag history" in repository.blocked
    assert "nothing in app is deleted" in repository.blocked


def test_a_rule_without_the_clause_needs_no_history() -> None:
    """Rules that do not use previousDigests plan as before when no history is given."""
    b = RepoBuilder()
    moved_prod(b)
    result = run(b, policy({"tags": ["prod"]}), None)
    assert result.repositories[0].blocked is None
    assert len(result.repositories[0].deletions) == 5


def test_the_clause_is_written_back_as_it_was_read() -> None:
    """The v2 document of a loaded policy holds the clause as written, and loads back equal."""
    loaded = load_policy(policy({"tags": ["latest"]}, PROD3))
    document = policy_document(loaded)
    assert document["rules"][0]["keep"][1] == PROD3
    assert load_policy(document).rules == loaded.rules


# --- history and planner together ------------------------------------------------------------

PUSHES = st.lists(st.sampled_from(range(8)), min_size=1, max_size=30)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(pushes=PUSHES, count=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
async def test_the_plan_keeps_exactly_the_last_digests_a_tag_left(
    pushes: list[int], count: int, seed: int
) -> None:
    """prod pushed onto random images in turn, the events recorded shuffled and duplicated and
    the run's listing folded in: the plan keeps exactly the last `count` distinct images prod
    pointed to before its current one, and deletes every other untagged image."""
    b = RepoBuilder()
    keys = [f"i{n}" for n in range(8)]
    current = keys[pushes[-1]]
    for key in keys:
        b.image(key, *(("prod",) if key == current else ()), age=OLD)
    events = [
        Observation("prod", b.digest(keys[n]), NOW - OLD + timedelta(minutes=i))
        for i, n in enumerate(pushes)
    ]
    rng = random.Random(seed)
    deliveries = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(deliveries)
    store = TableHistory(MemoryTable(), registry="r")
    for event in deliveries:
        await store.record("app", [event])
    snapshot = b.build()
    history = await recall(store, {"app": snapshot}, NOW)

    source = policy({"previousDigests": {"tags": ["prod"], "count": count}})
    result = plan([snapshot], load_policy(source), NOW, history=history)

    before: list[str] = []
    for n in reversed(pushes):
        if keys[n] != current and keys[n] not in before:
            before.append(keys[n])
    assert deleted(result, b) == set(keys) - {current} - set(before[:count])

"""Policy warnings: what `validate` warns about; pattern coverage is never claimed wrongly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acr_core.planning.lint import _Budget, _tokens, covers, lint
from acr_core.planning.patterns import NameKind, PatternSet
from acr_core.planning.policy import load_policy


def _v1(*rules: dict[str, Any]) -> list[str]:
    return [str(w) for w in lint(load_policy({"version": 1, "rules": list(rules)}))]


@pytest.mark.parametrize(
    ("broad", "narrow", "expected"),
    [
        ("services/api", "services/api", True),
        ("**", "regex:^x$", True),
        ("services/**", "services/api", True),
        ("services/**", "services/*/worker", True),
        ("services/*", "services/a?i", True),
        ("*/api", "team/api", True),
        ("regex:services/.*", "services/api", True),
        ("services/*", "services/**", False),  # `**` crosses `/`, `*` does not
        ("services/*", "services/a/b", False),
        ("*", "a/*", False),
        ("services/a*", "services/*", False),
        ("regex:services/.*", "services/*", False),  # a regex is compared with names only
        ("services/?", "services/*", False),
        ("a/**", "regex:a/.*", False),  # not known: never claimed
    ],
)
def test_coverage_is_claimed_only_when_certain(broad: str, narrow: str, expected: bool) -> None:
    """`covers` says True for equal, `**`, literal and glob-subsumed patterns, and no more."""
    assert covers(broad, narrow) is expected


_GLOB = st.lists(st.sampled_from(["a", "/", "*", "**", "?"]), min_size=1, max_size=4).map("".join)
_EXPANSIONS = {"*": "ab", "**": "ab/", "?": "ab"}


def _expansion(draw: st.DrawFn, glob: str) -> str:
    """A random name the glob matches: each wildcard replaced by what it may stand for."""
    out = []
    for token in _tokens(glob):
        if token not in _EXPANSIONS:
            out.append(token)
            continue
        chars = st.sampled_from(_EXPANSIONS[token])
        size = (1, 1) if token == "?" else (0, 3)
        out.append("".join(draw(st.lists(chars, min_size=size[0], max_size=size[1]))))
    return "".join(out)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(broad=_GLOB, narrow=_GLOB, data=st.data())
def test_coverage_is_sound_on_random_globs(broad: str, narrow: str, data: st.DataObject) -> None:
    """Whenever `covers` says yes, names the narrow glob matches are matched by the broad one."""
    if "***" in broad or "***" in narrow or not covers(broad, narrow):
        return
    wide = PatternSet.compile([broad], NameKind.REPOSITORY)
    for _ in range(5):
        name = data.draw(st.composite(lambda draw: _expansion(draw, narrow))())
        assert wide.matches(name), name


def test_a_rule_behind_a_catch_all_is_reported() -> None:
    """A rule after one matching `**` can never govern anything, and the warning says why."""
    warnings = _v1(
        {"name": "all", "repositories": ["**"]},
        {"name": "api", "repositories": ["services/api", "web/*"]},
    )
    assert warnings == [
        "rules[1] ('api').repositories: this rule can never govern a repository: an earlier "
        "rule matches every name its patterns match, and the first matching rule wins "
        "('services/api' by rules[0] ('all')'s '**'; 'web/*' by rules[0] ('all')'s '**'). "
        "Move it above that rule, or narrow the earlier rule's patterns"
    ]


def test_coverage_may_come_from_several_earlier_rules() -> None:
    """Each pattern covered by some earlier rule is enough, and the warning names each."""
    warnings = _v1(
        {"name": "a", "repositories": ["services/**"]},
        {"name": "b", "repositories": ["web/*"]},
        {"name": "c", "repositories": ["services/api", "web/site"]},
    )
    assert len(warnings) == 1
    assert "'services/api' by rules[0] ('a')'s 'services/**'" in warnings[0]
    assert "'web/site' by rules[1] ('b')'s 'web/*'" in warnings[0]


def test_a_rule_with_one_pattern_of_its_own_is_not_reported() -> None:
    """One pattern not certainly covered (a regex, or a wider glob) keeps the rule alive."""
    assert (
        _v1(
            {"name": "a", "repositories": ["services/*"]},
            {"name": "b", "repositories": ["services/api", "services/**"]},
            {"name": "c", "repositories": ["regex:services/[a-z]+"]},
        )
        == []
    )


def test_tagged_deletion_without_latest_is_reported() -> None:
    """keepLatest with no pattern keeping `latest` warns; keepTags or lockTags with it do not."""
    warned = _v1({"name": "svc", "repositories": ["svc"], "keepLatest": 3})
    assert len(warned) == 1
    assert warned[0].startswith("rules[0] ('svc').keepTags: keepLatest deletes tagged images")
    assert _v1({"repositories": ["a"], "keepLatest": 3, "keepTags": ["lat*"]}) == []
    assert _v1({"repositories": ["a"], "keepLatest": 3, "lockTags": ["latest"]}) == []
    assert _v1({"repositories": ["a"], "keepTags": []}) == []  # no tagged deletion at all


@pytest.mark.parametrize(
    ("min_age", "older_than", "warned"),
    [
        ("0s", "0s", True),
        ("4m", "1m", True),
        ("0s", "5m", False),  # untagged.olderThan protects the young child as well
        ("5m", "0s", False),
        (None, "0s", False),  # the default minAge is 1h
    ],
)
def test_young_untagged_deletion_is_reported(
    min_age: str | None, older_than: str, warned: bool
) -> None:
    """Untagged deletion with minAge and olderThan under 5 minutes warns, naming minAge."""
    rule: dict[str, Any] = {"repositories": ["a"], "untagged": {"olderThan": older_than}}
    if min_age is not None:
        rule["minAge"] = min_age
    warnings = _v1(rule)
    assert [w.split(":")[0] for w in warnings] == (["rules[0].minAge"] if warned else [])


def _v2(*rules: dict[str, Any]) -> list[str]:
    return [str(w) for w in lint(load_policy({"version": 2, "rules": list(rules)}))]


@pytest.mark.parametrize(
    ("keep", "warned"),
    [
        ([{"newest": 5}], True),
        ([{"tags": ["latest"], "newest": 1}], True),  # a count keeps it only while it ranks
        ([{"tags": ["latest"], "pushedWithin": "30d"}], True),  # only while it is recent
        ([{"tags": ["lat*"]}, {"newest": 5}], False),
        ([{}], False),  # a clause without filters keeps everything
    ],
)
def test_v2_tagged_deletion_without_latest_is_reported(
    keep: list[dict[str, Any]], warned: bool
) -> None:
    """delete.tagged warns unless a clause without newest or pushedWithin keeps `latest`."""
    rule = {"name": "svc", "repositories": ["svc"], "keep": keep, "delete": {"tagged": {}}}
    warnings = _v2(rule)
    assert [w.split(":")[0] for w in warnings] == (["rules[0] ('svc').keep"] if warned else [])


def test_v2_young_untagged_deletion_and_shadowing_are_reported() -> None:
    """The v2 fields are named: delete.untagged under 5 minutes, and a shadowed rule."""
    warnings = _v2(
        {"name": "all", "repositories": ["**"], "minAge": "1m", "delete": {"untagged": {}}},
        {"name": "api", "repositories": ["services/api"]},
    )
    assert warnings[0].startswith(
        "rules[0] ('all').minAge: untagged images are deleted with minAge and "
        "delete.untagged.olderThan both under 5 minutes"
    )
    assert warnings[1].startswith("rules[1] ('api').repositories: this rule can never govern")
    assert len(warnings) == 2
    assert _v2({"repositories": ["a"], "delete": {"untagged": {"olderThan": "1h"}}}) == []


def test_a_spent_budget_claims_no_coverage() -> None:
    """Once the comparison budget is spent, coverage is "not known", so no rule is reported."""
    assert covers("services/**", "services/*/api", _Budget(10**6))
    assert not covers("services/**", "services/*/api", _Budget(10))
    assert not covers("services/**", "services/api", _Budget(10))
    assert covers("**", "services/api", _Budget(0))  # the catch-all needs no comparison

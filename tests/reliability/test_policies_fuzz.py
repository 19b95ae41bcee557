"""Hostile policies: whatever a policy file holds, `load_policy` raises only `PolicyError`, and
`acr-cleanup validate` and `plan` exit with a documented code and name what is wrong.

Policies are drawn by hypothesis: random JSON for every field, unknown fields, wrong types,
huge and negative numbers, lone surrogates, huge strings, catastrophic and broken regexes,
then written out as JSON text that may be mangled further (a 5,000-digit literal, NaN, nesting
a hundred thousand deep, duplicate keys, a byte-order mark, bytes that are not UTF-8, a cut).
`plan` runs in-process against the emulator served over HTTPS, as tests/e2e/test_cli.py does.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from acr_core.cli import EXIT_BLOCKED, EXIT_DONE, EXIT_NOTHING_COVERED, EXIT_USAGE, main
from acr_core.planning.policy import Policy, PolicyError, load_policy
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from tests.reliability.conftest import CHAOS

QUIET = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
# A problem line quotes at most a bounded piece of what it complains about.
MAX_PROBLEM_LENGTH = 700

lone_surrogates = st.sampled_from(["\ud800", "a\udfffb", "\udc00" * 3, "x\ud83d"])
texts = st.text(max_size=30) | lone_surrogates
huge_strings = st.builds(
    lambda piece, count: piece * count,
    st.text(min_size=1, max_size=3) | lone_surrogates,
    st.sampled_from([200, 5_000, 200_000]),
)
numbers = (
    st.integers(-3, 12)
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([10**6, 10**6 + 1, 10**30, -(10**30), 2**63])
    | st.floats()
    | st.sampled_from([0.0, 0.5, 0.9, 1.0, 1.5, -0.1, math.inf, math.nan, 1e308])
    | st.booleans()
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)
patterns = (
    st.sampled_from(
        [
            "**",
            "*",
            "apps/**",
            "apps/*",
            "v*",
            "v*.*.*",
            "",
            "[a-",
            "***",
            "a/../b",
            "/apps",
            "APPS/**",
            "regex:(a+)+$",
            "regex:(a|aa)*c",
            "regex:(x+x+)+y",
            "regex:" + "a?" * 40 + "a" * 40,
            "regex:(",
            "regex:\\",
            "regex:[",
            "regex:\\1",
            "regex:(?=a)",
            "regex:(?P<x>a)(?P=x)",
            "regex:a{1000}{1000}",
            "regex:(?i)V[0-9]+",
            "regex:.*",
            "regex:",
        ]
    )
    | texts
    | huge_strings
)
durations = (
    st.sampled_from(
        ["1h", "7d", "30m", "0s", "-1d", "99999999999999999d", "1e9h", "P1D", "1.5h", "", "h"]
    )
    | texts
    | numbers
)
unknown = st.text(min_size=1, max_size=12).filter(lambda k: not k[0].islower())
rules = st.fixed_dictionaries(
    {},
    optional={
        "name": texts | huge_strings | json_values,
        "description": json_values | huge_strings,
        "repositories": st.lists(patterns, max_size=4) | json_values,
        "keepLatest": numbers | json_values,
        "keepTags": st.lists(patterns, max_size=4) | json_values,
        "lockTags": st.lists(patterns, max_size=4) | json_values,
        "minAge": durations | json_values,
        "untagged": st.fixed_dictionaries({}, optional={"olderThan": durations}) | json_values,
        "keepTag": json_values,  # a misspelling
    },
)
policies = (
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.sampled_from([1, 1, 1, 2, 0, "1", True, 1.0]) | json_values,
            "rules": st.lists(rules, max_size=4) | json_values,
            "safety": st.fixed_dictionaries(
                {},
                optional={
                    "maxDeletesPerRepository": numbers | json_values,
                    "maxDeleteFraction": numbers | json_values,
                    "maxDeletes": json_values,
                },
            )
            | json_values,
            "$schema": json_values,
            "description": json_values,
        },
    )
    | json_values
)
# Policies that are often valid, so that `plan` gets past parsing and reads the registry.
good_patterns = st.sampled_from(
    ["**", "apps/**", "apps/*", "base/**", "v*", "regex:(a+)+$", "regex:apps/.*", "regex:v[0-9]"]
)
plausible_rules = st.fixed_dictionaries(
    {
        "name": st.text("abcdefgh-", min_size=1, max_size=10),
        "repositories": st.lists(good_patterns | patterns, min_size=1, max_size=3),
    },
    optional={
        "keepLatest": st.integers(0, 5) | numbers,
        "keepTags": st.lists(good_patterns | patterns, max_size=3),
        "lockTags": st.lists(good_patterns, max_size=3),
        "minAge": st.sampled_from(["0s", "1h", "7d"]) | durations,
        "untagged": st.fixed_dictionaries({"olderThan": st.sampled_from(["1d", "0s"])}),
    },
)
plausible = st.fixed_dictionaries(
    {"version": st.just(1), "rules": st.lists(plausible_rules, min_size=1, max_size=3)},
    optional={
        "safety": st.fixed_dictionaries(
            {}, optional={"maxDeletesPerRepository": numbers, "maxDeleteFraction": numbers}
        )
    },
)
MANGLINGS = ("none", "long literal", "nan", "deep", "duplicate", "bom", "not utf-8", "cut")


@st.composite
def policy_files(draw: st.DrawFn, drawn: st.SearchStrategy[Any] = policies) -> tuple[Any, bytes]:
    """A drawn policy and the bytes of the file that holds it, mangled or not."""
    policy = draw(drawn)
    text = json.dumps(policy, allow_nan=True)
    mangling = draw(st.sampled_from(MANGLINGS) if drawn is policies else st.just("none"))
    if mangling == "long literal":
        text = text.replace("1", "1" * 5000, 1) if "1" in text else "1" * 5000
    elif mangling == "nan":
        text = text.replace("0", "NaN", 1) if "0" in text else "-Infinity"
    elif mangling == "deep":
        depth = draw(st.sampled_from([500, 990, 5_000, 100_000]))
        text = '{"version": 1, "rules": ' + "[" * depth + "]" * depth + "}"
    elif mangling == "duplicate" and text.startswith("{") and len(text) > 2:
        text = '{"version": 1, "version": 1, ' + text[1:]
    elif mangling == "bom":
        text = "\ufeff" + text
    elif mangling == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    # json.dumps escapes lone surrogates, so the text itself always encodes.
    data = text.encode("utf-8")
    if mangling == "not utf-8":
        data = b"\xff\xfe" + data[:10] + b"\xc3\x28" + data[10:]
    return policy, data


def well_formed(lines: list[str]) -> bool:
    """Printable anywhere (no lone surrogate) and bounded."""
    for line in lines:
        line.encode("utf-8")  # raises on a lone surrogate, as a real terminal's stream would
        if len(line) > MAX_PROBLEM_LENGTH:
            return False
    return True


@pytest.fixture(scope="module")
def server() -> Iterator[ServerInfo]:
    emulator = Emulator(EmulatorConfig())
    emulator.seed(
        {
            "repositories": [
                {"name": name, "manifests": [{"id": f"{name}-{i}", "tags": [f"v{i}"]}]}
                for name in ("apps/web", "apps/api", "base/os")
                for i in range(3)
            ]
        }
    )
    with emulator.serve_in_thread() as served:
        yield served


@settings(max_examples=3000 if CHAOS else 200, deadline=None, suppress_health_check=QUIET)
@given(drawn=policy_files() | policy_files(plausible))
def test_load_policy_raises_nothing_but_policy_error(drawn):
    """Text or mapping, a hostile policy loads or raises PolicyError with printable problems."""
    policy, data = drawn
    sources: list[Any] = [policy] if isinstance(policy, dict) else []
    with contextlib.suppress(UnicodeDecodeError):
        sources.append(data.decode("utf-8"))
    for source in sources:
        problems = _problems(source)
        event("PolicyError" if problems else "valid")
        assert problems is None or (problems and well_formed(problems))


def _problems(source: Any) -> list[str] | None:
    """None when `source` loads; else the PolicyError's problems and its message."""
    try:
        assert isinstance(load_policy(source), Policy)
    except PolicyError as exc:
        str(exc).encode("utf-8")  # the whole message prints too
        return list(exc.problems)
    return None


@settings(max_examples=1000 if CHAOS else 120, deadline=None, suppress_health_check=QUIET)
@given(drawn=policy_files())
def test_validate_exits_0_or_2_and_names_each_problem(drawn, tmp_path, capsys):
    """`acr-cleanup validate` never shows a traceback: 0, or 2 with one line per problem."""
    _, data = drawn
    path = tmp_path / "policy.json"
    path.write_bytes(data)
    capsys.readouterr()

    code = main(["validate", str(path)], environ={})

    out, err = capsys.readouterr()
    assert code in (EXIT_DONE, EXIT_USAGE)
    assert "Traceback" not in out + err
    assert well_formed((out + err).splitlines())
    event(f"validate exit {code}")
    if code == EXIT_USAGE:
        named = [line for line in (out + err).splitlines() if not line.endswith("docs/policy.md")]
        assert named, out + err


@settings(max_examples=200 if CHAOS else 40, deadline=None, suppress_health_check=QUIET)
@given(drawn=policy_files() | policy_files(plausible))
def test_plan_exits_with_a_documented_code_and_names_the_problem(drawn, server, tmp_path, capsys):
    """`acr-cleanup plan` with a hostile policy exits 0, 2, 3 or 4 with no traceback, and on 2
    says on stderr what is wrong."""
    _, data = drawn
    path = tmp_path / "policy.json"
    path.write_bytes(data)
    capsys.readouterr()
    argv = ["plan", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}

    code = main([*argv, "--policy", str(path)], environ=environ)

    out, err = capsys.readouterr()
    assert code in (EXIT_DONE, EXIT_USAGE, EXIT_BLOCKED, EXIT_NOTHING_COVERED), out + err
    event(f"plan exit {code}")
    assert "Traceback" not in out + err
    assert well_formed((out + err).splitlines())
    if code == EXIT_USAGE:
        assert err.strip(), out
        assert not out


def test_a_catastrophic_regex_is_valid_and_matches_a_long_name_at_once() -> None:
    """`(a+)+$`, exponential for a backtracking engine, is linear under RE2, so it is allowed."""
    policy = {"version": 1, "rules": [{"name": "all", "repositories": ["regex:(a+)+$"]}]}
    rule = load_policy(json.dumps(policy)).rules[0]
    assert not rule.repositories.matches("a" * 250 + "!")
    assert rule.repositories.matches("a" * 250)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _rule(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "rules": [{"name": "a", "repositories": ["apps/**"], **fields}]}


KNOWN_HOSTILE: dict[str, dict[str, Any]] = {
    "a regex nested 100,000 deep": _rule(repositories=["regex:" + "(" * 100_000]),
    "a backreference under 5,000 groups": _rule(
        repositories=["regex:" + "(a" * 5_000 + ")" * 5_000 + "\\1"]
    ),
    "a megabyte glob": _rule(keepTags=[":" * 1_000_000]),
    "a glob of characters repr writes ten wide": _rule(keepTags=["\U00018cd6" * 1_000]),
    "a megabyte duration": _rule(minAge="x" * 1_000_000),
    "a megabyte rule name": {"version": 1, "rules": [{"name": "n" * 1_000_000}]},
    "a megabyte unknown field": {"version": 1, "rules": [], "k" * 1_000_000: 1},
    "a value nested deeper than repr goes": _rule(keepLatest=_nested(100_000)),
}


@pytest.mark.parametrize("case", list(KNOWN_HOSTILE))
def test_known_hostile_policies_are_policy_errors_with_short_lines(case):
    """The hostile policies the properties found raise PolicyError, each line bounded."""
    with pytest.raises(PolicyError) as raised:
        load_policy(KNOWN_HOSTILE[case])
    assert well_formed(list(raised.value.problems))

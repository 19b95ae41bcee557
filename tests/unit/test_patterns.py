"""The pattern and duration grammars (docs/policy.md, "Patterns" and "Durations")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from acr_core.planning import patterns as patterns_module
from acr_core.planning.patterns import (
    NameKind,
    PatternError,
    PatternSet,
    format_duration,
    parse_duration,
)

REPO = NameKind.REPOSITORY
TAG = NameKind.TAG


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("api", "api", True),
        ("api", "api2", False),
        ("api", "team/api", False),
        ("services/*", "services/api", True),
        ("services/*", "services/api/v2", False),
        ("services/*", "services", False),
        ("services/**", "services/api/v2", True),
        ("services/**", "services", False),
        ("**/api", "a/b/api", True),
        ("**/api", "api", False),
        ("**", "anything/at/all", True),
        ("team-?", "team-a", True),
        ("team-?", "team-ab", False),
        ("team?x", "team/x", False),
        ("a.b", "axb", False),
        ("regex:svc-[0-9]+", "svc-12", True),
        ("regex:svc-[0-9]+", "svc-12-old", False),
        ("regex:svc-[0-9]+", "my-svc-12", False),
        ("regex:a|b", "ab", False),
        ("regex:a|b", "b", True),
    ],
)
def test_repository_patterns_match_whole_names(pattern: str, name: str, matches: bool) -> None:
    """Globs and regexes match the whole repository name; `*` stops at `/`, `**` crosses it."""
    assert PatternSet.compile([pattern], REPO).matches(name) is matches


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("v*", "v1.2.3", True),
        ("v*", "dev", False),
        ("v*.*.*", "v1.2.3", True),
        ("v*.*.*", "v1.2", False),
        ("latest", "Latest", False),
        ("*-arm64", "1.0-arm64", True),
        ("regex:pr-\\d+", "pr-17", True),
        ("regex:hello", "say-hello-world", False),
    ],
)
def test_tag_patterns_match_whole_tags_case_sensitively(
    pattern: str, name: str, matches: bool
) -> None:
    """Tag patterns use the same grammar; matching is anchored and case-sensitive."""
    assert PatternSet.compile([pattern], TAG).matches(name) is matches


def test_a_set_matches_when_any_pattern_does_and_reports_which() -> None:
    """A pattern set is an OR, and `first_match` names the first pattern that matched."""
    patterns = PatternSet.compile(["latest", "v*", "regex:rel-.*"], TAG)
    assert patterns.first_match("v2") == "v*"
    assert patterns.first_match("rel-1") == "regex:rel-.*"
    assert patterns.first_match("dev") is None
    assert not PatternSet.compile([], TAG).matches("anything")


@pytest.mark.parametrize(
    ("patterns", "name", "first"),
    [
        (["b", "a", "b"], "b", "b"),
        (["b", "a", "b"], "a", "a"),
        (["latest"], "Latest", None),
        (["a.b"], "axb", None),
        (["latest"], "latest\udc80", None),
        (["1.0", "v*"], "1.0", "1.0"),
        (["v*", "v1"], "v1", "v*"),
        (["v1", "v*"], "v1", "v1"),
        (["regex:v1", "v1"], "v1", "regex:v1"),
    ],
)
def test_sets_of_plain_names_and_repeated_questions_answer_as_re2_does(
    patterns: list[str], name: str, first: str | None
) -> None:
    """A set of globs without wildcards is matched by a dictionary, and answers are remembered;
    both give the first pattern as written, as the RE2 set does."""
    compiled = PatternSet.compile(patterns, TAG)
    assert compiled.first_match(name) == first
    assert compiled.first_match(name) == first  # remembered
    assert compiled.first_match("-" + name) is None


def test_remembered_answers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm worker plans many repositories: the answers a set keeps are bounded."""
    monkeypatch.setattr(patterns_module, "_KNOWN_NAMES", 4)
    compiled = PatternSet.compile(["v*"], TAG)
    for n in range(10):
        assert compiled.first_match(f"v{n}") == "v*"
        assert compiled.first_match(f"x{n}") is None
        assert len(compiled._known) <= 4


@pytest.mark.parametrize(
    ("patterns", "name", "first"),
    [
        (["regex:(b)", "regex:(a)(b)?"], "a", "regex:(a)(b)?"),
        (["regex:(?P<v>x)", "regex:(?P<v>y)"], "y", "regex:(?P<v>y)"),
        (["latest", "regex:(?i)rel-.*"], "REL-1", "regex:(?i)rel-.*"),
    ],
)
def test_regexes_in_one_set_do_not_interfere(patterns: list[str], name: str, first: str) -> None:
    """Groups, named groups and inline flags of one regex keep their meaning inside a set."""
    assert PatternSet.compile(patterns, TAG).first_match(name) == first


@pytest.mark.parametrize(
    ("pattern", "kind", "message"),
    [
        ("", REPO, "empty pattern"),
        ("a/***", REPO, "'***' is ambiguous"),
        ("Team/*", REPO, "lowercase"),
        ("v[0-9]*", TAG, "'[' can never appear in a tag name"),
        ("a b", TAG, "' ' can never appear"),
        ("repo:tag", REPO, "':' can never appear"),
        ("regex:", TAG, "must be followed by a regular expression"),
        ("regex:(unclosed", TAG, "not a valid regular expression"),
        (r"regex:(a)\1", TAG, "RE2"),
    ],
)
def test_bad_patterns_are_rejected_with_what_is_allowed(
    pattern: str, kind: NameKind, message: str
) -> None:
    """A pattern that cannot match anything, or is ambiguous, is an error that says why."""
    with pytest.raises(PatternError, match=message.replace("[", r"\[").replace("*", r"\*")):
        PatternSet.compile([pattern], kind)


@pytest.mark.parametrize("kind", [REPO, TAG])
def test_a_catastrophic_regex_matches_long_names_in_linear_time(kind: NameKind) -> None:
    """`(a+)+$`, exponential for a backtracking engine, decides a 10,000-character name at once."""
    patterns = PatternSet.compile(["regex:(a+)+$"], kind)
    assert patterns.matches("a" * 10_000)
    assert not patterns.matches("a" * 10_000 + "b")


@pytest.mark.parametrize(
    ("regex", "feature"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=v)v.*", "invalid perl operator"),
        ("(?<!rc-)v.*", "invalid perl operator"),
        ("v.*+", "bad repetition operator"),
        (r"v.*\Z", "invalid escape sequence"),
    ],
)
def test_a_regex_re2_cannot_express_is_rejected_saying_what_to_do(regex: str, feature: str) -> None:
    """Backreferences, lookaround and possessive forms are refused, naming RE2 and a way out."""
    with pytest.raises(PatternError) as caught:
        PatternSet.compile([f"regex:{regex}"], TAG)
    message = str(caught.value)
    assert "RE2" in message
    assert feature in message
    assert "rewrite" in message


@pytest.mark.parametrize(("regex", "name"), [("(?P<v>v[0-9]+)", "v1"), ("(?<v>v[0-9]+)", "v2")])
def test_named_groups_compile_in_both_spellings(regex: str, name: str) -> None:
    """RE2 accepts `(?P<name>...)` and `(?<name>...)`, so named groups keep working."""
    assert PatternSet.compile([f"regex:{regex}"], TAG).matches(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("36500d", timedelta(days=36500)),
    ],
)
def test_durations_are_a_whole_number_and_one_unit(text: str, expected: timedelta) -> None:
    """`s`, `m` (minutes), `h`, `d` and `w` with a whole number parse exactly."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "7", "d", "1.5h", "1h30m", "-1d", "+1d", "01d", "1 d", "1D", "1mo", "1y", "1M", "7days"],
)
def test_ambiguous_or_malformed_durations_are_rejected(text: str) -> None:
    """Anything but one whole number and one known unit is an error naming the units."""
    with pytest.raises(PatternError, match="whole number and one unit"):
        parse_duration(text)


def test_durations_longer_than_a_century_are_rejected() -> None:
    """A duration beyond 100 years is refused rather than overflowing (acr purge #560)."""
    with pytest.raises(PatternError, match="100 years"):
        parse_duration("36501d")
    with pytest.raises(PatternError, match="100 years"):
        parse_duration("99999999999999999999w")


@pytest.mark.parametrize("text", ["90s", "30m", "1h", "7d", "2w", "0s", "25h"])
def test_format_duration_round_trips(text: str) -> None:
    """Formatting a parsed duration gives a spelling that parses back to the same value."""
    value = parse_duration(text)
    assert parse_duration(format_duration(value)) == value

"""The run report: its JSON matches the published schema, and its numbers add up."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

import acr_core
from acr_core.planning.plan import Action, ActionKind, Kept, Plan, RepositoryPlan
from acr_core.run.executor import ActionOutcome, Outcome
from acr_core.run.report import (
    RepositoryDurations,
    RepositoryIssue,
    RunReport,
    Status,
    render_markdown,
    render_table,
)


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


SCHEMA = json.loads((Path(acr_core.__file__).parent / "run" / "report.schema.json").read_text())
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
OLD, INDEX, CHILD, SIGNATURE, KEPT = (
    digest_of(n) for n in ("old", "index", "child", "sig", "kept")
)


def _plan(*, blocked: str | None = None) -> Plan:
    actions = (
        Action(
            ActionKind.DELETE_MANIFEST,
            "app",
            OLD,
            ("1.0",),
            "11th newest; keepLatest is 10",
            "services",
            size_in_bytes=2048,
            cascades=(SIGNATURE,),
        ),
        Action(ActionKind.DELETE_MANIFEST, "app", INDEX, (), "untagged", "services", 100),
        Action(
            ActionKind.DELETE_MANIFEST,
            "app",
            CHILD,
            (),
            "child of a deleted index",
            "services",
            300,
            after=(INDEX,),
        ),
        Action(ActionKind.LOCK_TAG, "app", KEPT, ("v1.0.0",), "matches lockTags", "services"),
    )
    kept = (Kept("app", KEPT, ("latest", "v1.0.0"), "matches keepTags 'latest'", "services"),)
    return Plan((RepositoryPlan("app", "services", actions, kept, blocked=blocked),))


def _report(plan: Plan, outcomes: tuple[Outcome, ...] = (), **kwargs: object) -> RunReport:
    return RunReport(
        registry="fake.test",
        dry_run=not outcomes,
        now=NOW,
        started_at=NOW,
        plan=plan,
        outcomes=tuple(ActionOutcome(a, o) for a, o in zip(plan.actions, outcomes, strict=True))
        if outcomes
        else (),
        **kwargs,  # type: ignore[arg-type]
    )


def test_dry_run_json_matches_the_schema_and_reads_planned():
    """A dry run's JSON is valid against report.schema.json and every action is `planned`."""
    data = json.loads(_report(_plan()).to_json())
    jsonschema.validate(data, SCHEMA)
    [repository] = data["repositories"]
    assert {a["outcome"] for a in repository["actions"]} == {"planned"}
    assert data["totals"]["plannedDeletions"] == 3
    assert data["totals"]["bytesPlanned"] == 2448
    assert data["totals"]["deleted"] == 0
    assert data["status"] == "done"


def test_referrers_appear_as_cascades_not_as_deletions():
    """A signature ACR removes with its subject is listed under the subject's `cascades`."""
    data = _report(_plan()).to_dict()
    actions = data["repositories"][0]["actions"]  # type: ignore[index]
    assert SIGNATURE not in [a["digest"] for a in actions]
    assert actions[0]["cascades"] == [SIGNATURE]
    assert {"action", "repository", "digest", "tags", "reason", "rule"} <= set(actions[0])


def test_applied_counts_and_bytes_follow_the_outcomes():
    """Only applied deletions count as deleted and add their bytes; gone, skipped are separate."""
    outcomes = (Outcome.APPLIED, Outcome.ALREADY_GONE, Outcome.SKIPPED_CHANGED, Outcome.APPLIED)
    report = _report(_plan(), outcomes)
    jsonschema.validate(report.to_dict(), SCHEMA)
    totals = report.totals
    assert (totals.deleted, totals.already_gone, totals.skipped, totals.locked) == (1, 1, 1, 1)
    assert totals.bytes_deleted == 2048
    assert report.status is Status.DONE


def test_a_failed_action_fails_the_run():
    """One failed action makes the run's status `failed`."""
    outcomes = (Outcome.APPLIED, Outcome.FAILED, Outcome.SKIPPED_DEPENDENCY, Outcome.APPLIED)
    assert _report(_plan(), outcomes).status is Status.FAILED


def test_a_blocked_repository_blocks_the_run_even_in_a_dry_run():
    """A safety limit hit makes the status `blocked`, so a pipeline can tell."""
    report = _report(_plan(blocked="11 deletions exceed maxDeletesPerRepository 10"))
    assert report.status is Status.BLOCKED
    assert report.to_dict()["totals"]["blockedRepositories"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "run_status"),
    [(Status.FAILED, Status.FAILED), (Status.GONE, Status.DONE), (Status.NOT_COVERED, Status.DONE)],
)
def test_repository_issues_are_reported(status, run_status):
    """Failed, vanished and uncovered repositories are listed; only a failure fails the run."""
    issue = RepositoryIssue("other", status, "something to say", transient=False)
    report = _report(_plan(), issues=(issue,))
    data = report.to_dict()
    jsonschema.validate(data, SCHEMA)
    repositories = json.loads(report.to_json())["repositories"]
    other = next(r for r in repositories if r["repository"] == "other")
    assert (other["status"], other["error"]) == (status.value, "something to say")
    assert report.status is run_status


def test_table_shows_each_action_its_reason_and_the_summary():
    """The table names the repository, every action with its reason, kept images, and totals."""
    text = render_table(
        _report(_plan(blocked="over the limit; raise safety.maxDeletes")), show_kept=True
    )
    assert "app  (rule services)" in text
    assert "11th newest; keepLatest is 10\n    referrer  " in text
    assert "matches keepTags 'latest'" in text
    assert "BLOCKED: over the limit" in text
    assert "would delete 0 (0 B), would lock 1, 1 kept" in text
    assert "1 repository blocked (3 deletion(s) held back)" in text
    assert "Status: blocked" in text


def test_table_summary_of_an_unblocked_dry_run_counts_bytes():
    """A dry run's summary says how much would be deleted, in bytes the manifests listed."""
    text = render_table(_report(_plan()))
    assert "would delete 3 (2.4 KiB), would lock 1, 1 kept. Status: done." in text


def _property_names(node: object) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names |= set(value)
            if key == "required" and isinstance(value, list):
                names |= set(value)
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


def test_docs_name_every_field_of_the_schema():
    """docs/cli.md mentions every field the JSON report schema defines."""
    docs = (Path(acr_core.__file__).parent.parent / "docs" / "cli.md").read_text()
    missing = sorted(n for n in _property_names(SCHEMA) if f"`{n}`" not in docs)
    assert missing == []


def test_each_repository_reports_its_own_durations_in_the_json_and_the_table():
    """Per-repository gather, plan and apply seconds appear in the JSON and under each table."""
    outcomes = (Outcome.APPLIED, Outcome.APPLIED, Outcome.APPLIED, Outcome.APPLIED)
    issue = RepositoryIssue("broken", Status.FAILED, "500 from the registry", transient=True)
    report = _report(
        _plan(),
        outcomes,
        issues=(issue,),
        repository_durations={
            "app": RepositoryDurations(gather=1.25, plan=0.0042, apply=7.5),
            "broken": RepositoryDurations(gather=30.0),
        },
    )
    data = json.loads(report.to_json())
    jsonschema.validate(data, SCHEMA)
    durations = {r["repository"]: r["durations"] for r in data["repositories"]}
    assert durations == {
        "app": {"gatherSeconds": 1.25, "planSeconds": 0.004, "applySeconds": 7.5},
        "broken": {"gatherSeconds": 30.0, "planSeconds": 0.0, "applySeconds": 0.0},
    }
    text = render_table(report)
    assert (
        "  3 deleted (2.4 KiB), 0 already gone, 1 locked, 1 kept, 0 skipped, 0 failed; "
        "gather 1.2 s, plan 0.0 s, apply 7.5 s\n"
    ) in text


def test_a_dry_run_table_gives_each_repository_its_counts_bytes_and_read_time():
    """Without outcomes a repository's line says what would happen, its bytes, and no apply."""
    report = _report(_plan(), repository_durations={"app": RepositoryDurations(gather=2.0)})
    text = render_table(report)
    assert "  would delete 3 (2.4 KiB), would lock 1, 1 kept; gather 2.0 s, plan 0.0 s\n" in text
    blocked = render_table(_report(_plan(blocked="over the limit")))
    assert "  3 deletion(s) held back (2.4 KiB), would lock 1, 1 kept;" in blocked


def _first_column(text: str) -> list[str]:
    """The ACTION cells of a table's action rows, indentation kept."""
    rows = [line for line in text.splitlines() if " sha256:" in line and line.startswith("  ")]
    return [line[2:].split("  sha256")[0].rstrip() for line in rows]


def test_the_table_groups_children_under_their_index_and_referrers_under_their_subject():
    """An index's children and a subject's referrers are indented under it; locks come last."""
    kinds = _first_column(render_table(_report(_plan()), show_kept=False))
    assert kinds == ["delete", "  referrer", "delete", "  delete", "lock"]
    text = render_table(_report(_plan()), show_kept=False)
    assert text.index(SIGNATURE[:19]) > text.index(OLD[:19])
    assert text.index(CHILD[:19]) > text.index(INDEX[:19])


def test_kept_manifests_are_listed_only_when_asked_for():
    """`show_kept=False` (the CLI's default) leaves kept manifests out of the table and markdown."""
    report = _report(_plan())
    assert "matches keepTags" not in render_table(report, show_kept=False)
    assert "matches keepTags" not in render_markdown(report)
    assert "keep    " in render_table(report, show_kept=True)
    assert "| keep |" in render_markdown(report, show_kept=True)


def test_the_table_ends_with_a_row_per_repository_and_the_totals():
    """After the actions, a summary table has a row per repository, issues too, and a total."""
    issue = RepositoryIssue("zeta", Status.FAILED, "500 from the registry")
    text = render_table(_report(_plan(), issues=(issue,)), show_kept=False)
    table = text[text.index("REPOSITORY") :].splitlines()
    assert table[0].split() == [
        "REPOSITORY", "RULE", "KEPT", "DELETE", "LOCK", "BYTES", "BLOCKED", "STATUS"
    ]  # fmt: skip
    assert table[1].split() == ["app", "services", "1", "3", "1", "2.4", "KiB", "-", "done"]
    assert table[2].split() == ["zeta", "-", "-", "-", "-", "-", "-", "failed"]
    assert table[3].split() == ["total", "1", "3", "1", "2.4", "KiB", "-", "failed"]


def test_a_blocked_repository_counts_its_deletions_as_held_back_in_the_summary_table():
    """A blocked repository's planned deletions go under BLOCKED, not DELETE, as in the totals."""
    text = render_table(_report(_plan(blocked="over the limit")))
    row = text[text.index("REPOSITORY") :].splitlines()[1]
    assert row.split() == ["app", "services", "1", "0", "1", "0", "B", "3", "blocked"]


def test_an_applied_summary_table_counts_what_happened():
    """Once applied, the summary table counts deleted, locked, skipped and failed actions."""
    outcomes = (Outcome.APPLIED, Outcome.ALREADY_GONE, Outcome.FAILED, Outcome.APPLIED)
    text = render_table(_report(_plan(), outcomes))
    table = text[text.index("REPOSITORY") :].splitlines()
    assert table[0].split()[2:7] == ["KEPT", "DELETED", "LOCKED", "SKIPPED", "FAILED"]
    row = ["app", "services", "1", "2", "1", "0", "1", "2.0", "KiB", "-", "failed"]
    assert table[1].split() == row


def test_markdown_has_the_summary_table_and_each_repository_folded():
    """The markdown starts with a GitHub table of repositories, then folds each one's actions."""
    text = render_markdown(_report(_plan()))
    lines = text.splitlines()
    assert lines[2] == "| repository | rule | kept | delete | lock | bytes | blocked | status |"
    assert lines[3] == "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    assert lines[4] == "| `app` | services | 1 | 3 | 1 | 2.4 KiB | - | done |"
    assert "<details><summary>app  (rule services)</summary>" in lines
    assert f"| \u21b3 referrer | `{SIGNATURE[:19]}` |  | deleted by ACR with its subject |" in lines
    assert f"| \u21b3 delete | `{CHILD[:19]}` |  | child of a deleted index |" in lines


def test_markdown_escapes_what_would_change_a_reason():
    """A pipe or a backslash in a reason stays text in markdown instead of breaking the table."""
    plan = _plan()
    [repository] = plan.repositories
    odd = replace(repository.actions[3], reason="matches 'regex:a|b\\.c'")
    plan = Plan((replace(repository, actions=(*repository.actions[:3], odd)),))
    assert "matches 'regex:a\\|b\\\\.c' |" in render_markdown(_report(plan))


def test_at_scale_the_default_output_grows_with_the_actions_not_the_kept_manifests():
    """Ten thousand kept manifests add nothing to the default table, one line each when shown."""
    [repository] = _plan().repositories
    kept = tuple(
        Kept("app", digest_of(f"kept-{i}"), (f"1.{i}",), "within keepLatest", "services")
        for i in range(10_000)
    )
    report = _report(Plan((replace(repository, kept=kept),)))
    assert len(render_table(report, show_kept=False).splitlines()) < 25
    assert len(render_markdown(report).splitlines()) < 40
    assert len(render_table(report, show_kept=True).splitlines()) > 10_000

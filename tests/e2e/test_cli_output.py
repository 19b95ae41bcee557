"""What `plan` prints by default, with `--show kept` / `--verbose`, and as `--output markdown`."""

from __future__ import annotations

import pytest

from acr_core.cli import EXIT_BLOCKED
from acr_emulator import EmulatorConfig
from tests.e2e.registry import NOW
from tests.e2e.test_cli import cli

KEPT_REASON = "protected: tag 'latest' matches keepTags pattern 'latest'"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def test_plan_by_default_lists_actions_and_a_summary_table_but_no_kept_rows(
    server, policy_file, capsys
):
    """By default the table has the deletions and locks and a row per repository, no kept rows."""
    assert cli(server, policy_file, "plan") == EXIT_BLOCKED
    out = capsys.readouterr().out
    assert KEPT_REASON not in out
    assert "\n  keep " not in out
    table = out[out.index("\nREPOSITORY") + 1 :].splitlines()
    assert [row.split()[0] for row in table[:4]] == [
        "REPOSITORY", "services/api", "services/blocked", "total"
    ]  # fmt: skip
    assert table[1].split()[2:5] == ["8", "7", "1"]  # kept, delete, lock in services/api


@pytest.mark.parametrize("flags", [("--show", "kept"), ("--verbose",)])
def test_show_kept_and_verbose_list_kept_manifests(server, policy_file, capsys, flags):
    """`--show kept` and `--verbose` add every kept manifest and why."""
    assert cli(server, policy_file, "plan", *flags) == EXIT_BLOCKED
    assert KEPT_REASON in capsys.readouterr().out


def test_output_markdown_prints_a_github_table(server, policy_file, capsys):
    """`--output markdown` prints the summary as a GitHub table and the actions folded."""
    assert cli(server, policy_file, "plan", "--output", "markdown") == EXIT_BLOCKED
    out = capsys.readouterr().out
    assert "| `services/api` | api | 8 | 7 | 1 |" in out
    assert "<details><summary>services/api  (rule api)</summary>" in out
    assert KEPT_REASON not in out

"""`acr-cleanup diff` on the emulator: what a new policy changes, and that nothing else does."""

from __future__ import annotations

import copy
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import acr_core
from acr_core.cli import EXIT_DONE, EXIT_FAILED, EXIT_NOTHING_COVERED, EXIT_USAGE, main
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from tests.e2e.registry import NOW, POLICY
from tests.e2e.state import registry_state

ROOT = Path(acr_core.__file__).parent.parent
SCHEMA = json.loads((ROOT / "acr_core" / "run" / "diff.schema.json").read_text())


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def newer() -> dict[str, Any]:
    """The end-to-end policy keeping 4 rather than 2 in services/api, untagged for 60 days,
    and with a rule for other/thing that deletes its untagged images after a day."""
    policy = copy.deepcopy(POLICY)
    policy["rules"][0]["keepLatest"] = 4
    policy["rules"][0]["untagged"] = {"olderThan": "60d"}
    policy["rules"].append(
        {"name": "other", "repositories": ["other/**"], "untagged": {"olderThan": "1d"}}
    )
    policy["safety"]["maxDeleteFraction"] = None
    return policy


def diff(
    server: ServerInfo, tmp_path: Path, new: dict[str, Any], old: dict[str, Any], *args: str
) -> int:
    (tmp_path / "new.json").write_text(json.dumps(new))
    (tmp_path / "old.json").write_text(json.dumps(old))
    argv = ["diff", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(tmp_path / "new.json"), "--against", str(tmp_path / "old.json")]
    argv += ["--now", NOW.isoformat(), *args]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    return main(argv, environ=environ)


def changes(report: dict[str, Any], key: str) -> dict[str, list[tuple[str, str]]]:
    """Per repository, the changes of one kind as (tags or "untagged", reason) pairs."""
    return {
        r["repository"]: sorted((",".join(c["tags"]) or "untagged", c["reason"]) for c in r[key])
        for r in report["repositories"]
        if r[key]
    }


def test_json_lists_what_the_new_policy_newly_deletes_and_keeps(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Schema-valid JSON names each newly deleted and newly kept manifest, and nothing changes."""
    before = registry_state(emulator)
    assert diff(server, tmp_path, newer(), POLICY, "--output", "json") == EXIT_DONE
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, SCHEMA)
    untagged = "untagged, not updated for more than 1d"
    assert changes(report, "newlyDeleted") == {
        "other/thing": [("untagged", untagged), ("untagged", untagged)]
    }
    newest = "one of the 4 newest unprotected tagged images (keepLatest)"
    assert changes(report, "newlyKept") == {
        "services/api": [
            ("1.1", newest),
            ("1.2", newest),
            ("untagged", "untagged, updated within untagged.olderThan (60d)"),
        ]
    }
    other, api = report["repositories"][0], report["repositories"][1]
    assert (other["rule"], other["againstRule"]) == ("other", None)
    assert {c["againstReason"] for c in other["newlyDeleted"]} == {
        "no rule of this policy governs the repository: never touched"
    }
    assert {c["againstReason"] for c in api["newlyKept"]} >= {
        "older than the 2 newest unprotected tagged images (keepLatest)"
    }
    sizes = sum(c["sizeInBytes"] for r in report["repositories"] for c in r["newlyKept"])
    assert report["totals"]["bytesNewlyKept"] == sizes > 0
    assert report["totals"]["changedRepositories"] == 2
    assert report["totals"]["repositories"] == 3
    assert registry_state(emulator) == before


def test_the_table_shows_both_reasons_and_a_summary(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table lists each change with the new reason and, under it, the current one."""
    assert diff(server, tmp_path, newer(), POLICY) == EXIT_DONE
    out = capsys.readouterr().out
    assert "other/thing  (rule other; against: no rule)" in out
    assert "services/api  (rule api)" in out
    lines = out.splitlines()
    kept = next(i for i, line in enumerate(lines) if "newly keep" in line and " 1.2 " in line)
    assert lines[kept + 1].strip() == (
        "against: older than the 2 newest unprotected tagged images (keepLatest)"
    )
    assert lines[-1].startswith("Summary: ")
    assert "would newly delete 2 manifest(s)" in lines[-1]
    assert "in 2 of 3 repositories compared" in lines[-1]


def test_markdown_folds_each_repository(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Markdown has the summary table first and a folded block per changed repository."""
    assert diff(server, tmp_path, newer(), POLICY, "--output", "markdown") == EXIT_DONE
    out = capsys.readouterr().out
    assert out.startswith("### Registry ")
    assert out.count("<details><summary>") == 2
    assert "| other/thing | other | - | 2 |" in out


def test_a_policy_against_itself_changes_nothing(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same policy on both sides has no change in any repository."""
    assert diff(server, tmp_path, POLICY, POLICY, "--output", "json") == EXIT_DONE
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["changedRepositories"] == 0
    assert [r["repository"] for r in report["repositories"]] == ["services/api", "services/blocked"]


def test_named_repositories_are_checked_like_plan(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing named repository is exit 2; one neither policy covers is exit 4."""
    assert diff(server, tmp_path, newer(), POLICY, "--repository", "other/nope") == EXIT_USAGE
    assert "repository 'other/nope' not found" in capsys.readouterr().err
    code = diff(server, tmp_path, POLICY, POLICY, "--repository", "other/thing")
    assert code == EXIT_NOTHING_COVERED
    assert "no rule governs the repositories named with --repository" in capsys.readouterr().err


def test_an_invalid_against_policy_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors in the --against policy are printed with its file name, before any request."""
    (tmp_path / "old.json").write_text('{"version": 1, "rules": []}')
    (tmp_path / "new.json").write_text(json.dumps(POLICY))
    argv = ["diff", "--registry", "example.azurecr.io", "--policy", str(tmp_path / "new.json")]
    assert main([*argv, "--against", str(tmp_path / "old.json")]) == EXIT_USAGE
    assert f"{tmp_path / 'old.json'}: rules: must be a non-empty list" in capsys.readouterr().err


def test_a_referrer_deleted_with_its_subject_is_a_change_of_its_own(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keeping 1.0 keeps its signature too, which the current policy deletes along with 1.0."""
    policy = copy.deepcopy(POLICY)
    policy["rules"][0]["keepLatest"] = 10
    args = ("--output", "json", "--repository", "services/api")
    assert diff(server, tmp_path, policy, POLICY, *args) == EXIT_DONE
    (api,) = json.loads(capsys.readouterr().out)["repositories"]
    one = next(c for c in api["newlyKept"] if c["tags"] == ["1.0"])
    subject = emulator.registry.repositories["services/api"].manifests[one["digest"]]
    (signature,) = [
        c for c in api["newlyKept"] if c["againstReason"].startswith("deleted by ACR with")
    ]
    assert signature["againstReason"] == f"deleted by ACR with its subject {subject.digest[:19]}"
    assert signature["sizeInBytes"] > 0


def test_the_json_example_in_the_docs_matches_a_real_run(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/cli.md's diff JSON is schema-valid, and its totals and changes are a fresh run's."""
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = docs[docs.index("### The diff JSON") :]
    match = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert match, "docs/cli.md has no JSON example under 'The diff JSON'"
    example = json.loads(match.group(1))
    jsonschema.validate(example, SCHEMA)
    assert diff(server, tmp_path, newer(), POLICY, "--output", "json") == EXIT_DONE
    real = json.loads(capsys.readouterr().out)
    assert set(example) == set(real)
    assert example["totals"] == real["totals"]
    actual = {r["repository"]: r for r in real["repositories"]}
    for documented in example["repositories"]:
        found = actual[documented["repository"]]
        for key in ("rule", "againstRule", "blocked", "againstBlocked"):
            assert documented[key] == found[key], key
        for key in ("newlyDeleted", "newlyKept"):
            assert [c for c in documented[key] if c not in found[key]] == [], key


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_repositories_being_read(
    emulator: Emulator,
    server: ServerInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal, stderr counts the repositories read, as plan's progress line does."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert diff(server, tmp_path, newer(), POLICY) == EXIT_DONE
    assert "3/3 repositories read" in terminal.getvalue()


def test_a_change_of_lock_tags_is_shown(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tags only the new policy locks, and tags only the current one locks, are listed."""
    policy = copy.deepcopy(POLICY)
    policy["rules"][0]["lockTags"] = ["1.4"]
    args = ("--output", "json", "--repository", "services/api")
    assert diff(server, tmp_path, policy, POLICY, *args) == EXIT_DONE
    report = json.loads(capsys.readouterr().out)
    jsonschema.validate(report, SCHEMA)
    (api,) = report["repositories"]
    assert [(c["tags"], c["againstReason"]) for c in api["newlyLocked"]] == [
        (["1.4"], "not locked: no lockTags pattern matches the tag")
    ]
    assert [(c["tags"], c["reason"]) for c in api["noLongerLocked"]] == [
        (["v1.0.0"], "not locked: no lockTags pattern matches the tag")
    ]
    assert (report["totals"]["newlyLocked"], report["totals"]["noLongerLocked"]) == (1, 1)
    assert ["v1.0.0"] in [c["tags"] for c in api["newlyDeleted"]]  # no longer protected


class TestAbac:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(now=NOW, abac=True)

    def test_a_repository_that_cannot_be_read_fails_the_diff(
        self,
        emulator: Emulator,
        server: ServerInfo,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A repository outside the identity's condition is an issue and exit 1; the other is
        still compared."""
        emulator.grant(
            "cleaner", "Container Registry Repository Contributor", repositories=("services/api",)
        )
        (tmp_path / "new.json").write_text(json.dumps(newer()))
        (tmp_path / "old.json").write_text(json.dumps(POLICY))
        argv = ["diff", "--registry", server.url, "--ca-file", str(server.ca_file)]
        argv += ["--policy", str(tmp_path / "new.json"), "--against", str(tmp_path / "old.json")]
        argv += ["--now", NOW.isoformat(), "--output", "json"]
        argv += ["--repository", "services/api", "--repository", "services/blocked"]
        credential = AsyncFakeCredential(oid="cleaner")
        assert main(argv, environ={}, credential=credential) == EXIT_FAILED
        captured = capsys.readouterr()
        report = json.loads(captured.out)
        assert [i["repository"] for i in report["issues"]] == ["services/blocked"]
        assert report["issues"][0]["status"] == "failed"
        assert [r["repository"] for r in report["repositories"]] == ["services/api"]
        assert report["repositories"][0]["newlyKept"]
        assert "1 repository could not be read" in captured.err


def test_a_safety_limit_hit_under_one_policy_only_is_a_change(
    emulator: Emulator, server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tighter limit that blocks services/api lists it, although the deletions are the same."""
    policy = copy.deepcopy(POLICY)
    policy["safety"]["maxDeletesPerRepository"] = 2
    assert diff(server, tmp_path, policy, POLICY, "--repository", "services/api") == EXIT_DONE
    out = capsys.readouterr().out
    assert "services/api  (rule api)" in out
    assert "services/api  (rule api)\n  BLOCKED under the new policy: would delete " in out
    assert "in 1 of 1 repositories compared" in out

"""`acr-cleanup migrate` through the CLI: its output validates and plans as the v1 policy does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acr_core.cli import EXIT_BLOCKED, EXIT_DONE, EXIT_USAGE, main
from acr_emulator import EmulatorConfig, ServerInfo
from tests.e2e.registry import NOW, POLICY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def migrated(tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Path) -> Path:
    assert main(["migrate", str(policy)]) == EXIT_DONE
    path = tmp_path / "v2.json"
    path.write_text(capsys.readouterr().out)
    return path


def planned(server: ServerInfo, policy: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    argv = ["plan", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(policy), "--now", NOW.isoformat(), "--output", "json"]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    assert main(argv, environ=environ) == EXIT_BLOCKED  # services/blocked, in both versions
    return json.loads(capsys.readouterr().out)


def without_reasons(report: dict[str, Any]) -> list[Any]:
    return [
        (
            r["repository"],
            r["rule"],
            r["blocked"] is None,
            [(a["action"], a["digest"], a["tags"], a["cascades"]) for a in r["actions"]],
            sorted(k["digest"] for k in r["kept"]),
        )
        for r in report["repositories"]
    ]


def test_the_migrated_policy_plans_the_same_on_the_emulator(
    server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The end-to-end policy and its v2 form plan the same actions and keep the same images."""
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps(POLICY))
    v2 = migrated(tmp_path, capsys, v1)
    assert json.loads(v2.read_text())["version"] == 2
    assert without_reasons(planned(server, v2, capsys)) == without_reasons(
        planned(server, v1, capsys)
    )


def test_the_migrated_example_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples/policy.json in v2 is valid, and warned about in the same rules as in v1."""
    v1 = ROOT / "examples" / "policy.json"
    v2 = migrated(tmp_path, capsys, v1)

    def warned_rules(path: Path) -> list[str]:
        assert main(["validate", str(path)]) == EXIT_DONE
        captured = capsys.readouterr()
        assert captured.out == f"{path}: valid, 3 rule(s): base-images, services, ci-builds\n"
        return [line.split(": ")[2].split(".")[0] for line in captured.err.splitlines()]

    assert warned_rules(v2) == warned_rules(v1) == ["rules[2] ('ci-builds')"]


def test_a_v2_policy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A policy already in version 2 is exit 2 with the reason, and nothing on stdout."""
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"version": 2, "rules": [{"repositories": ["a"]}]}))
    assert main(["migrate", str(v2)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{v2}: version: already 2; there is nothing to migrate" in captured.err


def test_diff_of_the_migrated_policy_against_the_original_is_empty(
    server: ServerInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`diff` finds nothing that the v2 form deletes or keeps differently from the v1 policy."""
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps(POLICY))
    v2 = migrated(tmp_path, capsys, v1)
    argv = ["diff", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(v2), "--against", str(v1), "--now", NOW.isoformat()]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    assert main([*argv, "--output", "json"], environ=environ) == EXIT_DONE
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert (totals["repositories"], totals["changedRepositories"]) == (2, 0)

"""`acr-cleanup validate`: warnings, and `--registry` on the emulator, which it never changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acr_core.cli import EXIT_DONE, EXIT_FAILED, EXIT_NOTHING_COVERED, EXIT_USAGE, main
from acr_emulator import EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from tests.e2e.registry import NOW, POLICY
from tests.e2e.state import registry_state


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def write(tmp_path: Path, policy: dict[str, Any], name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(policy))
    return path


def validate(server: ServerInfo, path: Path, *args: str, password: str | None = None) -> int:
    argv = ["validate", str(path), "--registry", server.login_server]
    argv += ["--ca-file", str(server.ca_file), *args]
    environ = {
        "ACR_USERNAME": server.admin_username,
        "ACR_PASSWORD": server.admin_password if password is None else password,
    }
    return main(argv, environ=environ)


def test_warnings_go_to_stderr_and_the_policy_stays_valid(tmp_path, capsys):
    """A valid policy with a shadowed rule exits 0, says valid, and warns on stderr."""
    policy = {
        "version": 1,
        "rules": [
            {"name": "all", "repositories": ["**"], "keepTags": ["latest"]},
            {"name": "api", "repositories": ["services/api"], "keepLatest": 2},
        ],
    }
    path = write(tmp_path, policy)
    assert main(["validate", str(path)]) == EXIT_DONE
    out, err = capsys.readouterr()
    assert out == f"{path}: valid, 2 rule(s): all, api\n"
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}: warning: rules[1] ('api').repositories: this rule can")
    assert lines[1].startswith(f"{path}: warning: rules[1] ('api').keepTags: keepLatest deletes")
    assert len(lines) == 2


def test_a_policy_without_surprises_warns_about_nothing(tmp_path, capsys):
    """The end-to-end policy plus `latest` kept everywhere validates without a warning."""
    policy = json.loads(json.dumps(POLICY))
    policy["rules"][1]["keepTags"] = ["latest"]
    assert main(["validate", str(write(tmp_path, policy))]) == EXIT_DONE
    assert capsys.readouterr().err == ""


def test_registry_shows_each_rule_and_changes_nothing(emulator, server, tmp_path, capsys):
    """With --registry, every catalog repository is listed with its rule, idle rules named."""
    policy = json.loads(json.dumps(POLICY))
    policy["rules"].append({"name": "web", "repositories": ["web/**"]})
    before = registry_state(emulator)
    assert validate(server, write(tmp_path, policy)) == EXIT_DONE
    out = capsys.readouterr().out
    assert out.splitlines()[1:] == [
        f"Registry {server.login_server}: 3 repositories, 2 governed by a rule",
        "  REPOSITORY        RULE",
        "  other/thing       - (no rule: never touched)",
        "  services/api      api",
        "  services/blocked  blocked",
        "Rules that govern no repository here: web",
    ]
    assert registry_state(emulator) == before


def test_registry_json_lists_the_same(emulator, server, tmp_path, capsys):
    """`--output json` carries the rules, warnings, repositories and idle rules."""
    path = write(tmp_path, POLICY)
    assert validate(server, path, "--output", "json") == EXIT_DONE
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "policy": str(path),
        "version": 1,
        "valid": True,
        "rules": ["api", "blocked"],
        "warnings": [
            {
                "where": "rules[1] ('blocked').keepTags",
                "message": report["warnings"][0]["message"],
            }
        ],
        "registry": server.login_server,
        "repositories": [
            {"repository": "other/thing", "rule": None},
            {"repository": "services/api", "rule": "api"},
            {"repository": "services/blocked", "rule": "blocked"},
        ],
        "rulesGoverningNone": [],
    }


def test_a_policy_governing_nothing_exits_4(emulator, server, tmp_path, capsys):
    """No rule matching any repository of the catalog is exit 4, with the plan's explanation."""
    policy = {"version": 1, "rules": [{"name": "web", "repositories": ["web/**"]}]}
    assert validate(server, write(tmp_path, policy)) == EXIT_NOTHING_COVERED
    captured = capsys.readouterr()
    assert "Rules that govern no repository here: web" in captured.out
    assert "no rule governs any repository in" in captured.err


def test_a_refused_sign_in_fails_with_advice(emulator, server, tmp_path, capsys):
    """A wrong password is exit 1 with the sign-in advice of plan."""
    assert validate(server, write(tmp_path, POLICY), password="wrong") == EXIT_FAILED
    assert "Check --username/--password" in capsys.readouterr().err


def test_registry_flags_are_checked_before_any_request(tmp_path, capsys):
    """A bad --registry is exit 2 naming the flag; an invalid policy still lists its errors."""
    path = write(tmp_path, POLICY)
    assert main(["validate", str(path), "--registry", "http://example.com"]) == EXIT_USAGE
    assert "--registry 'http://example.com'" in capsys.readouterr().err
    bad = write(tmp_path, {"version": 1, "rules": []}, "bad.json")
    assert main(["validate", str(bad), "--registry", "example.azurecr.io"]) == EXIT_USAGE
    assert "rules: must be a non-empty list" in capsys.readouterr().out


class TestAbac:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(now=NOW, abac=True)

    def test_without_catalog_lister_the_role_is_named(self, emulator, server, tmp_path, capsys):
        """An identity that may not list the catalog gets exit 1 and one line naming the role."""
        emulator.grant(
            "cleaner", "Container Registry Repository Contributor", repositories=("services/",)
        )
        argv = ["validate", str(write(tmp_path, POLICY)), "--registry", server.url]
        argv += ["--ca-file", str(server.ca_file)]
        credential = AsyncFakeCredential(oid="cleaner")
        assert main(argv, environ={}, credential=credential) == EXIT_FAILED
        err = capsys.readouterr().err.splitlines()
        assert len([line for line in err if "error" in line]) == 1
        assert "Catalog Lister" in err[-1]
        assert "--repository" not in err[-1]

"""`acr-cleanup` under a user's mistakes: a typo in a name, a policy that covers nothing, a bad
`--now`, a closed port; each is one clear line and its own exit code (docs/cli.md)."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest

from acr_core.cli import EXIT_DONE, EXIT_FAILED, EXIT_NOTHING_COVERED, EXIT_USAGE, main
from acr_emulator import Emulator, EmulatorConfig
from tests.e2e.registry import API_BEFORE, NOW, POLICY, state
from tests.e2e.test_cli import cli, everything


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


@pytest.mark.parametrize("command", [("plan",), ("apply", "--yes")])
def test_a_named_repository_that_does_not_exist_is_an_error(
    emulator: Emulator, server, tmp_path, capsys, command
):
    """`--repository nope/api` (a rule covers `*/api`) exits 2 with `repository 'nope/api' not
    found`, changing nothing."""
    before = everything(emulator)
    policy = _policy(tmp_path, ["*/api"])
    code = cli(server, policy, *command, "--repository", "services/api", "--repository", "nope/api")
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "repository 'nope/api' not found" in captured.err
    assert "GONE" not in captured.out
    assert everything(emulator) == before


def _policy(tmp_path: Path, repositories: list[str]) -> Path:
    path = tmp_path / "nothing.json"
    rule = {"name": "web", "repositories": repositories, "keepLatest": 1}
    path.write_text(json.dumps({"version": 1, "rules": [rule]}))
    return path


@pytest.mark.parametrize(
    ("command", "named"),
    [(("plan",), ()), (("apply", "--yes"), ()), (("plan",), ("--repository", "services/api"))],
)
def test_a_policy_that_governs_no_repository_says_so(
    emulator: Emulator, server, tmp_path, capsys, command, named
):
    """Rules that match no repository exit 4 naming the rules, their patterns and what to check."""
    code = cli(server, _policy(tmp_path, ["web/*"]), *command, *named)
    err = capsys.readouterr().err
    assert code == EXIT_NOTHING_COVERED
    assert "no rule governs" in err
    assert "web (web/*)" in err
    assert "--registry" in err
    assert state(emulator, "services/api") == API_BEFORE


@pytest.mark.parametrize(
    ("given", "suggested"),
    [
        ("2030-01-01", "2030-01-01T00:00:00Z"),
        ("2026-01-31T12:30:00", "2026-01-31T12:30:00Z"),
        ("2026-01-31T12:30:00.250000", "2026-01-31T12:30:00.250000Z"),
    ],
)
def test_the_now_without_a_time_zone_suggests_a_time_plan_accepts(
    emulator: Emulator, server, policy_file, capsys, given, suggested
):
    """`--now` without a time zone suggests a value, and `plan --now SUGGESTION` runs with it."""
    assert cli(server, policy_file, "plan", "--now", given) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"needs a time zone, e.g. {suggested}\n" in err
    code = cli(server, policy_file, "plan", "--repository", "services/api", "--now", suggested)
    assert code == EXIT_DONE, capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


@pytest.mark.parametrize("named", [(), ("--repository", "services/api")])
def test_a_closed_port_fails_fast_with_what_to_check(policy_file, capsys, named):
    """Nothing listening at --registry exits 1 within seconds, naming the URL and what to check."""
    url = f"https://127.0.0.1:{_closed_port()}"
    argv = ["plan", "--registry", url, "--policy", str(policy_file), *named]
    started = time.monotonic()
    code = main(argv, environ={"ACR_USERNAME": "admin", "ACR_PASSWORD": "secret"})
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert elapsed < 5, err
    assert f"Nothing answered at {url}" in err
    assert "check the registry URL and its port (--registry)" in err
    assert "emulator" in err


def test_version_prints_the_installed_version(capsys):
    """`acr-cleanup --version` prints the program's name and version and exits 0."""
    assert main(["--version"]) == EXIT_DONE
    assert re.fullmatch(r"acr-cleanup \S+\n", capsys.readouterr().out)


@pytest.mark.parametrize("command", ["plan", "apply", "validate"])
def test_each_command_s_help_describes_it_with_an_example(capsys, command):
    """`COMMAND --help` says what the command does and shows an example command line."""
    assert main([command, "--help"]) == EXIT_DONE
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert not description.startswith(("options:", "positional arguments:")), out
    assert f"example:\n  acr-cleanup {command} " in out


def test_an_untrusted_certificate_gives_cli_advice(server, policy_file, capsys):
    """Without --ca-file the emulator's certificate is refused with CLI advice, not Python's."""
    argv = ["plan", "--registry", server.url, "--policy", str(policy_file)]
    code = main(argv, environ={"ACR_USERNAME": "admin", "ACR_PASSWORD": "secret"})
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "CERTIFICATE_VERIFY_FAILED" in err
    assert "pass --ca-file FILE" in err
    assert "check that --registry is the registry you meant" in err
    assert "verify=" not in err


def test_validate_reads_a_policy_saved_with_a_byte_order_mark(tmp_path, capsys):
    """A policy file that starts with a UTF-8 BOM is valid, as it is without one."""
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(POLICY).encode())
    assert main(["validate", str(path)]) == EXIT_DONE
    assert "valid, 2 rule(s)" in capsys.readouterr().out


def test_durations_and_regexes_are_shown_as_the_policy_writes_them(server, tmp_path, capsys):
    """`14d` stays `14d` (not `2w`) and `regex:^v\\d+...` keeps single backslashes in `plan`."""
    regex = r"regex:^v\d+\.\d+\.\d+$"
    rule = {**POLICY["rules"][0], "lockTags": [regex], "untagged": {"olderThan": "14d"}}
    path = tmp_path / "written.json"
    path.write_text(json.dumps({**POLICY, "rules": [rule]}))
    assert cli(server, path, "plan", "--repository", "services/api") == EXIT_DONE
    out = capsys.readouterr().out
    assert "not updated for more than 14d" in out
    assert "2w" not in out
    assert f"tag matches lockTags pattern '{regex}'" in out
    assert "\\\\" not in out

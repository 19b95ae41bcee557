"""`acr-cleanup` against the emulator over real HTTPS: exit codes, output, final state."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError
from azure.identity.aio import DefaultAzureCredential

import acr_core
from acr_core.cli import (
    EXIT_BLOCKED,
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    _progress,
    credential_for,
    main,
    parse_options,
)
from acr_core.run.service import ProgressEvent
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from tests.e2e.registry import API_AFTER, API_BEFORE, NOW, digests, state

SCHEMA = json.loads((Path(acr_core.__file__).parent / "run" / "report.schema.json").read_text())
ALL = ("services/api", "services/blocked", "other/thing")


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def cli(server: ServerInfo, policy: Path, *args: str, password: str | None = None) -> int:
    """Run the CLI in this process with the admin user's credentials in the environment."""
    command, *rest = args
    argv = [
        command,
        "--registry",
        server.login_server,
        "--ca-file",
        str(server.ca_file),
        "--policy",
        str(policy),
        "--now",
        NOW.isoformat(),
        *rest,
    ]
    environ = {
        "ACR_USERNAME": server.admin_username,
        "ACR_PASSWORD": server.admin_password if password is None else password,
    }
    return main(argv, environ=environ)


def everything(emulator: Emulator) -> dict[str, frozenset[str]]:
    return {repository: state(emulator, repository) for repository in ALL}


def test_plan_prints_schema_valid_json_and_changes_nothing(emulator, server, policy_file, capsys):
    """`plan --output json` exits 3 (one repository is blocked) and deletes nothing."""
    before = everything(emulator)
    code = cli(server, policy_file, "plan", "--output", "json")
    out = capsys.readouterr().out
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    assert code == EXIT_BLOCKED
    assert report["dryRun"] is True
    assert report["status"] == "blocked"
    assert everything(emulator) == before
    api = next(r for r in report["repositories"] if r["repository"] == "services/api")
    assert api["counts"]["plannedDeletions"] == 7
    assert all(a["outcome"] == "planned" for a in api["actions"])


def test_apply_yes_cleans_and_exits_blocked(emulator, server, policy_file, capsys):
    """`apply --yes` reaches the policy's state, leaves the blocked repository, and exits 3."""
    blocked = digests(emulator, "services/blocked")
    code = cli(server, policy_file, "apply", "--yes")
    out = capsys.readouterr().out
    assert code == EXIT_BLOCKED
    assert state(emulator, "services/api") == API_AFTER
    assert digests(emulator, "services/blocked") == blocked
    assert "BLOCKED: " in out
    assert "Status: blocked" in out


def test_apply_one_repository_exits_done(emulator, server, policy_file, capsys):
    """With `--repository` naming only an unblocked repository the run exits 0."""
    code = cli(server, policy_file, "apply", "--yes", "--repository", "services/api")
    assert code == EXIT_DONE
    assert state(emulator, "services/api") == API_AFTER


def test_apply_paced_by_sku_ends_in_the_same_state(emulator, server, policy_file, capsys):
    """`--sku standard --deletes-per-minute 600` paces the run; it ends where an unpaced run
    does, and the JSON report says how many requests it had in flight on average."""
    code = cli(
        server,
        policy_file,
        "apply",
        "--yes",
        "--repository",
        "services/api",
        "--sku",
        "standard",
        "--deletes-per-minute",
        "600",
        "--output",
        "json",
    )
    assert code == EXIT_DONE
    assert state(emulator, "services/api") == API_AFTER
    report = json.loads(capsys.readouterr().out)
    assert report["requests"]["throttled"] == 0
    assert report["requests"]["concurrency"] > 0


def test_apply_without_yes_off_a_terminal_refuses(emulator, server, policy_file, capsys):
    """Without --yes and with stdin not a terminal, apply exits 2 before touching anything."""
    before = everything(emulator)
    code = cli(server, policy_file, "apply")
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "--yes" in err
    assert everything(emulator) == before
    assert emulator.counters.total == 0


def test_a_wrong_password_is_one_line_without_the_secret(emulator, server, policy_file, capsys):
    """Refused credentials exit 1 with one error line, no traceback, and no password."""
    code = cli(server, policy_file, "plan", password="not-the-password")
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("acr-cleanup: error: ")
    assert "Traceback" not in captured.err
    assert "not-the-password" not in captured.err + captured.out
    assert state(emulator, "services/api") == API_BEFORE
    assert "Check --username/--password" in captured.err
    assert "managed identity" not in captured.err


@pytest.mark.parametrize("named", [(), ("--repository", "services/api")])
def test_a_refused_anonymous_plan_says_anonymous_pull_or_credentials(
    server, policy_file, capsys, named
):
    """--anonymous refused by the registry names anonymous pull, catalog read or not."""
    code = main(
        [
            "plan",
            "--anonymous",
            "--registry",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--policy",
            str(policy_file),
            *named,
        ],
        environ={},
    )
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "refused anonymous access" in captured.err
    assert "drop --anonymous" in captured.err
    assert "managed identity" not in captured.err + captured.out


@pytest.mark.parametrize(
    ("flags", "environ", "azure_ad"),
    [
        ((), {}, True),
        (("--anonymous",), {}, False),
        (("--username", "admin", "--password", "secret"), {}, False),
        ((), {"ACR_USERNAME": "admin", "ACR_PASSWORD": "secret"}, False),
    ],
)
def test_azure_ad_is_the_default_credential(policy_file, flags, environ, azure_ad):
    """With no Basic credentials and no --anonymous the CLI builds a DefaultAzureCredential."""
    argv = ["plan", "--registry", "myregistry.azurecr.io", "--policy", str(policy_file), *flags]
    credential = credential_for(parse_options(argv, environ))
    try:
        # Built, never used: asking it for a token would probe IMDS off the machine.
        assert isinstance(credential, DefaultAzureCredential) is azure_ad
        assert azure_ad or credential is None
    finally:
        if credential is not None:
            asyncio.run(credential.close())


def test_anonymous_apply_is_a_usage_error(server, policy_file, capsys):
    """--anonymous only plans: asking it to apply exits 2 with the reason."""
    code = cli(server, policy_file, "apply", "--yes", "--anonymous")
    assert code == EXIT_USAGE
    assert "--anonymous" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--now", "2026-06-01T12:00:00"), "needs a time zone"),
        (("--now", "yesterday"), "is not ISO 8601"),
        (("--max-concurrency", "0"), "--max-concurrency"),
        (("--deletes-per-minute", "0"), "--deletes-per-minute 0 is not a positive number"),
        (("--reads-per-minute", "-5"), "--reads-per-minute -5 is not a positive number"),
        (("--writes-per-minute", "nan"), "--writes-per-minute nan is not a positive number"),
        (("--writes-per-minute", "lots"), "--writes-per-minute: invalid float value"),
        (("--sku", "gold"), "--sku: invalid choice: 'gold'"),
        (("--registry", "http://registry.example"), "use https"),
        (("--registry", "https://registry.example/v2/"), "without a path"),
        (("--ca-file", "/nonexistent/ca.pem"), "--ca-file /nonexistent/ca.pem"),
        (("--username", "someone", "--anonymous"), "--anonymous cannot be combined"),
        (("--registry", "https://[::1"), "is not a login server"),
        (("--registry", "my registry.example"), "is not a login server"),
        (("--repository", "Services/API"), "is not a repository name"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(server, policy_file, capsys, args, message):
    """A malformed flag value exits 2 with a line naming the flag."""
    assert cli(server, policy_file, "plan", *args) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_apply_refuses_a_now_in_the_future(emulator, server, policy_file, capsys):
    """`apply --now` later than the clock would age fresh images past minAge: exit 2, no request."""
    before = everything(emulator)
    code = cli(server, policy_file, "apply", "--yes", "--now", "2999-01-01T00:00:00Z")
    assert code == EXIT_USAGE
    assert "--now '2999-01-01T00:00:00Z' is in the future" in capsys.readouterr().err
    assert everything(emulator) == before
    assert emulator.counters.total == 0


def test_validate_lists_every_problem(tmp_path, capsys):
    """`validate` prints each mistake in a policy on its own line and exits 2."""
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "version": 1,
                "rules": [
                    {"name": "a", "repositories": ["x"], "keepLatest": -1},
                    {"name": "b", "repositories": ["y"], "minAge": "soon"},
                ],
            }
        )
    )
    code = main(["validate", str(bad)])
    out = capsys.readouterr().out
    assert code == EXIT_USAGE
    assert "keepLatest" in out
    assert "minAge" in out
    assert "2 error(s)" in out


def test_validate_accepts_a_good_policy(policy_file, capsys):
    """A valid policy exits 0 and names its rules."""
    assert main(["validate", "--policy", str(policy_file)]) == EXIT_DONE
    assert "valid, 2 rule(s): api, blocked" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_cli(emulator, server, policy_file):
    """`python -m acr_core plan` is the CLI: it exits 0 for one unblocked repository."""
    environ = {
        **os.environ,
        "ACR_USERNAME": server.admin_username,
        "ACR_PASSWORD": server.admin_password,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "acr_core",
            "plan",
            "--registry",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--policy",
            str(policy_file),
            "--repository",
            "services/api",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_DONE, result.stderr
    assert json.loads(result.stdout)["totals"]["plannedDeletions"] == 7
    assert state(emulator, "services/api") == API_BEFORE


def _apply_on_a_terminal(server: ServerInfo, policy: Path, answer: bytes) -> tuple[int, str]:
    """Run `python -m acr_core apply` with a pseudo-terminal as stdin, answering the prompt."""
    controller, terminal = pty.openpty()
    environ = {
        **os.environ,
        "ACR_USERNAME": server.admin_username,
        "ACR_PASSWORD": server.admin_password,
    }
    os.write(controller, answer)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "acr_core",
                "apply",
                "--registry",
                server.url,
                "--ca-file",
                str(server.ca_file),
                "--policy",
                str(policy),
                "--repository",
                "services/api",
            ],
            stdin=terminal,
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    return result.returncode, result.stderr


def test_declining_the_prompt_changes_nothing(emulator, server, policy_file):
    """On a terminal, apply shows the plan and asks; answering no exits 1 with nothing changed."""
    code, err = _apply_on_a_terminal(server, policy_file, b"n\n")
    assert code == EXIT_FAILED
    assert "Delete 7 manifest(s) and lock 1 tag(s)" in err
    assert "cancelled; nothing was changed" in err
    assert state(emulator, "services/api") == API_BEFORE


def test_confirming_the_prompt_applies(emulator, server, policy_file):
    """Answering yes at the prompt applies the plan."""
    code, err = _apply_on_a_terminal(server, policy_file, b"y\n")
    assert code == EXIT_DONE, err
    assert state(emulator, "services/api") == API_AFTER


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_only():
    """Progress lines go to a terminal and end with a newline; a pipe gets nothing."""
    assert _progress(io.StringIO()) is None
    terminal = _Terminal()
    show = _progress(terminal)
    assert show is not None
    show(ProgressEvent("gather", 2, 2, "services/api"))
    show(ProgressEvent("apply", 7, 7, "services/api"))
    assert terminal.getvalue() == "\r2/2 repositories read\n\r7/7 actions applied\n"


def _plan_with(server: ServerInfo, policy: Path, credential: object) -> int:
    argv = [
        "plan",
        "--registry",
        server.url,
        "--ca-file",
        str(server.ca_file),
        "--policy",
        str(policy),
        "--repository",
        "services/api",
    ]
    return main(argv, environ={}, credential=credential)  # type: ignore[arg-type]


def test_azure_ad_sign_in_is_the_default(emulator, server, policy_file, capsys):
    """Without Basic credentials the CLI signs in with an Azure AD credential and plans."""
    assert _plan_with(server, policy_file, AsyncFakeCredential()) == EXIT_DONE
    assert "would delete 7" in capsys.readouterr().out
    assert emulator.counters.count(endpoint="/oauth2/exchange") >= 1


class _SignedOut(AsyncFakeCredential):
    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        raise CredentialUnavailableError("no credential in this environment")


def test_no_azure_ad_credential_is_one_line_with_what_to_do(server, policy_file, capsys):
    """When no Azure AD credential is available the CLI says how to sign in, in one line."""
    assert _plan_with(server, policy_file, _SignedOut()) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "az login" in err
    assert "--username" in err


class TestAnonymous:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(now=NOW, anonymous_pull=True)

    def test_anonymous_plan_reads_without_credentials(self, emulator, server, policy_file, capsys):
        """On an anonymous-pull registry `plan --anonymous` works with no credentials at all."""
        argv = [
            "plan",
            "--anonymous",
            "--registry",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--policy",
            str(policy_file),
            "--now",
            NOW.isoformat(),
            "--repository",
            "services/api",
        ]
        assert main(argv, environ={}) == EXIT_DONE
        assert "would delete 7" in capsys.readouterr().out
        assert state(emulator, "services/api") == API_BEFORE


def test_ctrl_c_at_the_prompt_stops_at_once(emulator, server, policy_file):
    """Ctrl-C while apply waits for an answer exits 130 promptly, with nothing changed."""
    controller, terminal = pty.openpty()
    environ = {
        **os.environ,
        "ACR_USERNAME": server.admin_username,
        "ACR_PASSWORD": server.admin_password,
    }
    command = [sys.executable, "-m", "acr_core", "apply", "--registry", server.url]
    command += ["--ca-file", str(server.ca_file), "--policy", str(policy_file)]
    process = subprocess.Popen(command, stdin=terminal, stderr=subprocess.PIPE, env=environ)
    try:
        assert process.stderr is not None
        seen = b""
        while b"[y/N]" not in seen:
            ready, _, _ = select.select([process.stderr], [], [], 30)
            assert ready, seen
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == EXIT_INTERRUPTED
        rest = process.stderr.read()
        assert b"interrupted" in rest
        assert b"Traceback" not in rest
    finally:
        process.kill()
        process.wait()
        os.close(terminal)
        os.close(controller)
    assert state(emulator, "services/api") == API_BEFORE


# Policies JSON can carry but Python cannot take as they are: an integer past the 4300-digit
# int() limit, and a `\ud800` escape without its other half (not text, so not printable).
UNREADABLE_POLICIES = [
    pytest.param(
        '{"version": 1, "rules": [{"repositories": ["a"], "keepLatest": ' + "9" * 5000 + "}]}",
        "rules[0].keepLatest: a 5000-digit number is not a whole number >= 0 and at most 1000000",
        id="5000-digit keepLatest",
    ),
    pytest.param(
        '{"version": 1, "rules": [{"name": "\\ud800", "repositories": ["a"]}]}',
        "rules[0].name: contains a lone surrogate",
        id="lone surrogate rule name",
    ),
]


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize(("text", "message"), UNREADABLE_POLICIES)
def test_a_policy_python_cannot_read_exits_2_naming_the_field(
    tmp_path, capsys, command, text, message
):
    """A huge number or a lone surrogate in the policy is one line naming the field, exit 2."""
    path = tmp_path / "policy.json"
    path.write_text(text, encoding="utf-8")
    if command == "validate":
        argv = ["validate", str(path)]
    else:
        argv = ["plan", "--registry", "https://127.0.0.1:9", "--policy", str(path)]
    code = main(argv, environ={})
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert f"{path}: {message}" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err

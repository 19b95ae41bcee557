"""The CLI with the roles people actually grant: what works, and what is reported when not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acr_core.cli import EXIT_DONE, EXIT_FAILED, main
from acr_emulator import EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from tests.e2e.registry import API_AFTER, API_BEFORE, NOW, state, tag_locked


def run(server: ServerInfo, policy: Path, credential: AsyncFakeCredential, *args: str) -> int:
    argv = [
        *args,
        "--registry",
        server.url,
        "--ca-file",
        str(server.ca_file),
        "--policy",
        str(policy),
        "--now",
        NOW.isoformat(),
        "--output",
        "json",
    ]
    return main(argv, environ={}, credential=credential)


class TestAbac:
    @pytest.fixture
    def emulator_config(self) -> EmulatorConfig:
        return EmulatorConfig(now=NOW, abac=True)

    def test_without_catalog_lister_name_the_repositories(
        self, emulator, server, policy_file, capsys
    ):
        """No Catalog Lister: listing fails with one line naming the fix; --repository works."""
        identity = AsyncFakeCredential(oid="cleaner")
        emulator.grant(
            "cleaner", "Container Registry Repository Contributor", repositories=("services/",)
        )

        assert run(server, policy_file, identity, "plan") == EXIT_FAILED
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "Catalog Lister" in err
        assert "--repository NAME" in err

        code = run(server, policy_file, identity, "apply", "--yes", "--repository", "services/api")
        assert code == EXIT_DONE
        assert state(emulator, "services/api") == API_AFTER
        assert tag_locked(emulator, "services/api", "v1.0.0")

    def test_a_repository_outside_the_condition_fails_alone(
        self, emulator, server, policy_file, capsys
    ):
        """A repository outside the ABAC condition fails; the one inside is still cleaned."""
        identity = AsyncFakeCredential(oid="cleaner")
        emulator.grant(
            "cleaner", "Container Registry Repository Contributor", repositories=("services/api",)
        )
        code = run(
            server,
            policy_file,
            identity,
            "apply",
            "--yes",
            "--repository",
            "services/api",
            "--repository",
            "services/blocked",
        )
        report = json.loads(capsys.readouterr().out)
        assert code == EXIT_FAILED
        statuses = {r["repository"]: r["status"] for r in report["repositories"]}
        assert statuses == {"services/api": "done", "services/blocked": "failed"}
        assert state(emulator, "services/api") == API_AFTER


def test_acr_roles_cannot_lock_and_say_so(emulator, server, policy_file, capsys):
    """AcrPull + AcrDelete deletes what the policy says; the lock fails naming the missing role."""
    identity = AsyncFakeCredential(oid="cleaner")
    emulator.grant("cleaner", "AcrPull")
    emulator.grant("cleaner", "AcrDelete")
    code = run(server, policy_file, identity, "apply", "--yes", "--repository", "services/api")
    captured = capsys.readouterr()
    assert code == EXIT_FAILED
    assert state(emulator, "services/api") == API_AFTER
    assert not tag_locked(emulator, "services/api", "v1.0.0")
    [lock] = [
        a
        for a in json.loads(captured.out)["repositories"][0]["actions"]
        if a["action"] == "lock_tag"
    ]
    assert lock["outcome"] == "failed"
    assert "metadata/write" in lock["detail"]
    assert "metadata/write" in captured.err


def test_a_reader_plans_but_cannot_apply(emulator, server, policy_file, capsys):
    """AcrPull alone plans fine; applying deletes nothing and fails naming AcrDelete."""
    identity = AsyncFakeCredential(oid="reader")
    emulator.grant("reader", "AcrPull")
    assert run(server, policy_file, identity, "plan", "--repository", "services/api") == EXIT_DONE
    capsys.readouterr()
    code = run(server, policy_file, identity, "apply", "--yes", "--repository", "services/api")
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "AcrDelete" in err
    assert state(emulator, "services/api") == API_BEFORE

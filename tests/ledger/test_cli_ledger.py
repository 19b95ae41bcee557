"""`acr-cleanup apply --ledger`, `acr-cleanup ledger list|show` and `acr-cleanup restore`,
in-process against the emulator over HTTPS, signed in as the admin user."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest

from acr_core.cli import main
from acr_emulator import Emulator, ServerInfo
from scripts.oci_push import BasicTokenAuth, Pushed, push_image
from tests.ledger.conftest import POLICY


class Stage:
    """The emulator's state, and pushes as CI makes them (the CLI runs its own event loop)."""

    def __init__(self, emulator: Emulator, server: ServerInfo) -> None:
        self.emulator, self.server = emulator, server

    def push(self, repository: str, tag: str, label: str) -> Pushed:
        async def push() -> Pushed:
            verify = ssl.create_default_context(cafile=self.server.ca_file)
            auth = BasicTokenAuth(self.server.admin_username, self.server.admin_password)
            async with httpx.AsyncClient(base_url=self.server.url, verify=verify, auth=auth) as c:
                return await push_image(c, repository, tag, label=label)

        return asyncio.run(push())

    def digests(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)
        return set(repo.manifests) if repo else set()

    def tags(self, repository: str) -> dict[str, str]:
        repo = self.emulator.registry.repositories.get(repository)
        return {name: tag.digest for name, tag in repo.tags.items()} if repo else {}


@pytest.fixture
def stage(emulator: Emulator, emulator_server: ServerInfo) -> Stage:
    return Stage(emulator, emulator_server)


@pytest.fixture
def cli(stage: Stage, tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    registry = ["--registry", stage.server.url, "--ca-file", str(stage.server.ca_file)]
    environ = {
        "ACR_USERNAME": stage.server.admin_username,
        "ACR_PASSWORD": stage.server.admin_password,
    }
    return [*registry, "--policy", str(policy)], environ, tmp_path / "ledger"


def test_apply_records_and_restore_puts_it_back(
    stage: Stage, cli: tuple[list[str], dict[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """apply writes the ledger; `ledger list` shows the deletion; `restore --run` undoes it."""
    args, environ, ledger = cli
    old = stage.push("app", "v1", "1")
    stage.push("app", "v2", "2")
    assert main(["apply", *args, "--yes", "--ledger", str(ledger)], environ=environ) == 0
    assert old.digest not in stage.digests("app")
    capsys.readouterr()
    assert main(["ledger", "list", "--ledger", str(ledger), "--output", "json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["entries"]
    assert (entry["digest"], entry["outcome"], entry["principal"]) == (
        old.digest,
        "applied",
        stage.server.admin_username,
    )
    assert main(["ledger", "show", old.digest, "--ledger", str(ledger)]) == 0
    assert '"schemaVersion":2' in capsys.readouterr().out  # the manifest's own bytes
    registry = args[:4]
    restore = ["restore", *registry, "--run", entry["run"], "--ledger", str(ledger)]
    assert main([*restore, "--dry-run"], environ=environ) == 0
    assert "would restore" in capsys.readouterr().out
    assert old.digest not in stage.digests("app")
    assert main(restore, environ=environ) == 0
    assert "restored" in capsys.readouterr().out
    assert stage.tags("app")["v1"] == old.digest


def test_restore_needs_something_to_select(
    cli: tuple[list[str], dict[str, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """restore without --run, --digest or --repository with --since is a usage error (2)."""
    args, environ, ledger = cli
    code = main(
        ["restore", *args[:4], "--repository", "app", "--ledger", str(ledger)], environ=environ
    )
    assert code == 2
    assert "--repository R with --since T" in capsys.readouterr().err


def test_an_unwritable_ledger_fails_apply_before_it_deletes(
    stage: Stage,
    cli: tuple[list[str], dict[str, str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A --ledger path under a file fails apply with exit 1 and one line naming the ledger."""
    args, environ, _ = cli
    (tmp_path / "file").write_text("")
    stage.emulator.seed({"repositories": [{"name": "app", "manifests": [
        {"kind": "image", "tags": ["v1"], "pushed": "2025-01-01T00:00:00Z"},
        {"kind": "image", "tags": ["v2"], "pushed": "2025-01-02T00:00:00Z"},
    ]}]})  # fmt: skip
    before = stage.digests("app")
    ledger = str(tmp_path / "file" / "ledger")
    assert main(["apply", *args, "--yes", "--ledger", ledger], environ=environ) == 1
    err = capsys.readouterr().err
    assert "cannot write the deletion ledger" in err
    assert err.count("\n") == 1
    assert stage.digests("app") == before

"""The CLI's manifest cache: a second `plan` of an unchanged repository reads no content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acr_core.cli import main
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.generate import generate
from tests.e2e.registry import NOW

RAW_GET = "/v2/{name}/manifests/{reference}"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


@pytest.fixture
def five_hundred(emulator: Emulator) -> str:
    """One repository of 500 manifests in the demo's mix (multi-arch, signatures, leftovers)."""
    fixture = generate("500", now=NOW)
    emulator.seed(fixture)
    name: str = fixture["repositories"][0]["name"]
    return name


def plan(server: ServerInfo, policy: Path, repository: str, *flags: str) -> int:
    argv = ["plan", "--registry", server.login_server, "--ca-file", str(server.ca_file),
            "--policy", str(policy), "--now", NOW.isoformat(), "--repository", repository,
            "--output", "json", *flags]  # fmt: skip
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    return main(argv, environ=environ)


def _decisions(report: dict[str, object]) -> list[object]:
    """Each repository's plan as the JSON report states it, less the durations."""
    repositories = report["repositories"]
    assert isinstance(repositories, list)
    return [{k: v for k, v in r.items() if k != "durations"} for r in repositories]


@pytest.fixture
def keep_five(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    rule = {"name": "all", "repositories": ["**"], "keepLatest": 5, "untagged": {"olderThan": "7d"}}
    path.write_text(json.dumps({"version": 1, "rules": [rule]}))
    return path


def test_second_plan_sends_at_most_ten_requests(
    emulator: Emulator, server: ServerInfo, keep_five: Path, five_hundred: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The first plan fills --cache-dir; the second reads only the listings, same plan."""
    cache = str(tmp_path / "cache")
    plan(server, keep_five, five_hundred, "--cache-dir", cache)
    first = json.loads(capsys.readouterr().out)
    assert emulator.counters.count(endpoint=RAW_GET) > 100
    emulator.counters.reset()
    plan(server, keep_five, five_hundred, "--cache-dir", cache)
    second = json.loads(capsys.readouterr().out)
    assert emulator.counters.total <= 10
    assert emulator.counters.count(endpoint=RAW_GET) == 0
    assert _decisions(second) == _decisions(first)


def test_no_cache_reads_every_manifest_again(
    emulator: Emulator, server: ServerInfo, keep_five: Path, five_hundred: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`--no-cache` ignores a filled cache and reads the content from the registry."""
    cache = str(tmp_path / "cache")
    plan(server, keep_five, five_hundred, "--cache-dir", cache)
    emulator.counters.reset()
    plan(server, keep_five, five_hundred, "--no-cache")
    capsys.readouterr()
    assert emulator.counters.count(endpoint=RAW_GET) > 100

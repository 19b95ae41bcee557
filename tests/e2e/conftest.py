"""Fixtures the CLI tests share: the seeded emulator over HTTPS and the policy as a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acr_emulator import Emulator, ServerInfo
from tests.e2e.registry import FIXTURE, POLICY


@pytest.fixture
def server(emulator: Emulator, emulator_server: ServerInfo) -> ServerInfo:
    emulator.seed(FIXTURE)
    return emulator_server


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    return path

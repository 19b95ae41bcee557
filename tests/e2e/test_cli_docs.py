"""docs/cli.md's JSON example is what `apply --output json` prints today, entry for entry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import acr_core
from acr_core.cli import EXIT_DONE
from acr_emulator import EmulatorConfig
from tests.e2e.registry import NOW
from tests.e2e.test_cli import cli

ROOT = Path(acr_core.__file__).parent.parent
SCHEMA = json.loads((ROOT / "acr_core" / "run" / "report.schema.json").read_text())


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def _example() -> dict[str, Any]:
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = docs[docs.index("## The JSON report") :]
    match = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert match, "docs/cli.md has no JSON example under 'The JSON report'"
    example: dict[str, Any] = json.loads(match.group(1))
    return example


def test_the_json_example_in_the_docs_matches_a_real_run(server, policy_file, capsys):
    """Each action and kept entry of the example, its counts and totals are a fresh run's."""
    code = cli(
        server, policy_file, "apply", "--yes", "--repository", "services/api", "--output", "json"
    )
    assert code == EXIT_DONE
    real = json.loads(capsys.readouterr().out)
    example = _example()
    jsonschema.validate(example, SCHEMA)
    assert set(example) == set(real)
    assert example["totals"] == real["totals"]
    [documented], [actual] = example["repositories"], real["repositories"]
    for key in ("repository", "rule", "status", "blocked", "error", "counts"):
        assert documented[key] == actual[key], key
    for key in ("actions", "kept"):
        missing = [entry for entry in documented[key] if entry not in actual[key]]
        assert missing == [], key

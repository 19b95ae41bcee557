"""`acr-cleanup plan` on the emulator's demo registry, compared line for line with files a person
can read: tests/e2e/golden/plan.txt (`--output table`) and plan.md (`--output markdown`).

The registry is `generate("demo", now=NOW)` (what `python -m acr_emulator --generate demo`
serves) planned with tests/e2e/golden/policy.json as of NOW; the port and the timings, which
change from run to run, are replaced by placeholders. After a deliberate change to the output,
regenerate the files with `ACR_CLEANUP_UPDATE_GOLDEN=1 pytest tests/e2e/test_golden.py` and
review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from acr_core.cli import EXIT_BLOCKED, main
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.generate import generate
from tests.e2e.registry import NOW

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ACR_CLEANUP_UPDATE_GOLDEN") == "1"
# Seconds and request counts vary with the machine and the connection pool.
VOLATILE = [(re.compile(r"\d+\.\d s\b"), "0.0 s"), (re.compile(r"Requests: \d+"), "Requests: N")]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


@pytest.fixture
def demo(emulator: Emulator, emulator_server: ServerInfo) -> ServerInfo:
    emulator.seed(generate("demo", now=NOW))
    return emulator_server


def _plan(server: ServerInfo, output: str, capsys: pytest.CaptureFixture[str]) -> str:
    argv = ["plan", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(GOLDEN / "policy.json"), "--now", NOW.isoformat()]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    assert main([*argv, "--output", output], environ=environ) == EXIT_BLOCKED
    text = capsys.readouterr().out.replace(server.login_server, "registry.test")
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


@pytest.mark.parametrize(("output", "name"), [("table", "plan.txt"), ("markdown", "plan.md")])
def test_plan_on_the_demo_registry_matches_the_golden_output(demo, capsys, output, name):
    """`plan --output table|markdown` on the demo registry prints exactly the golden file."""
    text = _plan(demo, output, capsys)
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")

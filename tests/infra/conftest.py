"""Fixtures for the offline infrastructure checks: parsed templates, one checkov run, and the
functions that function_app.py registers."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra import bicep_model

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@pytest.fixture(scope="session")
def templates() -> dict[str, bicep_model.BicepFile]:
    """Every Bicep file under infra/, keyed by its path relative to infra/ (e.g. main.bicep)."""
    return {
        path.relative_to(INFRA).as_posix(): bicep_model.load(path)
        for path in sorted(INFRA.rglob("*.bicep"))
    }


def checkov_path() -> Path:
    """$CHECKOV (set by the Makefile), else the Makefile's own install location."""
    return Path(os.environ.get("CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")


@pytest.fixture(scope="session")
def checkov_report() -> dict[str, object]:
    """checkov's JSON report for infra/ (framework bicep), from one run per session (~4 s)."""
    checkov = checkov_path()
    if not checkov.exists():
        pytest.fail(f"checkov not found at {checkov}: run `make setup` (it installs .venv-checkov)")
    # --skip-download keeps checkov off the network (docs/functions-facts.md 4.4).
    completed = subprocess.run(
        [str(checkov), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Exit code 1 means "some check failed"; the tests report which. Anything else is a crash.
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    assert isinstance(report, dict), "checkov printed one report per framework; expected one"
    return report


@pytest.fixture(scope="module")
def registered_functions() -> dict[str, list[dict[str, object]]]:
    """Function name -> raw bindings, from a fresh import of function_app.py.

    `FunctionApp.get_functions()` is not idempotent (docs/functions-facts.md 1.5), so the module is
    imported anew and whatever was in sys.modules before is put back afterwards.
    """
    if not (ROOT / "function_app.py").exists():
        pytest.skip("function_app.py does not exist yet; the infra wiring cannot be checked")
    previous = sys.modules.pop("function_app", None)
    try:
        module = importlib.import_module("function_app")
        return {
            function.get_function_name(): [json.loads(raw) for raw in function.get_raw_bindings()]
            for function in module.app.get_functions()
        }
    finally:
        sys.modules.pop("function_app", None)
        if previous is not None:
            sys.modules["function_app"] = previous

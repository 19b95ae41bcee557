"""The function app is a shell over acr_core.app, and acr_core.app knows nothing of the worker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "acr_core" / "app"
APP_MODULES = sorted(f"acr_core.app.{p.stem}" for p in APP_DIR.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", APP_MODULES)
def test_app_modules_do_not_load_azure_functions(module: str) -> None:
    """Importing any acr_core.app module in a fresh interpreter loads no azure.functions."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m == "azure.functions" or m.startswith("azure.functions.")] == []


def test_function_app_imports_only_acr_core_app() -> None:
    """function_app.py reaches the library only through acr_core.app."""
    tree = ast.parse((ROOT / "function_app.py").read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    ours = [name for name in imported if name.split(".")[0] == "acr_core"]
    assert ours, "function_app.py imports nothing of acr_core"
    assert [name for name in ours if not name.startswith("acr_core.app")] == []

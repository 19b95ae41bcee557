"""Who may import what (docs/architecture.md, "Modules and who may import what").

The pure core must stay pure, so a fresh interpreter imports each pure module and then looks at
what got loaded; and the emulator and the library must share no code, so their sources are
scanned for imports of each other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_MODULES = [
    "acr_core.models",
    "acr_core.planning.plan",
    "acr_core.planning.patterns",
    "acr_core.planning.policy",
    "acr_core.planning.planner",
    "acr_core.app.events",
]
FORBIDDEN_IN_PURE = ("httpx", "azure", "acr_emulator")


def _exists(module: str) -> bool:
    return (ROOT / (module.replace(".", "/") + ".py")).exists()


def _loaded_after_import(module: str) -> list[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_neither_httpx_nor_azure(module: str) -> None:
    """Importing a pure module loads no httpx, no azure package and nothing of the emulator."""
    if not _exists(module):
        pytest.skip(f"{module} is not written yet")
    loaded = _loaded_after_import(module)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_PURE]
    assert bad == []


def _imported_roots(directory: Path) -> dict[str, set[str]]:
    """Each source file under `directory` mapped to the top-level packages it imports."""
    result: dict[str, set[str]] = {}
    for path in sorted(directory.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        roots: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
        result[str(path.relative_to(directory))] = roots
    return result


@pytest.mark.parametrize(
    ("package", "other"), [("acr_emulator", "acr_core"), ("acr_core", "acr_emulator")]
)
def test_the_emulator_and_the_library_never_import_each_other(package: str, other: str) -> None:
    """No source file of one package imports the other (they share no protocol code)."""
    if not (ROOT / package).is_dir():
        pytest.skip(f"{package} does not exist yet")
    imports = _imported_roots(ROOT / package)
    offenders = sorted(path for path, roots in imports.items() if other in roots)
    assert offenders == []


def test_the_scan_sees_imports_at_any_depth(tmp_path: Path) -> None:
    """The import scan finds plain and `from` imports inside functions, not only at the top."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.py").write_text(
        "def f():\n    import acr_core.models\n    from acr_emulator import x\n"
        "    from . import sibling\n"
    )
    assert _imported_roots(tmp_path) == {"sub/m.py": {"acr_core", "acr_emulator"}}

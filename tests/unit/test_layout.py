"""The packages' shape: small functions everywhere, and the emulator's composition root.

The emulator's APIs are handler classes built from narrow state objects (docs/architecture.md);
only `emulator.py` builds them, and nothing in the package imports anything inside a function.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.layout import import_graph, long_functions, nested_imports

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60  # one screen: docs/architecture.md, "Packages and who may import what"


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "pkg" / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize("package", ["acr_core", "acr_emulator"])
def test_no_function_is_longer_than_sixty_lines(package: str) -> None:
    """Every function, from its def line to its last line, fits on a screen."""
    assert long_functions(ROOT, package, MAX_FUNCTION_LINES) == []


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    """A 62-line function is reported with its file, name and length."""
    _write_package(tmp_path, {"m.py": "def f():\n" + "    x = 1\n" * 61})
    assert long_functions(tmp_path, "pkg", MAX_FUNCTION_LINES) == ["pkg/m.py:f (62 lines)"]


def test_only_the_composition_root_builds_the_emulators_apis() -> None:
    """The API modules are imported by `emulator` alone, and the Emulator only by its users."""
    graph = import_graph(ROOT, "acr_emulator")
    apis = {module for module in graph if module.split(".")[-1].startswith("api_")}
    builders = sorted(module for module, edges in graph.items() if edges & apis)
    users = sorted(module for module, edges in graph.items() if "acr_emulator.emulator" in edges)
    assert builders == ["acr_emulator.emulator"]
    assert users == ["acr_emulator", "acr_emulator.cli"]


def test_every_emulator_import_is_at_the_top_of_its_module() -> None:
    """No emulator module imports inside a function, a class or an `if TYPE_CHECKING:` block."""
    assert nested_imports(ROOT, "acr_emulator") == []


def test_the_nested_import_scan_sees_an_import_in_a_function(tmp_path: Path) -> None:
    """An import inside a function body is reported with its file and line."""
    _write_package(tmp_path, {"m.py": "import json\n\n\ndef f():\n    import os\n"})
    assert nested_imports(tmp_path, "pkg") == ["pkg/m.py:5"]

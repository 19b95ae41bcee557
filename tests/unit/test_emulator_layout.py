"""The emulator's module layout: no import cycles, every import at the top, small functions.

The graph is read from the sources with `ast`, so nothing is imported to check it. An edge is
an explicit import of another module of the package (`from pkg import mod` counts as `pkg.mod`
when that is a module); the implicit import of a parent package is not an edge, as Python has
finished (or is running) the parent's `__init__` before any of its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = ROOT / "acr_emulator"
MAX_FUNCTION_LINES = 60


def _module_name(package: Path, path: Path) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]
) -> set[str]:
    """The modules of `modules` an import statement loads, relative imports resolved."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, *([base] if base else [])])
    found = set()
    for alias in node.names:
        name = f"{base}.{alias.name}"
        if name in modules:
            found.add(name)
        elif base in modules:
            found.add(base)
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of `package` mapped to the modules of the same package it imports."""
    sources = {_module_name(package, path): path for path in sorted(package.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _imported(node, module, path.name == "__init__.py", set(sources))
        graph[module] = edges - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as `[a, b, ..., a]`, or None when the graph has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for neighbour in sorted(graph.get(node, ())):
            cycle = visit(neighbour)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def nested_imports(package: Path) -> list[str]:
    """`file:line` of every import that is not a statement of its module's top level."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    return found


def _write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "pkg"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text, encoding="utf-8")
    return package


def test_the_emulator_has_no_import_cycle() -> None:
    """No chain of imports between the emulator's modules leads back to where it started."""
    assert find_cycle(import_graph(EMULATOR)) is None


def test_only_the_composition_root_builds_the_apis() -> None:
    """The API modules are imported by `emulator` alone, and the Emulator only by its users."""
    graph = import_graph(EMULATOR)
    apis = {module for module in graph if module.split(".")[-1].startswith("api_")}
    builders = sorted(module for module, edges in graph.items() if edges & apis)
    users = sorted(module for module, edges in graph.items() if "acr_emulator.emulator" in edges)
    assert builders == ["acr_emulator.emulator"]
    assert users == ["acr_emulator", "acr_emulator.cli"]


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path: Path) -> None:
    """A package whose modules import each other round a loop is reported with that loop."""
    package = _write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            "b.py": "from pkg.c import thing\n",
            "c.py": "def f():\n    from . import a\n",
            "d.py": "import pkg.a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_the_cycle_finder_passes_an_acyclic_package(tmp_path: Path) -> None:
    """A package whose imports all point one way has no cycle."""
    package = _write_package(
        tmp_path,
        {"__init__.py": "from pkg.a import x\n", "a.py": "import pkg.b\n", "b.py": "y = 1\n"},
    )
    assert find_cycle(import_graph(package)) is None


def test_every_emulator_import_is_at_the_top_of_its_module() -> None:
    """No emulator module imports inside a function, a class or an `if TYPE_CHECKING:` block."""
    assert nested_imports(EMULATOR) == []


def test_the_nested_import_scan_sees_an_import_in_a_function(tmp_path: Path) -> None:
    """An import inside a function body is reported with its file and line."""
    package = _write_package(tmp_path, {"m.py": "import json\n\n\ndef f():\n    import os\n"})
    assert nested_imports(package) == ["pkg/m.py:5"]


def test_no_emulator_function_is_longer_than_sixty_lines() -> None:
    """Every function of the emulator, from its def line to its last line, fits on a screen."""
    long = []
    for path in sorted(EMULATOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []

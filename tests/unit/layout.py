"""Reading a package's layout from its sources with `ast`, importing nothing: which modules
each module imports (at any depth of the file), import cycles, nested imports, long functions.

An edge of the import graph is an explicit import of another module of the package (`from pkg
import mod` counts as `pkg.mod` when that is a module); the implicit import of a parent package
is not an edge, as Python has finished (or is running) the parent's `__init__` by then.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    """`acr_core/run/service.py` -> `acr_core.run.service`; an `__init__` is its package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> set[str]:
    """Every module `path` imports, at any depth of the file, relative imports resolved.

    `from p import m` counts as importing `p.m` when `m` is a module under `root`, and as
    importing `p` otherwise; the parent packages every import runs first are left out.
    """
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(root, candidate) else base)
    return found


def _is_module(root: Path, name: str) -> bool:
    as_path = root / name.replace(".", "/")
    return as_path.with_suffix(".py").exists() or (as_path / "__init__.py").exists()


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of `package` (a directory under `root`) mapped to the modules of `package`
    it imports."""
    modules = {module_name(root, path): path for path in sorted((root / package).rglob("*.py"))}
    return {
        name: {m for m in imports_of(root, path) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def nested_imports(root: Path, package: str) -> list[str]:
    """`file:line` of every import that is not a statement of its module's top level."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def long_functions(root: Path, package: str, limit: int) -> list[str]:
    """`file:function (n lines)` for every function longer than `limit`, def line to last line."""
    long = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    long.append(f"{path.relative_to(root)}:{node.name} ({lines} lines)")
    return long

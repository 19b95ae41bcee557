"""Who may import what (docs/architecture.md, "Packages and who may import what").

Each package of `acr_core` has a rule: which of our packages and which third-party packages its
sources may import (anywhere in a file, not only at the top). The pure core is also imported in a
fresh interpreter to see that nothing impure gets loaded through a package `__init__`. The emulator
and the library share no code, and neither package has an import cycle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.layout import find_cycle, import_graph, imports_of, module_name

ROOT = Path(__file__).resolve().parents[2]

# Our modules each part may import (by prefix), and the third-party top-level packages it may use.
PURE = ("acr_core.models", "acr_core.names")
# What the cleaner remembers between runs (issues 11 and 14).
KEPT = ("acr_core.storage", "acr_core.ledger", "acr_core.history")
RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "acr_core": (("acr_core.registry",), ()),  # the package's lazy exports of the client
    "acr_core.__main__": (("acr_core.cli",), ()),
    "acr_core.models": ((), ()),
    "acr_core.names": ((), ()),
    "acr_core.planning": ((*PURE, "acr_core.planning"), ("re2",)),  # RE2: linear-time regex
    # httpcore: httpx's own connection pool, given asyncio sockets for less CPU (_network.py).
    "acr_core.registry": ((*PURE, "acr_core.registry"), ("httpx", "httpcore", "azure.core")),
    "acr_core.run": (
        (*PURE, "acr_core.planning", "acr_core.registry", "acr_core.run", *KEPT),
        (),
    ),
    # Keyed bytes and rows: memory, a directory, Azure Blob and Table Storage (no ACR here).
    "acr_core.storage": (
        (*PURE, "acr_core.storage"),
        ("azure.core", "azure.identity", "azure.storage.blob", "azure.data.tables"),
    ),
    # The ledger records a run's report (run) and restores through the client (registry).
    "acr_core.ledger": (
        (
            *PURE,
            "acr_core.planning",
            "acr_core.registry",
            "acr_core.run.report",
            "acr_core.run.recording",
            "acr_core.storage",
            "acr_core.ledger",
        ),
        (),
    ),
    "acr_core.history": ((*PURE, "acr_core.storage", "acr_core.history"), ()),
    "acr_core.app": (
        (*PURE, "acr_core.planning", "acr_core.registry", "acr_core.run", *KEPT, "acr_core.app"),
        ("azure.core", "azure.identity"),
    ),
    "acr_core.cli": (
        (*PURE, "acr_core.planning", "acr_core.registry", "acr_core.run", *KEPT),
        ("azure.core", "azure.identity"),
    ),
    "function_app": (("acr_core.app",), ("azure.functions", "azure.core")),
}
# Modules whose import must load nothing impure, checked in a fresh interpreter.
PURE_MODULES = [
    "acr_core.models",
    "acr_core.names",
    "acr_core.planning.plan",
    "acr_core.planning.patterns",
    "acr_core.planning.policy",
    "acr_core.planning.planner",
    "acr_core.app.events",
]
FORBIDDEN_IN_PURE = ("httpx", "azure", "acr_emulator")


def _rule_for(module: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    matches = [p for p in RULES if module == p or module.startswith(p + ".")]
    assert matches, f"{module} is in no package of RULES: give it a rule"
    return RULES[max(matches, key=len)]


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _sources() -> Iterator[Path]:
    yield from sorted((ROOT / "acr_core").rglob("*.py"))
    yield ROOT / "function_app.py"


def _violations(path: Path) -> list[str]:
    module = module_name(ROOT, path)
    ours, third_party = _rule_for(module)
    bad = []
    for imported in sorted(imports_of(ROOT, path)):
        top = imported.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if top in ("acr_core", "acr_emulator"):
            allowed = module.startswith("acr_core.") and imported == "acr_core"
            if not (allowed or _within(imported, ours)):
                bad.append(f"{module} imports {imported}")
        elif not _within(imported, third_party):
            bad.append(f"{module} imports third-party {imported}")
    return bad


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_module_imports_only_what_its_package_may(path: Path) -> None:
    """A module imports only our packages and third-party packages its package's rule allows."""
    assert _violations(path) == []


def test_the_rules_catch_an_import_across_the_layering(tmp_path: Path) -> None:
    """A planning module importing the client, or the shell importing the executor, is caught."""
    assert not _within("acr_core.registry.client", RULES["acr_core.planning"][0])
    assert _within("acr_core.app.handlers", RULES["function_app"][0])
    assert _rule_for("acr_core.planning.graph") == RULES["acr_core.planning"]


def _loaded_after_import(module: str) -> list[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_neither_httpx_nor_azure(module: str) -> None:
    """Importing a pure module loads no httpx, no azure package and nothing of the emulator."""
    loaded = _loaded_after_import(module)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_PURE]
    assert bad == []


@pytest.mark.parametrize(
    "module",
    sorted(f"acr_core.app.{p.stem}" for p in (ROOT / "acr_core" / "app").glob("[!_]*.py")),
)
def test_the_function_apps_library_never_loads_the_functions_worker(module: str) -> None:
    """Importing an acr_core.app module in a fresh interpreter loads no azure.functions."""
    loaded = _loaded_after_import(module)
    assert [m for m in loaded if m == "azure.functions" or m.startswith("azure.functions.")] == []


@pytest.mark.parametrize(
    ("package", "other"), [("acr_emulator", "acr_core"), ("acr_core", "acr_emulator")]
)
def test_the_emulator_and_the_library_never_import_each_other(package: str, other: str) -> None:
    """No source file of one package imports the other (they share no protocol code)."""
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / package).rglob("*.py")
        if any(m.split(".")[0] == other for m in imports_of(ROOT, path))
    )
    assert offenders == []


@pytest.mark.parametrize("package", ["acr_core", "acr_emulator"])
def test_no_package_has_an_import_cycle(package: str) -> None:
    """No module of the package imports itself through others, at any depth of the file."""
    assert find_cycle(import_graph(ROOT, package)) is None


def test_the_scan_sees_imports_at_any_depth_and_finds_cycles(tmp_path: Path) -> None:
    """The scan finds plain, `from` and relative imports inside functions, and a cycle in them."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("import json\nfrom . import c\n")
    (tmp_path / "pkg" / "c.py").write_text("def g():\n    import pkg.a\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (tmp_path / "pkg" / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None

"""The package as a user installs it: `pip install 'acr-cleanup[emulator]'` in a fresh venv,
and the documentation links its messages give, which must work without a checkout.

The sources are copied out of the checkout first, so that a stale `build/` there cannot put
files into the wheel that the sources no longer have. uv installs from the machine's package
index and its own cache, as the Makefile's setup does.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from acr_core.cli import DOCS, build_parser, main
from acr_emulator.cli import parser as emulator_parser

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
SCHEMAS = ("acr_core/planning/policy.schema.json", "acr_core/run/report.schema.json")
# A path into docs/ that is not part of a URL: it names a folder an installed package lacks.
BARE_DOCS_PATH = re.compile(r"(?<![\w/.])docs/[\w./-]*\.md")
USER_FACING = ("acr_core/cli.py", "acr_core/planning/policy.py", "acr_emulator/cli.py")


def _strings(path: Path) -> list[str]:
    """Every string literal of a module except docstrings (f-strings' literal parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("module", USER_FACING)
def test_no_message_names_a_docs_path_an_installed_package_lacks(module):
    """No string the CLI, the policy loader or the emulator's CLI can print names docs/*.md."""
    found = [s for s in _strings(ROOT / module) if BARE_DOCS_PATH.search(s)]
    assert found == []


def test_help_and_validate_link_the_published_documentation(tmp_path, capsys):
    """`--help` shows the cli.md link on one line, `validate` the policy.md link, and both use
    the Documentation URL of pyproject.toml."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "rules": [{"name": "x"}]}')
    assert main(["validate", str(bad)]) == 2
    validate = capsys.readouterr().out
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    help_lines = build_parser().format_help().splitlines()
    emulator_help = emulator_parser().format_help().splitlines()
    assert DOCS.replace("/blob/", "/tree/") == urls["Documentation"]
    assert any(line.endswith(f"{DOCS}/cli.md") for line in help_lines)
    assert any(line.endswith(f"{DOCS}/emulator.md") for line in emulator_help)
    assert f"see {DOCS}/policy.md" in validate


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a source distribution holds: the packages, pyproject.toml, the README."""
    if not UV.exists():
        pytest.skip(f"uv is not installed next to {sys.executable} (make setup installs it)")
    tree = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("acr_core", "acr_emulator"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    return tree


@pytest.fixture(scope="module")
def venv(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh Python 3.11 venv with `acr-cleanup[emulator]` installed from the copied sources."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    install = [str(UV), "pip", "install", "--quiet", "--python", str(python)]
    subprocess.run([*install, f"{source}[emulator]"], check=True, timeout=300)
    return home


@pytest.mark.slow
def test_the_wheel_contains_both_json_schemas(source, tmp_path):
    """The built wheel ships the policy schema and the report schema as package data."""
    subprocess.run(
        [str(UV), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path), str(source)],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("acr_cleanup-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SCHEMAS) <= names


@pytest.mark.slow
def test_the_emulator_extra_makes_both_console_scripts_work(venv, tmp_path):
    """After the install, `acr-emulator --port 0` prints its JSON line and `acr-cleanup plan`
    against it with the printed admin user and CA file exits 0."""
    emulator = subprocess.Popen(
        [str(venv / "bin" / "acr-emulator"), "--port", "0", "--generate", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert emulator.stdout is not None
        line = json.loads(emulator.stdout.readline())
        env = {
            **os.environ,
            "ACR_USERNAME": line["admin_username"],
            "ACR_PASSWORD": line["admin_password"],
        }
        plan = subprocess.run(
            [
                str(venv / "bin" / "acr-cleanup"),
                "plan",
                "--registry",
                line["url"],
                "--ca-file",
                line["ca_file"],
                "--policy",
                str(ROOT / "examples" / "policy.json"),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    assert plan.returncode == 0, plan.stderr
    assert "would delete" in plan.stdout

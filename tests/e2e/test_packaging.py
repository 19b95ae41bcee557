"""The package as a user installs it: `pip install 'acr-cleanup[emulator]'` in a fresh venv.

The sources are copied out of the checkout first, so that a stale `build/` there cannot put
files into the wheel that the sources no longer have. uv installs from the machine's package
index and its own cache, as the Makefile's setup does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
SCHEMAS = ("acr_core/planning/policy.schema.json", "acr_core/run/report.schema.json")

pytestmark = pytest.mark.slow


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

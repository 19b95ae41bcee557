"""What `azd up` reads besides the Bicep: azure.yaml, main.parameters.json, the postdeploy hook
(the second pass) and .funcignore (what goes into the function package)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pathspec
import pytest
import yaml

from tests.infra.bicep_model import BicepFile, Call
from tests.infra.conftest import INFRA, ROOT

Templates = dict[str, BicepFile]
AZD_VALUE_RE = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*)(?:=(?P<default>[^}]*))?\}")


def _azure_yaml() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _parameters() -> dict[str, str]:
    """main.parameters.json: parameter name -> its (azd-substituted) value text."""
    document = json.loads((INFRA / "main.parameters.json").read_text())
    return {name: entry["value"] for name, entry in document["parameters"].items()}


# -- main.parameters.json ------------------------------------------------------------------------


def test_parameters_file_names_only_real_parameters(templates: Templates) -> None:
    """Every entry is a main.bicep parameter, and every required parameter has an entry."""
    main = templates["main.bicep"]
    given = set(_parameters())
    assert given - set(main.params) == set()
    required = {name for name, default in main.params.items() if default is None}
    assert required - given == set()


def test_parameters_come_from_the_azd_environment(templates: Templates) -> None:
    """Each value is one azd environment variable, and its fallback equals the Bicep default."""
    main = templates["main.bicep"]
    for name, text in _parameters().items():
        match = AZD_VALUE_RE.fullmatch(text)
        assert match is not None, f"{name}: {text!r} is not ${{VAR}} or ${{VAR=default}}"
        default = match.group("default")
        bicep_default = main.params[name]
        if default is None:
            continue
        if isinstance(bicep_default, bool):
            assert default == str(bicep_default).lower(), name
        elif isinstance(bicep_default, int | str):
            assert default == str(bicep_default), name


def test_first_deployment_is_a_dry_run_without_subscription() -> None:
    """Without environment values, azd deploys in dry run and leaves the subscription out."""
    parameters = _parameters()
    assert parameters["cleanupDryRun"] == "${CLEANUP_DRY_RUN=true}"
    assert parameters["deployEventSubscription"] == "${DEPLOY_EVENT_SUBSCRIPTION=false}"


# -- azure.yaml ----------------------------------------------------------------------------------


def test_azure_yaml_provisions_main_bicep() -> None:
    """azd provisions infra/main.bicep with the Bicep provider."""
    infra = _azure_yaml()["infra"]
    assert isinstance(infra, dict)
    assert infra["provider"] == "bicep"
    assert (ROOT / str(infra["path"]) / f"{infra['module']}.bicep") == INFRA / "main.bicep"


def test_azure_yaml_service_is_the_tagged_function_app(templates: Templates) -> None:
    """The one azd service is a Python function app at the root, and the site carries its name
    in the azd-service-name tag (that is how azd finds where to publish)."""
    services = _azure_yaml()["services"]
    assert isinstance(services, dict)
    assert len(services) == 1
    (name, service), *_ = services.items()
    assert service == {"project": ".", "language": "python", "host": "function"}
    module = templates["modules/function-app.bicep"]
    site = next(r for r in module.resources.values() if r.type.startswith("Microsoft.Web/sites@"))
    tags = site.config["tags"]
    assert isinstance(tags, Call)
    assert tags.function == "union"
    assert {"azd-service-name": name} in tags.args


@pytest.mark.parametrize("platform", ["posix", "windows"])
def test_postdeploy_hook_scripts_exist(platform: str) -> None:
    """azure.yaml's postdeploy hook points at scripts in infra/hooks/."""
    hooks = _azure_yaml()["hooks"]
    assert isinstance(hooks, dict)
    hook = hooks["postdeploy"][platform]
    script = ROOT / hook["run"]
    assert script.parent == INFRA / "hooks"
    assert script.is_file()
    if platform == "posix":
        assert script.stat().st_mode & stat.S_IXUSR


# -- the postdeploy hook, run against a fake azd -------------------------------------------------

FAKE_AZD = """#!/bin/sh
# Records each call; `provision` also records the flag it would deploy with, and fails while
# the counter file says so.
if [ "$1" = "provision" ]; then
  echo "$* (DEPLOY_EVENT_SUBSCRIPTION=$DEPLOY_EVENT_SUBSCRIPTION)" >> "$AZD_LOG"
  left=$(cat "$AZD_FAILURES")
  if [ "$left" -gt 0 ]; then
    echo $((left - 1)) > "$AZD_FAILURES"
    exit 1
  fi
  exit 0
fi
echo "$*" >> "$AZD_LOG"
exit 0
"""


def _run_hook(tmp_path: Path, *, flag: str, failures: int) -> tuple[int, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    azd = bin_dir / "azd"
    azd.write_text(FAKE_AZD)
    azd.chmod(0o755)
    log = tmp_path / "azd.log"
    log.touch()
    (tmp_path / "failures").write_text(str(failures))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AZD_LOG": str(log),
        "AZD_FAILURES": str(tmp_path / "failures"),
        "DEPLOY_EVENT_SUBSCRIPTION": flag,
        "POSTDEPLOY_RETRY_SECONDS": "0",
    }
    completed = subprocess.run(
        ["sh", str(INFRA / "hooks" / "postdeploy.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return completed.returncode, log.read_text().splitlines()


def test_hook_runs_the_second_pass_once(tmp_path: Path) -> None:
    """After the first deploy, the hook turns the subscription flag on and provisions again."""
    code, calls = _run_hook(tmp_path, flag="false", failures=0)
    assert code == 0
    assert calls == [
        "env set DEPLOY_EVENT_SUBSCRIPTION true",
        "provision --no-prompt (DEPLOY_EVENT_SUBSCRIPTION=true)",
    ]


def test_hook_does_nothing_when_the_subscription_is_deployed(tmp_path: Path) -> None:
    """With the flag already on, provisioning already included the subscription."""
    code, calls = _run_hook(tmp_path, flag="true", failures=0)
    assert code == 0
    assert calls == []


def test_hook_retries_while_the_function_is_not_indexed(tmp_path: Path) -> None:
    """A provision that fails (endpoint not found yet) is retried."""
    code, calls = _run_hook(tmp_path, flag="false", failures=2)
    assert code == 0
    assert calls.count("provision --no-prompt (DEPLOY_EVENT_SUBSCRIPTION=true)") == 3


def test_hook_gives_up_and_resets_the_flag(tmp_path: Path) -> None:
    """After three failed tries the hook fails and turns the flag off again, so the next
    `azd up` provisions without the subscription and the hook tries again."""
    code, calls = _run_hook(tmp_path, flag="false", failures=5)
    assert code == 1
    assert calls.count("provision --no-prompt (DEPLOY_EVENT_SUBSCRIPTION=true)") == 3
    assert calls[-1] == "env set DEPLOY_EVENT_SUBSCRIPTION false"


def test_hook_flag_is_the_one_the_parameters_file_reads() -> None:
    """The hook sets the variable main.parameters.json maps to deployEventSubscription."""
    match = AZD_VALUE_RE.fullmatch(_parameters()["deployEventSubscription"])
    assert match is not None
    for script in ("postdeploy.sh", "postdeploy.ps1"):
        text = (INFRA / "hooks" / script).read_text()
        assert f"azd env set {match.group('name')} true" in text, script


# -- .funcignore ---------------------------------------------------------------------------------


def _package() -> tuple[set[str], set[str]]:
    """(files that go into the package, directories left out), walking the working tree the way
    a packager does: an ignored directory is not entered."""
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    files: set[str] = set()
    pruned: set[str] = set()
    for directory, subdirs, names in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT)
        for sub in list(subdirs):
            relative = (base / sub).as_posix()
            if sub == ".git" or spec.match_file(relative + "/"):
                subdirs.remove(sub)
                pruned.add(relative)
        for name in names:
            relative = (base / name).as_posix()
            if not spec.match_file(relative):
                files.add(relative)
    return files, pruned


def test_package_holds_what_the_function_needs() -> None:
    """function_app.py, host.json, requirements.txt and every acr_core module are packaged."""
    files, _ = _package()
    needed = {"function_app.py", "host.json", "requirements.txt"}
    needed |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "acr_core").glob("*.py")}
    assert needed - files == set()


def test_package_holds_nothing_else() -> None:
    """Only the app, acr_core and root-level JSON (a policy file) are packaged: no emulator,
    tests, benchmarks, infra, docs, scripts or virtual environments."""
    files, pruned = _package()
    extra = {
        f
        for f in files
        if not f.startswith("acr_core/")
        and f not in {"function_app.py", "host.json", "requirements.txt"}
        and not ("/" not in f and f.endswith(".json"))
    }
    assert extra == set()
    assert not any(f.startswith("acr_core/__pycache__/") for f in files)
    # Local settings samples hold connection strings for Azurite, not policy.
    assert not any(f.startswith("local.settings") for f in files)
    for directory in (".venv", ".venv-checkov", ".tools", "acr_emulator", "tests", "infra"):
        if (ROOT / directory).exists():
            assert directory in pruned, directory


# -- docs/deploy.md ------------------------------------------------------------------------------


def _deploy_doc() -> str:
    return (ROOT / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize(
    "heading",
    [
        "## Deploy with `azd up`",
        "## Deploy with `az deployment group create`",
        "## Why two passes",
        "## Check the deployment",
        "## From dry run to enforcing",
        "## Roll back",
        "## Permissions, and why",
    ],
)
def test_deploy_doc_covers(heading: str) -> None:
    """docs/deploy.md has a section for each step a user goes through."""
    assert f"\n{heading}\n" in _deploy_doc()


def test_deploy_doc_parameter_table_matches_the_templates(templates: Templates) -> None:
    """The doc's parameter table names every main.bicep parameter, with the azd variable that
    main.parameters.json really maps to it."""
    section = _deploy_doc().split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str | None] = {}
    for row in re.findall(r"^\| (.+?) \| (.+?) \|", section, flags=re.M):
        variable = re.fullmatch(r"`([A-Z_]+)`", row[1])
        for name in re.findall(r"`(\w+)`", row[0]):
            documented[name] = variable.group(1) if variable else None
    assert set(templates["main.bicep"].params) - set(documented) == set()
    for name, text in _parameters().items():
        match = AZD_VALUE_RE.fullmatch(text)
        assert match is not None
        assert documented[name] == match.group("name"), name


def test_funcignore_names_only_tests_that_exist() -> None:
    """Every test file the .funcignore comments point to is there."""
    named = re.findall(r"tests/\S+?\.py", (ROOT / ".funcignore").read_text())
    assert named
    assert [n for n in named if not (ROOT / n).is_file()] == []

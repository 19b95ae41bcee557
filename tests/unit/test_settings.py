"""App settings: defaults, validation, and errors that name the setting and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from acr_core.app.settings import (
    DEFAULT_AUDIENCE,
    DEFAULT_SCHEDULE,
    DEFAULT_SWEEP_BUDGET_SECONDS,
    SettingsError,
    load_settings,
)
from acr_core.run.limiter import DEFAULT_MAX_CONCURRENCY

RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
    "/providers/Microsoft.ContainerRegistry/registries/myregistry"
)
POLICY = json.dumps(
    {"version": 1, "rules": [{"name": "apps", "repositories": ["apps/**"], "keepLatest": 5}]}
)
MINIMAL = {
    "ACR_LOGIN_SERVER": "myregistry.azurecr.io",
    "ACR_RESOURCE_ID": RESOURCE_ID,
    "CLEANUP_POLICY": POLICY,
}


def problems(env: dict[str, str], **kwargs: Path) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        load_settings(env, **kwargs)
    return caught.value.problems


def test_minimal_settings_take_documented_defaults() -> None:
    """Only the three required settings give a dry-running, system-identity configuration."""
    settings = load_settings(MINIMAL)
    assert settings.login_server == "myregistry.azurecr.io"
    assert settings.endpoint == "https://myregistry.azurecr.io"
    assert settings.resource_id == RESOURCE_ID
    assert settings.policy.covers("apps/web")
    assert not settings.policy.covers("base/python")
    assert settings.policy_origin == "CLEANUP_POLICY"
    assert settings.schedule == DEFAULT_SCHEDULE
    assert settings.dry_run is True
    assert settings.client_id is None
    assert settings.token_audience == DEFAULT_AUDIENCE
    assert settings.max_concurrency == DEFAULT_MAX_CONCURRENCY
    assert settings.max_writes_per_minute is None
    assert settings.sweep_budget_seconds == DEFAULT_SWEEP_BUDGET_SECONDS


def test_every_setting_is_read() -> None:
    """Each optional setting, when given, reaches the settings object normalised."""
    env = {
        **MINIMAL,
        "ACR_LOGIN_SERVER": " MyRegistry.AzureCR.io ",
        "CLEANUP_SCHEDULE": "0  */30 * * * *",
        "CLEANUP_DRY_RUN": "FALSE",
        "AZURE_CLIENT_ID": "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE",
        "ACR_TOKEN_AUDIENCE": "https://containerregistry.azure.cn/",
        "CLEANUP_MAX_CONCURRENCY": "8",
        "CLEANUP_MAX_WRITES_PER_MINUTE": "400",
        "CLEANUP_SWEEP_BUDGET_SECONDS": "120.5",
        "CLEANUP_REGISTRY_SKU": "Standard",
        "CLEANUP_MAX_DELETES_PER_MINUTE": "12",
        "CLEANUP_MAX_READS_PER_MINUTE": "125",
    }
    settings = load_settings(env)
    assert settings.login_server == "myregistry.azurecr.io"
    assert settings.schedule == "0 */30 * * * *"
    assert settings.dry_run is False
    assert settings.client_id == "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    assert settings.token_audience == "https://containerregistry.azure.cn"
    assert settings.max_concurrency == 8
    assert settings.max_writes_per_minute == 400
    assert settings.sweep_budget_seconds == 120.5
    assert settings.registry_sku == "standard"
    assert settings.max_deletes_per_minute == 12
    assert settings.max_reads_per_minute == 125


def test_each_run_gets_the_numbers_set_else_the_skus_limits() -> None:
    """The per-run numbers win over the SKU's per-identity limits; the SKU fills the rest;
    with neither, a run has no fixed pace."""
    env = {**MINIMAL, "CLEANUP_REGISTRY_SKU": "Premium", "CLEANUP_MAX_DELETES_PER_MINUTE": "50"}
    limits = load_settings(env).limits()
    assert (limits.deletes_per_minute, limits.reads_per_minute) == (50, 10_000)
    assert limits.writes_per_minute == 2_000
    unpaced = load_settings(MINIMAL).limits()
    assert (unpaced.deletes_per_minute, unpaced.reads_per_minute) == (None, None)


def test_blank_optional_settings_mean_unset() -> None:
    """An app setting present but empty (as Bicep often writes it) takes the default."""
    env = {
        **MINIMAL,
        "AZURE_CLIENT_ID": "",
        "CLEANUP_MAX_WRITES_PER_MINUTE": " ",
        "CLEANUP_DRY_RUN": "",
    }
    settings = load_settings(env)
    assert settings.client_id is None
    assert settings.max_writes_per_minute is None
    assert settings.dry_run is True


def test_login_server_with_port_is_accepted() -> None:
    """A host:port login server (a local emulator) is kept as given."""
    assert load_settings({**MINIMAL, "ACR_LOGIN_SERVER": "127.0.0.1:5443"}).login_server == (
        "127.0.0.1:5443"
    )


def test_policy_file_is_read_relative_to_the_app_root(tmp_path: Path) -> None:
    """CLEANUP_POLICY_FILE names a file under the app root."""
    (tmp_path / "policy.json").write_text(POLICY)
    env = {k: v for k, v in MINIMAL.items() if k != "CLEANUP_POLICY"}
    settings = load_settings({**env, "CLEANUP_POLICY_FILE": "policy.json"}, app_root=tmp_path)
    assert settings.policy.covers("apps/api")
    assert settings.policy_origin == "CLEANUP_POLICY_FILE=policy.json"


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in MINIMAL.items() if k not in names}


STORAGE_ID = RESOURCE_ID.replace("ContainerRegistry/registries", "Storage/storageAccounts")
UNKNOWN_FIELD = '{"version": 1, "rules": [{"repositories": ["a"], "keepTag": ["x"]}]}'

# (setting, value or None to remove it, words the single problem must contain)
INVALID: list[tuple[str, str | None, list[str]]] = [
    ("ACR_LOGIN_SERVER", None, ["ACR_LOGIN_SERVER", "not set"]),
    ("ACR_LOGIN_SERVER", "https://r.azurecr.io", ["ACR_LOGIN_SERVER", "no https://"]),
    ("ACR_LOGIN_SERVER", "r.azurecr.io/x", ["ACR_LOGIN_SERVER"]),
    ("ACR_RESOURCE_ID", None, ["ACR_RESOURCE_ID", "not set"]),
    ("ACR_RESOURCE_ID", STORAGE_ID, ["ACR_RESOURCE_ID", "ARM id"]),
    ("CLEANUP_POLICY", None, ["CLEANUP_POLICY", "CLEANUP_POLICY_FILE", "neither"]),
    ("CLEANUP_POLICY_FILE", "p.json", ["both", "exactly one"]),
    ("CLEANUP_POLICY", "{", ["CLEANUP_POLICY", "not valid JSON"]),
    ("CLEANUP_POLICY", UNKNOWN_FIELD, ["CLEANUP_POLICY", "keepTag"]),
    ("CLEANUP_SCHEDULE", "0 3 * * *", ["CLEANUP_SCHEDULE", "6-field"]),
    ("CLEANUP_DRY_RUN", "yes", ["CLEANUP_DRY_RUN", "true or false"]),
    ("AZURE_CLIENT_ID", "my-identity", ["AZURE_CLIENT_ID", "GUID"]),
    ("ACR_TOKEN_AUDIENCE", "containerregistry.azure.net", ["ACR_TOKEN_AUDIENCE", "https://"]),
    ("CLEANUP_MAX_CONCURRENCY", "0", ["CLEANUP_MAX_CONCURRENCY", "1 to 128"]),
    ("CLEANUP_MAX_CONCURRENCY", "2.5", ["CLEANUP_MAX_CONCURRENCY"]),
    ("CLEANUP_MAX_WRITES_PER_MINUTE", "-1", ["CLEANUP_MAX_WRITES_PER_MINUTE"]),
    ("CLEANUP_MAX_DELETES_PER_MINUTE", "0", ["CLEANUP_MAX_DELETES_PER_MINUTE", "1 to"]),
    ("CLEANUP_MAX_READS_PER_MINUTE", "many", ["CLEANUP_MAX_READS_PER_MINUTE", "whole number"]),
    ("CLEANUP_REGISTRY_SKU", "Classic", ["CLEANUP_REGISTRY_SKU", "Basic, Standard or Premium"]),
    ("CLEANUP_SWEEP_BUDGET_SECONDS", "3600", ["CLEANUP_SWEEP_BUDGET_SECONDS", "functionTimeout"]),
    ("CLEANUP_SWEEP_BUDGET_SECONDS", "ten", ["CLEANUP_SWEEP_BUDGET_SECONDS"]),
    ("CLEANUP_LEDGER_URL", "st.blob.core.windows.net/ledger", ["CLEANUP_LEDGER_URL", "container"]),
    (
        "CLEANUP_LEDGER_URL",
        "https://st.blob.core.windows.net/l?sv=x",
        ["CLEANUP_LEDGER_URL", "SAS"],
    ),
    ("CLEANUP_LEDGER_URL", "http://st.blob.core.windows.net/ledger", ["CLEANUP_LEDGER_URL"]),
]


def test_the_ledger_container_url_is_read() -> None:
    """CLEANUP_LEDGER_URL is a container URL (https, or Azurite on loopback); unset is None."""
    url = "https://stacrclean.blob.core.windows.net/acr-cleanup-ledger"
    assert load_settings({**MINIMAL, "CLEANUP_LEDGER_URL": url + "/"}).ledger_url == url
    azurite = "http://127.0.0.1:10000/devstoreaccount1/ledger"
    assert load_settings({**MINIMAL, "CLEANUP_LEDGER_URL": azurite}).ledger_url == azurite
    assert load_settings(MINIMAL).ledger_url is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [pytest.param(n, v, w, id=f"{n}={v}") for n, v, w in INVALID],
)
def test_invalid_setting_is_named(name: str, value: str | None, words: list[str]) -> None:
    """One wrong setting gives exactly one problem, naming that setting."""
    env = _without(name) if value is None else {**MINIMAL, name: value}
    found = problems(env)
    assert len(found) == 1, found
    for word in words:
        assert word in found[0]


def test_all_problems_are_reported_at_once() -> None:
    """Several wrong settings are all listed in one error, each naming its setting."""
    env = {"CLEANUP_DRY_RUN": "maybe", "CLEANUP_MAX_CONCURRENCY": "lots"}
    found = problems(env)
    named = [p.split()[0] for p in found]
    assert "ACR_LOGIN_SERVER" in named
    assert "ACR_RESOURCE_ID" in named
    assert "CLEANUP_DRY_RUN" in named
    assert "CLEANUP_MAX_CONCURRENCY" in named
    assert any("CLEANUP_POLICY" in p for p in found)
    message = str(SettingsError(list(found)))
    assert message.startswith("invalid app settings: ")


def test_unreadable_policy_file_is_named(tmp_path: Path) -> None:
    """A policy file that is not there is reported with the path and how paths are resolved."""
    env = {**_without("CLEANUP_POLICY"), "CLEANUP_POLICY_FILE": "missing.json"}
    (found,) = problems(env, app_root=tmp_path)
    assert "CLEANUP_POLICY_FILE 'missing.json' cannot be read" in found
    assert "relative to the function app's root" in found


def test_policy_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    """A policy file that is not UTF-8 is reported naming CLEANUP_POLICY_FILE, not the codec."""
    (tmp_path / "policy.json").write_bytes(b"\xff\xfe{\x00")
    env = {**_without("CLEANUP_POLICY"), "CLEANUP_POLICY_FILE": "policy.json"}
    with pytest.raises(SettingsError) as caught:
        load_settings(env, app_root=tmp_path)
    (problem,) = caught.value.problems
    assert problem.startswith("CLEANUP_POLICY_FILE 'policy.json' is not UTF-8")


def test_policy_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A policy file saved with a UTF-8 byte order mark, as some Windows editors do, is read."""
    (tmp_path / "policy.json").write_bytes(b"\xef\xbb\xbf" + POLICY.encode())
    env = {**_without("CLEANUP_POLICY"), "CLEANUP_POLICY_FILE": "policy.json"}
    assert load_settings(env, app_root=tmp_path).policy.covers("apps/api")


ROOT = Path(__file__).resolve().parents[2]


def _settings_table(document: Path, heading: str) -> dict[str, str]:
    """`{setting: default column}` from the first table after `heading` in a markdown file."""
    text = document.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    rows: dict[str, str] = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    return rows


def test_readme_settings_table_lists_exactly_the_settings_read() -> None:
    """The README's settings table names every setting settings.py reads, and no other."""
    source = (ROOT / "acr_core" / "app" / "settings.py").read_text(encoding="utf-8")
    read = set(re.findall(r'"((?:ACR|AZURE|CLEANUP)_[A-Z_]+)"', source))
    table = _settings_table(ROOT / "README.md", "## Settings")
    assert set(table) == read
    architecture = _settings_table(ROOT / "docs" / "architecture.md", "## Function app settings")
    assert set(architecture) == read


def test_readme_defaults_are_the_code_defaults() -> None:
    """The defaults the README states are the ones load_settings applies."""
    table = _settings_table(ROOT / "README.md", "## Settings")
    settings = load_settings(MINIMAL)
    assert f"`{DEFAULT_MAX_CONCURRENCY}`" in table["CLEANUP_MAX_CONCURRENCY"]
    assert settings.max_concurrency == DEFAULT_MAX_CONCURRENCY
    assert f"`{DEFAULT_SWEEP_BUDGET_SECONDS:g}`" in table["CLEANUP_SWEEP_BUDGET_SECONDS"]
    assert settings.sweep_budget_seconds == DEFAULT_SWEEP_BUDGET_SECONDS
    assert f"`{DEFAULT_AUDIENCE}`" in table["ACR_TOKEN_AUDIENCE"]
    assert settings.token_audience == DEFAULT_AUDIENCE
    assert "`true`" in table["CLEANUP_DRY_RUN"]
    assert settings.dry_run is True
    assert f"`{DEFAULT_SCHEDULE}`" in table["CLEANUP_SCHEDULE"]
    assert settings.max_writes_per_minute is None
    assert settings.client_id is None


def test_deeply_nested_policy_is_named() -> None:
    """A policy nested deeper than the JSON parser can follow is reported naming CLEANUP_POLICY."""
    env = {**MINIMAL, "CLEANUP_POLICY": "[" * 100_000 + "]" * 100_000}
    (problem,) = problems(env)
    assert problem.startswith("CLEANUP_POLICY is not a valid policy")

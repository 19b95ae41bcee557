"""Offline checks of infra/: every Bicep file parses, and checkov finds nothing unexplained.

No Bicep compiler can be installed on these machines (docs/functions-facts.md 4.1), so tree-sitter
checks the syntax and checkov, whose parser (pycep 0.5.1) understands a subset of Bicep, checks
the security settings. checkov exits 0 when it cannot parse a file, so parse errors are gated here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra import bicep_model
from tests.infra.conftest import INFRA

BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Checks that must run AND pass: if one of them is skipped or stops applying, the secure default
# it guards is no longer verified (docs/functions-facts.md 4.4 lists what each one caught).
MUST_PASS = {
    "CKV_AZURE_70": "function app accepts HTTPS only",
    "CKV_AZURE_14": "HTTP is redirected to HTTPS",
    "CKV_AZURE_15": "site TLS 1.2 minimum",
    "CKV_AZURE_145": "function app TLS 1.2 minimum",
    "CKV_AZURE_78": "FTP deployments are off",
    "CKV_AZURE_71": "the site has a managed identity",
    "CKV_AZURE_3": "storage accepts HTTPS only",
    "CKV_AZURE_44": "storage TLS 1.2 minimum",
    "CKV_AZURE_34": "blob containers are private",
    "CKV_AZURE_39": "the custom role is not a subscription owner role",
}


def _results(report: dict[str, object], key: str) -> list[dict[str, object]]:
    results = report["results"]
    assert isinstance(results, dict)
    found = results.get(key, [])
    assert isinstance(found, list)
    return found


def test_there_are_bicep_files_to_check() -> None:
    """infra/ holds main.bicep and its modules."""
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert "main.bicep" in names
    assert len(names) > 1


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    """Each Bicep file parses with tree-sitter-bicep without an error or missing node."""
    assert bicep_model.syntax_errors(path.read_bytes()) == []


@pytest.mark.parametrize(
    "breakage",
    [
        ("param registryName string", "param registryName strin g"),
        ("targetScope = 'resourceGroup'", "targetScope = 'resourceGroup"),
        ("module storage 'modules/storage.bicep' = {", "module storage 'modules/storage.bicep' ="),
    ],
    ids=["bad-type", "unterminated-string", "missing-brace"],
)
def test_syntax_check_rejects_a_broken_main_bicep(breakage: tuple[str, str]) -> None:
    """The syntax check reports an error when main.bicep is broken in a typical way."""
    source = (INFRA / "main.bicep").read_text()
    old, new = breakage
    assert old in source
    assert bicep_model.syntax_errors(source.replace(old, new, 1).encode()) != []


def test_checkov_parses_every_file(checkov_report: dict[str, object]) -> None:
    """checkov parses every Bicep file, so its checks really ran on all of them."""
    assert _results(checkov_report, "parsing_errors") == []
    scanned = {
        str(check["file_path"]).lstrip("/")
        for key in ("passed_checks", "failed_checks", "skipped_checks")
        for check in _results(checkov_report, key)
    }
    # The files that declare resources checkov has checks for must show up in its results.
    for name in (
        "modules/function-app.bicep",
        "modules/storage.bicep",
        "modules/registry-access.bicep",
    ):
        assert name in scanned, f"checkov produced no result for {name}"


def test_checkov_finds_no_failed_check(checkov_report: dict[str, object]) -> None:
    """No checkov check fails; exceptions are inline `checkov:skip` comments with a reason."""
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']} in {c['file_path']})"
        for c in _results(checkov_report, "failed_checks")
    ]
    assert failed == []


def test_every_checkov_skip_says_why(checkov_report: dict[str, object]) -> None:
    """Every suppressed checkov check carries a reason of at least a few words."""
    for check in _results(checkov_report, "skipped_checks"):
        result = check["check_result"]
        assert isinstance(result, dict)
        reason = str(result.get("suppress_comment") or "")
        assert len(reason.split()) >= 5, f"{check['check_id']} on {check['resource']}: {reason!r}"


@pytest.mark.parametrize("check_id", sorted(MUST_PASS), ids=lambda c: f"{c}-{MUST_PASS[c]}")
def test_security_check_passes(checkov_report: dict[str, object], check_id: str) -> None:
    """The checks guarding the secure defaults run and pass rather than being skipped."""
    passed = {c["check_id"] for c in _results(checkov_report, "passed_checks")}
    skipped = {c["check_id"] for c in _results(checkov_report, "skipped_checks")}
    assert check_id in passed
    assert check_id not in skipped

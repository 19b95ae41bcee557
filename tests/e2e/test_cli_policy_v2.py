"""A version 2 policy through `acr-cleanup apply` against the emulator over HTTPS: the
registry's final state is what issue 13's semantics say, clause by clause."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acr_core.cli import EXIT_DONE, main
from acr_core.planning.document import policy_document
from acr_core.planning.policy import load_policy
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from tests.e2e.registry import API_AFTER, NOW, day, state
from tests.e2e.registry import FIXTURE as E2E_FIXTURE
from tests.e2e.registry import POLICY as E2E_POLICY

SIG = "application/vnd.cncf.notary.signature"
SCAN = "application/vnd.example.scan+json"

POLICY_V2: dict[str, Any] = {
    "version": 2,
    "rules": [
        {
            "name": "ci",
            "repositories": ["ci/**"],
            "minAge": "1h",
            "keep": [
                {"tags": ["prod"]},
                {"tags": ["main-*"], "newest": 2},
                {"tags": ["regex:^pr-(?P<pr>[0-9]+)-.+$"], "newest": 1, "per": "pr"},
                {"tags": ["regex:^v(?P<version>[0-9.]+)$"], "orderBy": "semver", "newest": 2},
            ],
            "delete": {"tagged": {"olderThan": "7d"}, "untagged": {"olderThan": "7d"}},
            "referrers": [
                {"artifactType": SIG, "keepNewest": 1},
                {"artifactType": SCAN, "olderThan": "14d"},
            ],
        }
    ],
    "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
}


def _image(name: str, n: int, *tags: str) -> dict[str, Any]:
    return {"id": name, "pushed": day(n), "tags": list(tags)}


def _referrer(name: str, subject: str, n: int, artifact_type: str) -> dict[str, Any]:
    return {
        "id": name,
        "kind": "artifact",
        "subject": subject,
        "artifactType": artifact_type,
        "pushed": day(n),
        "annotations": {"name": name},
    }


FIXTURE: dict[str, Any] = {
    "repositories": [
        {
            "name": "ci/app",
            "manifests": [
                _image("main-1", 1, "main-1"),
                _image("main-2", 2, "main-2"),
                _image("main-3", 3, "main-3", "prod"),
                _image("main-4", 4, "main-4"),
                _image("main-5", 5, "main-5"),
                _image("pr-1-a", 6, "pr-1-a"),
                _image("pr-1-b", 7, "pr-1-b"),
                _image("pr-2-a", 2, "pr-2-a"),
                _image("v1.2.0", 8, "v1.2.0"),
                _image("v1.10.0", 1, "v1.10.0"),
                _image("v1.9.0", 2, "v1.9.0"),
                _image("fresh", 27, "feature-x"),  # 3 days old: younger than delete.tagged
                _image("stale", 10, "feature-y"),
                {"id": "dangling", "pushed": day(1)},
                _referrer("sig-old", "main-5", 5, SIG),
                _referrer("sig-new", "main-5", 9, SIG),
                _referrer("scan-old", "main-5", 5, SCAN),
                _referrer("scan-new", "main-5", 25, SCAN),
            ],
        }
    ]
}
# Kept: prod (main-3) by keep[0]; main-5 and main-4 by keep[1]; pr-1-b and pr-2-a by keep[2]
# (one per pr); v1.10.0 and v1.9.0 by keep[3] (semver, above v1.2.0); feature-x is too young for
# delete.tagged. Of main-5's referrers the newer signature and the recent scan stay.
AFTER = {
    "main-3+prod",
    "main-4",
    "main-5",
    "pr-1-b",
    "pr-2-a",
    "v1.10.0",
    "v1.9.0",
    "feature-x",
    "sig-new",
    "scan-new",
}


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def names(emulator: Emulator, repository: str) -> set[str]:
    """Tagged manifests by their tags, referrers by their `name` annotation, others 'untagged'."""
    repo = emulator.registry.repositories.get(repository)
    assert repo is not None
    found: set[str] = set()
    for manifest in repo.manifests.values():
        if manifest.tags:
            found.add("+".join(sorted(manifest.tags)))
        elif manifest.subject is not None:
            found.add((manifest.annotations or {}).get("name", "referrer"))
        else:
            found.add("untagged")
    return found


def test_a_v2_policy_applied_through_the_cli_leaves_what_its_clauses_keep(
    emulator: Emulator,
    emulator_server: ServerInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`acr-cleanup apply --yes` with the v2 policy deletes exactly the images no clause keeps
    and the referrers the referrer rules let go, and exits 0."""
    emulator.seed(FIXTURE)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY_V2))
    server = emulator_server
    argv = ["apply", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(policy), "--now", NOW.isoformat(), "--yes", "--output", "json"]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}

    code = main(argv, environ=environ)

    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_DONE, report
    assert names(emulator, "ci/app") == AFTER
    reasons = {action["reason"] for repo in report["repositories"] for action in repo["actions"]}
    assert any(r.startswith("delete.tagged (olderThan 7d): tagged") for r in reasons)
    assert any(r.startswith(f"referrers[0]: {SIG}, keepNewest 1: ") for r in reasons)
    # Planning again finds nothing more to do.
    code = main([*argv[:-2], "--output", "json"], environ=environ)
    again = json.loads(capsys.readouterr().out)
    assert code == EXIT_DONE
    assert all(not repo["actions"] for repo in again["repositories"])


def test_the_v2_form_of_the_v1_policy_cleans_to_the_same_state(
    emulator: Emulator,
    emulator_server: ServerInfo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Semantics 6 through the CLI: the end-to-end v1 policy, written as v2, leaves
    services/api exactly as the v1 policy does."""
    emulator.seed(E2E_FIXTURE)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(policy_document(load_policy(E2E_POLICY))))
    server = emulator_server
    argv = ["apply", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(policy), "--now", NOW.isoformat(), "--yes"]
    argv += ["--repository", "services/api"]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}

    code = main(argv, environ=environ)

    assert code == EXIT_DONE, capsys.readouterr()
    assert state(emulator, "services/api") == API_AFTER

"""examples/v2: each example validates without a warning, and cleans a registry shaped for it.

Each test seeds the emulator with the repository its example is written for, runs `apply`
through the CLI, and asserts what is left: the outcome the example's description promises.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from acr_core.cli import EXIT_DONE, main
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from tests.e2e.registry import NOW

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "v2"
SCHEMA = json.loads((ROOT / "acr_core" / "planning" / "policy.schema.json").read_text())
SIGNATURE = "application/vnd.cncf.notary.signature"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def image(name: str, days: float, *tags: str) -> dict[str, Any]:
    """An image pushed `days` ago; `name` (an annotation) tells it apart in the final state."""
    pushed = (NOW - timedelta(days=days)).isoformat()
    return {"id": name, "pushed": pushed, "tags": list(tags), "annotations": {"name": name}}


def signature(name: str, subject: str, days: float) -> dict[str, Any]:
    pushed = (NOW - timedelta(days=days)).isoformat()
    return {
        "id": name,
        "kind": "artifact",
        "subject": subject,
        "artifactType": SIGNATURE,
        "pushed": pushed,
        "annotations": {"name": name},
    }


def left(emulator: Emulator, repository: str) -> list[str]:
    """The names of the manifests left in `repository`, sorted."""
    manifests = emulator.registry.repositories[repository].manifests.values()
    names = Counter((m.annotations or {}).get("name", m.digest) for m in manifests)
    return sorted(names.elements())


def apply(server: ServerInfo, example: str) -> int:
    argv = ["apply", "--registry", server.login_server, "--ca-file", str(server.ca_file)]
    argv += ["--policy", str(EXAMPLES / example), "--now", NOW.isoformat(), "--yes"]
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    return main(argv, environ=environ)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_each_example_validates_without_a_warning(
    example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every v2 example passes the schema and `validate`, with nothing on stderr."""
    path = EXAMPLES / example
    jsonschema.validate(json.loads(path.read_text()), SCHEMA)
    assert main(["validate", str(path)]) == EXIT_DONE
    assert capsys.readouterr().err == ""


def test_services_keep_releases_environment_tags_and_the_ten_newest(
    emulator: Emulator, emulator_server: ServerInfo
) -> None:
    """Releases are locked and stay, latest and prod stay, the 10 newest other builds stay
    whatever their age, older builds and old untagged images go, and a kept image keeps one
    signature (the one of a deleted build goes with it)."""
    builds = [image(f"build-{i}", 10 * (15 - i), f"build-{i}") for i in range(1, 15)]
    builds[1]["tags"].append("prod")
    builds[13]["tags"].append("latest")
    manifests = [
        image("v1.0.0", 200, "v1.0.0"),
        image("v1.1.0", 100, "v1.1.0"),
        *builds,
        image("dangling-old", 20),
        image("dangling-new", 3),
        signature("build-1.sig", "build-1", 140),
        signature("build-14.sig-old", "build-14", 10),
        signature("build-14.sig-new", "build-14", 9),
    ]
    emulator.seed({"repositories": [{"name": "services/api", "manifests": manifests}]})
    assert apply(emulator_server, "services.json") == EXIT_DONE
    assert left(emulator, "services/api") == sorted(
        ["v1.0.0", "v1.1.0", "build-2", "dangling-new", "build-14.sig-new"]
        + [f"build-{i}" for i in range(4, 15)]  # the 10 newest beside latest, which is kept anyway
    )
    tags = emulator.registry.repositories["services/api"].tags
    assert not tags["v1.0.0"].attributes.delete_enabled
    assert not tags["v1.0.0"].attributes.write_enabled


def test_ci_builds_keep_the_newest_per_branch(
    emulator: Emulator, emulator_server: ServerInfo
) -> None:
    """main keeps 10 builds beside the one tagged main, every other branch 2, a build no
    clause keeps goes after 3 days (a younger one stays), untagged leftovers after a day."""
    main_builds = [image(f"main-{i}", 13 - i, f"main-{i:07x}") for i in range(1, 13)]
    main_builds[-1]["tags"].append("main")
    manifests = [
        *main_builds,
        image("login-1", 10, "feature-login-00000a1"),
        image("login-2", 9, "feature-login-00000a2"),
        image("login-3", 8, "feature-login-00000a3"),
        image("typo-1", 30, "fix-typo-00000b1"),
        image("scratch-old", 5, "scratch"),
        image("scratch-new", 1, "scratch-2"),
        image("leftover-old", 2),
        image("leftover-new", 0.2),
    ]
    emulator.seed({"repositories": [{"name": "ci/app", "manifests": manifests}]})
    assert apply(emulator_server, "ci-branches.json") == EXIT_DONE
    assert left(emulator, "ci/app") == sorted(
        [f"main-{i}" for i in range(2, 13)]  # the 10 newest beside main-12, kept by `main`
        + ["login-2", "login-3", "typo-1", "scratch-new", "leftover-new"]
    )


def test_base_images_keep_two_versions_per_line_by_semver(
    emulator: Emulator, emulator_server: ServerInfo
) -> None:
    """Beside the floating tags' images, each minor line keeps its 2 highest versions (not its
    2 newest pushes), and a release candidate ranks below its release."""
    manifests = [
        image("3.18.0", 100, "3.18.0"),  # rebuilt late: the newest push of its line
        image("3.18.1", 150, "3.18.1"),
        image("3.18.2", 200, "3.18.2"),
        image("3.19.0", 120, "3.19.0"),
        image("3.19.1", 90, "3.19.1"),
        image("3.19.2", 85, "3.19.2"),
        image("3.19.3", 60, "3.19.3", "3.19"),
        image("3.20.0-rc.1", 80, "3.20.0-rc.1"),
        image("3.20.0", 70, "3.20.0"),
        image("3.20.1", 40, "3.20.1", "3.20", "3", "latest"),
        image("3.21.0", 50, "3.21.0"),
        image("3.21.1-rc.1", 45, "3.21.1-rc.1"),
        image("3.21.0-rc.2", 35, "3.21.0-rc.2"),  # pushed last, but below 3.21.0
        image("untagged", 40),
    ]
    emulator.seed({"repositories": [{"name": "base/alpine", "manifests": manifests}]})
    assert apply(emulator_server, "base-images.json") == EXIT_DONE
    kept = ["3.18.1", "3.18.2", "3.19.1", "3.19.2", "3.19.3", "3.20.0-rc.1", "3.20.0"]
    assert left(emulator, "base/alpine") == sorted([*kept, "3.20.1", "3.21.0", "3.21.1-rc.1"])

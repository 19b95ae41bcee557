"""examples/quickstart: the SDK quickstart's operations, each example's `main()` run against the
emulator seeded with the examples' own registry.json, asserting on its output and final state."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from acr_emulator import Emulator, ServerInfo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import an example by its file name, as `python examples/quickstart/<name>.py` would."""
    monkeypatch.syspath_prepend(str(EXAMPLES))

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    return load


@pytest.fixture
def environ(emulator: Emulator, emulator_server: ServerInfo) -> dict[str, str]:
    """What `source .emulator.env` sets, for the emulator seeded with registry.json."""
    emulator.seed(json.loads((EXAMPLES / "registry.json").read_text()))
    return {
        "ACR_REGISTRY": emulator_server.url,
        "ACR_USERNAME": emulator_server.admin_username,
        "ACR_PASSWORD": emulator_server.admin_password,
        "ACR_CA_FILE": emulator_server.ca_file or "",
    }


def _tags(emulator: Emulator, repository: str) -> list[str]:
    return sorted(emulator.registry.repositories[repository].tags)


def test_list_repositories_prints_every_repository(example, environ, capsys):
    """list_repositories prints each repository name, one a line."""
    assert example("list_repositories").main([], environ) == 0
    assert capsys.readouterr().out.splitlines() == ["quickstart/hello", "quickstart/web"]


def test_list_tags_prints_a_repository_s_tags_newest_first(example, environ, capsys):
    """list_tags prints the repository's tags, the most recently updated first."""
    assert example("list_tags").main(["quickstart/hello"], environ) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert names[2:] == ["v4", "v3", "v2", "v1"]
    assert sorted(names[:2]) == ["latest", "v5"]


def test_manifest_properties_shows_the_manifest_a_tag_names(example, environ, emulator, capsys):
    """manifest_properties prints the digest, tags and lock state of the tagged manifest."""
    digest = emulator.registry.repositories["quickstart/hello"].tags["latest"].digest
    assert example("manifest_properties").main(["quickstart/hello", "latest"], environ) == 0
    out = capsys.readouterr().out
    assert f"digest:        {digest}\n" in out
    assert "tags:          latest, v5\n" in out
    assert "can delete:    True\n" in out


def test_lock_image_locks_the_tag_and_its_manifest_and_unlock_undoes_it(example, environ, emulator):
    """lock_image sets can_write and can_delete false on the tag and the manifest; --unlock back."""
    repo = emulator.registry.repositories["quickstart/hello"]
    lock = example("lock_image").main
    assert lock(["quickstart/hello", "v1"], environ) == 0
    tag = repo.tags["v1"].attributes
    manifest = repo.manifests[repo.tags["v1"].digest].attributes
    assert (tag.write_enabled, tag.delete_enabled) == (False, False)
    assert (manifest.write_enabled, manifest.delete_enabled) == (False, False)
    assert lock(["quickstart/hello", "v1", "--unlock"], environ) == 0
    assert repo.tags["v1"].attributes.deletable
    assert repo.manifests[repo.tags["v1"].digest].attributes.deletable


@pytest.mark.parametrize("name", ["delete_old_images", "delete_old_images_async"])
def test_delete_old_images_keeps_the_three_newest_and_what_is_locked(
    name, example, environ, emulator, capsys
):
    """Both delete examples keep each repository's three newest images and a locked older one;
    --dry-run deletes nothing."""
    example("lock_image").main(["quickstart/hello", "v1"], environ)
    before = {r: set(repo.manifests) for r, repo in emulator.registry.repositories.items()}
    assert example(name).main(["--dry-run"], environ) == 0
    assert {r: set(repo.manifests) for r, repo in emulator.registry.repositories.items()} == before
    capsys.readouterr()
    assert example(name).main([], environ) == 0
    out = capsys.readouterr().out
    assert _tags(emulator, "quickstart/hello") == ["latest", "v1", "v3", "v4", "v5"]
    assert _tags(emulator, "quickstart/web") == ["2026.02.03", "2026.02.04", "stable"]
    assert len(emulator.registry.repositories["quickstart/web"].manifests) == 3  # b: untagged
    assert "(v1): locked" in out
    assert sum(line.startswith("deleted ") for line in out.splitlines()) == 2


def test_run_all_runs_every_example_on_an_emulator_of_its_own(example, capsys):
    """run_all (`make examples`) runs each example against a fresh emulator and exits 0."""
    assert example("run_all").main([]) == 0
    out = capsys.readouterr().out
    ran = set(re.findall(r"^\$ python examples/quickstart/(\w+)\.py", out, re.MULTILINE))
    assert ran == {p.stem for p in EXAMPLES.glob("*.py")} - {"connect", "run_all"}
    assert "deleted quickstart/hello@" in out

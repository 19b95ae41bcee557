"""The manifest cache: content is read from ACR once, and nothing untrusted reaches the planner.

Runs go through `run_cleanup` on the emulator; the registry's request counters show what was
read, and the plan must be the plan of a run without any cache.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from acr_core.models import OCI_MANIFEST, ManifestContent
from acr_core.planning.policy import load_policy
from acr_core.run.gathering import Reading
from acr_core.run.manifest_cache import ManifestCache, cache_key
from acr_core.run.service import run_cleanup
from acr_core.storage.objects import DirectoryStore, MemoryStore
from tests.unit.emulated_registry import T0, EmulatedRegistry, later

NOW = T0 + timedelta(days=30)
RAW_GET = "/v2/{name}/manifests/{reference}"
POLICY = load_policy(
    {
        "version": 1,
        "rules": [
            {
                "name": "apps",
                "repositories": ["apps/**"],
                "keepLatest": 1,
                "untagged": {"olderThan": "7d"},
            }
        ],
    }
)


def multi_arch() -> EmulatedRegistry:
    """apps/a: two multi-arch releases (an index over two images each) and an untagged image."""
    registry = EmulatedRegistry()
    for day, version in ((1, "1.0"), (2, "2.0")):
        amd = registry.push("apps/a", f"{version}-amd", updated=later(day))
        arm = registry.push("apps/a", f"{version}-arm", updated=later(day))
        registry.push("apps/a", version, tags=(version,), children=(amd, arm), updated=later(day))
    registry.push("apps/a", "leftover", updated=later(3))
    return registry


async def _plan(registry: EmulatedRegistry, cache: ManifestCache | None) -> object:
    report = await run_cleanup(registry.client, POLICY, now=NOW, reading=Reading(cache=cache))
    return report.plan


def _raw_reads(registry: EmulatedRegistry) -> int:
    return registry.emulator.counters.count(endpoint=RAW_GET, method="GET")


async def test_second_run_reads_no_manifest_content(tmp_path: Path) -> None:
    """With a directory cache, the second run reads no raw manifest and plans the same."""
    registry = multi_arch()
    uncached = await _plan(registry, None)
    first_reads = _raw_reads(registry)
    assert first_reads > 0
    await _plan(registry, ManifestCache([DirectoryStore(tmp_path)]))
    registry.emulator.counters.reset()
    again = await _plan(registry, ManifestCache([MemoryStore(), DirectoryStore(tmp_path)]))
    assert _raw_reads(registry) == 0
    assert again == uncached


async def test_corrupt_entry_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes changed on disk do not hash to their digest: the manifest is read from ACR again."""
    registry = multi_arch()
    store = DirectoryStore(tmp_path)
    uncached = await _plan(registry, ManifestCache([store]))
    keys = [key async for key in store.list("manifests/")]
    for key in keys:
        path = tmp_path.joinpath(*key.split("/"))
        path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64").replace(b"2.0", b"9.9"))
    registry.emulator.counters.reset()
    with caplog.at_level(logging.WARNING, logger="acr_cleanup"):
        again = await _plan(registry, ManifestCache([store]))
    assert again == uncached
    assert _raw_reads(registry) > 0
    assert "corrupt" in caplog.text


async def test_substituted_entry_is_not_trusted(tmp_path: Path) -> None:
    """A valid manifest stored under another digest's key is refused (a tampered cache)."""
    registry = multi_arch()
    store = DirectoryStore(tmp_path)
    uncached = await _plan(registry, ManifestCache([store]))
    keys = [key async for key in store.list("manifests/")]
    substitute = await store.get(keys[0])
    assert substitute is not None
    for key in keys[1:]:
        await store.put(key, substitute)
    registry.emulator.counters.reset()
    again = await _plan(registry, ManifestCache([store]))
    assert again == uncached
    assert _raw_reads(registry) == len(keys) - 1


async def test_unreadable_cache_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache directory that cannot be used (its root is a file) warns; the run goes on."""
    registry = multi_arch()
    uncached = await _plan(registry, None)
    (tmp_path / "file").write_bytes(b"not a directory")
    with caplog.at_level(logging.WARNING, logger="acr_cleanup"):
        again = await _plan(registry, ManifestCache([DirectoryStore(tmp_path / "file")]))
    assert again == uncached
    assert "cannot be read" in caplog.text


async def test_nothing_addressed_by_tag_or_unverified_is_cached() -> None:
    """A tag is never a cache key, and content whose bytes do not match its digest is dropped."""
    memory = MemoryStore()
    cache = ManifestCache([memory])
    raw = b'{"schemaVersion":2}'
    forged = ManifestContent(digest="sha256:" + "0" * 64, media_type=OCI_MANIFEST, raw=raw)
    await cache.put(forged)
    assert await memory.get(cache_key(forged.digest)) is None
    assert await cache.get("latest") is None
    assert [key async for key in memory.list()] == []

"""Every client method against the emulator, in-process and over HTTPS; final state asserted."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acr_core import (
    AcrClient,
    DisallowedOperationError,
    NotFoundError,
)
from acr_core.models import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from acr_emulator import Emulator
from tests.client.conftest import Connect

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def graph_fixture() -> dict[str, Any]:
    """One repository with images, a multi-arch index, a signature and an SBOM referrer."""
    return {
        "repositories": [
            {
                "name": "team/app",
                "manifests": [
                    {
                        "id": "amd",
                        "pushed": at(1),
                        "architecture": "amd64",
                        "layers": 2,
                        "size": 100,
                    },
                    {"id": "arm", "pushed": at(2), "architecture": "arm64"},
                    {
                        "id": "multi",
                        "pushed": at(3),
                        "manifests": [
                            "amd",
                            {"ref": "arm", "platform": {"architecture": "arm64", "os": "linux"}},
                        ],
                        "tags": ["1.0", "latest"],
                    },
                    {"id": "sig", "kind": "artifact", "subject": "multi", "artifactType": SIG},
                    {"id": "sbom", "kind": "artifact", "subject": "multi", "artifactType": SBOM},
                    {
                        "id": "old",
                        "pushed": at(0),
                        "mediaType": DOCKER_MANIFEST,
                        "tags": ["0.9"],
                    },
                ],
            },
            {"name": "other", "manifests": [{"pushed": at(5), "tags": ["v1"]}]},
        ]
    }


def digest_of(emulator: Emulator, repository: str, tag: str) -> str:
    return emulator.registry.repositories[repository].tags[tag].digest


async def test_listing_and_reading_carry_every_field(emulator: Emulator, connect: Connect) -> None:
    """Listings and property reads return media types, references, tags and times complete."""
    emulator.seed(graph_fixture())
    multi = digest_of(emulator, "team/app", "latest")
    async with connect() as client:
        assert [name async for name in client.list_repository_names()] == ["other", "team/app"]
        repo = await client.get_repository_properties("team/app")
        manifests = {m.digest: m async for m in client.list_manifest_properties("team/app")}
        tags = {t.name: t async for t in client.list_tag_properties("team/app")}
        by_tag = await client.get_manifest_properties("team/app", "latest")
        tag = await client.get_tag_properties("team/app", "1.0")
        filtered = [t.name async for t in client.list_tag_properties("team/app", digest=multi)]
    assert (repo.name, repo.manifest_count, repo.tag_count) == ("team/app", 6, 3)
    assert repo.attributes.deletable
    index = manifests[multi]
    assert index.is_index
    assert index.media_type == OCI_INDEX
    assert sorted(index.tags) == ["1.0", "latest"]
    assert {r.architecture for r in index.references} == {"amd64", "arm64"}
    untagged = [m for m in manifests.values() if not m.tags]
    assert len(untagged) == 4  # amd, arm, sig, sbom: the emulator omits `tags`
    old = manifests[digest_of(emulator, "team/app", "0.9")]
    assert old.media_type == DOCKER_MANIFEST
    assert old.created_on == T0
    assert old.created_on is not None
    assert old.created_on.tzinfo is not None
    assert by_tag == index
    assert (tag.digest, tag.repository) == (multi, "team/app")
    assert set(tags) == {"0.9", "1.0", "latest"}
    assert sorted(filtered) == ["1.0", "latest"]


async def test_raw_manifests_children_and_subjects(emulator: Emulator, connect: Connect) -> None:
    """Raw manifests verify, indexes list their children, referrers name their subject."""
    emulator.seed(graph_fixture())
    multi = digest_of(emulator, "team/app", "latest")
    stored = emulator.registry.repositories["team/app"].manifests
    [sig] = [d for d, m in stored.items() if m.artifact_type == SIG]
    async with connect() as client:
        index = await client.get_manifest("team/app", "latest")
        children = index.children
        signature = await client.get_manifest("team/app", sig)
        image = await client.get_manifest("team/app", children[0].digest)
    assert index.digest == multi
    assert index.digest == "sha256:" + hashlib.sha256(index.raw).hexdigest()
    assert index.is_index
    assert {c.digest for c in children} == {
        d for d, m in stored.items() if m.architecture in ("amd64", "arm64") and not m.children
    } - {digest_of(emulator, "team/app", "0.9")}
    assert signature.subject == multi
    assert signature.artifact_type == SIG
    assert image.media_type == OCI_MANIFEST
    assert image.subject is None


async def test_updates_and_deletes_change_the_registry(
    emulator: Emulator, connect: Connect
) -> None:
    """PATCHes set locks, deletes remove tags, manifests (with referrers) and repositories."""
    emulator.seed(graph_fixture())
    multi = digest_of(emulator, "team/app", "latest")
    old = digest_of(emulator, "team/app", "0.9")
    async with connect() as client:
        locked = await client.update_tag_properties(
            "team/app", "1.0", can_write=False, can_delete=False
        )
        manifest = await client.update_manifest_properties("team/app", old, can_delete=False)
        repo = await client.update_repository_properties("other", can_list=False)
        assert await client.delete_tag("team/app", "latest") is True
        assert await client.delete_tag("team/app", "latest") is False
        await client.update_tag_properties("team/app", "1.0", can_write=True, can_delete=True)
        assert await client.delete_manifest("team/app", multi) is True
        assert await client.delete_manifest("team/app", multi) is False
        await client.update_repository_properties("other", can_list=True)
        assert await client.delete_repository("other") is True
        assert await client.delete_repository("other") is False
    assert locked.attributes.fully_locked
    assert not manifest.attributes.deletable
    assert not repo.attributes.list_enabled
    state = emulator.registry.repositories["team/app"]
    assert set(state.tags) == {"0.9"}
    assert multi not in state.manifests
    assert all(m.subject != multi for m in state.manifests.values())  # referrers went with it
    assert len(state.manifests) == 3  # amd, arm (children stay) and old
    assert not state.manifests[old].attributes.deletable
    assert "other" not in emulator.registry.repositories


@pytest.mark.parametrize("level", ["repository", "tag", "manifest"])
async def test_locks_at_every_level_refuse_deletion(
    emulator: Emulator, connect: Connect, level: str
) -> None:
    """A write lock on the repository, a tag or the manifest makes the delete a 405 until lifted."""
    emulator.seed(graph_fixture())
    old = digest_of(emulator, "team/app", "0.9")
    async with connect() as client:
        if level == "repository":
            await client.update_repository_properties("team/app", can_write=False)
        elif level == "tag":
            await client.update_tag_properties("team/app", "0.9", can_write=False)
        else:
            await client.update_manifest_properties("team/app", old, can_delete=False)
        with pytest.raises(DisallowedOperationError) as caught:
            await client.delete_manifest("team/app", old)
        assert old in emulator.registry.repositories["team/app"].manifests
        if level == "repository":
            await client.update_repository_properties("team/app", can_write=True)
        elif level == "tag":
            await client.update_tag_properties("team/app", "0.9", can_write=True)
        else:
            await client.update_manifest_properties("team/app", old, can_delete=True)
        assert await client.delete_manifest("team/app", old) is True
    assert caught.value.code == "REGISTRY_DISALLOWED_OPERATION"
    assert caught.value.method == "DELETE"
    assert old not in emulator.registry.repositories["team/app"].manifests


async def test_unknown_things_are_not_found(emulator: Emulator, connect: Connect) -> None:
    """Reads of a missing repository, tag or manifest raise NotFoundError with ACR's code."""
    emulator.seed(graph_fixture())
    async with connect() as client:
        with pytest.raises(NotFoundError) as repo:
            await client.get_repository_properties("nope")
        with pytest.raises(NotFoundError) as tag:
            await client.get_tag_properties("team/app", "nope")
        with pytest.raises(NotFoundError) as manifest:
            await client.get_manifest("team/app", "nope")
    assert repo.value.code == "NAME_UNKNOWN"
    assert tag.value.code == "TAG_UNKNOWN"
    assert manifest.value.code == "MANIFEST_UNKNOWN"


def _many(count: int) -> dict[str, Any]:
    return {
        "repositories": [
            {
                "name": "big",
                "manifests": [
                    # Push order is not time order: the listing must sort by lastUpdateTime.
                    {"pushed": at((i * 37) % count), "salt": str(i), "tags": [f"t{i:03d}"]}
                    for i in range(count)
                ],
            }
        ]
    }


@pytest.mark.parametrize("order", ["timedesc", "timeasc", None])
async def test_paging_follows_links_across_many_pages(
    emulator: Emulator, connect: Connect, order: Any
) -> None:
    """Small pages in every order list each manifest and tag exactly once, in that order."""
    emulator.seed(_many(97))
    state = emulator.registry.repositories["big"]
    async with connect() as client:
        manifests = [
            m
            async for m in client.list_manifest_properties(
                "big", order_by=order, results_per_page=10
            )
        ]
        tags = [
            t async for t in client.list_tag_properties("big", order_by=order, results_per_page=7)
        ]
    # Every lastUpdateTime in the fixture differs, so each order is a single sequence.
    newest_first = order == "timedesc"
    if order is None:
        expected_manifests = sorted(state.manifests)
        expected_tags = sorted(state.tags)
    else:
        by_time = sorted(state.manifests.values(), key=lambda m: m.updated, reverse=newest_first)
        expected_manifests = [m.digest for m in by_time]
        tags_by_time = sorted(state.tags.values(), key=lambda t: t.updated, reverse=newest_first)
        expected_tags = [t.name for t in tags_by_time]
    assert len(expected_manifests) == len(expected_tags) == 97
    assert [m.digest for m in manifests] == expected_manifests
    assert [t.name for t in tags] == expected_tags
    assert emulator.counters.count(endpoint="/acr/v1/{name}/_manifests", status=200) == 10
    assert emulator.counters.count(endpoint="/acr/v1/{name}/_tags", status=200) == 14


async def test_catalog_pages(emulator: Emulator, connect: Connect) -> None:
    """The catalog pages through many repositories with nested names."""
    names = [f"team-{i % 3}/svc-{i:02d}" for i in range(23)]
    emulator.seed({"repositories": [{"name": n, "manifests": [{"salt": n}]} for n in names]})
    async with connect() as client:
        listed = [n async for n in client.list_repository_names(results_per_page=4)]
    assert listed == sorted(names)


def test_client_satisfies_the_service_protocol() -> None:
    """AcrClient is what the orchestrator's RegistryClient protocol describes (checked by mypy)."""
    from acr_core.run.service import RegistryClient

    client: RegistryClient = AcrClient("https://acr.test")
    assert client.login_server == "acr.test"

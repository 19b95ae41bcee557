"""Microsoft's azure-containerregistry 1.2.0, unmodified, against the emulator over real HTTPS."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp.connector
import pytest
from azure.containerregistry import (
    ArtifactManifestOrder,
    ArtifactTagOrder,
    ContainerRegistryClient,
)
from azure.containerregistry.aio import ContainerRegistryClient as AsyncContainerRegistryClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential, FakeCredential

FIXTURE = {
    "repositories": [
        {
            "name": "apps/web",
            "manifests": [
                {"id": "m1", "pushed": "2025-01-01T00:00:00Z", "tags": ["v1"]},
                {"id": "m4", "pushed": "2025-01-15T00:00:00Z"},
                {"id": "m2", "pushed": "2025-02-01T00:00:00Z", "tags": ["v2"]},
                {"id": "m3", "pushed": "2025-03-01T00:00:00Z", "tags": ["latest", "v3"]},
            ],
        },
        *(
            {"name": name, "manifests": [{"tags": ["1.0"]}]}
            for name in ("apps/api", "base/alpine", "tools/cli", "zeta")
        ),
    ]
}
ALL_REPOSITORIES = ["apps/api", "apps/web", "base/alpine", "tools/cli", "zeta"]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(anonymous_pull=True)


@pytest.fixture
def seeded(emulator: Emulator, emulator_server: ServerInfo) -> tuple[Emulator, ServerInfo]:
    emulator.seed(FIXTURE)
    return emulator, emulator_server


def digests_by_time(emu: Emulator, repository: str) -> list[str]:
    manifests = emu.registry.repositories[repository].manifests.values()
    return [m.digest for m in sorted(manifests, key=lambda m: m.updated)]


def image_manifest(
    config_digest: str, config_size: int, layer_digest: str, layer_size: int
) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }


def test_sync_client_lists_repositories_across_pages(seeded):
    """The sync SDK follows Link headers through three pages of two repositories."""
    emu, server = seeded
    with ContainerRegistryClient(
        server.url, FakeCredential(), connection_verify=server.ca_file
    ) as client:
        names = list(client.list_repository_names(results_per_page=2))
    assert names == ALL_REPOSITORIES
    assert emu.counters.count(endpoint="/acr/v1/_catalog", status=200) == 3


def test_sync_client_lists_manifests_and_tags_in_both_orders(seeded):
    """Manifests and tags come back newest-first and oldest-first by lastUpdateTime."""
    emu, server = seeded
    oldest_first = digests_by_time(emu, "apps/web")
    with ContainerRegistryClient(
        server.url, FakeCredential(), connection_verify=server.ca_file
    ) as client:
        desc = client.list_manifest_properties(
            "apps/web",
            order_by=ArtifactManifestOrder.LAST_UPDATED_ON_DESCENDING,
            results_per_page=1,
        )
        asc = client.list_manifest_properties(
            "apps/web", order_by=ArtifactManifestOrder.LAST_UPDATED_ON_ASCENDING
        )
        assert [m.digest for m in desc] == oldest_first[::-1]
        assert [m.digest for m in asc] == oldest_first
        tags_desc = client.list_tag_properties(
            "apps/web", order_by=ArtifactTagOrder.LAST_UPDATED_ON_DESCENDING, results_per_page=2
        )
        tags_asc = client.list_tag_properties(
            "apps/web", order_by=ArtifactTagOrder.LAST_UPDATED_ON_ASCENDING
        )
        assert [t.name for t in tags_desc] == ["latest", "v3", "v2", "v1"]
        assert [t.name for t in tags_asc] == ["v1", "v2", "latest", "v3"]


def test_sync_client_gets_and_updates_properties_at_all_three_levels(seeded):
    """Repository, manifest and tag properties read back and their locks are stored."""
    emu, server = seeded
    with ContainerRegistryClient(
        server.url, FakeCredential(), connection_verify=server.ca_file
    ) as client:
        repo = client.get_repository_properties("apps/web")
        assert (repo.name, repo.manifest_count, repo.tag_count) == ("apps/web", 4, 4)
        client.update_repository_properties("apps/web", can_delete=False)
        manifest = client.update_manifest_properties("apps/web", "v2", can_write=False)
        tag = client.update_tag_properties("apps/web", "v1", can_delete=False)
        assert manifest.can_write is False
        assert "v2" in manifest.tags
        assert tag.can_delete is False
        assert tag.name == "v1"
        assert client.get_manifest_properties("apps/web", "v1").architecture == "amd64"
    state = emu.registry.repositories["apps/web"]
    assert state.attributes.delete_enabled is False
    assert state.manifests[state.tags["v2"].digest].attributes.write_enabled is False
    assert state.tags["v1"].attributes.delete_enabled is False


def test_sync_client_deletes_a_tag_a_manifest_and_a_repository(seeded):
    """Untag keeps the manifest; manifest delete takes its tags; repository delete removes it."""
    emu, server = seeded
    state = emu.registry.repositories["apps/web"]
    v2_digest = state.tags["v2"].digest
    latest_digest = state.tags["latest"].digest
    with ContainerRegistryClient(
        server.url, FakeCredential(), connection_verify=server.ca_file
    ) as client:
        client.delete_tag("apps/web", "v2")
        client.delete_manifest("apps/web", latest_digest)
        client.delete_repository("tools/cli")
        client.delete_tag("apps/web", "v2")  # already gone: the SDK takes 404 as success
    assert "v2" not in state.tags
    assert v2_digest in state.manifests
    assert latest_digest not in state.manifests
    assert "latest" not in state.tags
    assert "v3" not in state.tags
    assert "tools/cli" not in emu.registry.repositories


def test_sync_client_uploads_a_blob_and_a_manifest(seeded):
    """A blob upload and set_manifest create a tagged manifest whose digest verifies."""
    emu, server = seeded
    config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()
    with ContainerRegistryClient(
        server.url, FakeCredential(), connection_verify=server.ca_file
    ) as client:
        config_digest, config_size = client.upload_blob("apps/new", io.BytesIO(config))
        layer_digest, layer_size = client.upload_blob("apps/new", io.BytesIO(b"x" * 70000))
        manifest = image_manifest(config_digest, config_size, layer_digest, layer_size)
        digest = client.set_manifest("apps/new", manifest, tag="1.0")
        fetched = client.get_manifest("apps/new", "1.0")
        props = client.get_manifest_properties("apps/new", digest)
    assert fetched.digest == digest
    assert props.architecture == "arm64"
    assert props.size_in_bytes == config_size + layer_size
    assert emu.registry.repositories["apps/new"].tags["1.0"].digest == digest


def test_sync_client_receives_acr_errors_for_missing_and_locked_artifacts(seeded):
    """Missing things raise ResourceNotFoundError; locked ones a 405 DISALLOWED_OPERATION."""
    emu, server = seeded
    with ContainerRegistryClient(
        server.url, FakeCredential(), connection_verify=server.ca_file
    ) as client:
        with pytest.raises(ResourceNotFoundError):
            client.get_tag_properties("apps/web", "nope")
        with pytest.raises(ResourceNotFoundError):
            client.get_repository_properties("no/such")
        client.update_tag_properties("apps/web", "v1", can_write=False)
        with pytest.raises(HttpResponseError) as locked:
            client.delete_tag("apps/web", "v1")
    assert locked.value.status_code == 405
    assert "REGISTRY_DISALLOWED_OPERATION" in str(locked.value)
    assert "v1" in emu.registry.repositories["apps/web"].tags


def test_sync_client_reads_anonymously_and_is_refused_writes(seeded):
    """With anonymous pull, a credential-less client lists and reads but cannot change locks."""
    emu, server = seeded
    with ContainerRegistryClient(server.url, None, connection_verify=server.ca_file) as client:
        assert list(client.list_repository_names()) == ALL_REPOSITORIES
        assert client.get_tag_properties("apps/web", "v1").name == "v1"
        with pytest.raises(ClientAuthenticationError):
            client.update_tag_properties("apps/web", "v1", can_delete=False)
    assert emu.registry.repositories["apps/web"].tags["v1"].attributes.delete_enabled


async def test_async_client_lists_repositories_across_pages(seeded):
    """The aio SDK (aiohttp) follows Link headers through three pages of two repositories."""
    emu, server = seeded
    async with AsyncContainerRegistryClient(
        server.url, AsyncFakeCredential(), connection_verify=server.ca_file
    ) as client:
        names = [n async for n in client.list_repository_names(results_per_page=2)]
    assert names == ALL_REPOSITORIES
    assert emu.counters.count(endpoint="/acr/v1/_catalog", status=200) == 3


async def test_async_client_lists_manifests_and_tags_in_both_orders(seeded):
    """The aio SDK pages manifests and tags newest-first and oldest-first by lastUpdateTime."""
    emu, server = seeded
    oldest_first = digests_by_time(emu, "apps/web")
    async with AsyncContainerRegistryClient(
        server.url, AsyncFakeCredential(), connection_verify=server.ca_file
    ) as client:
        desc = [
            m.digest
            async for m in client.list_manifest_properties(
                "apps/web",
                order_by=ArtifactManifestOrder.LAST_UPDATED_ON_DESCENDING,
                results_per_page=3,
            )
        ]
        asc = [
            m.digest
            async for m in client.list_manifest_properties(
                "apps/web", order_by=ArtifactManifestOrder.LAST_UPDATED_ON_ASCENDING
            )
        ]
        tags_desc = [
            t.name
            async for t in client.list_tag_properties(
                "apps/web", order_by=ArtifactTagOrder.LAST_UPDATED_ON_DESCENDING, results_per_page=3
            )
        ]
        tags_asc = [
            t.name
            async for t in client.list_tag_properties(
                "apps/web", order_by=ArtifactTagOrder.LAST_UPDATED_ON_ASCENDING
            )
        ]
    assert desc == oldest_first[::-1]
    assert asc == oldest_first
    assert tags_desc == ["latest", "v3", "v2", "v1"]
    assert tags_asc == ["v1", "v2", "latest", "v3"]
    assert emu.counters.count(endpoint="/acr/v1/{name}/_manifests", status=200) == 3


async def test_async_client_gets_and_updates_properties_at_all_three_levels(seeded):
    """The aio SDK reads repository, manifest and tag properties and stores their locks."""
    emu, server = seeded
    async with AsyncContainerRegistryClient(
        server.url, AsyncFakeCredential(), connection_verify=server.ca_file
    ) as client:
        repo = await client.get_repository_properties("apps/web")
        updated_repo = await client.update_repository_properties("apps/web", can_delete=False)
        manifest = await client.update_manifest_properties("apps/web", "v2", can_write=False)
        tag = await client.update_tag_properties("apps/web", "v1", can_delete=False)
        by_tag = await client.get_manifest_properties("apps/web", "v1")
    assert (repo.name, repo.manifest_count, repo.tag_count) == ("apps/web", 4, 4)
    assert updated_repo.can_delete is False
    assert (manifest.can_write, "v2" in manifest.tags) == (False, True)
    assert (tag.name, tag.can_delete) == ("v1", False)
    assert by_tag.architecture == "amd64"
    state = emu.registry.repositories["apps/web"]
    assert state.attributes.delete_enabled is False
    assert state.manifests[state.tags["v2"].digest].attributes.write_enabled is False
    assert state.tags["v1"].attributes.delete_enabled is False


async def test_async_client_deletes_a_tag_a_manifest_and_a_repository(seeded):
    """aio: untag keeps the manifest, manifest delete takes its tags, repository delete all."""
    emu, server = seeded
    state = emu.registry.repositories["apps/web"]
    v2_digest = state.tags["v2"].digest
    latest_digest = state.tags["latest"].digest
    async with AsyncContainerRegistryClient(
        server.url, AsyncFakeCredential(), connection_verify=server.ca_file
    ) as client:
        await client.delete_tag("apps/web", "v2")
        await client.delete_manifest("apps/web", latest_digest)
        await client.delete_repository("tools/cli")
        await client.delete_tag("apps/web", "v2")  # already gone: the SDK takes 404 as success
    assert "v2" not in state.tags
    assert v2_digest in state.manifests
    assert latest_digest not in state.manifests
    assert "latest" not in state.tags
    assert "v3" not in state.tags
    assert "tools/cli" not in emu.registry.repositories


async def test_async_client_uploads_a_blob_and_a_manifest(seeded):
    """aio upload_blob and set_manifest create a tagged manifest whose digest verifies."""
    emu, server = seeded
    config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()
    async with AsyncContainerRegistryClient(
        server.url, AsyncFakeCredential(), connection_verify=server.ca_file
    ) as client:
        config_digest, config_size = await client.upload_blob("apps/new", io.BytesIO(config))
        layer_digest, layer_size = await client.upload_blob("apps/new", io.BytesIO(b"y" * 70000))
        manifest = image_manifest(config_digest, config_size, layer_digest, layer_size)
        digest = await client.set_manifest("apps/new", manifest, tag="1.0")
        fetched = await client.get_manifest("apps/new", "1.0")
        props = await client.get_manifest_properties("apps/new", digest)
    assert fetched.digest == digest
    assert props.architecture == "arm64"
    assert props.size_in_bytes == config_size + layer_size
    assert emu.registry.repositories["apps/new"].tags["1.0"].digest == digest
    assert emu.registry.repo_blobs["apps/new"] >= {config_digest, layer_digest}
    assert emu.registry.blobs[layer_digest] == b"y" * 70000


async def test_async_client_receives_acr_errors_for_missing_and_locked_artifacts(seeded):
    """aio: missing things raise ResourceNotFoundError; locked tags and manifests a 405."""
    emu, server = seeded
    state = emu.registry.repositories["apps/web"]
    async with AsyncContainerRegistryClient(
        server.url, AsyncFakeCredential(), connection_verify=server.ca_file
    ) as client:
        with pytest.raises(ResourceNotFoundError):
            await client.get_tag_properties("apps/web", "nope")
        with pytest.raises(ResourceNotFoundError):
            await client.get_repository_properties("no/such")
        with pytest.raises(ResourceNotFoundError):
            await client.get_manifest_properties("apps/web", "v9")
        await client.update_tag_properties("apps/web", "v1", can_write=False)
        with pytest.raises(HttpResponseError) as tag_locked:
            await client.delete_tag("apps/web", "v1")
        await client.update_manifest_properties("apps/web", "v2", can_delete=False)
        with pytest.raises(HttpResponseError) as manifest_locked:
            await client.delete_manifest("apps/web", state.tags["v2"].digest)
    for locked in (tag_locked, manifest_locked):
        assert locked.value.status_code == 405
        assert "REGISTRY_DISALLOWED_OPERATION" in str(locked.value)
    assert {"v1", "v2"} <= set(state.tags)


@pytest.fixture
def aiohttp_trusts_emulator(seeded, monkeypatch):
    """aiohttp's default verifying context, swapped for one that also trusts the emulator's CA
    for this test only (monkeypatch puts the module's own context back afterwards)."""
    _, server = seeded
    context = aiohttp.connector._make_ssl_context(True)
    context.load_verify_locations(server.ca_file)
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", context)
    return context


async def test_async_client_reads_anonymously(seeded, aiohttp_trusts_emulator):
    """The aio SDK without a credential gets anonymous tokens and lists repositories."""
    emu, server = seeded
    # azure-containerregistry 1.2.0's aio anonymous exchange client drops connection_verify
    # (aio/_async_authentication_policy.py builds AnonymousACRExchangeClient(endpoint) with
    # no kwargs), so its token calls use aiohttp's default context (the fixture's).
    async with AsyncContainerRegistryClient(
        server.url, None, connection_verify=server.ca_file
    ) as client:
        names = [n async for n in client.list_repository_names(results_per_page=3)]
        tag = await client.get_tag_properties("apps/web", "latest")
        with pytest.raises(ClientAuthenticationError):
            await client.delete_repository("apps/web")
    assert names == ALL_REPOSITORIES
    assert tag.digest == emu.registry.repositories["apps/web"].tags["latest"].digest
    assert "apps/web" in emu.registry.repositories

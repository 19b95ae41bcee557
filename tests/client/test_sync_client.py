"""`SyncAcrClient` on the emulator over HTTPS: `AcrClient`'s methods, without `async`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

from acr_core import AcrClient, NotFoundError, RetryPolicy, SyncAcrClient
from acr_core.registry.errors import DisallowedOperationError
from acr_emulator import Emulator, ServerInfo
from acr_emulator.testing import AsyncFakeCredential, FakeCredential

FIXTURE = {
    "repositories": [
        {
            "name": "team/app",
            "manifests": [
                {"id": f"build-{n}", "pushed": f"2026-01-0{n}T00:00:00Z", "tags": [f"1.{n}"]}
                for n in range(1, 6)
            ],
        },
        {"name": "team/base", "manifests": [{"tags": ["latest"]}]},
    ]
}


@pytest.fixture
def server(emulator: Emulator, emulator_server: ServerInfo) -> ServerInfo:
    emulator.seed(FIXTURE)
    return emulator_server


@pytest.fixture
def client(server: ServerInfo) -> Iterator[SyncAcrClient]:
    with SyncAcrClient(
        server.url,
        username=server.admin_username,
        password=server.admin_password,
        verify=server.ca_file or True,
        retry=RetryPolicy.off(),
    ) as sync:
        yield sync


def test_it_has_every_public_method_of_the_async_client():
    """Each public method and property of AcrClient exists on SyncAcrClient, not as a coroutine."""
    public = {name for name in vars(AcrClient) if not name.startswith("_")}
    assert public <= set(vars(SyncAcrClient))
    assert not any(inspect.iscoroutinefunction(getattr(SyncAcrClient, n)) for n in public)


def test_listings_are_lazy_iterators_over_every_page(client):
    """Listings page through the registry one page at a time and yield everything in order."""
    names = client.list_repository_names(results_per_page=1)
    assert next(names) == "team/app"
    assert list(names) == ["team/base"]
    tags = client.list_tag_properties("team/app", order_by="timedesc", results_per_page=2)
    assert [t.name for t in tags] == ["1.5", "1.4", "1.3", "1.2", "1.1"]
    manifests = list(client.list_manifest_properties("team/app", results_per_page=2))
    assert sorted(m.tags for m in manifests) == [(f"1.{n}",) for n in range(1, 6)]


def test_locks_and_deletes_change_the_registry(client, emulator):
    """Locking a tag and a manifest, then deleting, leaves the registry as ACR would."""
    digest = client.get_tag_properties("team/app", "1.1").digest
    client.update_tag_properties("team/app", "1.2", can_write=False, can_delete=False)
    locked = client.update_manifest_properties("team/app", "1.3", can_delete=False)
    assert client.delete_manifest("team/app", digest) is True
    assert client.delete_manifest("team/app", digest) is False
    with pytest.raises(DisallowedOperationError):
        client.delete_manifest("team/app", locked.digest)
    assert client.delete_tag("team/app", "1.4") is True
    repo = emulator.registry.repositories["team/app"]
    assert digest not in repo.manifests
    assert repo.tags["1.2"].attributes.write_enabled is False
    assert repo.manifests[locked.digest].attributes.delete_enabled is False
    assert sorted(repo.tags) == ["1.2", "1.3", "1.5"]
    assert client.delete_repository("team/base") is True
    assert "team/base" not in emulator.registry.repositories


def test_errors_are_the_library_s_own_raised_in_the_caller_s_thread(client):
    """A missing tag raises NotFoundError, the same class the async client raises."""
    with pytest.raises(NotFoundError):
        client.get_tag_properties("team/app", "nope")
    assert client.get_repository_properties("team/app").manifest_count == 5


@pytest.mark.parametrize("credential", [FakeCredential(), AsyncFakeCredential()])
def test_sync_and_async_credentials_both_work(server, credential):
    """A synchronous azure-core credential, as the SDK's sync client takes, or an async one."""
    with SyncAcrClient(server.url, credential, verify=server.ca_file or True) as client:
        assert client.get_manifest("team/base", "latest").digest.startswith("sha256:")
    assert credential.calls


async def test_it_works_where_an_event_loop_is_already_running(client):
    """Called from inside a running loop (a notebook, an async test), it still answers."""
    asyncio.get_running_loop()
    assert [t.name for t in client.list_tag_properties("team/base")] == ["latest"]


def test_a_closed_client_says_so_and_closing_twice_is_harmless(server):
    """After `with`, calls raise RuntimeError saying it is closed; close() again is a no-op."""
    with SyncAcrClient(
        server.url,
        username=server.admin_username,
        password=server.admin_password,
        verify=server.ca_file or True,
    ) as client:
        unfinished = client.list_repository_names(results_per_page=1)
        next(unfinished)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get_repository_properties("team/app")
    with pytest.raises(RuntimeError, match="closed"):
        next(unfinished)


def test_set_manifest_tags_the_same_bytes_under_their_digest(client, server):
    """set_manifest uploads the bytes unchanged: the digest it returns is the original's, and
    the tag it names points there. The admin user is the client's principal."""
    content = client.get_manifest("team/app", "1.1")
    digest = client.set_manifest("team/app", content.raw, tag="copy", media_type=content.media_type)
    assert digest == content.digest
    assert client.get_tag_properties("team/app", "copy").digest == content.digest
    assert client.principal == server.admin_username

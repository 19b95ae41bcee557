"""Round trips for one cleanup job, ours against Microsoft's SDK on the same emulator over HTTPS."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import pytest
from azure.containerregistry.aio import ContainerRegistryClient

from acr_core import AcrClient
from acr_emulator import Emulator, ServerInfo
from acr_emulator.testing import AsyncFakeCredential

MANIFESTS = 120
DELETES = 100
CONCURRENCY = 8


@dataclass(frozen=True)
class Trips:
    total: int
    exchanges: int
    tokens: int
    challenges: int

    def line(self, who: str) -> str:
        return (
            f"{who:>18}: {self.total:4d} requests, {self.exchanges:3d} exchanges, "
            f"{self.tokens:3d} token requests, {self.challenges:3d} 401s"
        )


def counted(emulator: Emulator) -> Trips:
    counters = emulator.counters
    return Trips(
        total=counters.total,
        exchanges=counters.count(endpoint="/oauth2/exchange"),
        tokens=counters.count(endpoint="/oauth2/token"),
        challenges=counters.count(status=401),
    )


async def bounded(jobs: list[Callable[[], Awaitable[object]]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(job: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(run(job) for job in jobs))


async def ours(server: ServerInfo, repository: str) -> None:
    async with AcrClient(
        server.url, AsyncFakeCredential(), verify=server.ca_file or True
    ) as client:
        digests = [m.digest async for m in client.list_manifest_properties(repository)]
        await bounded(
            [partial(client.delete_manifest, repository, d) for d in sorted(digests)[:DELETES]]
        )


async def microsofts(server: ServerInfo, repository: str) -> None:
    client = ContainerRegistryClient(
        server.url,
        AsyncFakeCredential(),
        audience="https://containerregistry.azure.net",
        connection_verify=server.ca_file,
    )
    async with client:
        pages = client.list_manifest_properties(repository, results_per_page=1000)
        digests = [m.digest async for m in pages]
        await bounded(
            [partial(client.delete_manifest, repository, d) for d in sorted(digests)[:DELETES]]
        )


async def test_listing_and_deleting_100_costs_one_exchange_and_one_token_per_scope(
    emulator: Emulator, emulator_server: ServerInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listing a repository and deleting 100 manifests: one exchange, a token per scope, one 401."""
    emulator.seed(
        {
            "repositories": [
                {"name": name, "manifests": [{"salt": f"{name}{i}"} for i in range(MANIFESTS)]}
                for name in ("ours", "theirs")
            ]
        }
    )
    emulator.counters.reset()
    await ours(emulator_server, "ours")
    mine = counted(emulator)
    emulator.counters.reset()
    await microsofts(emulator_server, "theirs")
    theirs = counted(emulator)
    with capsys.disabled():
        print("\n" + mine.line("acr_core") + "\n" + theirs.line("azure-containerregistry"))

    for name in ("ours", "theirs"):
        assert len(emulator.registry.repositories[name].manifests) == MANIFESTS - DELETES
    # Two scopes (metadata_read for the listing, delete for the deletes); only the very first
    # request is challenged, later scopes are predicted and fetched up front.
    assert mine.exchanges == 1
    assert mine.tokens == 2
    assert mine.challenges == 1
    assert mine.total == 1 + 1 + 2 + 1 + DELETES  # 401, exchange, 2 tokens, 1 page, deletes
    assert theirs.total > mine.total

"""The two baselines: the keep-3 cleanup written with Microsoft's `azure-containerregistry` 1.2.0.

`quickstart` does what the Python section of Microsoft's "Quickstart: Use the Azure Container
Registry client libraries" shows (learn.microsoft.com/azure/container-registry/
quickstart-client-libraries, "Delete images asynchronously"): list the repositories, list each
one's manifests newest first, and delete every manifest after the third, one at a time, while the
listing is still being paged. The quickstart names `ManifestOrder.LAST_UPDATE_TIME_DESCENDING`;
1.2.0 spells the same value (`orderby=timedesc`) `ArtifactManifestOrder.LAST_UPDATED_ON_DESCENDING`.

`careful` is the same job as a careful user would write it with the same SDK: each repository is
listed completely before anything in it is deleted (so paging never races the deletes), and the
deletes run concurrently under a semaphore of 32, the cap `acr purge` uses ("the max number of
parallel delete requests recommended by ACR server", Azure/acr-cli `cmd/acr/purge.go`).

Both keep the SDK's defaults, retries included (azure-core's RetryPolicy honours `Retry-After` on
429). Both are bounded: a listing stops after `max_manifests` items and the caller runs them under
a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from azure.containerregistry import ArtifactManifestOrder
from azure.containerregistry.aio import ContainerRegistryClient
from azure.core.credentials_async import AsyncTokenCredential

KEEP = 3
# acr purge's cap on parallel deletes (Azure/acr-cli cmd/acr/purge.go, maxPoolSize).
CAREFUL_CONCURRENCY = 32


@dataclass
class SideOutcome:
    """What a side says it did; the harness checks the registry's final state separately."""

    deleted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


ResponseHook = Callable[[Any], None]


def _client(
    endpoint: str, credential: AsyncTokenCredential, hook: ResponseHook | None
) -> ContainerRegistryClient:
    # `raw_response_hook` is azure-core's per-response callback; the harness uses it only to
    # time accepted deletes. Everything else is the SDK's default configuration.
    if hook is None:
        return ContainerRegistryClient(endpoint, credential)
    return ContainerRegistryClient(endpoint, credential, raw_response_hook=hook)


async def _repositories(
    client: ContainerRegistryClient, only: Sequence[str] | None, max_repositories: int
) -> list[str]:
    if only is not None:
        return list(only)
    names: list[str] = []
    async for name in client.list_repository_names():
        names.append(name)
        if len(names) >= max_repositories:
            break
    return names


async def quickstart(
    endpoint: str,
    credential: AsyncTokenCredential,
    *,
    repositories: Sequence[str] | None = None,
    max_repositories: int = 100_000,
    max_manifests: int = 100_000,
    response_hook: ResponseHook | None = None,
) -> SideOutcome:
    """Delete all but the three newest manifests of each repository, one delete at a time."""
    outcome = SideOutcome()
    async with _client(endpoint, credential, response_hook) as client:
        if repositories is None:
            # The quickstart deletes while it pages through the repository list.
            names = client.list_repository_names()
            seen = 0
            async for repository in names:
                seen += 1
                if seen > max_repositories:
                    break
                await _quickstart_repository(client, repository, outcome, max_manifests)
        else:
            for repository in repositories:
                await _quickstart_repository(client, repository, outcome, max_manifests)
    return outcome


async def _quickstart_repository(
    client: ContainerRegistryClient, repository: str, outcome: SideOutcome, max_manifests: int
) -> None:
    manifest_count = 0
    async for manifest in client.list_manifest_properties(
        repository, order_by=ArtifactManifestOrder.LAST_UPDATED_ON_DESCENDING
    ):
        manifest_count += 1
        if manifest_count > max_manifests:
            break
        if manifest_count > KEEP:
            # As in the quickstart: no error handling, the first failure ends the run.
            await client.delete_manifest(repository, manifest.digest)
            outcome.deleted += 1


async def careful(
    endpoint: str,
    credential: AsyncTokenCredential,
    *,
    repositories: Sequence[str] | None = None,
    max_repositories: int = 100_000,
    max_manifests: int = 100_000,
    concurrency: int = CAREFUL_CONCURRENCY,
    response_hook: ResponseHook | None = None,
) -> SideOutcome:
    """List every repository fully, then delete all but its three newest, 32 deletes at a time."""
    outcome = SideOutcome()
    semaphore = asyncio.Semaphore(concurrency)
    async with _client(endpoint, credential, response_hook) as client:
        names = await _repositories(client, repositories, max_repositories)

        async def delete(repository: str, digest: str) -> None:
            async with semaphore:
                try:
                    await client.delete_manifest(repository, digest)
                except Exception as exc:  # a careful user records the failure and goes on
                    outcome.failed += 1
                    if len(outcome.errors) < 10:
                        outcome.errors.append(f"{repository}@{digest}: {exc!r}"[:300])
                else:
                    outcome.deleted += 1

        async def sweep(repository: str) -> None:
            async with semaphore:
                digests: list[str] = []
                async for manifest in client.list_manifest_properties(
                    repository, order_by=ArtifactManifestOrder.LAST_UPDATED_ON_DESCENDING
                ):
                    digests.append(manifest.digest)
                    if len(digests) >= max_manifests:
                        break
            await asyncio.gather(*(delete(repository, d) for d in digests[KEEP:]))

        await asyncio.gather(*(sweep(name) for name in names))
    return outcome

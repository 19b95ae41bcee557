"""Where the examples connect: the variables `source .emulator.env` sets, or your registry.

- `ACR_REGISTRY` (required): the login server, e.g. `myregistry.azurecr.io`, or the emulator's URL.
- `ACR_USERNAME` and `ACR_PASSWORD`: an admin user or a repository-scoped token; without them,
  `DefaultAzureCredential` (your `az login`, a managed identity, ...).
- `ACR_CA_FILE`: a CA bundle to trust (the emulator's; not needed for Azure).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acr_core import AcrClient, SyncAcrClient


def _arguments(environ: Mapping[str, str], *, sync: bool) -> tuple[str, dict[str, Any]]:
    registry = environ.get("ACR_REGISTRY")
    if not registry:
        raise SystemExit("set ACR_REGISTRY (with the emulator: source .emulator.env)")
    kwargs: dict[str, Any] = {"verify": environ.get("ACR_CA_FILE") or True}
    if environ.get("ACR_USERNAME"):
        kwargs |= {"username": environ["ACR_USERNAME"], "password": environ.get("ACR_PASSWORD")}
    elif sync:
        from azure.identity import DefaultAzureCredential

        kwargs["credential"] = DefaultAzureCredential()
    else:
        from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

        kwargs["credential"] = AsyncDefaultAzureCredential()
    return registry, kwargs


def sync_client(environ: Mapping[str, str]) -> SyncAcrClient:
    """A `SyncAcrClient` for the registry the environment names."""
    registry, kwargs = _arguments(environ, sync=True)
    return SyncAcrClient(registry, **kwargs)


def async_client(environ: Mapping[str, str]) -> AcrClient:
    """An `AcrClient` (async) for the registry the environment names."""
    registry, kwargs = _arguments(environ, sync=False)
    return AcrClient(registry, **kwargs)

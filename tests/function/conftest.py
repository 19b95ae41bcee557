"""Fixtures for driving the function's handlers against the emulator over real HTTPS.

- `registry`: the emulator served on 127.0.0.1, with the events it emits collected in both
  schemas, a pusher (our independent OCI client, as a CI job would push) and state helpers.
- `app`: `function_app` configured with app settings pointing at that emulator, the fake AAD
  credential standing in for the managed identity, and a fast retry policy.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, cast

import httpx
import pytest
from azure.core.credentials_async import AsyncTokenCredential

import function_app
from acr_core.registry.transport import RetryPolicy
from acr_emulator import Emulator, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from scripts.oci_push import BasicTokenAuth, Pushed, push_image

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
POLICY: dict[str, Any] = {
    "version": 1,
    "rules": [{"name": "apps", "repositories": ["apps/**"], "keepLatest": 2, "minAge": "1h"}],
}


@dataclass
class Registry:
    emulator: Emulator
    server: ServerInfo
    http: httpx.AsyncClient
    eventgrid: list[dict[str, Any]] = field(default_factory=list)
    cloudevents: list[dict[str, Any]] = field(default_factory=list)

    async def push(self, repository: str, tag: str | None, *, age: timedelta) -> Pushed:
        """Push an image as if it had been pushed `age` ago (the emulator's clock moves)."""
        self.emulator.clock.set(datetime.now(UTC) - age)
        try:
            return await push_image(self.http, repository, tag, label=f"{tag}-{age}")
        finally:
            self.emulator.clock.set(datetime.now(UTC))

    def pushed_events(self, schema: str = "eventgrid") -> list[dict[str, Any]]:
        events = self.eventgrid if schema == "eventgrid" else self.cloudevents
        return [e for e in events if e.get("eventType", e.get("type")) == PUSHED]

    def tags(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)
        return set(repo.tags) if repo else set()

    def digests(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)
        return set(repo.manifests) if repo else set()

    def state(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """Every repository's digests and tags, for before/after comparisons."""
        return {
            name: (frozenset(repo.manifests), frozenset(repo.tags))
            for name, repo in self.emulator.registry.repositories.items()
        }


@pytest.fixture
async def registry(emulator: Emulator, emulator_server: ServerInfo) -> AsyncIterator[Registry]:
    auth = BasicTokenAuth(emulator_server.admin_username, emulator_server.admin_password)
    verify = ssl.create_default_context(cafile=emulator_server.ca_file)
    async with httpx.AsyncClient(base_url=emulator_server.url, verify=verify, auth=auth) as http:
        reg = Registry(emulator, emulator_server, http)
        emulator.subscribe(reg.eventgrid.append, schema="eventgrid")
        emulator.subscribe(reg.cloudevents.append, schema="cloudevents")
        yield reg


def app_settings(registry: Registry, **overrides: str) -> dict[str, str]:
    env = {
        "ACR_LOGIN_SERVER": registry.server.login_server,
        "ACR_RESOURCE_ID": registry.emulator.config.resource_id,
        "CLEANUP_POLICY": json.dumps(POLICY),
        "CLEANUP_DRY_RUN": "false",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "<unset>"}


@pytest.fixture
def configure(registry: Registry) -> Iterator[Any]:
    """`configure(**settings)` points function_app at the emulator; restored afterwards."""
    saved = function_app._shell

    def apply(**overrides: str) -> ModuleType:
        function_app.configure(
            app_settings(registry, **overrides),
            # The emulator's fake stands in for the managed identity (same get_token shape).
            credential=cast(AsyncTokenCredential, AsyncFakeCredential()),
            verify=ssl.create_default_context(cafile=registry.server.ca_file),
            retry=RetryPolicy(attempts=2, deadline=5.0, backoff_base=0.01, backoff_max=0.05),
        )
        return function_app

    yield apply
    function_app._shell = saved


@pytest.fixture
def app(configure: Any) -> ModuleType:
    module: ModuleType = configure()
    return module


@pytest.fixture
def app_log(caplog: pytest.LogCaptureFixture) -> Any:
    """The records the function app logged, at INFO and above."""
    caplog.set_level(logging.INFO, logger="acr_cleanup")

    def records(level: int = logging.INFO) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "acr_cleanup" and r.levelno >= level]

    return records


def summaries(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """The JSON of every `acr-cleanup run` summary line."""
    prefix = "acr-cleanup run "
    found = []
    for record in records:
        message = record.getMessage()
        if message.startswith(prefix + "{"):
            summary: dict[str, Any] = json.loads(message[len(prefix) :])
            found.append(summary)
    return found

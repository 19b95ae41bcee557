"""Azurite's table service for the history tests, once per module on a free loopback port
(started by `tests.storage.azurite.azurite_service`, as the blob tests start theirs)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables.aio import TableClient

from tests.storage.azurite import ACCOUNT, ACCOUNT_KEY, azurite_service, free_port

CREDENTIAL = AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY)
__all__ = ["ACCOUNT", "CREDENTIAL", "azurite_tables_fixture", "free_port", "new_table"]


@pytest.fixture(scope="module", name="azurite_tables")
def azurite_tables_fixture() -> Iterator[str]:
    """Azurite's table service on a free loopback port; yields the account's endpoint."""
    with azurite_service("table") as connection:
        endpoint = dict(part.split("=", 1) for part in connection.strip(";").split(";"))
        yield endpoint["TableEndpoint"]


async def new_table(endpoint: str) -> str:
    """A fresh table under Azurite's account endpoint, as the Bicep would create it; its URL."""
    name = f"history{random.randrange(10**9)}"
    async with TableClient(endpoint, name, credential=CREDENTIAL) as client:
        await client.create_table()
    return f"{endpoint}/{name}"

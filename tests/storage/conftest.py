"""Fixtures for the storage tests: Azurite's blob service, started once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.storage.azurite import azurite_service


@pytest.fixture(scope="module")
def azurite_blob() -> Iterator[str]:
    """A connection string for an in-memory Azurite blob service on loopback."""
    with azurite_service("blob") as connection_string:
        yield connection_string

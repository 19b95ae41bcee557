"""`Faults(methods=...)`: faults hit only the named HTTP methods; other requests pass."""

from __future__ import annotations

import httpx
import pytest

from acr_emulator import Emulator, Faults
from tests.emulator.helpers import admin_headers, push_image


async def test_only_the_named_methods_fail(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """With methods={"DELETE"}, reads succeed while a delete is answered 503 and changes nothing."""
    headers = await admin_headers(emulator_client, emulator)
    digest, _ = await push_image(emulator_client, headers, "apps/a", "v1")
    emulator.faults = Faults(error_rate=1.0, methods=frozenset({"delete"}))

    read = await emulator_client.get("/acr/v1/apps/a/_manifests", headers=headers)
    delete = await emulator_client.delete(f"/v2/apps/a/manifests/{digest}", headers=headers)

    assert read.status_code == 200
    assert delete.status_code == 503
    assert digest in emulator.registry.repositories["apps/a"].manifests


async def test_methods_none_faults_every_method(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """The default (methods=None) answers reads with the fault too."""
    emulator.faults = Faults(error_rate=1.0)
    assert (await emulator_client.get("/acr/v1/_catalog")).status_code == 503


async def test_methods_over_the_admin_endpoint(
    emulator: Emulator, emulator_client: httpx.AsyncClient
) -> None:
    """POST /_emulator/faults takes methods as a JSON list and shows them back, upper-cased."""
    response = await emulator_client.post(
        "/_emulator/faults", json={"error_rate": 1.0, "methods": ["delete", "PATCH"]}
    )
    assert response.status_code == 200
    assert response.json()["methods"] == ["DELETE", "PATCH"]
    assert emulator.faults.methods == frozenset({"DELETE", "PATCH"})
    assert (await emulator_client.get("/v2/")).status_code == 401  # not faulted: auth challenge


@pytest.mark.parametrize("methods", ["DELETE", [1]])
def test_methods_must_be_a_collection_of_names(methods: object) -> None:
    """A bare string or a non-string entry is refused with a message naming methods."""
    with pytest.raises(ValueError, match="methods"):
        Faults(methods=methods)  # type: ignore[arg-type]

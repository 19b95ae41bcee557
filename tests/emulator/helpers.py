"""Small helpers shared by the emulator tests."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx

from acr_emulator import Emulator

ALL_SCOPES = "registry:catalog:* repository:*:*"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def admin_headers(client: httpx.AsyncClient, emu: Emulator) -> dict[str, str]:
    """A bearer header for the admin user, covering every scope."""
    response = await client.get(
        "/oauth2/token",
        params={"service": "acr.test", "scope": ALL_SCOPES},
        headers={"authorization": basic(emu.config.admin_username, emu.admin_password)},
    )
    assert response.status_code == 200, response.text
    return {"authorization": "Bearer " + response.json()["access_token"]}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_image(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    repository: str,
    reference: str,
    *,
    architecture: str = "amd64",
    layer: bytes = b"layer",
    subject: dict[str, Any] | None = None,
    artifact_type: str | None = None,
) -> tuple[str, bytes]:
    """Push a config blob, a layer blob and an OCI image manifest through the OCI API."""
    config = json.dumps({"architecture": architecture, "os": "linux"}).encode()
    for blob in (config, layer):
        response = await client.post(
            f"/v2/{repository}/blobs/uploads/",
            params={"digest": digest_of(blob)},
            content=blob,
            headers=headers,
        )
        assert response.status_code == 201, response.text
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest_of(layer),
                "size": len(layer),
            }
        ],
    }
    if subject is not None:
        manifest["subject"] = subject
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    body = json.dumps(manifest).encode()
    response = await client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=body,
        headers={**headers, "content-type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 201, response.text
    return digest_of(body), body

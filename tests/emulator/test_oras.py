"""oras (PyPI), an independent OCI client, pushes an image, a multi-arch index and a referrer."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from urllib.parse import quote

import httpx
import oras.oci
import pytest
from oras.provider import Registry

from acr_emulator import Emulator, ServerInfo

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ORAS_CONFIG = "application/vnd.unknown.config.v1+json"


@pytest.fixture
def registry(emulator_server: ServerInfo) -> Registry:
    # oras-py asks for a fresh token only on 403, while ACR answers a token that lacks a scope
    # with 401 insufficient_scope (acr-facts.md 2.1); so, like acr-cli, it gets one token
    # covering pull and push up front (Basic auth on GET /oauth2/token, the admin user).
    token = httpx.get(
        f"{emulator_server.url}/oauth2/token",
        params={"service": emulator_server.login_server, "scope": "repository:oras/demo:pull,push"},
        auth=(emulator_server.admin_username, emulator_server.admin_password),
        verify=ssl.create_default_context(cafile=emulator_server.ca_file),
    ).json()["access_token"]
    client = Registry(hostname=emulator_server.login_server, tls_verify=emulator_server.ca_file)
    client.auth.set_token_auth(token)
    return client


def test_oras_pushes_an_image_an_index_and_a_referrer(
    emulator: Emulator, emulator_server: ServerInfo, registry: Registry, tmp_path: Path, monkeypatch
):
    """Images (one chunked), an index over them and a signature all land with real digests."""
    monkeypatch.chdir(tmp_path)
    host = emulator_server.login_server
    Path("amd64.txt").write_text("amd64 payload")
    Path("arm64.txt").write_text("arm64 payload, a little longer")
    registry.push(target=f"{host}/oras/demo:amd64", files=["amd64.txt"])
    registry.push(
        target=f"{host}/oras/demo:arm64", files=["arm64.txt"], do_chunked=True, chunk_size=8
    )
    repo = emulator.registry.repositories["oras/demo"]
    children = []
    for arch in ("amd64", "arm64"):
        manifest = repo.manifests[repo.tags[arch].digest]
        children.append(
            {
                "mediaType": manifest.media_type,
                "digest": manifest.digest,
                "size": len(manifest.body),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    response = registry.do_request(
        f"https://{host}/v2/oras/demo/manifests/multi",
        "PUT",
        data=json.dumps(index).encode(),
        headers={"Content-Type": OCI_INDEX},
    )
    assert response.status_code == 201
    index_digest = response.headers["Docker-Content-Digest"]
    Path("signature.sig").write_text("a signature")
    subject = oras.oci.Subject(OCI_INDEX, index_digest, len(json.dumps(index).encode()))
    registry.push(target=f"{host}/oras/demo:sig", files=["signature.sig"], subject=subject)

    pulled = registry.pull(target=f"{host}/oras/demo:arm64", outdir=str(tmp_path / "out"))
    assert Path(pulled[0]).read_text() == "arm64 payload, a little longer"
    stored_index = repo.manifests[index_digest]
    assert [c.architecture for c in stored_index.children] == ["amd64", "arm64"]
    sig_digest = repo.tags["sig"].digest
    assert repo.referrers[index_digest] == {sig_digest}
    referrers = registry.do_request(
        f"https://{host}/v2/oras/demo/referrers/{index_digest}?artifactType={quote(ORAS_CONFIG)}",
        "GET",
    )
    assert [d["digest"] for d in referrers.json()["manifests"]] == [sig_digest]
    assert referrers.headers["OCI-Filters-Applied"] == "artifactType"

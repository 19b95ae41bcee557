"""oras (PyPI), an independent OCI client, pushes an image, a multi-arch index and a referrer."""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import oras.oci
import pytest
from oras.layout.layout import NewLayout
from oras.provider import Registry

from acr_emulator import Emulator, ServerInfo

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ORAS_CONFIG = "application/vnd.unknown.config.v1+json"
REPOSITORY = "oras/demo"


@pytest.fixture
def registry(emulator_server: ServerInfo) -> Iterator[Registry]:
    """An oras-py client holding one token for `pull,push` on oras/demo, fetched up front.

    oras-py 0.2.43 cannot step up a token's scope when ACR answers 401: `Registry.do_request`
    (oras/provider.py) retries a 401 or 403 through `TokenAuth.authenticate_request`
    (oras/auth/token.py), which, when it already holds a token, puts that same token back on
    the request ("If we have a token, set auth header") without reading the challenge's
    scope; only a 403 makes `do_request` call it again with `refresh=True` to fetch a new one.
    ACR (docs/acr-facts.md 2.1), and so the emulator, answers a token lacking a scope with 401
    `insufficient_scope`, never 403. A push starts with `blob_exists` (HEAD, scope `pull`), so
    oras's own flow gets a pull-only token and the upload POST (`pull,push`) is refused; see
    test_oras_s_own_token_flow_is_refused_the_push. So, as acr-cli does, the test gets a
    `pull,push` token with Basic on GET /oauth2/token and hands it to `set_token_auth`.
    """
    token = httpx.get(
        f"{emulator_server.url}/oauth2/token",
        params={
            "service": emulator_server.login_server,
            "scope": f"repository:{REPOSITORY}:pull,push",
        },
        auth=(emulator_server.admin_username, emulator_server.admin_password),
        verify=ssl.create_default_context(cafile=emulator_server.ca_file),
    ).json()["access_token"]
    client = Registry(hostname=emulator_server.login_server, tls_verify=emulator_server.ca_file)
    client.auth.set_token_auth(token)
    yield client
    client.session.close()


def write_blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def multi_arch_layout(root: Path, tag: str) -> tuple[dict[str, Any], bytes]:
    """An OCI image layout whose `tag` names an index over a linux/amd64 and a linux/arm64 image."""
    children = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux"}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": write_blob(root, config, "application/vnd.oci.image.config.v1+json"),
            "layers": [
                write_blob(
                    root, f"{arch} payload".encode(), "application/vnd.oci.image.layer.v1.tar"
                )
            ],
        }
        descriptor = write_blob(root, json.dumps(manifest).encode(), OCI_MANIFEST)
        children.append({**descriptor, "platform": {"architecture": arch, "os": "linux"}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    index_bytes = json.dumps(index).encode()
    entry = write_blob(root, index_bytes, OCI_INDEX)
    entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    (root / "index.json").write_text(json.dumps(top))
    return index, index_bytes


def test_oras_pushes_images_monolithic_and_chunked_and_pulls_one_back(
    emulator: Emulator, emulator_server: ServerInfo, registry: Registry, tmp_path: Path, monkeypatch
):
    """oras push stores both images under their tags, and oras pull returns the chunked one."""
    monkeypatch.chdir(tmp_path)
    host = emulator_server.login_server
    Path("amd64.txt").write_text("amd64 payload")
    Path("arm64.txt").write_text("arm64 payload, a little longer")
    registry.push(target=f"{host}/{REPOSITORY}:amd64", files=["amd64.txt"])
    registry.push(
        target=f"{host}/{REPOSITORY}:arm64", files=["arm64.txt"], do_chunked=True, chunk_size=8
    )
    pulled = registry.pull(target=f"{host}/{REPOSITORY}:arm64", outdir=str(tmp_path / "out"))
    assert Path(pulled[0]).read_text() == "arm64 payload, a little longer"
    repo = emulator.registry.repositories[REPOSITORY]
    assert set(repo.tags) == {"amd64", "arm64"}
    for manifest in repo.manifests.values():
        assert manifest.digest == "sha256:" + hashlib.sha256(manifest.body).hexdigest()


def test_oras_pushes_a_multi_arch_index_and_a_referrer_to_it(
    emulator: Emulator, emulator_server: ServerInfo, registry: Registry, tmp_path: Path, monkeypatch
):
    """oras's OCI-layout push stores the index and its children; a signature refers to it."""
    host = emulator_server.login_server
    layout = tmp_path / "layout"
    index, index_bytes = multi_arch_layout(layout, "multi")
    response = NewLayout(str(layout)).push_to_registry(
        registry, f"{host}/{REPOSITORY}:multi", tag="multi"
    )
    index_digest = "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == index_digest

    monkeypatch.chdir(tmp_path)
    Path("signature.sig").write_text("a signature")
    subject = oras.oci.Subject(OCI_INDEX, index_digest, len(index_bytes))
    registry.push(target=f"{host}/{REPOSITORY}:sig", files=["signature.sig"], subject=subject)
    referrers = registry.do_request(
        f"https://{host}/v2/{REPOSITORY}/referrers/{index_digest}"
        f"?artifactType={quote(ORAS_CONFIG)}",
        "GET",
    )

    repo = emulator.registry.repositories[REPOSITORY]
    stored = repo.manifests[repo.tags["multi"].digest]
    assert stored.digest == index_digest
    assert stored.media_type == OCI_INDEX
    assert [(c.digest, c.architecture) for c in stored.children] == [
        (child["digest"], child["platform"]["architecture"]) for child in index["manifests"]
    ]
    assert all(child["digest"] in repo.manifests for child in index["manifests"])
    sig_digest = repo.tags["sig"].digest
    assert repo.referrers[index_digest] == {sig_digest}
    assert [d["digest"] for d in referrers.json()["manifests"]] == [sig_digest]
    assert referrers.headers["OCI-Filters-Applied"] == "artifactType"


def test_oras_s_own_token_flow_is_refused_the_push(
    emulator: Emulator, emulator_server: ServerInfo, tmp_path: Path, monkeypatch
):
    """With only Basic credentials, oras-py re-sends its pull-only token and ACR's 401 stands."""
    monkeypatch.chdir(tmp_path)
    Path("a.txt").write_text("payload")
    client = Registry(hostname=emulator_server.login_server, tls_verify=emulator_server.ca_file)
    client.auth.set_basic_auth(emulator_server.admin_username, emulator_server.admin_password)
    with pytest.raises(ValueError, match="UNAUTHORIZED"):
        client.push(target=f"{emulator_server.login_server}/{REPOSITORY}:v1", files=["a.txt"])
    uploads = "/v2/{name}/blobs/uploads/"
    # One token (for the HEAD's pull scope); the upload POST is refused twice with that token.
    assert emulator.counters.count(endpoint="/oauth2/token", status=200) == 1
    assert emulator.counters.count(endpoint=uploads, method="POST", status=401) == 2
    assert REPOSITORY not in emulator.registry.repositories

"""A minimal OCI pusher, as `docker push` talks to a registry: for the demo and the e2e tests.

Written from the OCI distribution spec (blob upload: POST then PUT with `?digest=`; manifest
PUT with its media type as Content-Type) and Docker's token flow (401 `Bearer` challenge, then
`GET realm?service=&scope=` with Basic credentials, then retry with the token). It shares no
code with `acr_core` on purpose: it plays the part of the user's CI pushing an image.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Generator
from dataclasses import dataclass

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class BasicTokenAuth(httpx.Auth):
    """Docker's registry token flow with a username and password (e.g. ACR's admin user)."""

    requires_response_body = True

    def __init__(self, username: str, password: str) -> None:
        self._basic = httpx.BasicAuth(username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer "):
            return
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        token_request = httpx.Request(
            "GET",
            params["realm"],
            params={"service": params.get("service", ""), "scope": params.get("scope", "")},
        )
        token_request = next(self._basic.auth_flow(token_request))
        token_response = yield token_request
        token_response.raise_for_status()
        body = token_response.json()
        token = body.get("access_token") or body.get("token")
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


@dataclass(frozen=True, slots=True)
class Pushed:
    digest: str
    size: int
    media_type: str


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def push_blob(client: httpx.AsyncClient, repository: str, data: bytes) -> Pushed:
    digest = digest_of(data)
    started = await client.post(f"/v2/{repository}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["location"]
    done = await client.put(
        location,
        params={"digest": digest},
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return Pushed(digest, len(data), "application/octet-stream")


async def push_manifest(
    client: httpx.AsyncClient, repository: str, reference: str, manifest: dict[str, object]
) -> Pushed:
    """PUT a manifest by tag, or by its own digest when `reference` is empty."""
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    media_type = str(manifest["mediaType"])
    digest = digest_of(raw)
    response = await client.put(
        f"/v2/{repository}/manifests/{reference or digest}",
        content=raw,
        headers={"Content-Type": media_type},
    )
    response.raise_for_status()
    return Pushed(digest, len(raw), media_type)


async def push_image(
    client: httpx.AsyncClient,
    repository: str,
    tag: str | None,
    *,
    label: str,
    architecture: str = "amd64",
    os: str = "linux",
) -> Pushed:
    """Push a small single-platform image whose content is unique to `label`."""
    config = json.dumps(
        {
            "architecture": architecture,
            "os": os,
            "config": {"Labels": {"demo": label}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    layer = f"layer of {repository} {label} {architecture}".encode()
    config_blob = await push_blob(client, repository, config)
    layer_blob = await push_blob(client, repository, layer)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_blob.digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_blob.digest, "size": len(layer)}],
    }
    return await push_manifest(client, repository, tag or "", manifest)


async def push_multi_arch(
    client: httpx.AsyncClient,
    repository: str,
    tag: str,
    *,
    label: str,
    platforms: tuple[str, ...] = ("amd64", "arm64"),
) -> tuple[Pushed, tuple[Pushed, ...]]:
    """Push one image per platform by digest, then an index over them by tag, as buildx does."""
    children = tuple(
        [
            await push_image(client, repository, None, label=label, architecture=arch)
            for arch in platforms
        ]
    )
    index: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": child.media_type,
                "digest": child.digest,
                "size": child.size,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for child, arch in zip(children, platforms, strict=True)
        ],
    }
    return await push_manifest(client, repository, tag, index), children


async def push_referrer(
    client: httpx.AsyncClient, repository: str, subject: Pushed, *, artifact_type: str, label: str
) -> Pushed:
    """Attach an artifact (a signature, an SBOM) to `subject` by digest, as cosign/notation do."""
    empty = b"{}"
    await push_blob(client, repository, empty)
    payload = f"{artifact_type} for {subject.digest} ({label})".encode()
    blob = await push_blob(client, repository, payload)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": digest_of(empty), "size": len(empty)},
        "layers": [{"mediaType": artifact_type, "digest": blob.digest, "size": len(payload)}],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
    }
    return await push_manifest(client, repository, "", manifest)

"""The OCI distribution API's blobs under /v2: reads, deletes, mounts and chunked uploads.

An upload into a repository with `writeEnabled=false` is refused with 405
`REGISTRY_DISALLOWED_OPERATION`, as a write-locked repository refuses every push
(docs/acr-facts.md section 3); a blob whose bytes do not hash to the digest given is refused
with `DIGEST_INVALID`.
"""

from __future__ import annotations

import uuid

from acr_emulator.access import Gate
from acr_emulator.auth import DELETE, PULL, PUSH, Scope
from acr_emulator.clock import Clock
from acr_emulator.content import check_name, sha256_digest
from acr_emulator.errors import RegistryError, blob_unknown, disallowed, invalid
from acr_emulator.http import Request, Response, Route, route
from acr_emulator.store import Registry

NAME = r"(?P<name>[^_].*?)"


def _scope(name: str, *actions: str) -> Scope:
    return Scope("repository", name, actions)


class BlobApi:
    """One method per blob and upload endpoint; the uploads in progress are its own state."""

    def __init__(self, registry: Registry, gate: Gate, clock: Clock | None = None) -> None:
        self._registry = registry
        self._gate = gate
        self._clock = clock  # reads see blobs reclaimed after a delete (acr_emulator.reclaim)
        # Upload id -> (repository, bytes so far).
        self._uploads: dict[str, tuple[str, bytearray]] = {}

    def routes(self) -> list[Route]:
        return [
            route(
                "/v2/{name}/blobs/uploads/",
                rf"/v2/{NAME}/blobs/uploads/?",
                {"POST": self.start_upload},
            ),
            route(
                "/v2/{name}/blobs/uploads/{uuid}",
                rf"/v2/{NAME}/blobs/uploads/(?P<upload>[^/]+)",
                {
                    "PATCH": self.patch_upload,
                    "PUT": self.put_upload,
                    "GET": self.get_upload,
                    "DELETE": self.cancel_upload,
                },
            ),
            route(
                "/v2/{name}/blobs/{digest}",
                rf"/v2/{NAME}/blobs/(?P<digest>sha256:[^/]+)",
                {"GET": self.get_blob, "DELETE": self.delete_blob},
            ),
        ]

    async def get_blob(self, req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        self._gate.authorize(req, _scope(name, PULL))
        data = self._registry.blob(name, digest, self._clock.now() if self._clock else None)
        if data is None:
            raise blob_unknown(digest)
        headers = [("docker-content-digest", digest), ("etag", f'"{digest}"')]
        return Response(200, data, headers, "application/octet-stream")

    async def delete_blob(self, req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        self._gate.authorize(req, _scope(name, DELETE))
        if not self._registry.delete_blob(name, digest):
            raise blob_unknown(digest)
        return Response.empty(202, [("docker-content-digest", digest)])

    async def start_upload(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, PULL, PUSH))
        check_name(name)
        self._check_writable(name)
        mount, source = req.arg("mount"), req.arg("from")
        if mount and source and self._registry.mount_blob(name, mount, source):
            return _blob_created(name, mount)
        digest = req.arg("digest")
        if digest:
            self._store_blob(name, digest, req.body)
            return _blob_created(name, digest)
        upload_id = str(uuid.uuid4())
        self._uploads[upload_id] = (name, bytearray())
        return _upload_progress(name, upload_id, 0)

    async def patch_upload(self, req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        self._gate.authorize(req, _scope(name, PULL, PUSH))
        data = self._upload(name, upload_id)
        content_range = req.headers.get("content-range")
        if content_range:
            start = content_range.split("-")[0].strip()
            if not start.isdigit() or int(start) != len(data):
                return Response.json(
                    invalid(
                        "BLOB_UPLOAD_INVALID", "Content-Range does not continue the upload"
                    ).body(),
                    416,
                    [("range", f"0-{max(len(data) - 1, 0)}")],
                )
        data.extend(req.body)
        return _upload_progress(name, upload_id, len(data))

    async def put_upload(self, req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        self._gate.authorize(req, _scope(name, PULL, PUSH))
        data = self._upload(name, upload_id)
        data.extend(req.body)
        digest = req.arg("digest")
        if not digest:
            raise invalid("DIGEST_INVALID", "the final PUT of an upload needs ?digest=")
        self._store_blob(name, digest, bytes(data))
        del self._uploads[upload_id]
        return _blob_created(name, digest)

    async def get_upload(self, req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        self._gate.authorize(req, _scope(name, PULL))
        data = self._upload(name, upload_id)
        response = _upload_progress(name, upload_id, len(data))
        response.status = 204
        return response

    async def cancel_upload(self, req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        self._gate.authorize(req, _scope(name, PULL, PUSH))
        self._upload(name, upload_id)
        del self._uploads[upload_id]
        return Response.empty(204)

    def _check_writable(self, name: str) -> None:
        repo = self._registry.repositories.get(name)
        if repo is not None and not repo.attributes.write_enabled:
            raise disallowed()

    def _upload(self, name: str, upload_id: str) -> bytearray:
        entry = self._uploads.get(upload_id)
        if entry is None or entry[0] != name:
            raise RegistryError(
                404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": upload_id}
            )
        return entry[1]

    def _store_blob(self, name: str, digest: str, data: bytes) -> None:
        actual = sha256_digest(data)
        if digest != actual:
            raise invalid(
                "DIGEST_INVALID",
                f"provided digest {digest} does not match the uploaded content ({actual})",
                {"digest": digest},
            )
        self._registry.put_blob(name, digest, data)


def _blob_created(name: str, digest: str) -> Response:
    return Response.empty(
        201, [("location", f"/v2/{name}/blobs/{digest}"), ("docker-content-digest", digest)]
    )


def _upload_progress(name: str, upload_id: str, size: int) -> Response:
    headers = [
        ("location", f"/v2/{name}/blobs/uploads/{upload_id}"),
        ("docker-upload-uuid", upload_id),
        ("range", f"0-{max(size - 1, 0)}"),
    ]
    return Response.empty(202, headers)

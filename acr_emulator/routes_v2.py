"""The OCI distribution API under /v2: manifests, tags, catalog, blobs, uploads, referrers.

ACR specifics (acr-facts.md sections 1.1, 1.8, 1.9): manifests are deleted only by digest
(405 `UNSUPPORTED` by tag); a locked repository, tag or manifest answers 405
`REGISTRY_DISALLOWED_OPERATION`; `readEnabled=false` refuses pulls the same way.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from acr_emulator.auth import DELETE, PULL, PUSH, Scope
from acr_emulator.content import (
    INDEX_TYPES,
    OCI_INDEX,
    check_name,
    check_tag,
    is_digest,
    parse_manifest,
    sha256_digest,
)
from acr_emulator.errors import (
    RegistryError,
    blob_unknown,
    disallowed,
    invalid,
    unsupported,
)
from acr_emulator.http import Request, Response, Route, route
from acr_emulator.listing import collect, link_header, page_size

if TYPE_CHECKING:
    from acr_emulator.emulator import Emulator

NAME = r"(?P<name>[^_].*?)"


def _scope(name: str, *actions: str) -> Scope:
    return Scope("repository", name, actions)


def _accepts(req: Request, media_type: str) -> bool:
    """Whether the request's Accept header takes `media_type`; no Accept header takes anything."""
    header = req.headers.get("accept", "").strip()
    if not header:
        return True
    accepted = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return bool(accepted & {"*/*", "application/*", media_type.lower()})


def build(emu: Emulator) -> list[Route]:
    registry = emu.registry

    async def base(req: Request) -> Response:
        emu.authorize(req, None)
        return Response.json({})

    async def catalog(req: Request) -> Response:
        emu.authorize(req, Scope("registry", "catalog", ("*",)))
        n, last = page_size(req), req.arg("last")
        with registry.lock:
            names = registry.catalog()

            def visible(key: tuple[Any, ...]) -> str | None:
                repo = registry.repositories.get(key[0])
                return key[0] if repo is not None and repo.attributes.list_enabled else None

            items, more = collect(names, (last,) if last else None, n, visible)
        headers = []
        if more is not None:
            headers.append(link_header("/v2/_catalog", [("last", more[0]), ("n", str(n))]))
        return Response.json({"repositories": items}, headers=headers)

    async def tags_list(req: Request) -> Response:
        name = req.params["name"]
        emu.authorize(req, _scope(name, PULL))
        n, last = page_size(req), req.arg("last")
        with registry.lock:
            repo = registry.repository(name)
            keys = repo.ordered("tags", "")

            def visible(key: tuple[Any, ...]) -> str | None:
                return key[0] if repo.tags[key[0]].attributes.list_enabled else None

            items, more = collect(keys, (last,) if last else None, n, visible)
        headers = []
        if more is not None:
            headers.append(link_header(f"/v2/{name}/tags/list", [("last", more[0]), ("n", str(n))]))
        return Response.json({"name": name, "tags": items}, headers=headers)

    async def get_manifest(req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        emu.authorize(req, _scope(name, PULL))
        repo = registry.repository(name)
        manifest, tag = registry.resolve(repo, reference)
        readable = repo.attributes.read_enabled and manifest.attributes.read_enabled
        if not readable or (tag is not None and not tag.attributes.read_enabled):
            raise disallowed()
        if manifest.media_type in INDEX_TYPES and not _accepts(req, manifest.media_type):
            # An index goes only to a client that says it takes one (acr-facts.md 1.8); ACR's
            # answer otherwise is UNCERTAIN, a 404 is the loudest choice (docs/emulator.md).
            raise RegistryError(
                404,
                "MANIFEST_UNKNOWN",
                f"{manifest.media_type} found, but the Accept header does not include it",
                {"Tag": reference} if tag is not None else {"Digest": reference},
            )
        headers = [("docker-content-digest", manifest.digest), ("etag", f'"{manifest.digest}"')]
        return Response(200, manifest.body, headers, manifest.media_type)

    async def put_manifest(req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        emu.authorize(req, _scope(name, PULL, PUSH))
        check_name(name)
        digest = sha256_digest(req.body)
        tag: str | None = None
        if reference.startswith("sha256:"):
            if reference != digest:
                raise invalid(
                    "DIGEST_INVALID",
                    f"the manifest's sha256 is {digest}, not {reference}",
                    {"digest": reference},
                )
        else:
            check_tag(reference)
            tag = reference
        parsed = parse_manifest(req.body, req.headers.get("content-type"))
        manifest = registry.put_manifest(
            name,
            req.body,
            digest,
            parsed,
            tag,
            emu.now(),
            require_references=emu.config.require_blobs,
        )
        emu.publish_push(req, name, manifest, tag)
        headers = [
            ("location", f"/v2/{name}/manifests/{digest}"),
            ("docker-content-digest", digest),
        ]
        if parsed.subject is not None:
            headers.append(("oci-subject", parsed.subject))
        return Response.empty(201, headers)

    async def delete_manifest(req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        emu.authorize(req, _scope(name, DELETE))
        if not reference.startswith("sha256:"):
            raise unsupported("A manifest can only be deleted by digest.")
        if not is_digest(reference):
            raise invalid("DIGEST_INVALID", f"invalid digest {reference!r}")
        deleted = registry.delete_manifest(name, reference, emu.now())
        emu.publish_deletes(req, deleted)
        return Response.empty(202)

    async def referrers(req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        emu.authorize(req, _scope(name, PULL))
        if not is_digest(digest):
            raise invalid("DIGEST_INVALID", f"invalid digest {digest!r}")
        artifact_type = req.arg("artifactType")
        with registry.lock:
            repo = registry.repository(name)
            descriptors = []
            for referrer in sorted(repo.referrers.get(digest, ())):
                manifest = repo.manifests.get(referrer)
                if manifest is None:
                    continue
                if artifact_type and manifest.artifact_type != artifact_type:
                    continue
                descriptor: dict[str, Any] = {
                    "mediaType": manifest.media_type,
                    "digest": manifest.digest,
                    "size": len(manifest.body),
                }
                if manifest.artifact_type:
                    descriptor["artifactType"] = manifest.artifact_type
                if manifest.annotations:
                    descriptor["annotations"] = manifest.annotations
                descriptors.append(descriptor)
        response = Response.json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        )
        response.content_type = OCI_INDEX
        if artifact_type:
            response.headers.append(("oci-filters-applied", "artifactType"))
        return response

    async def get_blob(req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        emu.authorize(req, _scope(name, PULL))
        data = registry.blob(name, digest)
        if data is None:
            raise blob_unknown(digest)
        headers = [("docker-content-digest", digest), ("etag", f'"{digest}"')]
        return Response(200, data, headers, "application/octet-stream")

    async def delete_blob(req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        emu.authorize(req, _scope(name, DELETE))
        if not registry.delete_blob(name, digest):
            raise blob_unknown(digest)
        return Response.empty(202, [("docker-content-digest", digest)])

    async def start_upload(req: Request) -> Response:
        name = req.params["name"]
        emu.authorize(req, _scope(name, PULL, PUSH))
        check_name(name)
        _check_writable(emu, name)
        mount, source = req.arg("mount"), req.arg("from")
        if mount and source and registry.mount_blob(name, mount, source):
            return _blob_created(name, mount)
        digest = req.arg("digest")
        if digest:
            _store_blob(emu, name, digest, req.body)
            return _blob_created(name, digest)
        upload_id = str(uuid.uuid4())
        emu.uploads[upload_id] = (name, bytearray())
        return _upload_progress(name, upload_id, 0)

    async def patch_upload(req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        emu.authorize(req, _scope(name, PULL, PUSH))
        data = _upload(emu, name, upload_id)
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

    async def put_upload(req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        emu.authorize(req, _scope(name, PULL, PUSH))
        data = _upload(emu, name, upload_id)
        data.extend(req.body)
        digest = req.arg("digest")
        if not digest:
            raise invalid("DIGEST_INVALID", "the final PUT of an upload needs ?digest=")
        _store_blob(emu, name, digest, bytes(data))
        del emu.uploads[upload_id]
        return _blob_created(name, digest)

    async def get_upload(req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        emu.authorize(req, _scope(name, PULL))
        data = _upload(emu, name, upload_id)
        response = _upload_progress(name, upload_id, len(data))
        response.status = 204
        return response

    async def cancel_upload(req: Request) -> Response:
        name, upload_id = req.params["name"], req.params["upload"]
        emu.authorize(req, _scope(name, PULL, PUSH))
        _upload(emu, name, upload_id)
        del emu.uploads[upload_id]
        return Response.empty(204)

    return [
        route("/v2/", r"/v2/?", {"GET": base}),
        route("/v2/_catalog", r"/v2/_catalog", {"GET": catalog}),
        route("/v2/{name}/tags/list", rf"/v2/{NAME}/tags/list", {"GET": tags_list}),
        route(
            "/v2/{name}/manifests/{reference}",
            rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)",
            {"GET": get_manifest, "PUT": put_manifest, "DELETE": delete_manifest},
        ),
        route(
            "/v2/{name}/referrers/{digest}",
            rf"/v2/{NAME}/referrers/(?P<digest>[^/]+)",
            {"GET": referrers},
        ),
        route(
            "/v2/{name}/blobs/uploads/",
            rf"/v2/{NAME}/blobs/uploads/?",
            {"POST": start_upload},
        ),
        route(
            "/v2/{name}/blobs/uploads/{uuid}",
            rf"/v2/{NAME}/blobs/uploads/(?P<upload>[^/]+)",
            {"PATCH": patch_upload, "PUT": put_upload, "GET": get_upload, "DELETE": cancel_upload},
        ),
        route(
            "/v2/{name}/blobs/{digest}",
            rf"/v2/{NAME}/blobs/(?P<digest>sha256:[^/]+)",
            {"GET": get_blob, "DELETE": delete_blob},
        ),
    ]


def _check_writable(emu: Emulator, name: str) -> None:
    repo = emu.registry.repositories.get(name)
    if repo is not None and not repo.attributes.write_enabled:
        raise disallowed()


def _upload(emu: Emulator, name: str, upload_id: str) -> bytearray:
    entry = emu.uploads.get(upload_id)
    if entry is None or entry[0] != name:
        raise RegistryError(
            404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", {"uuid": upload_id}
        )
    return entry[1]


def _store_blob(emu: Emulator, name: str, digest: str, data: bytes) -> None:
    actual = sha256_digest(data)
    if digest != actual:
        raise invalid(
            "DIGEST_INVALID",
            f"provided digest {digest} does not match the uploaded content ({actual})",
            {"digest": digest},
        )
    emu.registry.put_blob(name, digest, data)


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

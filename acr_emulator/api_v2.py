"""The OCI distribution API under /v2: catalog, tags, manifests, referrers (blobs: `api_blobs`).

ACR specifics (docs/acr-facts.md sections 1.1, 1.8, 1.9): manifests are deleted only by digest
(405 `UNSUPPORTED` by tag); a locked repository, tag or manifest answers 405
`REGISTRY_DISALLOWED_OPERATION`; `readEnabled=false` refuses pulls the same way.
"""

from __future__ import annotations

from typing import Any

from acr_emulator.access import Gate
from acr_emulator.auth import DELETE, PULL, PUSH, Scope
from acr_emulator.clock import Clock
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
    disallowed,
    invalid,
    unsupported,
)
from acr_emulator.http import Request, Response, Route, route
from acr_emulator.listing import collect, link_header, page_size
from acr_emulator.notify import Notifier
from acr_emulator.records import Manifest
from acr_emulator.store import Registry

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


class V2Api:
    """One method per /v2 endpoint for the catalog, tags, manifests and referrers."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        gate: Gate,
        notifier: Notifier,
        *,
        require_blobs: bool,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._gate = gate
        self._notifier = notifier
        self._require_blobs = require_blobs

    def routes(self) -> list[Route]:
        return [
            route("/v2/", r"/v2/?", {"GET": self.base}),
            route("/v2/_catalog", r"/v2/_catalog", {"GET": self.catalog}),
            route("/v2/{name}/tags/list", rf"/v2/{NAME}/tags/list", {"GET": self.tags_list}),
            route(
                "/v2/{name}/manifests/{reference}",
                rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)",
                {
                    "GET": self.get_manifest,
                    "PUT": self.put_manifest,
                    "DELETE": self.delete_manifest,
                },
            ),
            route(
                "/v2/{name}/referrers/{digest}",
                rf"/v2/{NAME}/referrers/(?P<digest>[^/]+)",
                {"GET": self.referrers},
            ),
        ]

    async def base(self, req: Request) -> Response:
        self._gate.authorize(req, None)
        return Response.json({})

    async def catalog(self, req: Request) -> Response:
        self._gate.authorize(req, Scope("registry", "catalog", ("*",)))
        registry = self._registry
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

    async def tags_list(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, PULL))
        n, last = page_size(req), req.arg("last")
        with self._registry.lock:
            repo = self._registry.repository(name)
            keys = repo.ordered("tags", "")

            def visible(key: tuple[Any, ...]) -> str | None:
                return key[0] if repo.tags[key[0]].attributes.list_enabled else None

            items, more = collect(keys, (last,) if last else None, n, visible)
        headers = []
        if more is not None:
            headers.append(link_header(f"/v2/{name}/tags/list", [("last", more[0]), ("n", str(n))]))
        return Response.json({"name": name, "tags": items}, headers=headers)

    async def get_manifest(self, req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        self._gate.authorize(req, _scope(name, PULL))
        repo = self._registry.repository(name)
        manifest, tag = self._registry.resolve(repo, reference)
        readable = repo.attributes.read_enabled and manifest.attributes.read_enabled
        if not readable or (tag is not None and not tag.attributes.read_enabled):
            raise disallowed()
        if manifest.media_type in INDEX_TYPES and not _accepts(req, manifest.media_type):
            # An index goes only to a client that says it takes one (docs/acr-facts.md 1.8); ACR's
            # answer otherwise is UNCERTAIN, a 404 is the loudest choice (docs/emulator.md).
            raise RegistryError(
                404,
                "MANIFEST_UNKNOWN",
                f"{manifest.media_type} found, but the Accept header does not include it",
                {"Tag": reference} if tag is not None else {"Digest": reference},
            )
        headers = [("docker-content-digest", manifest.digest), ("etag", f'"{manifest.digest}"')]
        return Response(200, manifest.body, headers, manifest.media_type)

    async def put_manifest(self, req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        self._gate.authorize(req, _scope(name, PULL, PUSH))
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
        manifest: Manifest = self._registry.put_manifest(
            name,
            req.body,
            digest,
            parsed,
            tag,
            self._clock.now(),
            require_references=self._require_blobs,
        )
        self._notifier.pushed(req, name, manifest, tag)
        headers = [
            ("location", f"/v2/{name}/manifests/{digest}"),
            ("docker-content-digest", digest),
        ]
        if parsed.subject is not None:
            headers.append(("oci-subject", parsed.subject))
        return Response.empty(201, headers)

    async def delete_manifest(self, req: Request) -> Response:
        name, reference = req.params["name"], req.params["reference"]
        self._gate.authorize(req, _scope(name, DELETE))
        if not reference.startswith("sha256:"):
            raise unsupported("A manifest can only be deleted by digest.")
        if not is_digest(reference):
            raise invalid("DIGEST_INVALID", f"invalid digest {reference!r}")
        deleted = self._registry.delete_manifest(name, reference, self._clock.now())
        self._notifier.deleted(req, deleted)
        return Response.empty(202)

    async def referrers(self, req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        self._gate.authorize(req, _scope(name, PULL))
        if not is_digest(digest):
            raise invalid("DIGEST_INVALID", f"invalid digest {digest!r}")
        artifact_type = req.arg("artifactType")
        with self._registry.lock:
            repo = self._registry.repository(name)
            descriptors = []
            for referrer in sorted(repo.referrers.get(digest, ())):
                manifest = repo.manifests.get(referrer)
                if manifest is None:
                    continue
                if artifact_type and manifest.artifact_type != artifact_type:
                    continue
                descriptors.append(_descriptor(manifest))
        response = Response.json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        )
        response.content_type = OCI_INDEX
        if artifact_type:
            response.headers.append(("oci-filters-applied", "artifactType"))
        return response


def _descriptor(manifest: Manifest) -> dict[str, Any]:
    """A referrer as the referrers index lists it (OCI distribution-spec, referrers API)."""
    descriptor: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.body),
    }
    if manifest.artifact_type:
        descriptor["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        descriptor["annotations"] = manifest.annotations
    return descriptor

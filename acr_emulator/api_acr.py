"""ACR's own API under /acr/v1: catalog, repository, tag and manifest attributes.

Shapes, statuses and scopes: docs/acr-facts.md sections 1.2-1.7 and 2.1. Items with
`listEnabled=false` are left out of listings (docs/emulator.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from acr_emulator.access import Gate
from acr_emulator.auth import DELETE, METADATA_READ, METADATA_WRITE, Scope
from acr_emulator.clock import Clock
from acr_emulator.content import is_digest
from acr_emulator.errors import manifest_unknown
from acr_emulator.http import Request, Response, Route, not_found, route
from acr_emulator.listing import (
    collect,
    continuation,
    encode_last,
    link_header,
    order_of,
    page_size,
)
from acr_emulator.notify import Notifier
from acr_emulator.records import Manifest, Repository, Tag, sort_key, ticks
from acr_emulator.store import Registry
from acr_emulator.wire import manifest_attributes, repository_attributes, tag_attributes

NAME = r"(?P<name>[^_].*?)"


def _scope(name: str, action: str) -> Scope:
    return Scope("repository", name, (action,))


class AcrApi:
    """One method per /acr/v1 endpoint over the store."""

    def __init__(self, registry: Registry, clock: Clock, gate: Gate, notifier: Notifier) -> None:
        self._registry = registry
        self._clock = clock
        self._gate = gate
        self._notifier = notifier

    def routes(self) -> list[Route]:
        return [
            route("/acr/v1/_catalog", r"/acr/v1/_catalog", {"GET": self.catalog}),
            route(
                "/acr/v1/{name}/_tags/{tag}",
                rf"/acr/v1/{NAME}/_tags/(?P<tag>[^/]+)",
                {"GET": self.get_tag, "PATCH": self.patch_tag, "DELETE": self.delete_tag},
            ),
            route("/acr/v1/{name}/_tags", rf"/acr/v1/{NAME}/_tags", {"GET": self.list_tags}),
            route(
                "/acr/v1/{name}/_manifests/{digest}",
                rf"/acr/v1/{NAME}/_manifests/(?P<digest>[^/]+)",
                {"GET": self.get_manifest, "PATCH": self.patch_manifest},
            ),
            route(
                "/acr/v1/{name}/_manifests",
                rf"/acr/v1/{NAME}/_manifests",
                {"GET": self.list_manifests},
            ),
            route(
                "/acr/v1/{name}",
                rf"/acr/v1/{NAME}",
                {
                    "GET": self.get_repository,
                    "PATCH": self.patch_repository,
                    "DELETE": self.delete_repository,
                },
            ),
        ]

    async def catalog(self, req: Request) -> Response:
        self._gate.authorize(req, Scope("registry", "catalog", ("*",)))
        registry = self._registry
        n = page_size(req)
        with registry.lock:
            names = registry.catalog()
            last = req.arg("last")

            def visible(key: tuple[Any, ...]) -> str | None:
                repo = registry.repositories.get(key[0])
                return key[0] if repo is not None and repo.attributes.list_enabled else None

            items, more = collect(names, (last,) if last else None, n, visible)
        headers = []
        if more is not None:
            headers.append(
                link_header(
                    "/acr/v1/_catalog",
                    [("last", more[0]), ("n", str(n)), ("orderby", req.arg("orderby") or "")],
                )
            )
        return Response.json({"repositories": items}, headers=headers)

    async def get_repository(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, METADATA_READ))
        repo = self._registry.repository(name)
        return Response.json(repository_attributes(self._gate.service(req), repo))

    async def patch_repository(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, METADATA_WRITE))
        patch = req.json()
        with self._registry.lock:
            repo = self._registry.repository(name)
            repo.attributes.update(patch)
        return Response.json(repository_attributes(self._gate.service(req), repo))

    async def delete_repository(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, DELETE))
        deleted = self._registry.delete_repository(name)
        self._notifier.deleted(req, deleted)
        return Response.json(
            {
                "manifestsDeleted": [d.digest for d in deleted],
                "tagsDeleted": sorted(t for d in deleted for t in d.tags),
            },
            202,
        )

    async def list_tags(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, METADATA_READ))
        n, order, digest = page_size(req), order_of(req), req.arg("digest")
        with self._registry.lock:
            repo = self._registry.repository(name)
            if digest:
                # The manifest's own tag set: a filtered page never scans the repository.
                target = repo.manifests.get(digest)
                named = [repo.tags[t] for t in target.tags] if target is not None else []
                keys = sorted(sort_key(tag, order) for tag in named)
            else:
                keys = repo.ordered("tags", order)

            def lookup(last: str) -> tuple[Any, ...] | None:
                tag = repo.tags.get(last)
                return None if tag is None else _time_key(order, tag.updated, last)

            def visible(key: tuple[Any, ...]) -> dict[str, Any] | None:
                tag = repo.tags[key[-1]]
                if not tag.attributes.list_enabled or (digest and tag.digest != digest):
                    return None
                return tag_attributes(tag)

            after = continuation(order, req.arg("last"), lookup)
            items, more = collect(keys, after, n, visible)
        return self._listing(req, repo, "_tags", "tags", items, more, n, order)

    async def get_tag(self, req: Request) -> Response:
        name, tag_name = req.params["name"], req.params["tag"]
        self._gate.authorize(req, _scope(name, METADATA_READ))
        repo = self._registry.repository(name)
        tag = self._registry.tag(repo, tag_name)
        return self._tag_response(req, repo, tag)

    async def patch_tag(self, req: Request) -> Response:
        name, tag_name = req.params["name"], req.params["tag"]
        self._gate.authorize(req, _scope(name, METADATA_WRITE))
        patch = req.json()
        with self._registry.lock:
            repo = self._registry.repository(name)
            tag = self._registry.tag(repo, tag_name)
            tag.attributes.update(patch)
        return self._tag_response(req, repo, tag)

    async def delete_tag(self, req: Request) -> Response:
        name, tag_name = req.params["name"], req.params["tag"]
        self._gate.authorize(req, _scope(name, DELETE))
        tag = self._registry.delete_tag(name, tag_name, self._clock.now())
        # No event: ACR fires none for untagging (container-registry-webhook-reference.md).
        return Response.empty(202, [("x-ms-int-docker-content-digest", tag.digest)])

    async def list_manifests(self, req: Request) -> Response:
        name = req.params["name"]
        self._gate.authorize(req, _scope(name, METADATA_READ))
        n, order = page_size(req), order_of(req)
        with self._registry.lock:
            repo = self._registry.repository(name)
            keys = repo.ordered("manifests", order)

            def lookup(last: str) -> tuple[Any, ...] | None:
                manifest = repo.manifests.get(last)
                return None if manifest is None else _time_key(order, manifest.updated, last)

            def visible(key: tuple[Any, ...]) -> dict[str, Any] | None:
                manifest = repo.manifests[key[-1]]
                if not manifest.attributes.list_enabled:
                    return None
                return manifest_attributes(manifest)

            after = continuation(order, req.arg("last"), lookup)
            items, more = collect(keys, after, n, visible)
        return self._listing(req, repo, "_manifests", "manifests", items, more, n, order)

    async def get_manifest(self, req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        if not is_digest(digest):
            return not_found()
        self._gate.authorize(req, _scope(name, METADATA_READ))
        repo = self._registry.repository(name)
        manifest = repo.manifests.get(digest)
        if manifest is None:
            raise manifest_unknown(digest)
        return self._manifest_response(req, repo, manifest)

    async def patch_manifest(self, req: Request) -> Response:
        name, digest = req.params["name"], req.params["digest"]
        if not is_digest(digest):
            return not_found()
        self._gate.authorize(req, _scope(name, METADATA_WRITE))
        patch = req.json()
        with self._registry.lock:
            repo = self._registry.repository(name)
            manifest = repo.manifests.get(digest)
            if manifest is None:
                raise manifest_unknown(digest)
            # PATCH does not move lastUpdateTime (docs/acr-facts.md section 1.7).
            manifest.attributes.update(patch)
        return self._manifest_response(req, repo, manifest)

    def _listing(
        self,
        req: Request,
        repo: Repository,
        suffix: str,
        field: str,
        items: list[dict[str, Any]],
        more: tuple[Any, ...] | None,
        n: int,
        order: str,
    ) -> Response:
        headers = []
        if more is not None:
            path = f"/acr/v1/{quote(repo.name, safe='')}/{suffix}"
            params = [("last", encode_last(order, more)), ("n", str(n)), ("orderby", order)]
            if req.arg("digest"):
                params.append(("digest", req.arg("digest") or ""))
            headers.append(link_header(path, params))
        body = {"registry": self._gate.service(req), "imageName": repo.name, field: items}
        return Response.json(body, headers=headers)

    def _tag_response(self, req: Request, repo: Repository, tag: Tag) -> Response:
        body = {
            "registry": self._gate.service(req),
            "imageName": repo.name,
            "tag": tag_attributes(tag),
        }
        return Response.json(body)

    def _manifest_response(self, req: Request, repo: Repository, manifest: Manifest) -> Response:
        body = {
            "registry": self._gate.service(req),
            "imageName": repo.name,
            "manifest": manifest_attributes(manifest),
        }
        return Response.json(body)


def _time_key(order: str, when: Any, name: str) -> tuple[Any, ...]:
    if order == "timeasc":
        return (ticks(when), name)
    return (-ticks(when), name)

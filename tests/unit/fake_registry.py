"""A small in-memory registry with the client's method shapes, for executor and report tests.

It keeps ACR's delete semantics that matter to the executor (acr-facts.md section 3): delete is
by digest and removes the manifest's tags and its referrers; a manifest is locked when the
manifest, any of its tags or the repository has `deleteEnabled` or `writeEnabled` off; a second
delete answers "already gone". It raises no 429s: throttling is the real client's transport's
job, tested on the real client (tests/client/test_one_owner_for_429.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from acr_core.models import (
    OCI_INDEX,
    OCI_MANIFEST,
    ChangeableAttributes,
    Descriptor,
    ManifestContent,
    ManifestProperties,
    RepositoryProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.registry.errors import (
    AcrResponseError,
    DisallowedOperationError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
)
from acr_core.registry.transport import ClientStats, ThrottleListener

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOCKED = ChangeableAttributes(delete_enabled=False, write_enabled=False)


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _error(
    cls: type[AcrResponseError], status: int, code: str, method: str, path: str
) -> AcrResponseError:
    return cls(status=status, code=code, message=code.lower(), method=method, url=path)


def _denied(method: str, path: str, scope: str) -> PermissionDeniedError:
    error = PermissionDeniedError(
        status=401,
        code="UNAUTHORIZED",
        message="authentication required",
        method=method,
        url=path,
        hint=f"The identity is not allowed: {scope}",
    )
    error.scope = scope
    return error


class FakeRegistry:
    def __init__(self, login_server: str = "fake.test") -> None:
        self.login_server = login_server
        self.stats = ClientStats()
        self.repositories: dict[str, ChangeableAttributes] = {}
        self.manifests: dict[tuple[str, str], ManifestProperties] = {}
        self.tags: dict[tuple[str, str], TagProperties] = {}
        self.contents: dict[tuple[str, str], ManifestContent] = {}
        self.deleted: list[str] = []  # digests in the order the registry deleted them
        self.latency = 0.0
        self.in_flight = 0
        self.peak = 0
        self.forbidden: set[str] = set()  # repositories this identity may not read
        self.undeletable: set[str] = set()  # repositories this identity may not delete in
        self.unavailable_deletes = False  # every delete answers 503 (after the client's retries)
        self.delete_attempts = 0

    # --- building state ---------------------------------------------------------------------

    def push(
        self,
        repository: str,
        name: str,
        *,
        tags: tuple[str, ...] = (),
        updated: datetime = T0,
        children: tuple[str, ...] = (),
        subject: str | None = None,
        attributes: ChangeableAttributes | None = None,
        size: int = 1000,
    ) -> str:
        """Store a manifest named `name` (its digest is derived from it) and point `tags` at it."""
        self.repositories.setdefault(repository, ChangeableAttributes())
        digest = digest_of(name)
        media_type = OCI_INDEX if children else OCI_MANIFEST
        self.manifests[(repository, digest)] = ManifestProperties(
            registry=self.login_server,
            repository=repository,
            digest=digest,
            created_on=updated,
            last_updated_on=updated,
            size_in_bytes=size,
            media_type=media_type,
            attributes=attributes or ChangeableAttributes(),
        )
        self.contents[(repository, digest)] = ManifestContent(
            digest=digest,
            media_type=media_type,
            raw=b"{}",
            subject=subject,
            children=tuple(Descriptor(OCI_MANIFEST, c, 1) for c in children),
        )
        for tag in tags:
            self.tag(repository, tag, digest, updated=updated)
        return digest

    def tag(
        self,
        repository: str,
        tag: str,
        digest: str,
        *,
        updated: datetime = T0,
        attributes: ChangeableAttributes | None = None,
    ) -> None:
        self.tags[(repository, tag)] = TagProperties(
            registry=self.login_server,
            repository=repository,
            name=tag,
            digest=digest,
            created_on=updated,
            last_updated_on=updated,
            attributes=attributes or ChangeableAttributes(),
        )
        key = (repository, digest)
        self.manifests[key] = replace(self.manifests[key], last_updated_on=updated)

    def snapshot(self, repository: str) -> RepositorySnapshot:
        manifests = tuple(
            self._manifest(repository, d) for (r, d) in self.manifests if r == repository
        )
        return RepositorySnapshot(
            name=repository,
            attributes=self.repositories[repository],
            manifests=manifests,
            tags=tuple(t for (r, _), t in self.tags.items() if r == repository),
            contents={d: c for (r, d), c in self.contents.items() if r == repository},
        )

    def digests(self, repository: str) -> set[str]:
        return {d for (r, d) in self.manifests if r == repository}

    # --- the client's shape -----------------------------------------------------------------

    def add_throttle_listener(self, listener: ThrottleListener) -> None:
        """Nothing here answers 429, so no listener is ever called."""

    async def _request(self, method: str, path: str) -> None:
        self.stats.requests += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1

    def _manifest(self, repository: str, digest: str) -> ManifestProperties:
        tags = sorted(
            t for (r, t), p in self.tags.items() if r == repository and p.digest == digest
        )
        return replace(self.manifests[(repository, digest)], tags=tuple(tags))

    async def get_repository_properties(self, repository: str) -> RepositoryProperties:
        await self._request("GET", f"/acr/v1/{repository}")
        if repository in self.forbidden:
            raise _denied("GET", f"/acr/v1/{repository}", f"repository:{repository}:metadata_read")
        if repository not in self.repositories:
            raise _error(NotFoundError, 404, "NAME_UNKNOWN", "GET", f"/acr/v1/{repository}")
        return RepositoryProperties(
            registry=self.login_server,
            name=repository,
            created_on=T0,
            last_updated_on=T0,
            manifest_count=len(self.digests(repository)),
            tag_count=sum(1 for (r, _) in self.tags if r == repository),
            attributes=self.repositories[repository],
        )

    async def get_manifest_properties(
        self, repository: str, tag_or_digest: str
    ) -> ManifestProperties:
        path = f"/acr/v1/{repository}/_manifests/{tag_or_digest}"
        await self._request("GET", path)
        if (repository, tag_or_digest) not in self.manifests:
            raise _error(NotFoundError, 404, "MANIFEST_UNKNOWN", "GET", path)
        return self._manifest(repository, tag_or_digest)

    async def get_tag_properties(self, repository: str, tag: str) -> TagProperties:
        path = f"/acr/v1/{repository}/_tags/{tag}"
        await self._request("GET", path)
        if (repository, tag) not in self.tags:
            raise _error(NotFoundError, 404, "TAG_UNKNOWN", "GET", path)
        return self.tags[(repository, tag)]

    async def update_tag_properties(
        self,
        repository: str,
        tag: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
    ) -> TagProperties:
        path = f"/acr/v1/{repository}/_tags/{tag}"
        await self._request("PATCH", path)
        if (repository, tag) not in self.tags:
            raise _error(NotFoundError, 404, "TAG_UNKNOWN", "PATCH", path)
        old = self.tags[(repository, tag)]
        attributes = old.attributes
        if can_delete is not None:
            attributes = replace(attributes, delete_enabled=can_delete)
        if can_write is not None:
            attributes = replace(attributes, write_enabled=can_write)
        self.tags[(repository, tag)] = replace(old, attributes=attributes)
        return self.tags[(repository, tag)]

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        path = f"/v2/{repository}/manifests/{digest}"
        await self._request("DELETE", path)
        self.delete_attempts += 1
        if repository in self.undeletable:
            raise _denied("DELETE", path, f"repository:{repository}:delete")
        if self.unavailable_deletes:
            raise _error(ServerError, 503, "SERVICE_UNAVAILABLE", "DELETE", path)
        if (repository, digest) not in self.manifests:
            return False
        manifest = self._manifest(repository, digest)
        locked = not manifest.attributes.deletable or not self.repositories[repository].deletable
        locked |= any(not self.tags[(repository, t)].attributes.deletable for t in manifest.tags)
        if locked:
            raise _error(
                DisallowedOperationError, 405, "REGISTRY_DISALLOWED_OPERATION", "DELETE", path
            )
        self._remove(repository, digest)
        return True

    def _remove(self, repository: str, digest: str) -> None:
        del self.manifests[(repository, digest)]
        self.contents.pop((repository, digest), None)
        self.deleted.append(digest)
        for key in [k for k, t in self.tags.items() if k[0] == repository and t.digest == digest]:
            del self.tags[key]
        # ACR removes referrers together with their subject (acr-facts.md section 3).
        for (r, d), content in list(self.contents.items()):
            if r == repository and content.subject == digest and (r, d) in self.manifests:
                self._remove(r, d)

    async def list_repository_names(self, *, results_per_page: int = 1000) -> AsyncIterator[str]:
        await self._request("GET", "/acr/v1/_catalog")
        for name in sorted(self.repositories):
            yield name

    async def list_manifest_properties(
        self, repository: str, *, results_per_page: int = 1000
    ) -> AsyncIterator[ManifestProperties]:
        await self._request("GET", f"/acr/v1/{repository}/_manifests")
        for r, d in list(self.manifests):
            if r == repository:
                yield self._manifest(r, d)

    async def list_tag_properties(
        self, repository: str, *, results_per_page: int = 1000
    ) -> AsyncIterator[TagProperties]:
        await self._request("GET", f"/acr/v1/{repository}/_tags")
        for (r, _), tag in list(self.tags.items()):
            if r == repository:
                yield tag

    async def get_manifest(self, repository: str, tag_or_digest: str) -> ManifestContent:
        path = f"/v2/{repository}/manifests/{tag_or_digest}"
        await self._request("GET", path)
        if (repository, tag_or_digest) not in self.contents:
            raise _error(NotFoundError, 404, "MANIFEST_UNKNOWN", "GET", path)
        return self.contents[(repository, tag_or_digest)]


def later(days: int) -> datetime:
    return T0 + timedelta(days=days)

"""The registry's state and the rules ACR applies when it changes.

Repositories hold manifests (content-addressed, real sha256 of the stored bytes) and tags;
locks (`changeableAttributes`) live at all three levels. Every rule here is an ACR behaviour
from docs/acr-facts.md section 3; where that file says UNCERTAIN the choice is the one safest for a
cleaner, listed in docs/emulator.md. Listing orders are sorted once per repository and then
kept in step with every push, re-tag and delete by bisection, so a page costs a bisect and a
delete costs a bisect, never a re-sort of the repository.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from acr_emulator.content import ParsedManifest, parse_manifest, platform_of_config
from acr_emulator.errors import (
    RegistryError,
    disallowed,
    invalid,
    manifest_unknown,
    name_unknown,
    tag_unknown,
)
from acr_emulator.reclaim import Reclamation
from acr_emulator.records import (
    Attributes,
    Deleted,
    Manifest,
    Repository,
    Tag,
    sort_key,
    ticks,
)


class Registry:
    """All repositories and blobs; every mutation holds one lock."""

    def __init__(
        self,
        *,
        retag_moves_manifest_time: bool = True,
        reclaim_blobs_after: timedelta | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.retag_moves_manifest_time = retag_moves_manifest_time
        self.reclamation = Reclamation(reclaim_blobs_after)
        self.repositories: dict[str, Repository] = {}
        self.blobs: dict[str, bytes] = {}
        self.repo_blobs: dict[str, set[str]] = {}
        self._catalog_version = 0
        self._catalog_cache: tuple[int, list[tuple[str]]] = (-1, [])

    # ---- lookups -------------------------------------------------------------------------

    def repository(self, name: str) -> Repository:
        repo = self.repositories.get(name)
        if repo is None:
            raise name_unknown(name)
        return repo

    def catalog(self) -> list[tuple[str]]:
        """Repository names in lexical order, as sort keys (1-tuples) for paging."""
        version, names = self._catalog_cache
        if version != self._catalog_version:
            names = [(name,) for name in sorted(self.repositories)]
            self._catalog_cache = (self._catalog_version, names)
        return names

    def resolve(self, repo: Repository, reference: str) -> tuple[Manifest, Tag | None]:
        """The manifest a tag or digest names (MANIFEST_UNKNOWN when there is none)."""
        if reference.startswith("sha256:"):
            manifest = repo.manifests.get(reference)
            if manifest is None:
                raise manifest_unknown(reference)
            return manifest, None
        tag = repo.tags.get(reference)
        if tag is None:
            raise manifest_unknown(reference)
        return repo.manifests[tag.digest], tag

    def tag(self, repo: Repository, name: str) -> Tag:
        tag = repo.tags.get(name)
        if tag is None:
            raise tag_unknown(name)
        return tag

    # ---- writes --------------------------------------------------------------------------

    def put_manifest(
        self,
        name: str,
        body: bytes,
        digest: str,
        parsed: ParsedManifest,
        tag: str | None,
        now: datetime,
        *,
        require_references: bool = True,
    ) -> Manifest:
        """Store a pushed manifest, optionally tagging it; ACR's push rules apply."""
        with self.lock:
            self.reclaim(now)
            repo = self.repositories.get(name)
            if repo is not None:
                if not repo.attributes.write_enabled:
                    raise disallowed()
                existing_tag = repo.tags.get(tag) if tag else None
                if existing_tag is not None and not existing_tag.attributes.write_enabled:
                    raise disallowed()
            # A manifest the repository already holds had its references checked (or was
            # seeded, whose layers are only described): re-tagging it needs no blobs.
            if require_references and (repo is None or digest not in repo.manifests):
                self._check_references(name, repo, parsed)
            if repo is None:
                repo = Repository(name, now)
                self.repositories[name] = repo
                self._catalog_version += 1
            manifest = repo.manifests.get(digest)
            if manifest is None:
                manifest = self._new_manifest(digest, body, parsed, now)
                repo.manifests[digest] = manifest
                repo.remember(manifest)
                if manifest.subject is not None:
                    repo.referrers.setdefault(manifest.subject, set()).add(digest)
            if tag is not None:
                self._point_tag(repo, tag, manifest, now)
            repo.touch(now)
            return manifest

    def _check_references(self, name: str, repo: Repository | None, parsed: ParsedManifest) -> None:
        linked = self.repo_blobs.get(name, set())
        for blob in parsed.blob_digests:
            if blob not in linked:
                raise invalid(
                    "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {blob}", {"digest": blob}
                )
        for child in parsed.children:
            if repo is None or child.digest not in repo.manifests:
                raise invalid(
                    "MANIFEST_BLOB_UNKNOWN",
                    f"manifest unknown to registry: {child.digest}",
                    {"digest": child.digest},
                )

    def _new_manifest(
        self, digest: str, body: bytes, parsed: ParsedManifest, now: datetime
    ) -> Manifest:
        architecture = os_name = None
        if parsed.config_digest is not None and parsed.config_digest in self.blobs:
            architecture, os_name = platform_of_config(self.blobs[parsed.config_digest])
        return Manifest(
            digest=digest,
            body=body,
            media_type=parsed.media_type,
            created=now,
            updated=now,
            config_media_type=parsed.config_media_type,
            architecture=architecture,
            os=os_name,
            image_size=parsed.blobs_size if not parsed.children else len(body),
            children=parsed.children,
            subject=parsed.subject,
            artifact_type=parsed.artifact_type,
            annotations=parsed.annotations or None,
        )

    def _point_tag(self, repo: Repository, name: str, manifest: Manifest, now: datetime) -> None:
        # Moving a tag keeps its createdTime and moves its lastUpdateTime (docs/acr-facts.md 1.4);
        # the manifest it now names counts as updated unless configured otherwise (UNCERTAIN).
        tag = repo.tags.get(name)
        if tag is None:
            tag = repo.tags[name] = Tag(name, manifest.digest, now, now)
        else:
            repo.forget(tag)
            if tag.digest != manifest.digest:
                old = repo.manifests.get(tag.digest)
                if old is not None:
                    old.tags.discard(name)
                tag.digest = manifest.digest
            tag.updated = now
        repo.remember(tag)
        manifest.tags.add(name)
        if self.retag_moves_manifest_time and now > manifest.updated:
            repo.forget(manifest)
            manifest.updated = now
            repo.remember(manifest)

    def add_manifest(self, name: str, manifest: Manifest, now: datetime) -> Repository:
        """Bulk seeding: insert a ready-made manifest without push checks."""
        repo = self.repositories.get(name)
        if repo is None:
            repo = Repository(name, now)
            self.repositories[name] = repo
            self._catalog_version += 1
        repo.manifests[manifest.digest] = manifest
        repo.invalidate()
        if manifest.subject is not None:
            repo.referrers.setdefault(manifest.subject, set()).add(manifest.digest)
        repo.created = min(repo.created, manifest.created)
        repo.touch(manifest.updated)
        return repo

    def add_tag(self, repo: Repository, tag: Tag) -> None:
        """Bulk seeding: point a tag without push checks."""
        old = repo.tags.get(tag.name)
        if old is not None and old.digest in repo.manifests:
            repo.manifests[old.digest].tags.discard(tag.name)
        repo.tags[tag.name] = tag
        repo.invalidate()
        repo.manifests[tag.digest].tags.add(tag.name)
        repo.touch(tag.updated)

    # ---- deletes -------------------------------------------------------------------------

    def delete_tag(self, name: str, tag_name: str, now: datetime) -> Tag:
        """Untag: the manifest stays (docs/acr-facts.md section 3)."""
        with self.lock:
            repo = self.repository(name)
            tag = self.tag(repo, tag_name)
            if not repo.attributes.write_enabled or not tag.attributes.deletable:
                raise disallowed()
            repo.forget(tag)
            del repo.tags[tag_name]
            manifest = repo.manifests.get(tag.digest)
            if manifest is not None:
                manifest.tags.discard(tag_name)
            repo.touch(now)
            return tag

    def delete_manifest(self, name: str, digest: str, now: datetime) -> list[Deleted]:
        """Delete by digest: its tags and referrers go with it; an index's children stay."""
        with self.lock:
            repo = self.repository(name)
            manifest = repo.manifests.get(digest)
            if manifest is None:
                raise manifest_unknown(digest)
            doomed = list(self._with_referrers(repo, manifest))
            if not repo.attributes.write_enabled or not all(
                self._manifest_deletable(repo, m) for m in doomed
            ):
                raise disallowed()
            deleted = [self._remove_manifest(repo, m) for m in doomed]
            released = (
                b for m in doomed for b in parse_manifest(m.body, m.media_type).blob_digests
            )
            self.reclamation.released(name, released, now)
            repo.touch(now)
            self._drop_if_empty(repo)
            return deleted

    def delete_repository(self, name: str) -> list[Deleted]:
        with self.lock:
            repo = self.repository(name)
            if not repo.attributes.deletable or not all(
                self._manifest_deletable(repo, m) for m in repo.manifests.values()
            ):
                raise disallowed()
            deleted = [
                Deleted(name, m.digest, m.media_type, tuple(sorted(m.tags)))
                for m in repo.manifests.values()
            ]
            del self.repositories[name]
            self._catalog_version += 1
            return deleted

    def _manifest_deletable(self, repo: Repository, manifest: Manifest) -> bool:
        # UNCERTAIN in ACR whether a locked tag blocks deleting its manifest; we say it does,
        # the safe choice for a cleaner (docs/emulator.md).
        return manifest.attributes.deletable and all(
            repo.tags[t].attributes.deletable for t in manifest.tags
        )

    def _with_referrers(self, repo: Repository, manifest: Manifest) -> Iterator[Manifest]:
        seen: set[str] = set()
        stack = [manifest]
        while stack:
            current = stack.pop()
            if current.digest in seen:
                continue
            seen.add(current.digest)
            yield current
            for referrer in sorted(repo.referrers.get(current.digest, ())):
                if referrer in repo.manifests:
                    stack.append(repo.manifests[referrer])

    def _remove_manifest(self, repo: Repository, manifest: Manifest) -> Deleted:
        repo.forget(manifest)
        del repo.manifests[manifest.digest]
        for name in manifest.tags:
            tag = repo.tags.pop(name, None)
            if tag is not None:
                repo.forget(tag)
        if manifest.subject is not None:
            siblings = repo.referrers.get(manifest.subject)
            if siblings is not None:
                siblings.discard(manifest.digest)
                if not siblings:
                    del repo.referrers[manifest.subject]
        return Deleted(
            repo.name, manifest.digest, manifest.media_type, tuple(sorted(manifest.tags))
        )

    def _drop_if_empty(self, repo: Repository) -> None:
        # A repository disappears with its last manifest (docs/acr-facts.md section 1.3).
        if not repo.manifests:
            del self.repositories[repo.name]
            self._catalog_version += 1

    # ---- blobs ---------------------------------------------------------------------------

    def put_blob(self, name: str, digest: str, data: bytes) -> None:
        with self.lock:
            self.blobs[digest] = data
            self.repo_blobs.setdefault(name, set()).add(digest)
            self.reclamation.uploaded(name, digest)

    def reclaim(self, now: datetime) -> None:
        """Unlink the blobs whose reclamation delay has passed and that no manifest of their
        repository references any more (a manifest pushed again in time keeps them)."""
        with self.lock:
            due = self.reclamation.due(now)
            referenced: dict[str, set[str]] = {}
            for name, blob in due:
                if name not in referenced:
                    repo = self.repositories.get(name)
                    manifests = repo.manifests.values() if repo is not None else ()
                    referenced[name] = {
                        b
                        for m in manifests
                        for b in parse_manifest(m.body, m.media_type).blob_digests
                    }
                if blob not in referenced[name]:
                    self.repo_blobs.get(name, set()).discard(blob)

    def blob(self, name: str, digest: str, now: datetime | None = None) -> bytes | None:
        if now is not None:
            self.reclaim(now)
        if digest not in self.repo_blobs.get(name, ()):
            return None
        return self.blobs.get(digest)

    def mount_blob(self, name: str, digest: str, source: str) -> bool:
        with self.lock:
            if digest not in self.repo_blobs.get(source, ()) or digest not in self.blobs:
                return False
            self.repo_blobs.setdefault(name, set()).add(digest)
            return True

    def delete_blob(self, name: str, digest: str) -> bool:
        with self.lock:
            linked = self.repo_blobs.get(name)
            if linked is None or digest not in linked:
                return False
            linked.discard(digest)
            return True


__all__ = [
    "Attributes",
    "Deleted",
    "Manifest",
    "Registry",
    "RegistryError",
    "Repository",
    "Tag",
    "sort_key",
    "ticks",
]

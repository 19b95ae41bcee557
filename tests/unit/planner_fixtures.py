"""Builders for planner inputs, and a pure model of what applying a plan does to a registry.

`RepoBuilder` writes snapshots the way the gatherer would read them: tag properties for every
tag, the parsed content of every inspected manifest. `apply_to_snapshot` models ACR's delete
semantics (docs/acr-facts.md section 3): a deleted manifest takes its tags and, transitively, its
referrers with it; an index's children stay; a lock sets both switches off on the tag.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from acr_core.models import (
    OCI_INDEX,
    OCI_MANIFEST,
    ChangeableAttributes,
    Descriptor,
    ManifestContent,
    ManifestProperties,
    ManifestReference,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning.plan import Plan

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
LOCKED = ChangeableAttributes(delete_enabled=False, write_enabled=False)


def digest_of(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class RepoBuilder:
    """Adds manifests to one repository by short keys; `digest(key)` gives the digest back."""

    def __init__(self, name: str = "app", attributes: ChangeableAttributes | None = None) -> None:
        self.name = name
        self.attributes = attributes or ChangeableAttributes()
        self.manifests: list[ManifestProperties] = []
        self.tags: list[TagProperties] = []
        self.contents: dict[str, ManifestContent] = {}
        self.keys: dict[str, str] = {}  # digest -> key, for readable assertions

    def digest(self, key: str) -> str:
        return digest_of(f"{self.name}/{key}")

    def _add(
        self,
        key: str,
        tags: tuple[str, ...],
        *,
        age: timedelta | None,
        created_age: timedelta | None,
        media_type: str | None,
        config: str | None,
        locked: bool,
        locked_tags: tuple[str, ...],
        inspected: bool,
        subject: str | None = None,
        children: tuple[str, ...] = (),
        references: bool = False,
        artifact_type: str | None = None,
    ) -> str:
        digest = self.digest(key)
        self.keys[digest] = key
        updated = None if age is None else NOW - age
        created = updated if created_age is None else NOW - created_age
        child_digests = tuple(self.digest(c) for c in children)
        self.manifests.append(
            ManifestProperties(
                registry="example.azurecr.io",
                repository=self.name,
                digest=digest,
                created_on=created,
                last_updated_on=updated,
                size_in_bytes=1000,
                media_type=media_type,
                config_media_type=config,
                tags=tags,
                attributes=LOCKED if locked else ChangeableAttributes(),
            )
        )
        if references:
            self.manifests[-1] = replace(
                self.manifests[-1], references=tuple(ManifestReference(c) for c in child_digests)
            )
        for tag in tags:
            self.tags.append(
                TagProperties(
                    registry="example.azurecr.io",
                    repository=self.name,
                    name=tag,
                    digest=digest,
                    created_on=created,
                    last_updated_on=updated,
                    attributes=LOCKED if tag in locked_tags else ChangeableAttributes(),
                )
            )
        if inspected:
            self.contents[digest] = ManifestContent(
                digest=digest,
                media_type=media_type or OCI_MANIFEST,
                raw=b"{}",
                subject=subject,
                artifact_type=artifact_type,
                children=tuple(Descriptor(OCI_MANIFEST, c, 100) for c in child_digests),
            )
        return digest

    def image(
        self,
        key: str,
        *tags: str,
        age: timedelta | None = timedelta(days=30),
        created_age: timedelta | None = None,
        locked: bool = False,
        locked_tags: tuple[str, ...] = (),
        inspected: bool = True,
        media_type: str | None = OCI_MANIFEST,
    ) -> str:
        return self._add(
            key,
            tags,
            age=age,
            created_age=created_age,
            media_type=media_type,
            config=IMAGE_CONFIG,
            locked=locked,
            locked_tags=locked_tags,
            inspected=inspected,
        )

    def index(
        self,
        key: str,
        children: tuple[str, ...],
        *tags: str,
        age: timedelta = timedelta(days=30),
        locked: bool = False,
        inspected: bool = True,
        references: bool = False,
    ) -> str:
        return self._add(
            key,
            tags,
            age=age,
            created_age=None,
            media_type=OCI_INDEX,
            config=None,
            locked=locked,
            locked_tags=(),
            inspected=inspected,
            children=children,
            references=references,
        )

    def referrer(
        self,
        key: str,
        subject_key: str,
        *tags: str,
        age: timedelta = timedelta(days=30),
        locked: bool = False,
        artifact_type: str | None = None,
    ) -> str:
        """A referrer of `subject_key`; its type is `artifact_type`, or else its config media
        type, a cosign signature's."""
        return self._add(
            key,
            tags,
            age=age,
            created_age=None,
            media_type=OCI_MANIFEST,
            config=SIGNATURE_TYPE,
            locked=locked,
            locked_tags=(),
            inspected=True,
            subject=self.digest(subject_key),
            artifact_type=artifact_type,
        )

    def build(self) -> RepositorySnapshot:
        return RepositorySnapshot(
            name=self.name,
            attributes=self.attributes,
            manifests=tuple(self.manifests),
            tags=tuple(self.tags),
            contents=dict(self.contents),
        )


def signature_tag(subject: str, suffix: str = ".sig") -> str:
    """The cosign legacy tag for a subject digest: `sha256-<hex>.sig`."""
    return subject.replace(":", "-") + suffix


def apply_to_snapshot(snapshot: RepositorySnapshot, plan: Plan) -> RepositorySnapshot:
    """The repository after ACR applied `plan` (blocked repositories: locks only)."""
    repo_plan = next((r for r in plan.repositories if r.repository == snapshot.name), None)
    if repo_plan is None:
        return snapshot
    deleted: set[str] = set()
    if repo_plan.blocked is None:
        deleted = {a.digest for a in repo_plan.deletions}
    referrers: dict[str, list[str]] = {}
    for digest, content in snapshot.contents.items():
        if content.subject is not None:
            referrers.setdefault(content.subject, []).append(digest)
    stack = list(deleted)
    while stack:  # ACR removes referrers with their subject, and theirs with them
        for referrer in referrers.get(stack.pop(), ()):
            if referrer not in deleted:
                deleted.add(referrer)
                stack.append(referrer)
    locked_tags = {a.tags[0] for a in repo_plan.locks}
    tags = tuple(
        replace(t, attributes=replace(t.attributes, delete_enabled=False, write_enabled=False))
        if t.name in locked_tags
        else t
        for t in snapshot.tags
        if t.digest not in deleted
    )
    return RepositorySnapshot(
        name=snapshot.name,
        attributes=snapshot.attributes,
        manifests=tuple(m for m in snapshot.manifests if m.digest not in deleted),
        tags=tags,
        contents={d: c for d, c in snapshot.contents.items() if d not in deleted},
    )

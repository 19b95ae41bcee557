"""Planning stage 1, the graph: one repository's snapshot as digests and the edges between them.

Decisions are per digest (deleting a manifest deletes all its tags; docs/acr-facts.md section 3). A
*referrer* has a `subject` (known from `RepositorySnapshot.contents`); an *attached artifact*
carries only tags of the OCI referrers tag schema (`sha256-<hex>` with an optional suffix such as
`.sig`) and belongs to the manifest that tag names; a *child* is listed by an index in the
repository. Everything else is an *image*. Built once, in linear time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain

from acr_core.models import (
    DOCKER_MANIFEST,
    IMAGE_CONFIG_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    OCI_MANIFEST,
    ChangeableAttributes,
    ManifestContent,
    ManifestProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning import reasons

# OCI distribution spec v1.1, "Referrers Tag Schema": `<alg>-<ref>`, the subject digest with `:`
# replaced by `-`; cosign's legacy scheme appends `.sig`, `.att` or `.sbom` to the same form.
_TAG_SCHEMA = re.compile(r"sha256-([0-9a-f]{64})(?:\.[A-Za-z0-9_-]+)?")


def needs_inspection(manifest: ManifestProperties) -> bool:
    """Whether the gatherer must read this manifest raw before the planner may delete it.

    The listing tells neither an index's children for sure nor whether a manifest has a
    `subject`; a tagged, plain image manifest (OCI or Docker v2 with an image config) is the
    only kind whose role the listing settles.
    """
    if manifest.is_index or not manifest.tags:
        return True
    if manifest.media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        return True
    return manifest.config_media_type not in IMAGE_CONFIG_MEDIA_TYPES


def attached_subject(tag: str) -> str | None:
    """The subject digest a referrers-tag-schema tag names (`sha256-<hex>[.sig]`), if it is one."""
    match = _TAG_SCHEMA.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match else None


@dataclass(frozen=True, slots=True)
class Graph:
    """The repository as a graph of digests; every mapping is keyed by digest."""

    name: str
    attributes: ChangeableAttributes  # the repository's own locks
    manifests: Mapping[str, ManifestProperties]
    digests: tuple[str, ...]  # every manifest's, sorted: the order of the plan's lists
    tags: Mapping[str, tuple[str, ...]]
    tag_properties: Mapping[str, TagProperties]  # by tag name
    # When each manifest last changed, counting its tags: the later of the manifest's own
    # lastUpdateTime and those of the tags on it. ACR documents that a re-pointed tag's
    # lastUpdateTime moves (docs/acr-facts.md 1.4) but not that its manifest's does, so an old image
    # just re-tagged `prod` (a rollback) must count as new for minAge and keepLatest.
    updated: Mapping[str, datetime | None]
    children: Mapping[str, tuple[str, ...]]  # index -> children present in the repository
    parents: Mapping[str, Sequence[str]]  # child -> indexes listing it
    subject: Mapping[str, str]  # referrer -> its subject, present or not
    # referrer -> its artifactType, or else its config media type (OCI image spec)
    artifact_type: Mapping[str, str | None]
    referrers: Mapping[str, Sequence[str]]  # subject present -> its referrers
    attached_to: Mapping[str, str]  # attached artifact -> the subject its tags name
    attached: Mapping[str, Sequence[str]]  # subject -> its attached artifacts
    attachments: frozenset[str]  # tagged only with tag-schema tags
    unread: frozenset[str]  # needs_inspection, but not in contents
    unknown_children: tuple[str, ...]  # indexes (or maybe-indexes) whose children are unknown
    incomplete: str | None  # why the listings may miss manifests or tags

    def subject_chain(self, digest: str) -> list[str]:
        """The subject, its subject, ...: every deletion that cascades to `digest`."""
        chain: list[str] = []
        current = self.subject.get(digest)
        while current is not None and current in self.manifests and current not in chain:
            chain.append(current)
            current = self.subject.get(current)
        return chain


def build_graph(snapshot: RepositorySnapshot) -> Graph:
    manifests = {m.digest: m for m in snapshot.manifests}
    edges = _Edges(manifests, _tags_by_digest(manifests, snapshot.tags))
    for digest, manifest in manifests.items():
        edges.add(manifest, snapshot.contents.get(digest))
    return Graph(
        name=snapshot.name,
        attributes=snapshot.attributes,
        manifests=manifests,
        digests=tuple(sorted(manifests)),
        tags=edges.tags,
        tag_properties={t.name: t for t in snapshot.tags},
        updated=_updated_with_tags(manifests, snapshot.tags),
        children=edges.children,
        parents=edges.parents,
        subject=edges.subject,
        artifact_type=edges.artifact_type,
        referrers=edges.referrers,
        attached_to=edges.attached_to,
        attached=edges.attached,
        attachments=frozenset(edges.attachments),
        unread=frozenset(edges.unread),
        unknown_children=tuple(sorted(edges.unknown_children)),
        incomplete=_missing_from_listings(snapshot, manifests),
    )


@dataclass(slots=True)
class _Edges:
    """The edges as `build_graph` collects them; never leaves it."""

    manifests: dict[str, ManifestProperties]
    tags: dict[str, tuple[str, ...]]
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)
    subject: dict[str, str] = field(default_factory=dict)
    artifact_type: dict[str, str | None] = field(default_factory=dict)
    referrers: dict[str, list[str]] = field(default_factory=dict)
    attached_to: dict[str, str] = field(default_factory=dict)
    attached: dict[str, list[str]] = field(default_factory=dict)
    unknown_children: list[str] = field(default_factory=list)
    attachments: set[str] = field(default_factory=set)
    unread: set[str] = field(default_factory=set)

    def add(self, manifest: ManifestProperties, content: ManifestContent | None) -> None:
        digest, media_type = manifest.digest, manifest.media_type
        if content is None:
            if media_type in INDEX_MEDIA_TYPES:
                self.add_children(digest, {r.digest for r in manifest.references}, known=False)
            elif media_type is None:
                self.unknown_children.append(digest)  # it may be an index: children unknown
            if needs_inspection(manifest):
                self.unread.add(digest)
        else:
            subject = content.subject
            if subject is not None:
                self.subject[digest] = subject
                self.artifact_type[digest] = content.artifact_type or manifest.config_media_type
                if subject in self.manifests and subject != digest:
                    self.referrers.setdefault(subject, []).append(digest)
            if media_type in INDEX_MEDIA_TYPES or content.media_type in INDEX_MEDIA_TYPES:
                listed = {r.digest for r in manifest.references}
                listed.update(c.digest for c in content.children)
                self.add_children(digest, listed, known=True)
        self.add_attachment(digest)

    def add_attachment(self, digest: str) -> None:
        """Anchor a manifest tagged only with referrers-tag-schema tags to the subject named."""
        tags = self.tags[digest]
        if not tags or not tags[0].startswith("sha256-"):
            return
        if not all(t.startswith("sha256-") for t in tags):
            return
        subjects = {attached_subject(t) for t in tags}
        if None in subjects:
            return
        self.attachments.add(digest)
        if digest not in self.subject:
            # Tag-schema tags naming several subjects: anchored to the first in digest order.
            named = sorted(s for s in subjects if s is not None)[0]
            if named in self.manifests and named != digest:
                self.attached_to[digest] = named
                self.attached.setdefault(named, []).append(digest)

    def add_children(self, digest: str, listed: set[str], *, known: bool) -> None:
        if not listed and not known:
            self.unknown_children.append(digest)
        manifests = self.manifests
        present = tuple(sorted(c for c in listed if c in manifests and c != digest))
        self.children[digest] = present
        for child in present:
            self.parents.setdefault(child, []).append(digest)


def _tags_by_digest(
    manifests: Mapping[str, ManifestProperties], tags: Sequence[TagProperties]
) -> dict[str, tuple[str, ...]]:
    by_digest = {d: _sorted_distinct(m.tags) for d, m in manifests.items()}
    for tag in tags:
        # A tag the manifest listing does not show (it moved while we read) still counts.
        known = by_digest.get(tag.digest)
        if known is not None and tag.name not in known:
            by_digest[tag.digest] = tuple(sorted((*known, tag.name)))
    return by_digest


def _sorted_distinct(tags: tuple[str, ...]) -> tuple[str, ...]:
    """`tags` sorted, without repeats; as given when they already are (the common case, which
    a large repository meets tens of thousands of times)."""
    if len(tags) < 2 or (len(tags) == 2 and tags[0] < tags[1]):
        return tags
    return tuple(sorted(set(tags)))


def _updated_with_tags(
    manifests: Mapping[str, ManifestProperties], tags: Sequence[TagProperties]
) -> dict[str, datetime | None]:
    updated = {digest: m.last_updated_on for digest, m in manifests.items()}
    for tag in tags:
        current = updated.get(tag.digest)
        moved = tag.last_updated_on
        if current is not None and moved is not None and moved > current:
            updated[tag.digest] = moved
    return updated


def _missing_from_listings(
    snapshot: RepositorySnapshot, manifests: Mapping[str, ManifestProperties]
) -> str | None:
    """Why the snapshot may lack a manifest or a tag, or None when the listings look whole.

    A manifest missing from the listing (hidden by `listEnabled=false`, or pushed while the
    listing was read) may be an index whose children then look orphaned, or a tag on a manifest
    that then looks untagged.
    """
    listed, counted = len(manifests), snapshot.manifest_count
    if counted is not None and counted > listed:
        return reasons.manifests_hidden(counted, listed)
    # A tag the manifest listing shows but the tag listing hides already protects its manifest;
    # only a tag neither listing shows leaves a manifest looking less tagged than it is.
    names = {t.name for t in snapshot.tags}
    names.update(chain.from_iterable(manifest.tags for manifest in manifests.values()))
    counted = snapshot.tag_count
    if counted is not None and counted > len(names):
        return reasons.tags_hidden(counted, len(names))
    unlisted = [t for t in snapshot.tags if t.digest not in manifests]
    if unlisted:
        tag = min(unlisted, key=lambda t: t.name)
        return reasons.tag_names_unlisted(tag.name, tag.digest)
    return None

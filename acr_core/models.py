"""What ACR tells us about repositories, tags and manifests, as frozen dataclasses.

These are the client's return types and the planner's input: nothing here does I/O.
Field names follow Microsoft's Python SDK (`created_on`, `size_in_bytes`, ...) so users feel
at home, but unlike the SDK nothing ACR sends is dropped (`media_type`, `config_media_type`,
`references`, quarantine state). Wire facts: docs/acr-facts.md sections 1.3-1.10.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Media types (OCI image-spec and Docker distribution spec).
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_CONFIG_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)


@dataclass(frozen=True, slots=True)
class ChangeableAttributes:
    """The four lock switches ACR keeps on a repository, a tag and a manifest, independently.

    `writeEnabled=false` blocks delete as well as overwrite (docs/acr-facts.md section 3), so an
    artifact is locked against deletion when either switch is off.
    """

    delete_enabled: bool = True
    write_enabled: bool = True
    read_enabled: bool = True
    list_enabled: bool = True
    quarantine_state: str | None = None
    quarantine_details: str | None = None

    @property
    def deletable(self) -> bool:
        return self.delete_enabled and self.write_enabled

    @property
    def fully_locked(self) -> bool:
        """Locked both ways: what a `lockTags` rule sets."""
        return not self.delete_enabled and not self.write_enabled


@dataclass(frozen=True, slots=True)
class RepositoryProperties:
    registry: str
    name: str
    created_on: datetime | None
    last_updated_on: datetime | None
    manifest_count: int
    tag_count: int
    attributes: ChangeableAttributes = field(default_factory=ChangeableAttributes)


@dataclass(frozen=True, slots=True)
class TagProperties:
    registry: str
    repository: str
    name: str
    digest: str
    created_on: datetime | None
    last_updated_on: datetime | None
    attributes: ChangeableAttributes = field(default_factory=ChangeableAttributes)
    signed: bool | None = None


@dataclass(frozen=True, slots=True)
class ManifestReference:
    """A child listed in an index's `references` attribute, with its platform."""

    digest: str
    architecture: str | None = None
    os: str | None = None


@dataclass(frozen=True, slots=True)
class ManifestProperties:
    registry: str
    repository: str
    digest: str
    created_on: datetime | None
    last_updated_on: datetime | None
    size_in_bytes: int | None = None
    media_type: str | None = None
    config_media_type: str | None = None
    architecture: str | None = None
    os: str | None = None
    tags: tuple[str, ...] = ()
    references: tuple[ManifestReference, ...] = ()
    attributes: ChangeableAttributes = field(default_factory=ChangeableAttributes)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor as it appears inside a manifest or an index."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    platform: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ManifestContent:
    """A manifest's raw bytes as served by `GET /v2/{name}/manifests/{ref}`, verified against its
    digest, with the graph edges a cleaner needs parsed out of it."""

    digest: str
    media_type: str
    raw: bytes
    subject: str | None = None  # digest of the subject: set on referrers (signatures, SBOMs)
    artifact_type: str | None = None
    children: tuple[Descriptor, ...] = ()  # the `manifests` of an index / manifest list

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class RepositorySnapshot:
    """Everything the planner may know about one repository, read in one gather.

    `contents` holds the parsed raw manifest of every digest the gatherer inspected: every
    index (its children) and every manifest whose referrer status the listing cannot tell
    (see `acr_core.planning.planner.needs_inspection`). A manifest the planner would delete
    but whose referrer status is unknown is protected instead.

    `manifest_count` and `tag_count` are what the repository's properties reported before the
    listings were read (None: not known). Listings leave out whatever has `listEnabled=false`
    (docs/acr-facts.md section 3), so a listing shorter than its count means the snapshot misses
    manifests or tags (a hidden index's children would look orphaned), and the planner then
    deletes nothing in the repository.
    """

    name: str
    attributes: ChangeableAttributes
    manifests: tuple[ManifestProperties, ...]
    tags: tuple[TagProperties, ...]
    contents: dict[str, ManifestContent] = field(default_factory=dict)
    manifest_count: int | None = None
    tag_count: int | None = None

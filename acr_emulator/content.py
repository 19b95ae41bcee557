"""Reading pushed manifests: digest, media type, children, subject, size.

Media types and fields follow the OCI image-spec 1.1 and the Docker distribution spec.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from acr_emulator.errors import RegistryError, invalid

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"
ORAS_ARTIFACT_MANIFEST = "application/vnd.cncf.oras.artifact.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset(
    {
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        OCI_ARTIFACT_MANIFEST,
        ORAS_ARTIFACT_MANIFEST,
    }
)
# The OCI image-spec caps manifests at 4 MiB, as does ACR (docs/acr-facts.md section 4).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# OCI distribution spec: tags are [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
# OCI distribution spec repository name grammar (path components separated by "/").
NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(reference: str) -> bool:
    return DIGEST_RE.match(reference) is not None


@dataclass(frozen=True, slots=True)
class Child:
    """A manifest listed in an index, with its platform (None when the index omits it)."""

    digest: str
    media_type: str
    size: int
    architecture: str | None
    os: str | None


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    config_media_type: str | None
    config_digest: str | None
    blob_digests: tuple[str, ...]
    blobs_size: int
    children: tuple[Child, ...]
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str]


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate a pushed manifest and pull out what the registry indexes about it."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise invalid("MANIFEST_INVALID", "manifest exceeds the 4 MiB limit")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("MANIFEST_INVALID", f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise invalid("MANIFEST_INVALID", "manifest must be a JSON object")
    media_type = _media_type(document, content_type)
    config = document.get("config")
    config_media_type = None
    config_digest = None
    blob_digests: list[str] = []
    size = 0
    if isinstance(config, dict):
        config_media_type = _str(config.get("mediaType"))
        config_digest = _descriptor_digest(config, "config")
        blob_digests.append(config_digest)
        size += _int(config.get("size"))
    for key in ("layers", "blobs"):
        for layer in _list(document.get(key)):
            blob_digests.append(_descriptor_digest(layer, key))
            size += _int(layer.get("size"))
    children = tuple(_child(item) for item in _list(document.get("manifests")))
    subject = document.get("subject")
    subject_digest = _descriptor_digest(subject, "subject") if isinstance(subject, dict) else None
    annotations = document.get("annotations")
    return ParsedManifest(
        media_type=media_type,
        config_media_type=config_media_type,
        config_digest=config_digest,
        blob_digests=tuple(blob_digests),
        blobs_size=size,
        children=children,
        subject=subject_digest,
        artifact_type=_str(document.get("artifactType")) or config_media_type,
        annotations=(
            {str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, dict)
            else {}
        ),
    )


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = _str(document.get("mediaType"))
    header = (content_type or "").split(";")[0].strip() or None
    if declared and header and declared != header:
        raise invalid(
            "MANIFEST_INVALID",
            f"Content-Type {header} does not match the manifest's mediaType {declared}",
        )
    media_type = declared or header
    if media_type is None:
        # An OCI image manifest may omit mediaType; so may an index (image-spec 1.0).
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise invalid("MANIFEST_INVALID", f"unsupported manifest media type {media_type}")
    return media_type


def _child(item: dict[str, Any]) -> Child:
    platform = item.get("platform")
    platform = platform if isinstance(platform, dict) else {}
    return Child(
        digest=_descriptor_digest(item, "manifests"),
        media_type=_str(item.get("mediaType")) or OCI_MANIFEST,
        size=_int(item.get("size")),
        architecture=_str(platform.get("architecture")),
        os=_str(platform.get("os")),
    )


def _descriptor_digest(descriptor: Any, field: str) -> str:
    if not isinstance(descriptor, dict):
        raise invalid("MANIFEST_INVALID", f"{field}: a descriptor must be a JSON object")
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not is_digest(digest):
        raise invalid("DIGEST_INVALID", f"{field}: invalid digest {digest!r}")
    return digest


def _list(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise invalid("MANIFEST_INVALID", "descriptor lists must be arrays of objects")
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def platform_of_config(config: bytes) -> tuple[str | None, str | None]:
    """`architecture` and `os` from an image config blob, when it is JSON carrying them."""
    try:
        document = json.loads(config)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    return _str(document.get("architecture")), _str(document.get("os"))


def check_name(name: str) -> None:
    if len(name) > 256 or NAME_RE.match(name) is None:
        raise RegistryError(
            400, "NAME_INVALID", f"invalid repository name {name!r}", {"name": name}
        )


def check_tag(tag: str) -> None:
    if TAG_RE.match(tag) is None:
        raise RegistryError(400, "TAG_INVALID", f"invalid tag {tag!r}", {"Tag": tag})

"""ACR's JSON bodies and raw manifests turned into `acr_core.models`, leniently.

Tolerant by design (docs/acr-facts.md sections 1.3-1.10): unknown fields are ignored, `tags` may be
absent, null or `[]`, optional fields may be missing, timestamps carry 7-9 fractional digits.
What a cleaner cannot work without (a digest, a name) raises `InvalidResponseError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from acr_core.models import (
    ChangeableAttributes,
    Descriptor,
    ManifestContent,
    ManifestProperties,
    ManifestReference,
    RepositoryProperties,
    TagProperties,
)
from acr_core.registry._wire import parse_datetime
from acr_core.registry.errors import InvalidResponseError

_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidResponseError(f"expected a JSON object for {what}, got {type(value).__name__}")
    return value


def _text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidResponseError(f"{what} has no '{key}'")
    return value


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(data: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return parse_datetime(data.get(key))
    except ValueError as exc:
        raise InvalidResponseError(f"{what} has an unreadable '{key}': {exc}") from None


def attributes(value: object) -> ChangeableAttributes:
    """The four switches and the quarantine state; a switch ACR leaves out is on."""
    data = value if isinstance(value, dict) else {}

    def switch(key: str) -> bool:
        return data.get(key) is not False

    return ChangeableAttributes(
        delete_enabled=switch("deleteEnabled"),
        write_enabled=switch("writeEnabled"),
        read_enabled=switch("readEnabled"),
        list_enabled=switch("listEnabled"),
        quarantine_state=_optional_text(data, "quarantineState"),
        quarantine_details=_optional_text(data, "quarantineDetails"),
    )


def repository(body: object, registry: str) -> RepositoryProperties:
    data = _object(body, "repository properties")
    return RepositoryProperties(
        registry=_optional_text(data, "registry") or registry,
        name=_text(data, "imageName", "repository properties"),
        created_on=_time(data, "createdTime", "repository"),
        last_updated_on=_time(data, "lastUpdateTime", "repository"),
        manifest_count=_int(data, "manifestCount") or 0,
        tag_count=_int(data, "tagCount") or 0,
        attributes=attributes(data.get("changeableAttributes")),
    )


def tag(item: object, registry: str, repository_name: str) -> TagProperties:
    data = _object(item, "tag")
    name = _text(data, "name", "a tag")
    signed = data.get("signed")
    attrs = dict(data.get("changeableAttributes") or {})
    # Quarantine state has been seen on the tag object itself (docs/acr-facts.md section 1.4).
    for key in ("quarantineState", "quarantineDetails"):
        if key in data and key not in attrs:
            attrs[key] = data[key]
    return TagProperties(
        registry=registry,
        repository=repository_name,
        name=name,
        digest=_text(data, "digest", f"tag {name!r}"),
        created_on=_time(data, "createdTime", f"tag {name!r}"),
        last_updated_on=_time(data, "lastUpdateTime", f"tag {name!r}"),
        attributes=attributes(attrs),
        signed=signed if isinstance(signed, bool) else None,
    )


def manifest(item: object, registry: str, repository_name: str) -> ManifestProperties:
    data = _object(item, "manifest")
    digest = _text(data, "digest", "a manifest")
    tags = data.get("tags") or []
    references = data.get("references") or []
    return ManifestProperties(
        registry=registry,
        repository=repository_name,
        digest=digest,
        created_on=_time(data, "createdTime", f"manifest {digest}"),
        last_updated_on=_time(data, "lastUpdateTime", f"manifest {digest}"),
        size_in_bytes=_int(data, "imageSize"),
        media_type=_optional_text(data, "mediaType"),
        config_media_type=_optional_text(data, "configMediaType"),
        architecture=_optional_text(data, "architecture"),
        os=_optional_text(data, "os"),
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        references=tuple(
            ManifestReference(
                digest=_text(ref, "digest", f"a reference of {digest}"),
                architecture=_optional_text(ref, "architecture"),
                os=_optional_text(ref, "os"),
            )
            for ref in references
            if isinstance(ref, dict)
        )
        if isinstance(references, list)
        else (),
        attributes=attributes(data.get("changeableAttributes")),
    )


def descriptor(item: object) -> Descriptor:
    data = _object(item, "descriptor")
    size = _int(data, "size")
    platform = data.get("platform")
    annotations = data.get("annotations")
    return Descriptor(
        media_type=_optional_text(data, "mediaType") or "",
        digest=_text(data, "digest", "a descriptor"),
        size=size if size is not None else 0,
        artifact_type=_optional_text(data, "artifactType"),
        platform=_strings(platform) if isinstance(platform, dict) else None,
        annotations=_strings(annotations) if isinstance(annotations, dict) else None,
    )


def _strings(data: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def compute_digest(raw: bytes, algorithm: str = "sha256") -> str:
    hasher = _HASHES.get(algorithm)
    if hasher is None:
        raise InvalidResponseError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hasher(raw).hexdigest()}"


def manifest_content(raw: bytes, content_type: str | None, expected: str | None) -> ManifestContent:
    """Parse a raw manifest whose bytes must hash to `expected` (when known)."""
    algorithm = expected.partition(":")[0] if expected else "sha256"
    digest = compute_digest(raw, algorithm)
    if expected is not None and digest != expected:
        raise InvalidResponseError(
            f"manifest bytes hash to {digest}, not {expected}: refusing a corrupted or "
            "substituted manifest"
        )
    try:
        data = _object(json.loads(raw), "manifest")
    except ValueError as exc:
        raise InvalidResponseError(f"manifest {digest} is not JSON: {exc}") from None
    header = (content_type or "").split(";")[0].strip()
    generic = header in ("", "application/json", "application/octet-stream", "text/plain")
    media_type = _optional_text(data, "mediaType") if generic else header
    subject = data.get("subject")
    children = data.get("manifests")
    return ManifestContent(
        digest=digest,
        media_type=media_type or header,
        raw=raw,
        subject=_optional_text(subject, "digest") if isinstance(subject, dict) else None,
        artifact_type=_optional_text(data, "artifactType"),
        children=tuple(descriptor(c) for c in children) if isinstance(children, list) else (),
    )

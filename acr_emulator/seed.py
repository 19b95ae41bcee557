"""Bulk seeding from a fixture: straight into the store, no HTTP, no events, no lock checks.

The fixture format is documented in docs/emulator.md. Each manifest becomes real JSON bytes
(an OCI image manifest, index or artifact) whose digest is the sha256 of those bytes, so what
a client reads back verifies. Image config blobs are stored (they are small); layer blobs are
described by digest and size only and cannot be downloaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from acr_emulator.clock import Clock, parse_time
from acr_emulator.content import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Child,
    ParsedManifest,
    check_name,
    check_tag,
    is_digest,
    parse_manifest,
    sha256_digest,
)
from acr_emulator.errors import RegistryError
from acr_emulator.records import Attributes, Manifest, Tag
from acr_emulator.store import Registry

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
KINDS = ("image", "index", "artifact", "raw")


class FixtureError(ValueError):
    """A fixture that cannot be loaded; the message names the place and the problem."""


def load_fixture(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FixtureError(f"cannot read fixture {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise FixtureError(f"fixture {path}: the top level must be a JSON object")
    return data


def seed(registry: Registry, clock: Clock, fixture: Mapping[str, Any]) -> None:
    """Load `fixture` into `registry`; manifests without a `pushed` time get `clock`'s now."""
    repositories = fixture.get("repositories")
    if not isinstance(repositories, list):
        raise FixtureError("fixture: 'repositories' must be a list")
    with registry.lock:
        for index, repo in enumerate(repositories):
            where = f"repositories[{index}]"
            if not isinstance(repo, dict):
                raise FixtureError(f"fixture: {where} must be an object")
            _seed_repository(registry, clock, repo, where)


def _seed_repository(registry: Registry, clock: Clock, spec: dict[str, Any], where: str) -> None:
    name = spec.get("name")
    if not isinstance(name, str):
        raise FixtureError(f"fixture: {where}.name must be a string")
    try:
        check_name(name)
    except RegistryError as exc:
        raise FixtureError(f"fixture: {where}.name: {exc.message}") from None
    refs: dict[str, Manifest] = {}
    repo = None
    manifests = spec.get("manifests", [])
    if not isinstance(manifests, list) or not manifests:
        raise FixtureError(f"fixture: {where}.manifests must be a non-empty list")
    for position, item in enumerate(manifests):
        place = f"{where}.manifests[{position}]"
        if not isinstance(item, dict):
            raise FixtureError(f"fixture: {place} must be an object")
        try:
            manifest, tags = _build(registry, name, item, refs, position, clock.now())
        except (KeyError, TypeError, ValueError, RegistryError) as exc:
            detail = exc.message if isinstance(exc, RegistryError) else str(exc)
            raise FixtureError(f"fixture: {place}: {detail}") from None
        repo = registry.add_manifest(name, manifest, manifest.created)
        for tag in tags:
            registry.add_tag(repo, tag)
        refs[str(item.get("id", manifest.digest))] = manifest
        refs[manifest.digest] = manifest
    if repo is not None:
        repo.attributes.update(spec.get("attributes") or {})
        repo.updated = max(repo.updated, *(m.updated for m in repo.manifests.values()))


def _time(value: Any, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, datetime):
        return value
    return parse_time(str(value))


def _build(
    registry: Registry,
    repository: str,
    item: dict[str, Any],
    refs: dict[str, Manifest],
    position: int,
    default_time: datetime,
) -> tuple[Manifest, list[Tag]]:
    kind = item.get("kind", "index" if "manifests" in item else "image")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    pushed = _time(item.get("pushed"), default_time)
    salt = f"{repository}#{item.get('id', position)}#{item.get('salt', '')}"
    if kind == "raw":
        document = item["content"]
        body = json.dumps(document, separators=(",", ":")).encode()
    elif kind == "index":
        document = _index(item, refs)
        body = json.dumps(document, separators=(",", ":")).encode()
    else:
        document = _image(registry, repository, item, refs, salt, artifact=kind == "artifact")
        body = json.dumps(document, separators=(",", ":")).encode()
    # Our own documents need no validation: describe them straight from the dict (seeding
    # 100,000 manifests must take seconds); raw content goes through the push-time parser.
    parsed = parse_manifest(body, None) if kind == "raw" else describe(document)
    digest = sha256_digest(body)
    tags = _tags(item.get("tags", []), digest, pushed)
    updated = _time(item.get("updated"), max([pushed, *(t.updated for t in tags)]))
    manifest = Manifest(
        digest=digest,
        body=body,
        media_type=parsed.media_type,
        created=pushed,
        updated=updated,
        config_media_type=parsed.config_media_type,
        architecture=item.get("architecture", "amd64") if kind == "image" else None,
        os=item.get("os", "linux") if kind == "image" else None,
        image_size=parsed.blobs_size if not parsed.children else len(body),
        children=parsed.children,
        subject=parsed.subject,
        artifact_type=parsed.artifact_type,
        annotations=parsed.annotations or None,
        attributes=Attributes.from_wire(item.get("attributes")),
    )
    return manifest, tags


def describe(document: dict[str, Any]) -> ParsedManifest:
    """What `parse_manifest` would say about a document this module built."""
    config = document.get("config")
    layers = document.get("layers", ())
    children = tuple(
        Child(
            c["digest"],
            c["mediaType"],
            c["size"],
            c["platform"].get("architecture"),
            c["platform"].get("os"),
        )
        for c in document.get("manifests", ())
    )
    subject = document.get("subject")
    config_type = config["mediaType"] if config else None
    return ParsedManifest(
        media_type=document["mediaType"],
        config_media_type=config_type,
        config_digest=config["digest"] if config else None,
        blob_digests=(),
        blobs_size=(config["size"] if config else 0) + sum(layer["size"] for layer in layers),
        children=children,
        subject=subject["digest"] if subject else None,
        artifact_type=document.get("artifactType") or config_type,
        annotations=document.get("annotations") or {},
    )


def _config_blob(
    registry: Registry, repository: str, key: tuple[str, ...], document: dict[str, Any]
) -> tuple[str, bytes]:
    """A small image config, shared by every image with the same platform."""
    cached = _CONFIGS.get(key)
    if cached is None:
        body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        cached = _CONFIGS.setdefault(key, (sha256_digest(body), body))
    digest, body = cached
    registry.blobs[digest] = body
    registry.repo_blobs.setdefault(repository, set()).add(digest)
    return digest, body


_CONFIGS: dict[tuple[str, ...], tuple[str, bytes]] = {}


def _image(
    registry: Registry,
    repository: str,
    item: dict[str, Any],
    refs: dict[str, Manifest],
    salt: str,
    *,
    artifact: bool,
) -> dict[str, Any]:
    docker = item.get("mediaType") == DOCKER_MANIFEST
    layer_count = int(item.get("layers", 1 if artifact else 2))
    total = int(item.get("size", 1024 * (len(salt) % 97 + 1) * 1024))
    if artifact:
        config_type = OCI_EMPTY
        config_doc: dict[str, Any] = {}
    else:
        config_type = DOCKER_CONFIG if docker else OCI_CONFIG
        config_doc = {
            "architecture": item.get("architecture", "amd64"),
            "os": item.get("os", "linux"),
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    key = (config_type, *(str(v) for v in config_doc.values()))
    config_digest, config = _config_blob(registry, repository, key, config_doc)
    each = max(total // max(layer_count, 1), 1)
    layers = [
        {
            "mediaType": DOCKER_LAYER if docker else item.get("layerMediaType", LAYER),
            "digest": "sha256:" + hashlib.sha256(f"{salt}/layer{j}".encode()).hexdigest(),
            "size": each,
        }
        for j in range(layer_count)
    ]
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
        "layers": layers,
    }
    if artifact:
        document["artifactType"] = item.get("artifactType", "application/vnd.example+type")
    subject = item.get("subject")
    if subject is not None:
        target = _ref(refs, str(subject))
        document["subject"] = {
            "mediaType": target.media_type,
            "digest": target.digest,
            "size": len(target.body),
        }
    if item.get("annotations"):
        document["annotations"] = dict(item["annotations"])
    return document


def _index(item: dict[str, Any], refs: dict[str, Manifest]) -> dict[str, Any]:
    media_type = item.get("mediaType", OCI_INDEX)
    if media_type not in INDEX_TYPES:
        raise ValueError(f"an index's mediaType must be {OCI_INDEX} or {DOCKER_MANIFEST_LIST}")
    children = []
    for entry in item["manifests"]:
        spec = entry if isinstance(entry, dict) else {"ref": entry}
        child = _ref(refs, str(spec["ref"]))
        platform = spec.get("platform") or {
            "architecture": child.architecture or "unknown",
            "os": child.os or "unknown",
        }
        descriptor: dict[str, Any] = {
            "mediaType": child.media_type,
            "digest": child.digest,
            "size": len(child.body),
            "platform": platform,
        }
        if spec.get("annotations"):
            descriptor["annotations"] = dict(spec["annotations"])
        children.append(descriptor)
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    if item.get("annotations"):
        document["annotations"] = dict(item["annotations"])
    return document


def _ref(refs: dict[str, Manifest], key: str) -> Manifest:
    manifest = refs.get(key)
    if manifest is None:
        hint = (
            "" if is_digest(key) else " (ids must name a manifest listed earlier in the repository)"
        )
        raise ValueError(f"unknown manifest reference {key!r}{hint}")
    return manifest


def _tags(items: Any, digest: str, pushed: datetime) -> list[Tag]:
    if not isinstance(items, list):
        raise ValueError("tags must be a list")
    tags = []
    for entry in items:
        spec = entry if isinstance(entry, dict) else {"name": entry}
        name = str(spec["name"])
        check_tag(name)
        created = _time(spec.get("created"), pushed)
        updated = _time(spec.get("updated"), created)
        tags.append(
            Tag(name, digest, created, updated, Attributes.from_wire(spec.get("attributes")))
        )
    return tags

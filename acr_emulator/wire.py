"""The JSON shapes ACR returns on /acr/v1 (docs/acr-facts.md sections 1.3-1.7), from the store."""

from __future__ import annotations

from typing import Any

from acr_emulator.clock import format_acr_time
from acr_emulator.records import Manifest, Repository, Tag


def repository_attributes(registry: str, repo: Repository) -> dict[str, Any]:
    return {
        "registry": registry,
        "imageName": repo.name,
        "createdTime": format_acr_time(repo.created),
        "lastUpdateTime": format_acr_time(repo.updated),
        "manifestCount": len(repo.manifests),
        "tagCount": len(repo.tags),
        "changeableAttributes": repo.attributes.to_wire(),
    }


def tag_attributes(tag: Tag) -> dict[str, Any]:
    return {
        "name": tag.name,
        "digest": tag.digest,
        "createdTime": format_acr_time(tag.created),
        "lastUpdateTime": format_acr_time(tag.updated),
        "signed": False,
        "changeableAttributes": tag.attributes.to_wire(),
    }


def manifest_attributes(manifest: Manifest) -> dict[str, Any]:
    """One manifest's attributes; untagged manifests omit `tags` (docs/acr-facts.md section 1.6)."""
    item: dict[str, Any] = {
        "digest": manifest.digest,
        "imageSize": manifest.image_size,
        "createdTime": format_acr_time(manifest.created),
        "lastUpdateTime": format_acr_time(manifest.updated),
    }
    if manifest.architecture is not None:
        item["architecture"] = manifest.architecture
    if manifest.os is not None:
        item["os"] = manifest.os
    item["mediaType"] = manifest.media_type
    if manifest.config_media_type is not None:
        item["configMediaType"] = manifest.config_media_type
    if manifest.children:
        item["references"] = [
            {"digest": c.digest, "architecture": c.architecture or "", "os": c.os or ""}
            for c in manifest.children
        ]
    if manifest.tags:
        item["tags"] = sorted(manifest.tags)
    item["changeableAttributes"] = manifest.attributes.to_wire()
    return item

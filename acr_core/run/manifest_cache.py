"""Raw manifests kept by digest, so that content which cannot change is read from ACR once.

A manifest named by its digest is immutable: the digest is the sha256 of its bytes. So the
cache is keyed by digest only (nothing addressed by a tag ever enters it, since a tag can move),
and the bytes are hashed again before they are stored and again whenever they are read back from
a store, so a corrupt or tampered cache entry can never reach the planner: it is ignored with a
warning and the manifest is read from the registry instead. A store that cannot be read or
written (`StoreError`) costs only a warning: the cache is an optimisation, never a source of
truth, and never a reason for a run to fail.

Layers are tried in order (memory first, then the directory or blob container); a hit in a
later layer is copied into the earlier ones. The cache does not own its layers: whoever opened a
store closes it (the function keeps its memory layer for the life of the worker).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from acr_core.models import ManifestContent
from acr_core.registry._decode import compute_digest, manifest_content
from acr_core.registry._wire import is_digest
from acr_core.registry.errors import InvalidResponseError
from acr_core.storage.objects import ObjectStore, StoreError

__all__ = ["DEFAULT_MEMORY_BYTES", "ManifestCache", "cache_key", "default_cache_dir"]

log = logging.getLogger("acr_cleanup")

# What one warm worker or CLI process keeps in memory: about 60,000 manifests of 1 KiB, the
# contents of a 50,000-manifest repository with room to spare, within a Flex instance's 2 GB.
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024


def cache_key(digest: str) -> str:
    """The store key of a digest's manifest: ``manifests/<algorithm>/<hex>``."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"manifests/{algorithm}/{hexdigest}"


def encode_entry(content: ManifestContent) -> bytes:
    """The stored form: the media type on the first line, then the raw bytes unchanged."""
    return content.media_type.encode() + b"\n" + content.raw


def decode_entry(digest: str, data: bytes) -> ManifestContent:
    """The manifest a stored entry holds, verified; `InvalidResponseError` when it is not."""
    media_type, newline, raw = data.partition(b"\n")
    if not newline:
        raise InvalidResponseError(f"cached manifest {digest} has no media type line")
    return manifest_content(raw, media_type.decode("ascii", "replace"), digest)


class ManifestCache:
    """Verified manifests by digest over one or more `ObjectStore` layers."""

    def __init__(self, layers: Sequence[ObjectStore]) -> None:
        self._layers = tuple(layers)
        self._warned: set[str] = set()
        self.hits = 0
        self.misses = 0

    @property
    def description(self) -> str:
        return " then ".join(layer.description for layer in self._layers) or "nothing"

    async def get(self, digest: str) -> ManifestContent | None:
        """The manifest, verified against `digest`, or None (not cached, or not trusted)."""
        if not is_digest(digest):
            return None
        key = cache_key(digest)
        for depth, layer in enumerate(self._layers):
            data = await self._read(layer, key)
            if data is None:
                continue
            try:
                content = decode_entry(digest, data)
            except (InvalidResponseError, UnicodeError) as exc:
                self._warn(layer, f"ignored its entry for {digest}, which is corrupt: {exc}")
                continue
            for earlier in self._layers[:depth]:
                await self._write(earlier, key, data)
            self.hits += 1
            return content
        self.misses += 1
        return None

    async def put(self, content: ManifestContent) -> None:
        """Keep a manifest read from the registry, once its bytes hash to its digest."""
        if not is_digest(content.digest):
            return
        if compute_digest(content.raw, content.digest.partition(":")[0]) != content.digest:
            return  # the client verifies every manifest; this never caches one that is not
        data = encode_entry(content)
        for layer in self._layers:
            await self._write(layer, cache_key(content.digest), data)

    async def _read(self, layer: ObjectStore, key: str) -> bytes | None:
        try:
            return await layer.get(key)
        except StoreError as exc:
            self._warn(layer, f"cannot be read, so it is not used: {exc}")
            return None

    async def _write(self, layer: ObjectStore, key: str, data: bytes) -> None:
        try:
            await layer.put(key, data)
        except StoreError as exc:
            self._warn(layer, f"cannot be written, so it is not kept: {exc}")

    def _warn(self, layer: ObjectStore, problem: str) -> None:
        """One warning per layer and problem kind, not one per manifest."""
        kind = f"{layer.description}:{problem.split(':')[0]}"
        if kind in self._warned:
            return
        self._warned.add(kind)
        log.warning(
            "acr-cleanup manifest cache %s %s (the registry is read instead)",
            layer.description,
            problem,
        )


def default_cache_dir(environ: Mapping[str, str], platform: str = sys.platform) -> Path:
    """Where the CLI keeps its manifest cache unless told (`--cache-dir`): the user's cache
    directory as each platform names it, in a folder of its own."""
    home = Path(environ.get("HOME") or environ.get("USERPROFILE") or Path.home())
    if platform.startswith("win"):
        base = environ.get("LOCALAPPDATA")
        return (Path(base) if base else home / "AppData" / "Local") / "acr-cleanup" / "Cache"
    if platform == "darwin":
        return home / "Library" / "Caches" / "acr-cleanup"
    xdg = environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache") / "acr-cleanup"

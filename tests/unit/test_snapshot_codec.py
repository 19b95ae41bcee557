"""The stored form of a snapshot: every value comes back exactly, and anything else is refused.

A refused snapshot makes the run list the repository in full (SnapshotStore.load returns None
with a warning), so a snapshot of the previous format must be refused, never half read.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from acr_core.models import (
    ChangeableAttributes,
    ManifestContent,
    ManifestProperties,
    ManifestReference,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.registry._decode import manifest_content
from acr_core.run.snapshot_codec import (
    FORMAT,
    SnapshotError,
    StoredSnapshot,
    decode_snapshot,
    encode_snapshot,
)
from acr_core.run.snapshots import SnapshotStore
from acr_core.storage.objects import MemoryStore

REGISTRY, REPOSITORY = "r.azurecr.io", "team/app"
NOW = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def _content(body: dict[str, Any] | bytes, media_type: str) -> ManifestContent:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return manifest_content(raw, media_type, "sha256:" + hashlib.sha256(raw).hexdigest())


def _stored() -> StoredSnapshot:
    """Every kind of value a snapshot holds, including the rare ones."""
    child = _content({"schemaVersion": 2, "mediaType": OCI, "layers": []}, OCI)
    signature = _content(
        {"schemaVersion": 2, "mediaType": OCI, "subject": {"digest": child.digest}}, OCI
    )
    index = _content(
        {"mediaType": INDEX, "manifests": [{"mediaType": OCI, "digest": child.digest, "size": 7}]},
        INDEX,
    )
    # JSON in UTF-16 is not UTF-8 text: kept as base64, and the exact bytes come back.
    odd = _content(json.dumps({"mediaType": OCI}).encode("utf-16"), OCI)
    locked = ChangeableAttributes(False, False, True, False, "Passed", "scanned")
    plus_two = timezone(timedelta(hours=2))
    manifests = (
        ManifestProperties(REGISTRY, REPOSITORY, child.digest, NOW, NOW, 10, OCI, None, "amd64"),
        ManifestProperties(
            *(REGISTRY, REPOSITORY, index.digest, NOW.astimezone(plus_two), NOW, None, INDEX),
            tags=("latest", "v1"),
            references=(ManifestReference(child.digest, "amd64", "linux"),),
            attributes=locked,
        ),
        ManifestProperties(REGISTRY, REPOSITORY, signature.digest, None, None),
        ManifestProperties(REGISTRY, REPOSITORY, odd.digest, NOW, NOW - timedelta(days=3)),
    )
    tags = (
        TagProperties(REGISTRY, REPOSITORY, "latest", index.digest, NOW, NOW, signed=True),
        TagProperties(REGISTRY, REPOSITORY, "v1", index.digest, None, NOW, attributes=locked),
    )
    contents = {c.digest: c for c in (child, signature, index, odd)}
    snapshot = RepositorySnapshot(REPOSITORY, ChangeableAttributes(), manifests, tags, contents)
    return StoredSnapshot(REGISTRY, snapshot, NOW, NOW + timedelta(seconds=3))


def _gzip(body: Any, entries: bytes = b"") -> bytes:
    """A stored snapshot: format 1 is JSON alone, format 2 a JSON line and the entries."""
    return gzip.compress(json.dumps(body).encode() + (b"\n" + entries if entries else b""))


def _body(stored: StoredSnapshot) -> tuple[dict[str, Any], bytes]:
    header, _, entries = gzip.decompress(encode_snapshot(stored)).partition(b"\n")
    body: dict[str, Any] = json.loads(header)
    return body, entries


def test_every_value_comes_back_exactly() -> None:
    stored = _stored()
    back = decode_snapshot(encode_snapshot(stored), REGISTRY, REPOSITORY)
    assert back == stored
    # Equal instants at other offsets are equal datetimes; the offset must come back too.
    assert [m.created_on and m.created_on.isoformat() for m in back.snapshot.manifests] == [
        m.created_on and m.created_on.isoformat() for m in stored.snapshot.manifests
    ]


def test_a_snapshot_of_format_1_is_refused_and_the_run_lists_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the previous code wrote is not misread as format 2: it is ignored, with a warning."""
    old = {
        "format": "acr-cleanup-snapshot/1",
        "registry": REGISTRY,
        "repository": REPOSITORY,
        "listedAt": NOW.isoformat(),
        "savedAt": NOW.isoformat(),
        "manifests": [],
        "tags": [],
        "contents": {},
    }
    with pytest.raises(SnapshotError, match=f"not in the format {FORMAT}"):
        decode_snapshot(_gzip(old), REGISTRY, REPOSITORY)
    store = MemoryStore()
    snapshots = SnapshotStore(store, clock=lambda: NOW)

    async def load() -> StoredSnapshot | None:
        await store.put(SnapshotStore.key(REGISTRY, REPOSITORY), _gzip(old))
        return await snapshots.load(REGISTRY, REPOSITORY)

    with caplog.at_level(logging.WARNING, logger="acr_cleanup"):
        assert asyncio.run(load()) is None
    assert "listing the repository in full" in caplog.text


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b["manifests"][0].__setitem__(1, -1), "not a position"),
        (lambda b: b["manifests"][0].__setitem__(1, 99), "IndexError"),
        (lambda b: b["manifests"][0].__setitem__(10, True), "not a position"),
        (lambda b: b["manifests"][0].__setitem__(3, "10"), "not a whole number"),
        (lambda b: b["manifests"][0].pop(), "ValueError"),
        (lambda b: b["tags"][0].__setitem__(4, "yes"), "not a boolean"),
        (lambda b: b["switches"][0].__setitem__(0, 0), "booleans"),
        (lambda b: b["times"].__setitem__(0, "2026-11-01T12:00:00"), "no time zone"),
        (lambda b: b["contents"][0].__setitem__(1, -1), "is not what follows"),
        (lambda b: b["contents"][0].__setitem__(1, 10**6), "is not what follows"),
        (lambda b: b["contents"].pop(), "bytes follow the last manifest"),
        (lambda b: b["contents"].reverse(), "hash to"),
        (lambda b: b.pop("times"), "KeyError"),
    ],
)
def test_a_damaged_snapshot_is_refused(damage: Any, message: str) -> None:
    body, entries = _body(_stored())
    damage(body)
    with pytest.raises(SnapshotError, match=message):
        decode_snapshot(_gzip(body, entries), REGISTRY, REPOSITORY)


def test_a_manifest_whose_bytes_changed_is_refused() -> None:
    body, entries = _body(_stored())
    flipped = entries.replace(b"schemaVersion", b"schemaVersioN", 1)
    with pytest.raises(SnapshotError, match="hash to"):
        decode_snapshot(_gzip(body, flipped), REGISTRY, REPOSITORY)


def test_a_snapshot_of_another_repository_or_not_gzip_is_refused() -> None:
    data = encode_snapshot(_stored())
    with pytest.raises(SnapshotError, match="written for"):
        decode_snapshot(data, REGISTRY, "team/other")
    with pytest.raises(SnapshotError, match="not a readable snapshot"):
        decode_snapshot(data[:-9], REGISTRY, REPOSITORY)

"""The registry the end-to-end tests clean, the policy they clean it with, and a way to read
the emulator's final state as names a person can check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from acr_emulator import Emulator

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)

POLICY: dict[str, Any] = {
    "version": 1,
    "rules": [
        {
            "name": "api",
            "repositories": ["services/api"],
            "keepLatest": 2,
            "keepTags": ["latest"],
            "lockTags": ["v*.*.*"],
            "untagged": {"olderThan": "7d"},
        },
        {
            "name": "blocked",
            "repositories": ["services/blocked"],
            "keepLatest": 1,
            "lockTags": ["b12"],
        },
    ],
    "safety": {"maxDeletesPerRepository": 10},
}


def day(n: int) -> str:
    """A push time n days into the month before NOW: every image is older than minAge."""
    return (NOW - timedelta(days=30 - n)).isoformat()


def _image(name: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"id": name, "pushed": day(n), **extra}


FIXTURE: dict[str, Any] = {
    "repositories": [
        {
            "name": "services/api",
            "manifests": [
                _image("dangling", 0),
                _image("0.9-amd", 0, architecture="amd64"),
                _image("0.9-arm", 0, architecture="arm64"),
                {
                    "id": "0.9",
                    "manifests": ["0.9-amd", "0.9-arm"],
                    "tags": ["0.9"],
                    "pushed": day(0),
                },
                _image("v1.0.0", 0, tags=["v1.0.0"]),
                _image("locked", 0, tags=["0.8"], attributes={"deleteEnabled": False}),
                _image("1.0", 1, tags=["1.0"]),
                {"id": "1.0-sig", "kind": "artifact", "subject": "1.0", "pushed": day(1)},
                _image("1.1", 2, tags=["1.1"]),
                _image("1.2", 3, tags=["1.2"]),
                _image("1.3", 4, tags=["1.3"]),
                _image("1.4", 5, tags=["1.4"]),
                _image("2.0-amd", 10, architecture="amd64"),
                _image("2.0-arm", 10, architecture="arm64"),
                {
                    "id": "2.0",
                    "manifests": ["2.0-amd", "2.0-arm"],
                    "tags": ["2.0", "latest"],
                    "pushed": day(10),
                },
                {"id": "2.0-sig", "kind": "artifact", "subject": "2.0", "pushed": day(10)},
            ],
        },
        {
            "name": "services/blocked",
            "manifests": [_image(f"b{i}", i, tags=[f"b{i}"]) for i in range(13)],
        },
        {"name": "other/thing", "manifests": [_image("o1", 0), _image("o2", 1)]},
    ]
}

API_BEFORE = frozenset(
    {
        "dangling",
        "0.9",
        "0.9/amd64",
        "0.9/arm64",
        "v1.0.0",
        "0.8",
        "1.0",
        "1.0.sig",
        "1.1",
        "1.2",
        "1.3",
        "1.4",
        "2.0+latest",
        "2.0+latest/amd64",
        "2.0+latest/arm64",
        "2.0+latest.sig",
    }
)
# keepLatest 2 keeps 1.4 and 1.3; 2.0 is kept by `latest` with its platform images and its
# signature; v1.0.0 by lockTags; 0.8 by its lock. 1.0's signature goes with 1.0, 0.9's
# platform images after 0.9, and the untagged leftover is older than 7d.
API_AFTER = frozenset(
    {
        "v1.0.0",
        "0.8",
        "1.3",
        "1.4",
        "2.0+latest",
        "2.0+latest/amd64",
        "2.0+latest/arm64",
        "2.0+latest.sig",
    }
)


def state(emulator: Emulator, repository: str) -> frozenset[str]:
    """The repository's manifests, named by their tags; untagged ones by what anchors them."""
    repo = emulator.registry.repositories.get(repository)
    if repo is None:
        return frozenset()
    manifests = repo.manifests

    def name(digest: str) -> str:
        manifest = manifests[digest]
        if manifest.tags:
            return "+".join(sorted(manifest.tags))
        if manifest.subject is not None and manifest.subject in manifests:
            return name(manifest.subject) + ".sig"
        for parent in manifests.values():
            if any(child.digest == digest for child in parent.children):
                return f"{name(parent.digest)}/{manifest.architecture}"
        return "dangling" if repository == "services/api" else f"untagged@{digest[7:19]}"

    return frozenset(name(d) for d in manifests)


def digests(emulator: Emulator, repository: str) -> frozenset[str]:
    repo = emulator.registry.repositories.get(repository)
    return frozenset(repo.manifests) if repo else frozenset()


def tag_locked(emulator: Emulator, repository: str, tag: str) -> bool:
    attributes = emulator.registry.repositories[repository].tags[tag].attributes
    return not attributes.delete_enabled and not attributes.write_enabled

"""The registry scenarios: what is seeded, and exactly what must remain after each side's run.

Every image is a single-platform OCI image with one tag, pushed one minute after the previous
one, so that "newest first" has no ties and every side agrees on which three are newest. All
timestamps lie days before the run, so no age rule can protect anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

KEEP = 3
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# The oldest seeded image; the newest of 2,000 is about 1.4 days later, still in the past.
SEED_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """`repositories` x `images` images; with `push`, one image is pushed and its event drives
    the run (one repository only)."""

    name: str
    title: str
    repositories: int
    images: int
    push: bool = False

    def repository(self, index: int) -> str:
        if self.repositories == 1:
            return "bench/app"
        return f"bench/team{index // 100:02d}/svc{index:04d}"

    @property
    def seeded(self) -> int:
        return self.repositories * self.images


@dataclass(frozen=True)
class SeedImage:
    repository: str
    tag: str
    pushed: datetime
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def _blob_ref(media_type: str, data: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def image(repository: str, n: int, pushed: datetime) -> SeedImage:
    """A small, distinct OCI image: its own config and layer, so every digest differs."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": pushed.isoformat(),
            "config": {"Labels": {"repository": repository, "build": str(n)}},
        },
        sort_keys=True,
    ).encode()
    layer = f"{repository} build {n}\n".encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _blob_ref(OCI_CONFIG, config),
            "layers": [_blob_ref(OCI_LAYER, layer)],
        },
        sort_keys=True,
    ).encode()
    return SeedImage(repository, f"v{n}", pushed, config, layer, manifest)


def seed_images(scenario: Scenario) -> list[SeedImage]:
    """Every image of the scenario, oldest first within each repository."""
    images: list[SeedImage] = []
    for r in range(scenario.repositories):
        name = scenario.repository(r)
        for n in range(scenario.images):
            images.append(image(name, n, SEED_START + timedelta(minutes=n)))
    return images


def expected_remaining(
    initial: Mapping[str, Mapping[str, datetime]],
    pushed: tuple[str, str] | None,
    *,
    pushed_counts_toward_keep: bool,
) -> set[tuple[str, str]]:
    """(repository, digest) of every manifest that must remain, from the state before the run
    (repository -> digest -> lastUpdateTime, as read from the emulator before the push).

    Per repository the three newest images remain. A pushed image is newest of all: for the
    baselines it is one of the three; for ours it is protected (the function never deletes the
    digest whose push triggered it) and, as the policy defines, a protected image does not use up
    `keepLatest`, so three older images remain beside it.
    """
    remaining: set[tuple[str, str]] = set()
    for name, manifests in initial.items():
        newest = sorted(manifests, key=lambda d: (manifests[d], d), reverse=True)
        keep = KEEP
        if pushed is not None and pushed[0] == name:
            remaining.add(pushed)
            newest = [d for d in newest if d != pushed[1]]
            if pushed_counts_toward_keep:
                keep -= 1
        remaining.update((name, d) for d in newest[:keep])
    return remaining


def issue() -> list[Scenario]:
    """The sizes issue 7 names; the quickstart baseline alone takes about five minutes here."""
    return [
        Scenario("one-repo", "1 repository x 2,000 images", 1, 2000),
        Scenario("many-repos", "500 repositories x 10 images", 500, 10),
        Scenario("push", "push-triggered, 1 repository x 200 images", 1, 200, push=True),
    ]


def full() -> list[Scenario]:
    """What `make bench` runs: the issue's shapes, sized so the whole run takes a few minutes
    on a 2-core machine (the one-delete-at-a-time quickstart baseline dominates)."""
    return [
        Scenario("one-repo", "1 repository x 1,000 images", 1, 1000),
        Scenario("many-repos", "200 repositories x 10 images", 200, 10),
        Scenario("push", "push-triggered, 1 repository x 200 images", 1, 200, push=True),
    ]


def quick() -> list[Scenario]:
    return [
        Scenario("one-repo", "1 repository x 300 images", 1, 300),
        Scenario("many-repos", "60 repositories x 10 images", 60, 10),
        Scenario("push", "push-triggered, 1 repository x 60 images", 1, 60, push=True),
    ]


def tiny() -> list[Scenario]:
    """For the smoke test: proves the harness works, measures nothing."""
    return [
        Scenario("one-repo", "1 repository x 8 images", 1, 8),
        Scenario("many-repos", "3 repositories x 5 images", 3, 5),
        Scenario("push", "push-triggered, 1 repository x 6 images", 1, 6, push=True),
    ]

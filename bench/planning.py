"""Planning 100,000 manifests with the pure planner: time and peak memory.

Run as its own process (`python -m bench.planning --manifests 100000`) so that its peak resident
set size is the planner's and the snapshots', nothing else's. It prints one JSON object.

The snapshots are built in memory and shaped like a real registry: per repository, multi-arch
indexes with two platform children and an attestation child (all untagged, contents read as the
gatherer would), tagged single-platform images, and untagged leftovers, with timestamps spread over
months so that every rule of the policy below has work to do.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from acr_core.models import (
    OCI_INDEX,
    OCI_MANIFEST,
    ChangeableAttributes,
    Descriptor,
    ManifestContent,
    ManifestProperties,
    ManifestReference,
    RepositorySnapshot,
    TagProperties,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)
REGISTRY = "bench.azurecr.io"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
POLICY: dict[str, object] = {
    "version": 1,
    "rules": [
        {
            "name": "everything",
            "repositories": ["**"],
            "keepLatest": 10,
            "keepTags": ["latest"],
            "untagged": {"olderThan": "7d"},
        }
    ],
    "safety": {"maxDeletesPerRepository": 1_000_000, "maxDeleteFraction": 1.0},
}
# Per repository: GROUPS indexes of 4 manifests each, then tagged images, then untagged leftovers.
GROUPS = 50
TAGGED = 250
UNTAGGED = 50
PER_REPOSITORY = GROUPS * 4 + TAGGED + UNTAGGED


def _digest(repo: int, n: int) -> str:
    return f"sha256:{repo:08x}{n:056x}"


def _raw(digest: str, media_type: str) -> bytes:
    # About the size of a real single-layer image manifest, distinct per digest.
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": OCI_CONFIG, "digest": digest, "size": 1469},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest,
                    "size": 3_370_706,
                }
            ],
        }
    ).encode()


def build_snapshot(index: int) -> RepositorySnapshot:
    """One repository of PER_REPOSITORY manifests, deterministic in `index`."""
    name = f"team{index % 20}/service{index}"
    manifests: list[ManifestProperties] = []
    tags: list[TagProperties] = []
    contents: dict[str, ManifestContent] = {}
    n = 0

    def stamp(k: int) -> datetime:
        return NOW - timedelta(hours=k * 3 + 1)

    def add(
        media_type: str,
        tag_names: tuple[str, ...],
        when: datetime,
        *,
        refs: tuple[ManifestReference, ...] = (),
        children: tuple[Descriptor, ...] = (),
        inspect: bool,
        platform: tuple[str, str] | None = ("amd64", "linux"),
    ) -> str:
        nonlocal n
        digest = _digest(index, n)
        n += 1
        manifests.append(
            ManifestProperties(
                registry=REGISTRY,
                repository=name,
                digest=digest,
                created_on=when,
                last_updated_on=when,
                size_in_bytes=3_372_175,
                media_type=media_type,
                config_media_type=None if media_type == OCI_INDEX else OCI_CONFIG,
                architecture=platform[0] if platform else None,
                os=platform[1] if platform else None,
                tags=tag_names,
                references=refs,
            )
        )
        for tag in tag_names:
            tags.append(TagProperties(REGISTRY, name, tag, digest, when, when))
        if inspect:
            contents[digest] = ManifestContent(
                digest=digest,
                media_type=media_type,
                raw=_raw(digest, media_type),
                children=children,
            )
        return digest

    for g in range(GROUPS):
        when = stamp(g)
        platforms = [("amd64", "linux"), ("arm64", "linux"), ("unknown", "unknown")]
        child_digests = [add(OCI_MANIFEST, (), when, inspect=True, platform=p) for p in platforms]
        children = tuple(
            Descriptor(OCI_MANIFEST, d, 1_000, platform={"architecture": p[0], "os": p[1]})
            for d, p in zip(child_digests, platforms, strict=True)
        )
        refs = tuple(
            ManifestReference(d, p[0], p[1]) for d, p in zip(child_digests, platforms, strict=True)
        )
        tag_names = ("latest",) if g == 0 else (f"multi-{g}",)
        add(OCI_INDEX, tag_names, when, refs=refs, children=children, inspect=True, platform=None)
    for t in range(TAGGED):
        add(OCI_MANIFEST, (f"1.{t}.0", f"build-{t}"), stamp(t), inspect=False)
    for u in range(UNTAGGED):
        add(OCI_MANIFEST, (), stamp(u * 5), inspect=True)
    return RepositorySnapshot(
        name=name,
        attributes=ChangeableAttributes(),
        manifests=tuple(manifests),
        tags=tuple(tags),
        contents=contents,
    )


def _rss_mb() -> float:
    """The current resident set size (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(manifests: int) -> dict[str, Any]:
    """Build snapshots holding `manifests` manifests, plan them once, and measure."""
    from acr_core.planning.planner import plan
    from acr_core.planning.policy import load_policy

    policy = load_policy(POLICY)
    rss_start = _rss_mb()
    repositories = max(1, manifests // PER_REPOSITORY)
    build_start = time.perf_counter()
    snapshots = [build_snapshot(i) for i in range(repositories)]
    build_s = time.perf_counter() - build_start
    gc.collect()
    rss_snapshots = _rss_mb()
    start = time.perf_counter()
    result = plan(snapshots, policy, NOW)
    plan_s = time.perf_counter() - start
    return {
        "manifests": sum(len(s.manifests) for s in snapshots),
        "repositories": repositories,
        "build_s": round(build_s, 3),
        "plan_s": round(plan_s, 3),
        "deletions": sum(len(r.deletions) for r in result.repositories),
        "locks": sum(len(r.locks) for r in result.repositories),
        "kept": sum(len(r.kept) for r in result.repositories),
        "rss_start_mb": round(rss_start, 1),
        "rss_with_snapshots_mb": round(rss_snapshots, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.planning", description=__doc__)
    parser.add_argument("--manifests", type=int, default=100_000)
    args = parser.parse_args(argv)
    json.dump(run(args.manifests), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

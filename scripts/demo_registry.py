"""The demo's registry and policy: a few months of a small team's history, in the emulator's
seed format (docs/emulator.md, "Fixture format"), next to what the emulator's own generator
makes of six other teams (`acr_emulator.generate`, profile "demo").

- `shop/web`: multi-arch builds (amd64 + arm64 + a buildx attestation child) every few days,
  tagged `main-<n>`; releases tagged `vX.Y.Z` (the oldest already locked); `latest`; and old
  untagged indexes left behind when `latest` moved.
- `shop/api`: single-platform builds, each signed (a cosign-style signature) with an SBOM,
  both attached as OCI referrers.
- `shop/worker`: nightly builds nobody cleaned up; only the sweep will see it today.
- `sandbox/spikes`: throwaway experiments.
- `base/python`: base images no rule covers, so they are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from acr_emulator.generate import generate

DAY = timedelta(days=1)
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
ATTESTATION = "application/vnd.in-toto+json"
RELEASE = r"regex:^v[0-9]+\.[0-9]+\.[0-9]+$"

GENERATED_SEED = 7  # the generator is deterministic for a seed


def policy(team_repositories: list[str]) -> dict[str, Any]:
    """The demo's policy; `team_repositories` are the generated repositories' patterns."""
    return {
        "version": 1,
        "rules": [
            {
                "name": "services",
                "description": "shop services: the 3 newest builds, every release (locked), latest",
                "repositories": ["shop/*"],
                "keepLatest": 3,
                "keepTags": ["latest", RELEASE],
                "lockTags": [RELEASE],
                "minAge": "1d",
                "untagged": {"olderThan": "7d"},
            },
            {
                "name": "sandbox",
                "description": "experiments: only the newest",
                "repositories": ["sandbox/**"],
                "keepLatest": 1,
                "minAge": "1h",
                "untagged": {"olderThan": "1d"},
            },
            {
                "name": "teams",
                "description": "other teams: 5 newest versions, latest and main",
                "repositories": team_repositories,
                "keepLatest": 5,
                "keepTags": ["latest", "main"],
                "minAge": "1d",
                "untagged": {"olderThan": "14d"},
            },
        ],
    }


def _when(now: datetime, days_ago: float) -> str:
    return (now - days_ago * DAY).isoformat().replace("+00:00", "Z")


def _multi_arch(
    now: datetime, build: str, days_ago: float, tags: list[Any]
) -> list[dict[str, Any]]:
    pushed = _when(now, days_ago)
    return [
        {"id": f"{build}-amd64", "pushed": pushed, "architecture": "amd64", "salt": build,
         "size": 48_000_000, "layers": 5},
        {"id": f"{build}-arm64", "pushed": pushed, "architecture": "arm64", "salt": build,
         "size": 46_500_000, "layers": 5},
        {"id": f"{build}-att", "pushed": pushed, "kind": "artifact", "artifactType": ATTESTATION,
         "salt": build},
        {"id": build, "kind": "index", "pushed": pushed, "tags": tags,
         "manifests": [f"{build}-amd64", f"{build}-arm64",
                       {"ref": f"{build}-att",
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}]},
    ]  # fmt: skip


def _signed(now: datetime, build: str, days_ago: float, tags: list[Any]) -> list[dict[str, Any]]:
    pushed = _when(now, days_ago)
    return [
        {"id": build, "pushed": pushed, "salt": build, "size": 61_000_000, "layers": 7,
         "tags": tags},
        {"id": f"{build}-sig", "kind": "artifact", "subject": build, "pushed": pushed,
         "artifactType": SIGNATURE, "salt": build},
        {"id": f"{build}-sbom", "kind": "artifact", "subject": build, "pushed": pushed,
         "artifactType": SBOM, "salt": build},
    ]  # fmt: skip


def _image(
    now: datetime, build: str, days_ago: float, tags: list[Any], size: int
) -> dict[str, Any]:
    return {"id": build, "pushed": _when(now, days_ago), "salt": build, "size": size,
            "layers": 4, "tags": tags}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoRegistry:
    fixture: dict[str, Any]  # what to seed
    ours: tuple[str, ...]  # the hand-made repositories, told in detail
    generated: tuple[str, ...]  # the generator's repositories, summarised together
    policy: dict[str, Any]


def demo_registry(now: datetime) -> DemoRegistry:
    """The registry as it stands before the demo's pushes, relative to `now`."""
    ours = _story(now)["repositories"]
    generated = generate("demo", seed=GENERATED_SEED, now=now)["repositories"]
    teams = sorted({f"{r['name'].split('/')[0]}/**" for r in generated})
    return DemoRegistry(
        fixture={"repositories": [*ours, *generated]},
        ours=tuple(r["name"] for r in ours),
        generated=tuple(r["name"] for r in generated),
        policy=policy(teams),
    )


def _story(now: datetime) -> dict[str, Any]:
    locked = {"deleteEnabled": False, "writeEnabled": False}
    web: list[dict[str, Any]] = []
    for n, days in enumerate((80, 74, 66, 59, 51, 44, 37, 30, 23, 16, 9, 4), start=101):
        tags: list[Any] = [f"main-{n}"]
        if n == 103:
            tags.append({"name": "v1.0.0", "attributes": locked})
        if n == 107:
            tags.append({"name": "v1.1.0", "attributes": locked})
        if n == 111:
            tags.append("v1.2.0")  # released last week, not locked yet
        if n == 112:
            tags.append("latest")
        web += _multi_arch(now, f"web-{n}", days, tags)
    for n, days in ((90, 70), (91, 45), (92, 20)):  # where `latest` pointed before it moved
        web += _multi_arch(now, f"web-old-{n}", days, [])

    api: list[dict[str, Any]] = []
    for n, days in enumerate((60, 52, 45, 38, 31, 24, 17, 10, 5, 2), start=40):
        tags = [f"build-{n}"]
        if n == 44:
            tags.append("v3.0.0")
        if n == 49:
            tags.append("latest")
        api += _signed(now, f"api-{n}", days, tags)

    worker = [
        _image(now, f"worker-{n}", days, [f"nightly-{n}"], 22_000_000)
        for n, days in enumerate(range(30, 0, -3), start=1)
    ]
    worker.append(_image(now, "worker-rc", 40, ["v0.9.0"], 22_000_000))
    spikes = [
        _image(now, f"spike-{n}", days, [f"try-{n}"], 90_000_000)
        for n, days in enumerate((12, 9, 6, 3), start=1)
    ]
    spikes += [_image(now, "spike-orphan", 5, [], 90_000_000)]
    python = [
        _image(now, f"py-{v}", days, [v], 55_000_000)
        for v, days in (("3.10", 400), ("3.11", 300), ("3.12", 120), ("3.13", 30))
    ]
    return {
        "repositories": [
            {"name": "shop/web", "manifests": web},
            {"name": "shop/api", "manifests": api},
            {"name": "shop/worker", "manifests": worker},
            {"name": "sandbox/spikes", "manifests": spikes},
            {"name": "base/python", "manifests": python},
        ]
    }

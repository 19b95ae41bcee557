"""A generator of realistic registries, as seeding fixtures.

What a long-lived ACR looks like (docs/acr-facts.md sections 1.6, 1.9 and 3): releases over months,
some multi-arch (an index over amd64 and arm64 images plus buildx attestation children with
platform unknown/unknown), some signed (cosign-style signatures and SBOMs as referrers with a
`subject`), release tags locked, `latest` and `main` moved forward release after release, and
untagged leftovers from CI builds. Deterministic for a given `seed`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

PROFILES = {"demo": 240, "small": 2_000, "medium": 20_000, "large": 100_000}
MANIFESTS_PER_REPOSITORY = 500
TEAMS = ("payments", "identity", "search", "platform", "data", "web", "mobile", "ml")
SERVICES = ("api", "worker", "gateway", "frontend", "scheduler", "indexer", "auth", "billing")
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}


def manifest_budget(profile: str) -> int:
    """Manifests for a profile name (demo, small, medium, large) or a plain number."""
    if profile in PROFILES:
        return PROFILES[profile]
    try:
        count = int(profile)
    except ValueError:
        raise ValueError(
            f"--generate takes one of {', '.join(PROFILES)} or a number of manifests, "
            f"not {profile!r}"
        ) from None
    if count < 1:
        raise ValueError("--generate needs at least 1 manifest")
    return count


def generate(
    profile: str = "demo",
    *,
    seed: int = 0,
    now: datetime | None = None,
    months: int = 6,
) -> dict[str, Any]:
    """A fixture with about `manifest_budget(profile)` manifests spread over `months`."""
    budget = manifest_budget(profile)
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    count = max(1, -(-budget // MANIFESTS_PER_REPOSITORY)) if budget > 300 else max(1, budget // 40)
    per_repository = max(1, budget // count)
    repositories = []
    for index in range(count):
        team = TEAMS[index % len(TEAMS)]
        service = SERVICES[(index // len(TEAMS)) % len(SERVICES)]
        suffix = index // (len(TEAMS) * len(SERVICES))
        name = f"{team}/{service}" + (f"-{suffix}" if suffix else "")
        repositories.append(_repository(name, per_repository, rng, now, months))
    return {"repositories": repositories}


def _repository(
    name: str, budget: int, rng: random.Random, now: datetime, months: int
) -> dict[str, Any]:
    manifests: list[dict[str, Any]] = []
    start = now - timedelta(days=30 * months)
    releases = max(1, budget // 3)
    step = (now - start) / releases
    moving: dict[str, tuple[dict[str, Any], datetime]] = {}
    release = 0
    while len(manifests) < budget:
        when = start + step * release + timedelta(minutes=rng.randint(0, 600))
        when = min(when, now - timedelta(minutes=1))
        version = f"1.{release // 10}.{release % 10}"
        kind = rng.random()
        if kind < 0.35 and budget - len(manifests) >= 5:
            head = _multi_arch(manifests, release, when, rng)
        elif kind < 0.75:
            head = _image(manifests, f"r{release}", when, rng.choice(("amd64", "arm64")), rng)
        else:
            # A CI build: tagged only by the moving `main` tag, so it is left untagged when
            # the next build moves `main` on.
            head = _image(manifests, f"r{release}", when, "amd64", rng)
            _move(moving, "main", head, when)
            release += 1
            continue
        head["tags"] = [version]
        if release % 10 == 0:
            head["tags"] = [
                {
                    "name": version,
                    "created": when,
                    "attributes": {"deleteEnabled": False, "writeEnabled": False},
                }
            ]
        _move(moving, "latest", head, when)
        if rng.random() < 0.3 and budget - len(manifests) >= 2:
            _referrer(manifests, head, "sig", SIGNATURE, when + timedelta(minutes=2))
            _referrer(manifests, head, "sbom", SBOM, when + timedelta(minutes=3))
        release += 1
    return {"name": name, "manifests": manifests}


def _move(
    moving: dict[str, tuple[dict[str, Any], datetime]],
    tag: str,
    target: dict[str, Any],
    when: datetime,
) -> None:
    """Point a moving tag at `target`: it keeps its createdTime, as ACR's tags do."""
    created = when
    if tag in moving:
        previous, created = moving[tag]
        previous["tags"] = [t for t in previous["tags"] if _tag_name(t) != tag]
    target.setdefault("tags", []).append({"name": tag, "created": created, "updated": when})
    moving[tag] = (target, created)


def _tag_name(tag: Any) -> str:
    return str(tag["name"] if isinstance(tag, dict) else tag)


def _image(
    manifests: list[dict[str, Any]], ident: str, when: datetime, arch: str, rng: random.Random
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": ident,
        "pushed": when,
        "architecture": arch,
        "os": "linux",
        "layers": 3,
        "size": 20_000_000 + rng.randrange(80_000_000),
    }
    manifests.append(item)
    return item


def _multi_arch(
    manifests: list[dict[str, Any]], release: int, when: datetime, rng: random.Random
) -> dict[str, Any]:
    children: list[Any] = []
    for arch in ("amd64", "arm64"):
        image = _image(manifests, f"r{release}-{arch}", when, arch, rng)
        attestation = {
            "id": f"r{release}-{arch}-att",
            "kind": "artifact",
            "artifactType": "application/vnd.in-toto+json",
            "pushed": when,
        }
        manifests.append(attestation)
        children.append(image["id"])
        children.append(
            {
                "ref": attestation["id"],
                "platform": {"architecture": "unknown", "os": "unknown"},
                "annotations": ATTESTATION,
            }
        )
    index = {"id": f"r{release}", "kind": "index", "manifests": children, "pushed": when}
    manifests.append(index)
    return index


def _referrer(
    manifests: list[dict[str, Any]],
    subject: dict[str, Any],
    name: str,
    artifact_type: str,
    when: datetime,
) -> None:
    manifests.append(
        {
            "id": f"{subject['id']}-{name}",
            "kind": "artifact",
            "artifactType": artifact_type,
            "subject": subject["id"],
            "pushed": when,
        }
    )

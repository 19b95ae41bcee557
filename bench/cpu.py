"""Client CPU per request: `acr_core.AcrClient` against Microsoft's `azure-containerregistry`.

`python -m bench.cpu --side ours --url ... --ca-file ... --repository R` runs one client's
workload in a process of its own and prints one JSON line; `measure()` starts a fresh emulator
per side (no latency, no throttle: the client's own CPU is what is measured) and divides the
side's CPU seconds by the requests the emulator counted.

The workload is the executor's request mix for a cleanup, written with each client's public API:
list the repository's manifests once, then for every image but the three newest read its
manifest properties, read its tag, and delete it, 16 at a time. `--profile FILE` writes a
cProfile of the side (the profile in docs/benchmarks.md comes from it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import emulator
from bench.scenarios import Scenario, seed_images
from bench.wire import tally

CONCURRENCY = 16
KEEP = 3
SIDES = ("sdk", "ours")
SIDE_LABELS = {"sdk": "azure-containerregistry 1.2.0 (aiohttp)", "ours": "acr_core AcrClient"}


async def _ours(url: str, ca_file: str, repository: str) -> int:
    from acr_core.registry.client import AcrClient
    from acr_emulator.testing import AsyncFakeCredential

    async with AcrClient(url, AsyncFakeCredential(), verify=ca_file) as client:
        items = [m async for m in client.list_manifest_properties(repository, order_by="timedesc")]
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(digest: str, tag: str) -> None:
            async with semaphore:
                await client.get_manifest_properties(repository, digest)
                await client.get_tag_properties(repository, tag)
                await client.delete_manifest(repository, digest)

        await asyncio.gather(*(one(m.digest, m.tags[0]) for m in items[KEEP:]))
    return len(items) - KEEP


async def _sdk(url: str, ca_file: str, repository: str) -> int:
    from azure.containerregistry import ArtifactManifestOrder
    from azure.containerregistry.aio import ContainerRegistryClient

    from acr_emulator.testing import AsyncFakeCredential

    # The SDK's aiohttp transport trusts the system store, pointed at the emulator's CA here
    # (as bench.child does): a per-request CA path would rebuild an SSL context per request.
    os.environ["SSL_CERT_FILE"] = ca_file
    credential: Any = AsyncFakeCredential()
    async with ContainerRegistryClient(url, credential) as client:
        order = ArtifactManifestOrder.LAST_UPDATED_ON_DESCENDING
        items = [m async for m in client.list_manifest_properties(repository, order_by=order)]
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(digest: str, tag: str) -> None:
            async with semaphore:
                await client.get_manifest_properties(repository, digest)
                await client.get_tag_properties(repository, tag)
                await client.delete_manifest(repository, digest)

        await asyncio.gather(*(one(m.digest, m.tags[0]) for m in items[KEEP:]))
    return len(items) - KEEP


def _run(side: str, url: str, ca_file: str, repository: str, profile: str | None) -> dict[str, Any]:
    work: Callable[[str, str, str], Any] = _ours if side == "ours" else _sdk
    # Import everything first: the clock measures the workload, not module loading.
    import azure.containerregistry.aio  # noqa: F401

    import acr_core.registry.client  # noqa: F401
    import acr_emulator.testing  # noqa: F401

    # CPU time, not wall time: a socket send that waits for the scheduler is not our CPU.
    profiler = cProfile.Profile(time.process_time) if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    operations = asyncio.run(work(url, ca_file, repository))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile or "")
    return {
        "side": side,
        "operations": operations,
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
    }


def measure(
    images: int, sides: tuple[str, ...] = SIDES, profile_dir: str | None = None
) -> dict[str, Any]:
    """Each side on a fresh emulator of one repository of `images` images; CPU per request."""
    scenario = Scenario("cpu", f"client CPU, 1 repository x {images:,} images", 1, images)
    settings = emulator.EmulatorSettings(latency_ms=0.0)
    results: dict[str, Any] = {}
    for side in sides:
        with emulator.start(settings, seed_images(scenario)) as emu:
            before = emu.counters()
            cmd = [sys.executable, "-m", "bench.cpu", "--side", side, "--url", emu.url]
            cmd += ["--ca-file", emu.ca_file, "--repository", scenario.repository(0)]
            if profile_dir:
                cmd += ["--profile", os.path.join(profile_dir, f"cpu-{side}.prof")]
            import subprocess

            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            counts = emu.counters() - before
        if proc.returncode != 0:
            results[side] = {"error": proc.stderr[-2000:]}
            continue
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        kinds = tally(counts)
        requests = sum(kinds.values())
        results[side] = {
            **child,
            "requests": requests,
            "requests_by_kind": kinds,
            "cpu_ms_per_request": 1000 * child["cpu_s"] / requests if requests else None,
            "cpu_ms_per_operation": 1000 * child["cpu_s"] / child["operations"]
            if child["operations"]
            else None,
        }
    return {"images": images, "concurrency": CONCURRENCY, "sides": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--url")
    parser.add_argument("--ca-file")
    parser.add_argument("--repository")
    parser.add_argument("--profile", default=None, help="write a cProfile of the side here")
    parser.add_argument("--images", type=int, default=1000, help="without --side: measure both")
    parser.add_argument("--profile-dir", default=None, help="without --side: profiles go here")
    args = parser.parse_args(argv)
    if args.side is None:
        print(json.dumps(measure(args.images, profile_dir=args.profile_dir), indent=2))
        return 0
    result = _run(args.side, args.url, args.ca_file, args.repository, args.profile)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

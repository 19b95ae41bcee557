"""Requests and seconds of a push-triggered run as a repository grows (issue 11, item 2).

For each size: one repository of the emulator's generated mix (multi-arch images, signatures,
SBOMs, CI builds left untagged), a sweep-like full run that keeps the snapshot and the raw
manifests (as the function's cache container would), one new image pushed, then the push run
(`incremental`, the pushed digest protected, dry run) and, for comparison, a run without cache
or snapshot. In-process emulator, so seconds are CPU-bound, not network-bound.

    .venv/bin/python -m scripts.measure_push_cost 500 5000 50000
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from acr_core.planning.policy import load_policy
from acr_core.registry.client import AcrClient
from acr_core.run.gathering import Reading
from acr_core.run.manifest_cache import ManifestCache
from acr_core.run.service import run_cleanup
from acr_core.run.snapshots import SnapshotStore
from acr_core.storage.objects import MemoryStore
from acr_emulator import Emulator, EmulatorConfig
from acr_emulator.generate import _repository  # one repository of exactly the size asked
from acr_emulator.testing import AsyncFakeCredential

NOW = datetime(2026, 6, 1, tzinfo=UTC)
REPOSITORY = "payments/api"
POLICY = load_policy(
    {
        "version": 1,
        "rules": [
            {
                "name": "all",
                "repositories": ["**"],
                "keepLatest": 10,
                "untagged": {"olderThan": "7d"},
            }
        ],
        "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
    }
)


async def measure(size: int) -> dict[str, float]:
    emulator = Emulator(EmulatorConfig(now=NOW, frozen_clock=True))
    rng = random.Random(0)  # noqa: S311 - a reproducible fixture, not a secret
    emulator.seed({"repositories": [_repository(REPOSITORY, size, rng, NOW, 6)]})
    memory = MemoryStore()
    reading = Reading(cache=ManifestCache([memory]), snapshots=SnapshotStore(memory))
    async with _client(emulator) as client:
        started = time.perf_counter()
        full = await run_cleanup(
            client, POLICY, repositories=[REPOSITORY], now=NOW, reading=reading
        )
        full_seconds = time.perf_counter() - started
    new = {"id": "new", "pushed": NOW, "architecture": "amd64", "os": "linux", "layers": 1,
           "size": 1000, "tags": ["9.9.9"]}  # fmt: skip
    emulator.seed({"repositories": [{"name": REPOSITORY, "manifests": [new]}]})
    manifests = emulator.registry.repositories[REPOSITORY].manifests
    digest = next(d for d, m in manifests.items() if "9.9.9" in m.tags)
    # A new client, as the function makes one per run: its token requests count too.
    async with _client(emulator) as client:
        push = await run_cleanup(
            client, POLICY, repositories=[REPOSITORY], now=NOW + timedelta(minutes=1),
            protect={REPOSITORY: frozenset({digest})}, reading=replace(reading, incremental=True),
        )  # fmt: skip
    return {
        "manifests": size,
        "full_requests": full.requests.requests,
        "full_gather_s": full.durations.gather,
        "full_plan_s": full.durations.plan,
        "full_total_s": full_seconds,
        "push_requests": push.requests.requests,
        "push_gather_s": push.durations.gather,
        "push_plan_s": push.durations.plan,
        "push_deletions_planned": push.totals.planned_deletions,
    }


def _client(emulator: Emulator) -> AcrClient:
    transport = httpx.ASGITransport(app=emulator.app)
    return AcrClient("https://acr.test", AsyncFakeCredential(), transport=transport)


def main(sizes: list[int]) -> None:
    for size in sizes:
        result = asyncio.run(measure(size))
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in result.items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [500, 5000, 50000])

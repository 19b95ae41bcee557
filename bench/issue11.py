"""Issue 11's benchmarks: push cost vs repository size, CLI repeat runs, the delete ceiling,
the fleet, the latency-bound run and client CPU per request.

Each scenario is a function of its sizes and settings (`Sizes`, per profile) returning a JSON
document, stored as `bench/results[/<profile>]/issue11-<name>.json`; `bench.report11` renders
them. `python -m bench --suite issue11 [--quick|--tiny]` runs them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from acr_core.run.limiter import ExecutionLimits
from bench import cpu, emulator, fleet, pushcost
from bench.runner import Options, run_scenario
from bench.scenarios import Scenario

SCENARIOS = ("push-cost", "cli-repeat", "delete-ceiling", "fleet", "latency-bound", "cpu")


@dataclass(frozen=True)
class Sizes:
    push_manifests: tuple[int, ...] = (500, 5_000, 50_000)
    cli_manifests: int = 500
    ceiling_images: int = 2_000
    fleet_repositories: int = 200
    fleet_images: int = 10
    fleet_workers: int = 8
    latency_images: int = 200
    cpu_images: int = 1_000
    # Standard's per-identity limits sped up this much (the delete ceiling and the fleet).
    time_scale: float = 6.0
    # The emulator's 2026 model, its buckets holding this many seconds of the rate: small, so
    # the first full bucket does not hide a client running over the rate (docs/emulator.md).
    model: str = "2026"
    capacity_seconds: float = 5.0
    latency_ms: float = 10.0
    bound_latency_ms: float = 30.0
    # App settings for the function in the fleet (each worker's share of the identity's
    # budget); `{}` means the function's defaults. Filled in by `fleet_share` unless given.
    fleet_env: dict[str, str] = field(default_factory=dict)
    # ours: acr_core ExecutionLimits as JSON for the CLI-side scenarios.
    ours_limits: str = "{}"


PROFILES = {
    "full": Sizes(),
    # A few minutes on an idle 2-core machine (17 minutes at a load average of 8).
    "quick": Sizes(
        push_manifests=(500, 2_000),
        ceiling_images=300,
        fleet_repositories=40,
        latency_images=60,
        cpu_images=300,
    ),
    "tiny": Sizes(
        push_manifests=(60, 200),
        cli_manifests=60,
        ceiling_images=20,
        fleet_repositories=4,
        fleet_images=5,
        fleet_workers=2,
        latency_images=8,
        cpu_images=20,
        time_scale=30.0,
    ),
}


def _standard(sizes: Sizes) -> emulator.EmulatorSettings:
    return emulator.EmulatorSettings(
        latency_ms=sizes.latency_ms,
        sku="Standard",
        time_scale=sizes.time_scale,
        model=sizes.model,
        capacity_seconds=sizes.capacity_seconds,
    )


def fleet_share(sizes: Sizes) -> dict[str, str]:
    """Each worker's share of the identity's budgets, as the function's app settings, in the
    emulator's sped-up minutes: the per-identity limits divided by the workers. (Before the
    2026 settings, CLEANUP_MAX_WRITES_PER_MINUTE is the budget deletions are paced by; with
    them it is DataplaneWrite's, which the delete share stays below.)"""
    if sizes.fleet_env:
        return dict(sizes.fleet_env)
    settings = _standard(sizes)
    deletes = int(settings.writes_per_minute * settings.time_scale / sizes.fleet_workers)
    reads = int(settings.reads_per_minute * settings.time_scale / sizes.fleet_workers)
    return {
        "CLEANUP_MAX_WRITES_PER_MINUTE": str(deletes),
        "CLEANUP_MAX_DELETES_PER_MINUTE": str(deletes),
        "CLEANUP_MAX_READS_PER_MINUTE": str(reads),
    }


def push_cost(sizes: Sizes, deadline: float) -> dict[str, Any]:
    settings = emulator.EmulatorSettings(latency_ms=sizes.latency_ms, throttle=False)
    runs = []
    for manifests in sizes.push_manifests:
        print(f"  push-cost: {manifests:,} manifests ...", file=sys.stderr, flush=True)
        try:
            runs.append(pushcost.push_cost(manifests, settings, deadline))
        except Exception as exc:
            runs.append({"manifests": manifests, "error": f"{type(exc).__name__}: {exc}"[:1000]})
    return {"settings": settings.as_dict(), "runs": runs}


def cli_repeat(sizes: Sizes, deadline: float) -> dict[str, Any]:
    settings = emulator.EmulatorSettings(latency_ms=sizes.latency_ms, throttle=False)
    return {"settings": settings.as_dict(), **pushcost.cli_repeat(sizes.cli_manifests, settings)}


def delete_ceiling(sizes: Sizes, deadline: float) -> dict[str, Any]:
    settings = _standard(sizes)
    scenario = Scenario(
        "delete-ceiling", f"1 repository x {sizes.ceiling_images:,} images", 1, sizes.ceiling_images
    )
    options = Options(settings=settings, deadline=deadline, ours_limits=_paced(sizes))
    sides = run_scenario(scenario, ("quickstart", "careful", "ours"), options)
    return {"settings": settings.as_dict(), "scenario": asdict(scenario), "sides": sides}


def _paced(sizes: Sizes) -> str:
    """Ours as a user runs it against a Standard registry (`--sku standard`): its per-identity
    limits (docs/acr-facts.md section 4.1), in the emulator's sped-up minutes."""
    if sizes.ours_limits != "{}":
        return sizes.ours_limits
    limits = ExecutionLimits.for_sku("standard")
    scaled = {
        name: getattr(limits, name) * sizes.time_scale
        for name in ("deletes_per_minute", "reads_per_minute", "writes_per_minute")
        if getattr(limits, name) is not None
    }
    return json.dumps(scaled)


def fleet_run(sizes: Sizes, deadline: float) -> dict[str, Any]:
    settings = _standard(sizes)
    scenario = Scenario(
        "fleet",
        f"{sizes.fleet_repositories} repositories x {sizes.fleet_images} images",
        sizes.fleet_repositories,
        sizes.fleet_images,
    )
    result = fleet.run(scenario, sizes.fleet_workers, settings, fleet_share(sizes), deadline)
    return {"settings": settings.as_dict(), "scenario": asdict(scenario), **result}


def latency_bound(sizes: Sizes, deadline: float) -> dict[str, Any]:
    settings = emulator.EmulatorSettings(latency_ms=sizes.bound_latency_ms, throttle=False)
    scenario = Scenario(
        "latency-bound", f"1 repository x {sizes.latency_images} images", 1, sizes.latency_images
    )
    options = Options(settings=settings, deadline=deadline, ours_limits=sizes.ours_limits)
    sides = run_scenario(scenario, ("quickstart", "ours"), options)
    for r in sides.values():
        # Requests in flight on average, from the requests and the injected latency alone:
        # a lower bound (the emulator's own time per request is left out).
        if r.get("wall_s") and r.get("requests_total"):
            latency = settings.latency_ms / 1000
            r["effective_concurrency"] = r["requests_total"] * latency / r["wall_s"]
    return {"settings": settings.as_dict(), "scenario": asdict(scenario), "sides": sides}


def cpu_run(sizes: Sizes, deadline: float) -> dict[str, Any]:
    return cpu.measure(sizes.cpu_images)


RUNNERS: dict[str, Callable[[Sizes, float], dict[str, Any]]] = {
    "push-cost": push_cost,
    "cli-repeat": cli_repeat,
    "delete-ceiling": delete_ceiling,
    "fleet": fleet_run,
    "latency-bound": latency_bound,
    "cpu": cpu_run,
}


def run_all(
    profile: str,
    only: list[str] | None,
    deadline: float,
    overrides: dict[str, Any],
    store: Callable[[str, dict[str, Any]], None] = lambda name, data: None,
) -> dict[str, dict[str, Any]]:
    """Every chosen scenario, each given to `store` as soon as it ends; a scenario that fails
    is stored with its error, not skipped."""
    sizes = replace(PROFILES[profile], **overrides)
    results: dict[str, dict[str, Any]] = {}
    for name in SCENARIOS:
        if only and name not in only:
            continue
        print(f"issue 11: {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            data = RUNNERS[name](sizes, deadline)
        except Exception as exc:
            data = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        data["elapsed_s"] = time.monotonic() - started
        data["sizes"] = json.loads(json.dumps(asdict(sizes)))
        results[name] = data
        store(name, data)
    return results

"""Push cost vs repository size, and the CLI's repeat runs (issue 11).

Push cost: one repository of 500, 5,000 or 50,000 manifests with the demo's mix
(`acr_emulator.generate`: multi-arch indexes with attestation children, signatures and SBOMs,
locked release tags, untagged CI leftovers) is served by a fresh emulator whose `ImagePushed`
webhook points at a process of the function's own (`python -m bench.pushcost --child`). That
process hands each delivered event to `function_app.on_image_pushed`, configured as the app
settings would configure it. Two images are pushed one after the other: the first run is the
repository's first cleanup (and warms whatever the function keeps between runs); the second is
the push run the issue measures: its requests (the emulator's counters, the push's own requests
left out), its seconds, and its plan time (`planner.plan`, timed in the process).

CLI repeat: `acr-cleanup plan --repository R` twice against an unchanged 500-manifest
repository, each run a process of its own with one cache directory; the requests of each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import emulator
from bench.events import PushListener
from bench.scenarios import image
from bench.wire import tally

REPOSITORY = "bench/app"
# Every tagged image stays (no `keepLatest`); untagged leftovers go after a week. So the first
# run deletes the old CI leftovers (about a tenth of the demo's mix) and the repository keeps
# about the size it was seeded with, and the push run is the steady state: it must read what
# changed, plan, and find nothing more to delete. Safety limits raised: a first run of 50,000
# deletes thousands of leftovers at once, which is what they exist to stop by accident.
POLICY: dict[str, Any] = {
    "version": 1,
    "rules": [{"name": "bench", "repositories": ["bench/**"], "untagged": {"olderThan": "7d"}}],
    "safety": {"maxDeletesPerRepository": 1_000_000, "maxDeleteFraction": 1.0},
}
ROOT = Path(__file__).resolve().parent.parent


def demo_fixture(manifests: int, *, seed: int = 0) -> dict[str, Any]:
    """One repository of about `manifests` manifests in the demo's mix, over six months."""
    from acr_emulator import generate

    rng = random.Random(seed)
    now = datetime.now(UTC) - timedelta(hours=2)
    # `generate` spreads a profile over repositories of 500; one repository of any size is its
    # per-repository builder, the same mix.
    repo = generate._repository(REPOSITORY, manifests, rng, now, 6)
    # As JSON, the form the emulator's seed endpoint takes (times as ISO 8601 text).
    text = json.dumps({"repositories": [repo]}, default=lambda value: value.isoformat())
    fixture: dict[str, Any] = json.loads(text)
    return fixture


async def _child(args: argparse.Namespace) -> None:
    """Handle `args.runs` push events with the function's handler, one JSON line per run."""
    from acr_core.planning import planner
    from acr_emulator.testing import AsyncFakeCredential
    from bench.ours import function_shell, handle_push

    plan_seconds: list[float] = []
    # The planner's CPU seconds too: on a shared machine its wall time is mostly waiting.
    plan_cpu: list[float] = []
    inner = planner.plan

    def timed_plan(*a: Any, **k: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return inner(*a, **k)
        finally:
            plan_seconds.append(time.perf_counter() - started)
            plan_cpu.append(time.thread_time() - cpu)

    planner.plan = timed_plan
    # One warm instance for both runs, as the Functions host keeps one between events.
    shell = function_shell(args.url, AsyncFakeCredential(), args.ca_file, args.resource_id, POLICY)
    async with PushListener(args.listen) as listener:
        print(json.dumps({"ready": True}), flush=True)
        for run in range(args.runs):
            pushed = await listener.wait(args.deadline)
            plan_seconds.clear()
            plan_cpu.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            summary = await handle_push(shell, pushed)
            line = {
                "run": run,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "plan_s": sum(plan_seconds),
                "plan_cpu_s": sum(plan_cpu),
                "summary": summary,
            }
            print(json.dumps(line), flush=True)


def _readline(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    from bench.runner import _readline as read

    assert proc.stdout is not None
    line = read(proc.stdout, timeout)
    if not line.startswith("{"):
        raise RuntimeError(f"the function process said {line!r}")
    result: dict[str, Any] = json.loads(line)
    return result


def push_cost(
    manifests: int, settings: emulator.EmulatorSettings, deadline: float
) -> dict[str, Any]:
    """Two pushes into a fresh `manifests`-manifest repository; the second run's cost."""
    from bench.runner import _free_port

    port = _free_port()
    fixture = demo_fixture(manifests)
    seeded = len(fixture["repositories"][0]["manifests"])
    with emulator.start(settings, [], webhook=f"http://127.0.0.1:{port}/", seed=fixture) as emu:
        emu.configure(settings)
        cmd = [sys.executable, "-m", "bench.pushcost", "--child", "--listen", str(port)]
        cmd += ["--url", emu.url, "--ca-file", emu.ca_file, "--resource-id", emu.resource_id]
        cmd += ["--deadline", str(deadline * 4)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            if not _readline(proc, 60).get("ready"):
                raise RuntimeError("the function process did not start")
            runs = []
            for n in range(2):
                before = emu.counters()
                new = image(REPOSITORY, 100_000 + n, emu.now())
                _, push_requests = emu.push(new)
                # The first run reads the whole repository: 50,000 manifests take minutes.
                result = _readline(proc, deadline * (4 if n == 0 else 1))
                counts = emu.counters() - before
                kinds = Counter(tally(counts))
                kinds.subtract(tally(push_requests))
                result["requests"] = {k: v for k, v in kinds.items() if v}
                result["requests_total"] = sum(kinds.values())
                runs.append(result)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return {"manifests": seeded, "first": runs[0], "push": runs[1]}


def cli_repeat(manifests: int, settings: emulator.EmulatorSettings) -> dict[str, Any]:
    """`acr-cleanup plan --repository R` twice on an unchanged repository; requests of each."""
    fixture = demo_fixture(manifests)
    runs: list[dict[str, Any]] = []
    with (
        emulator.start(settings, [], seed=fixture) as emu,
        tempfile.TemporaryDirectory() as tmp,
    ):
        emu.configure(settings)
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps(POLICY), encoding="utf-8")
        env = {
            **os.environ,
            "ACR_USERNAME": emu.admin_username,
            "ACR_PASSWORD": emu.admin_password,
            # The CLI's default cache lives under the user's cache directory: one of our own.
            "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
        }
        cmd = [sys.executable, "-m", "acr_core", "plan", "--registry", emu.url]
        cmd += ["--policy", str(policy), "--repository", REPOSITORY, "--ca-file", emu.ca_file]
        cmd += ["--output", "json"]
        for _ in range(2):
            before = emu.counters()
            started = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - started
            kinds = tally(emu.counters() - before)
            runs.append(
                {
                    "exit": proc.returncode,
                    "wall_s": wall,
                    "requests": {k: v for k, v in kinds.items() if v},
                    "requests_total": sum(kinds.values()),
                    "stderr": proc.stderr[-500:] if proc.returncode not in (0, 1) else "",
                }
            )
    return {"manifests": len(fixture["repositories"][0]["manifests"]), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pushcost", description=__doc__)
    parser.add_argument("--child", action="store_true", help="be the function's process")
    parser.add_argument("--listen", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--ca-file", default="")
    parser.add_argument("--resource-id", default="")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--manifests", type=int, default=500, help="without --child")
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args))
        return 0
    settings = emulator.EmulatorSettings(latency_ms=10.0, throttle=False)
    print(json.dumps(push_cost(args.manifests, settings, args.deadline), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

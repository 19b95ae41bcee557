"""Run every side of a scenario on identical fresh state and measure it.

For each side: start a fresh emulator process seeded with the scenario, start the side in a
process of its own (`bench.child`), push the triggering image if the scenario is push-driven,
wait for the side, then read the emulator's counters and its final state. The emulator's
counters are the authority for requests; the final state is compared with exactly what must
remain, so a fast wrong answer is reported as wrong.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench import emulator
from bench.scenarios import Scenario, expected_remaining, image, seed_images
from bench.wire import is_manifest_delete, phase_rate, sustained_rate, tally

SIDES = ("quickstart", "careful", "ours")
SIDE_DESCRIPTIONS = {
    "quickstart": "Microsoft's Python quickstart code (azure-containerregistry 1.2.0 async), "
    "one delete at a time",
    "careful": "same SDK, each repository listed first, deletes under a semaphore of 32",
    "ours": "acr_core run_cleanup, keepLatest 3, default limits (adaptive concurrency, "
    "no write budget)",
}
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    settings: emulator.EmulatorSettings
    deadline: float = 600.0
    ours_limits: str = "{}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _readline(stream: IO[str], timeout: float) -> str:
    """One line from a child's stdout, or "" if none came within `timeout` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def run_side(scenario: Scenario, side: str, options: Options) -> dict[str, Any]:
    """One side of one scenario, on a freshly seeded emulator."""
    port = _free_port() if scenario.push else 0
    webhook = f"http://127.0.0.1:{port}/" if scenario.push else None
    pushed: tuple[str, str] | None = None
    push_requests: Counter[tuple[str, str, int]] = Counter()
    push_done: float | None = None
    with emulator.start(options.settings, seed_images(scenario), webhook=webhook) as emu:
        initial = emu.state()
        emu.configure(options.settings)
        before = emu.counters()
        cmd = [
            sys.executable,
            "-m",
            "bench.child",
            "--side",
            side,
            "--url",
            emu.url,
            "--ca-file",
            emu.ca_file,
            "--deadline",
            str(options.deadline),
        ]
        if side == "ours":
            cmd += ["--limits", options.ours_limits]
        if scenario.push:
            cmd += ["--listen", str(port), "--resource-id", emu.resource_id]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            if scenario.push:
                assert proc.stdout is not None
                ready = _readline(proc.stdout, 30.0)
                if '"ready"' not in ready:
                    raise RuntimeError(f"the {side} process did not start listening: {ready!r}")
                new = image(scenario.repository(0), scenario.images, emu.now())
                digest, push_requests = emu.push(new)
                push_done = time.time()
                pushed = (new.repository, digest)
            out, err = proc.communicate(timeout=options.deadline + 60)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        after = emu.counters()
        emu.configure(None)
        final = emu.state()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {side} process failed ({proc.returncode}): {err[-2000:]}")
    child = json.loads(lines[-1])
    expected = expected_remaining(initial, pushed, pushed_counts_toward_keep=side != "ours")
    before_set = {(r, d) for r, ds in initial.items() for d in ds} | ({pushed} if pushed else set())
    final_set = {(r, d) for r, ds in final.items() for d in ds}
    counts = after - before
    return _measure(
        child, counts, push_requests, before_set, expected, final_set, push_done, options
    )


def _measure(
    child: dict[str, Any],
    counts: Counter[tuple[str, str, int]],
    push_requests: Counter[tuple[str, str, int]],
    initial: set[tuple[str, str]],
    expected: set[tuple[str, str]],
    final: set[tuple[str, str]],
    push_done: float | None,
    options: Options,
) -> dict[str, Any]:
    kinds = Counter(tally(counts))
    kinds.subtract(tally(push_requests))
    delete_requests = sum(
        n for (method, path, _), n in counts.items() if is_manifest_delete(method, path)
    )
    deleted = len(initial - final)
    total = sum(kinds.values())
    limit = options.settings.write_limit_per_s
    times = child.get("deletes", {}).get("times", [])
    burst = options.settings.burst_tokens
    # Leaving the credit out understates a slow side by burst / duration: only say "sustained"
    # when at least four credits' worth of deletes came after it.
    sustained = sustained_rate(times, burst, minimum=int(4 * burst))
    missing, unexpected = expected - final, final - expected
    result: dict[str, Any] = {
        "wall_s": child["wall_s"],
        "cpu_s": child["cpu_s"],
        "peak_rss_mb": child["peak_rss_mb"],
        "deleted": deleted,
        "expected_deleted": len(initial - expected),
        "deleted_by_own_account": child.get("deleted"),
        "failed": child.get("failed", 0),
        "errors": child.get("errors", []),
        "error": child.get("error"),
        "requests": dict(kinds),
        "requests_total": total,
        "throttled_429": kinds["throttled_429"],
        "requests_per_deleted": total / deleted if deleted else None,
        "delete_requests": delete_requests,
        "delete_requests_per_deleted": delete_requests / deleted if deleted else None,
        "deletes_per_s": deleted / child["wall_s"] if child["wall_s"] else None,
        "delete_phase_per_s": phase_rate(times),
        "deletes_per_half_second": _histogram(times, 0.5),
        "sustained_deletes_per_s": sustained,
        "write_utilisation": sustained / limit if sustained and limit else None,
        "state_correct": not missing and not unexpected,
        "wrongly_deleted": len(missing),
        "left_behind": len(unexpected),
    }
    if missing or unexpected:
        result["state_note"] = (
            f"final state wrong: {len(missing)} manifests that must remain were deleted, "
            f"{len(unexpected)} that should have gone remain"
        )
    if push_done is not None and "event_received" in child:
        result["event_delivery_s"] = child["event_received"] - push_done
        result["push_to_clean_s"] = child["end"] - push_done
    for key in ("status", "skipped", "report_durations", "handler"):
        if key in child:
            result[key] = child[key]
    return result


def _histogram(times: list[float], width: float) -> list[int]:
    """Accepted deletes per `width` seconds from the first one: the shape of the delete phase."""
    if not times:
        return []
    start = min(times)
    counts = [0] * (int((max(times) - start) / width) + 1)
    for t in times:
        counts[int((t - start) / width)] += 1
    return counts


def run_scenario(scenario: Scenario, sides: tuple[str, ...], options: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for side in sides:
        print(f"  {scenario.name}: {side} ...", file=sys.stderr, flush=True)
        load_before = os.getloadavg()[0]
        try:
            results[side] = run_side(scenario, side, options)
        except Exception as exc:
            results[side] = {"error": f"{type(exc).__name__}: {exc}"[:2000], "state_correct": False}
        r = results[side]
        # Other work on the machine shows here; the sides run one after another.
        r["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        print(
            f"  {scenario.name}: {side}: {r.get('wall_s', 0):.2f} s, deleted {r.get('deleted')}, "
            f"429s {r.get('throttled_429')}, correct {r.get('state_correct')}"
            + (f", error {r['error']}" if r.get("error") else ""),
            file=sys.stderr,
            flush=True,
        )
    return results

"""Fleet: concurrent sweep workers sharing one identity, fed by a Storage queue (issue 11).

The harness starts Azurite's queue service and a fresh emulator seeded with `repositories` x
`images` images, puts one sweep message per repository on the queue as the timer's output
binding would (`{"repository": name}`, base64, as the Functions host writes it), and starts
`workers` processes (`python -m bench.fleet --worker`). Each is one function instance: the
function's app configured from its app settings, all with the same identity (the emulator's
fake AAD credential, one object id), taking one message at a time from the queue as the queue
trigger does and handing its body to `handlers.queued_sweep`, deleting the message once the
handler returned. A worker stops when the queue has stayed empty for a while.

Measured: the fleet's accepted deletes over time (each worker's client times its own, on the
shared wall clock) against the per-identity delete limit, the 429s the emulator counted, and
the exact final state (read with Microsoft's SDK).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import emulator
from bench.emulator import RESOURCE_ID
from bench.scenarios import Scenario, expected_remaining, seed_images
from bench.wire import sustained_rate, tally

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "acr-cleanup-sweep"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# A worker with nothing to do for this long stops (the queue is drained).
IDLE_STOP_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def azurite_binary() -> Path | None:
    base = os.environ.get("AZURITE")
    path = (
        Path(base).parent / "azurite-queue"
        if base
        else ROOT / ".tools/azurite/node_modules/.bin/azurite-queue"
    )
    return path if path.exists() else None


@contextmanager
def azurite_queue() -> Iterator[str]:
    """Azurite's queue service on a free loopback port, in memory; its connection string."""
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("Azurite is not installed (make setup installs it)")
    port = _free_port()
    cmd = [str(binary), "--queueHost", "127.0.0.1", "--queuePort", str(port)]
    cmd += ["--inMemoryPersistence", "--disableTelemetry", "--silent", "--skipApiVersionCheck"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("azurite-queue did not start") from None
                time.sleep(0.1)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _queue(connection: str) -> Any:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    return QueueClient.from_connection_string(
        connection,
        QUEUE,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


async def _worker(args: argparse.Namespace) -> dict[str, Any]:
    """One function instance: take messages as the queue trigger does (host.json's `batchSize`
    at a time, a new batch once no more than `newBatchThreshold` are being handled), hand each
    to the trigger's handler, delete it once the handler returned; stop once idle."""
    import function_app
    from acr_core.app import handlers
    from acr_emulator.testing import AsyncFakeCredential
    from bench.ours import POLICY, function_shell
    from bench.wire import DeleteClock, RecordingTransport

    clock = DeleteClock()
    _record_deletes(clock, RecordingTransport)
    shell = function_shell(args.url, AsyncFakeCredential(), args.ca_file, RESOURCE_ID, POLICY)
    phases: dict[str, dict[str, Any]] = {}

    def on_report(_trigger: str, report: Any) -> None:
        summary = report.to_dict()
        for repository in summary["repositories"]:
            phases[repository["repository"]] = summary["durations"]

    shell = dataclasses.replace(shell, on_report=on_report)
    queue = _queue(args.connection)
    batch, threshold = host_batching()
    # When each message was asked for, received, handled and deleted (wall clock), its phases.
    runs: list[dict[str, Any]] = []

    async def handle(message: Any, asked: float) -> None:
        body = str(message.content).encode()
        run: dict[str, Any] = {"asked": asked, "received": time.time()}
        await handlers.queued_sweep(shell, body, message.id)
        run["handled"] = time.time()
        run.update(phases.pop(json.loads(body).get("repository", ""), {}))
        await asyncio.to_thread(queue.delete_message, message)
        run["deleted"] = time.time()
        runs.append(run)

    # Imported and configured: wait until every worker is (see `run`).
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)
    started, ready_cpu = time.time(), time.process_time()
    await _take_messages(queue, batch, threshold, handle)
    del function_app
    return {
        "handled": len(runs),
        "deletes": clock.as_dict(),
        "started": started,
        "stopped": time.time(),
        "runs": runs,
        "batching": [batch, threshold],
        "cpu_s": time.process_time() - ready_cpu,  # after the start, imports left out
    }


Handler = Callable[[Any, float], Coroutine[Any, Any, None]]


async def _take_messages(queue: Any, batch: int, threshold: int, handle: Handler) -> None:
    """The queue trigger's loop: fetch up to `batch` messages whenever no more than
    `threshold` are being handled, until the queue stayed empty for `IDLE_STOP_S` with nothing
    in hand. A handler that raises leaves its message on the queue (hidden for 300 s)."""
    running: set[asyncio.Task[None]] = set()
    idle_since = time.monotonic()
    while running or time.monotonic() - idle_since < IDLE_STOP_S:
        if len(running) <= threshold:
            asked = time.time()
            # visibility_timeout: a message being handled is hidden from the other workers.
            messages = await asyncio.to_thread(
                lambda: list(
                    queue.receive_messages(
                        messages_per_page=batch, max_messages=batch, visibility_timeout=300
                    )
                )
            )
            for message in messages:
                task = asyncio.create_task(handle(message, asked))
                running.add(task)
                task.add_done_callback(running.discard)
            if messages:
                idle_since = time.monotonic()
                continue
            if not running:
                await asyncio.sleep(0.2)
                continue
        await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
        idle_since = time.monotonic()


def host_batching() -> tuple[int, int]:
    """host.json's queue `batchSize` and `newBatchThreshold` (the product's own settings, so
    the simulated instances take messages as the deployed ones would)."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    batch = int(queues.get("batchSize", 16))
    return batch, int(queues.get("newBatchThreshold", batch // 2))


def _record_deletes(clock: Any, recording: Any) -> None:
    """Have every AcrClient the function builds time its accepted deletes on `clock`."""
    from acr_core.registry import client as client_module

    original = getattr(client_module, "http_transport")  # noqa: B009 (not exported)

    def wrapped(verify: Any) -> Any:
        return recording(original(verify), clock)

    setattr(client_module, "http_transport", wrapped)  # noqa: B010


def run(
    scenario: Scenario,
    workers: int,
    settings: emulator.EmulatorSettings,
    share_env: dict[str, str],
    deadline: float,
) -> dict[str, Any]:
    """The fleet over `scenario`'s repositories; its rate, 429s and final state."""
    with azurite_queue() as connection, emulator.start(settings, seed_images(scenario)) as emu:
        initial = emu.state()
        queue = _queue(connection)
        queue.create_queue()
        for r in range(scenario.repositories):
            queue.send_message(json.dumps({"repository": scenario.repository(r)}))
        emu.configure(settings)
        before = emu.counters()
        env = {**os.environ, "BENCH_FUNCTION_ENV": json.dumps(share_env)}
        cmd = [sys.executable, "-m", "bench.fleet", "--worker", "--url", emu.url]
        cmd += ["--ca-file", emu.ca_file, "--connection", connection]
        procs = [
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(workers)
        ]
        _start_together(procs)
        started = time.time()
        cpu_before = _process_cpu(emu.process.pid), _machine_cpu()
        outs = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=deadline)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            outs.append(out)
        wall = time.time() - started
        cpu_after = _process_cpu(emu.process.pid), _machine_cpu()
        counts = emu.counters() - before
        emu.configure(None)
        final = emu.state()
        left = queue.get_queue_properties().approximate_message_count
    results = [json.loads(o.strip().splitlines()[-1]) for o in outs if o.strip()]
    times = sorted(t for r in results for t in r["deletes"]["times"])
    kinds = tally(counts)
    total = sum(kinds.values())
    expected = expected_remaining(initial, None, pushed_counts_toward_keep=True)
    final_set = {(r, d) for r, ds in final.items() for d in ds}
    limit = settings.write_limit_per_s
    burst = settings.burst_tokens
    sustained = sustained_rate(times, burst, minimum=int(4 * burst))
    return {
        "workers": workers,
        "workers_reported": len(results),
        "messages_handled": sum(r["handled"] for r in results),
        "messages_left": left,
        "wall_s": wall,
        "deleted": len(times),
        "requests": kinds,
        "requests_total": total,
        "throttled_429": kinds["throttled_429"],
        "throttled_fraction": kinds["throttled_429"] / total if total else None,
        "sustained_deletes_per_s": sustained,
        "delete_limit_per_s": limit,
        "limit_utilisation": sustained / limit if sustained else None,
        "state_correct": final_set == expected,
        "wrongly_deleted": len(expected - final_set),
        "left_behind": len(final_set - expected),
        "share_env": share_env,
        "cpu": _cpu_use(cpu_before, cpu_after, wall, results),
        "timeline": timeline(results, started, min(times, default=started)),
    }


def _start_together(procs: list[subprocess.Popen[str]]) -> None:
    """Let the workers go once every one has imported and configured the function app.

    Each deployed instance has CPU of its own; 8 simulated ones share this machine's, and their
    imports (seconds of CPU each, more without cached bytecode) would otherwise overlap the
    first workers' runs and stagger the fleet's start by however long the machine took."""
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready", or "" if it died (its output then says why)
    for proc in procs:
        assert proc.stdin is not None
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used; 0 where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def _cpu_use(
    before: tuple[float, tuple[float, float]],
    after: tuple[float, tuple[float, float]],
    wall: float,
    results: list[dict[str, Any]],
) -> dict[str, float | None]:
    """Where the CPU went while the fleet ran: the emulator's and the workers' seconds, and how
    busy the whole machine was (1.0: every core busy, with this bench or anything else)."""
    busy = after[1][0] - before[1][0]
    total = after[1][1] - before[1][1]
    return {
        "wall_s": round(wall, 2),
        "emulator_cpu_s": round(after[0] - before[0], 2),
        "workers_cpu_s": round(sum(r.get("cpu_s", 0.0) for r in results), 2),
        "machine_busy_fraction": round(busy / total, 3) if total else None,
        "cores": os.cpu_count(),
    }


def timeline(results: list[dict[str, Any]], started: float, first: float) -> list[dict[str, Any]]:
    """Each worker's life in seconds from the fleet's first accepted delete: started (after its
    imports), first and last accepted delete, stopped; the seconds it spent handling messages,
    waiting for the queue (receive and delete), and on its own CPU. Where the figure falls
    short, this says which part of the run the workers spent their time in."""
    rows = []
    for r in results:
        runs, deletes = r.get("runs", []), r["deletes"]["times"]
        rows.append(
            {
                "process_started": round(started - first, 2),
                "started": round(r.get("started", started) - first, 2),
                "first_delete": round(min(deletes) - first, 2) if deletes else None,
                "last_delete": round(max(deletes) - first, 2) if deletes else None,
                "stopped": round(r.get("stopped", started) - first, 2),
                "runs": len(runs),
                "deletes": len(deletes),
                "handling_s": round(sum(x["handled"] - x["received"] for x in runs), 2),
                "queue_s": round(
                    sum(x["received"] - x["asked"] + x["deleted"] - x["handled"] for x in runs), 2
                ),
                "cpu_s": round(r.get("cpu_s", 0.0), 2),
                "run_spans": [
                    [round(x["received"] - first, 2), round(x["handled"] - first, 2)] for x in runs
                ],
                "run_phases": [
                    {k: x[k] for k in ("gatherSeconds", "planSeconds", "applySeconds") if k in x}
                    for x in runs
                ],
                "delete_times": [round(t - first, 3) for t in sorted(deletes)],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--url", default="")
    parser.add_argument("--ca-file", default="")
    parser.add_argument("--connection", default="")
    args = parser.parse_args(argv)
    if not args.worker:
        parser.error("run through python -m bench (or pass --worker)")
    result = asyncio.run(_worker(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

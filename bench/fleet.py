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
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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
    """One function instance: take a message, run the queue trigger's handler, repeat."""
    import function_app
    from acr_core.app import handlers
    from acr_emulator.testing import AsyncFakeCredential
    from bench.ours import POLICY, function_shell
    from bench.wire import DeleteClock, RecordingTransport

    clock = DeleteClock()
    _record_deletes(clock, RecordingTransport)
    shell = function_shell(args.url, AsyncFakeCredential(), args.ca_file, RESOURCE_ID, POLICY)
    queue = _queue(args.connection)
    handled, idle_since = 0, time.monotonic()
    while time.monotonic() - idle_since < IDLE_STOP_S:
        # visibility_timeout: a message being handled is hidden from the other workers.
        messages = await asyncio.to_thread(
            lambda: list(queue.receive_messages(max_messages=1, visibility_timeout=300))
        )
        if not messages:
            await asyncio.sleep(0.2)
            continue
        for message in messages:
            body = str(message.content).encode()
            await handlers.queued_sweep(shell, body, message.id)
            await asyncio.to_thread(queue.delete_message, message)
            handled += 1
        idle_since = time.monotonic()
    del function_app
    return {"handled": handled, "deletes": clock.as_dict()}


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
        started = time.time()
        procs = [
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        outs = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=deadline)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            outs.append(out)
        wall = time.time() - started
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
    }


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

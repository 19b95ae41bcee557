"""Run one side of one scenario in a process of its own and print one JSON line.

`python -m bench.child --side ours --url https://127.0.0.1:PORT --ca-file ca.pem [...]`

A process per side keeps the sides' CPU and memory apart: its peak resident set size
(`ru_maxrss`) and CPU time are that side's alone. With `--listen PORT` the process first waits
for the emulator to deliver an `ImagePushed` event to `http://127.0.0.1:PORT/` and then cleans
the repository the event names (the push-triggered scenario); the parent pushes once it reads the
`{"ready": true}` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from bench.events import PushedImage, PushListener
from bench.wire import DeleteClock

SIDES = ("quickstart", "careful", "ours")


def _credential() -> Any:
    from acr_emulator.testing import AsyncFakeCredential

    return AsyncFakeCredential()


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux VmHWM). Not `ru_maxrss`: Linux carries that
    over from the parent across fork and exec, so a child would report its parent's peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sdk_hook(clock: DeleteClock) -> Any:
    def hook(response: Any) -> None:
        request = response.http_request
        path = unquote(urlsplit(request.url).path)
        clock.record(request.method, path, response.http_response.status_code)

    return hook


async def _run_side(
    side: Any,
    url: str,
    ca_file: str,
    repositories: Sequence[str] | None,
    pushed: PushedImage | None,
    clock: DeleteClock,
    args: argparse.Namespace,
) -> dict[str, Any]:
    credential = _credential()
    if args.side == "ours":
        result: dict[str, Any] = await side.run(
            url,
            credential,
            ca_file,
            repositories,
            pushed,
            clock,
            limits=json.loads(args.limits),
            resource_id=args.resource_id,
        )
        return result
    # The SDK's aiohttp transport builds an SSL context per request when given a CA path; a real
    # deployment trusts the system store, which SSL_CERT_FILE points at the emulator's CA here.
    os.environ["SSL_CERT_FILE"] = ca_file
    run = side.quickstart if args.side == "quickstart" else side.careful
    outcome = await run(url, credential, repositories=repositories, response_hook=_sdk_hook(clock))
    return {"deleted": outcome.deleted, "failed": outcome.failed, "errors": outcome.errors}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    # Every import happens before the clock starts: each side is timed on its job alone.
    side = importlib.import_module("bench.ours" if args.side == "ours" else "bench.sdk_sides")
    importlib.import_module("acr_emulator.testing")
    if args.listen and args.side == "ours":
        importlib.import_module("function_app")
    clock = DeleteClock()
    repositories: list[str] | None = args.repository or None
    pushed: PushedImage | None = None
    timing: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        if args.listen:
            listener = await stack.enter_async_context(PushListener(args.listen))
            print(json.dumps({"ready": True}), flush=True)
            pushed = await listener.wait(args.deadline)
            timing["event_received"] = pushed.received
            repositories = [pushed.repository]
        return await _timed(args, side, clock, repositories, pushed, timing)


async def _timed(
    args: argparse.Namespace,
    side: Any,
    clock: DeleteClock,
    repositories: list[str] | None,
    pushed: PushedImage | None,
    timing: dict[str, Any],
) -> dict[str, Any]:
    start = time.time()
    cpu_start = time.process_time()
    try:
        async with asyncio.timeout(args.deadline):
            result = await _run_side(
                side, args.url, args.ca_file, repositories, pushed, clock, args
            )
        error = None
    except TimeoutError:
        result, error = {}, f"did not finish within the {args.deadline:.0f} s deadline"
    except Exception as exc:
        result = {}
        error = f"{type(exc).__name__}: {exc}"[:500]
        traceback.print_exc(file=sys.stderr)
    end = time.time()
    return {
        "side": args.side,
        "start": start,
        "end": end,
        "wall_s": end - start,
        "cpu_s": time.process_time() - cpu_start,
        "peak_rss_mb": peak_rss_mb(),
        "deletes": clock.as_dict(),
        "error": error,
        **timing,
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child", description=__doc__)
    parser.add_argument("--side", choices=SIDES, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--repository", action="append", help="only these repositories")
    parser.add_argument("--listen", type=int, default=0, help="wait for a push event on this port")
    parser.add_argument("--resource-id", default="", help="the registry's ARM id (push events)")
    parser.add_argument("--deadline", type=float, default=600.0)
    parser.add_argument("--limits", default="{}", help="ours: ExecutionLimits fields as JSON")
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname
    if host not in ("127.0.0.1", "::1", "localhost"):
        parser.error(f"--url must be on loopback, got {args.url!r}")
    result = asyncio.run(_main(args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m acr_emulator`: serve a local ACR on loopback until stopped.

The first line on stdout is one JSON object, `{"url", "ca_file", "admin_username",
"admin_password"}`, so scripts can start it with `--port 0` and read where it listens. With
`--env-file PATH` the same facts are also written as shell `export` lines (`ACR_REGISTRY`,
`ACR_USERNAME`, `ACR_PASSWORD`, `ACR_CA_FILE`) for `source PATH`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from acr_emulator.clock import parse_time
from acr_emulator.config import DEFAULT_RESOURCE_ID, THREE_HOURS, EmulatorConfig
from acr_emulator.emulator import Emulator
from acr_emulator.events import Webhook
from acr_emulator.faults import Faults
from acr_emulator.generate import PROFILES, generate
from acr_emulator.ratelimit import DEFAULT_CAPACITY_SECONDS, LIMIT_NAMES, SKU_PRESETS, RateLimits
from acr_emulator.seed import FixtureError, load_fixture
from acr_emulator.throttle import SKU_LIMITS, ThrottleConfig

EPILOG = """\
Admin endpoints (no auth, loopback only): /_emulator/counters, /_emulator/clock,
/_emulator/faults, /_emulator/throttle, /_emulator/rate-limits, /_emulator/seed,
/_emulator/events, /_emulator/tokens/revoke, /_emulator/grants.
Documentation: https://github.com/acr-cleanup/acr-cleanup/blob/main/docs/emulator.md
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m acr_emulator",
        description="A local Azure Container Registry (data plane, auth, events, throttling, "
        "faults) on loopback. Prints one JSON line with url, ca_file, admin_username and "
        "admin_password, then serves until interrupted.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _serving_options(p)
    _content_options(p)
    _auth_options(p)
    _throttling_options(p)
    _fault_options(p)
    _event_options(p)
    return p


def _serving_options(p: argparse.ArgumentParser) -> None:
    serve = p.add_argument_group("serving")
    serve.add_argument(
        "--host", default="127.0.0.1", help="loopback address (default 127.0.0.1; ::1 works)"
    )
    serve.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    serve.add_argument(
        "--http", action="store_true", help="plain HTTP instead of HTTPS (ca_file is then null)"
    )
    serve.add_argument(
        "--login-server", help="host[:port] used as service/registry (default: the Host header)"
    )
    serve.add_argument(
        "--resource-id",
        default=DEFAULT_RESOURCE_ID,
        help="ARM resource id: the events' topic/source",
    )
    serve.add_argument(
        "--location", default="eastus", help="Azure region in event data (default eastus)"
    )
    serve.add_argument(
        "--env-file",
        metavar="PATH",
        help="also write ACR_REGISTRY, ACR_USERNAME, ACR_PASSWORD and ACR_CA_FILE to PATH as "
        "shell export lines, for `source PATH` (rewritten at every start)",
    )
    serve.add_argument(
        "--log-level",
        default="critical",
        help="uvicorn log level, e.g. info (default critical: injected drops are quiet)",
    )


def _content_options(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("content")
    data.add_argument(
        "--fixture",
        action="append",
        default=[],
        metavar="FILE",
        help="seed from a JSON fixture file (its format: the documentation linked below); "
        "repeatable",
    )
    data.add_argument(
        "--generate",
        metavar="PROFILE",
        help=f"seed a realistic registry: {', '.join(PROFILES)} or a number of manifests",
    )
    data.add_argument(
        "--generate-seed", type=int, default=0, help="random seed for --generate (default 0)"
    )
    data.add_argument("--now", help="start the registry clock at this ISO 8601 time (default: now)")
    data.add_argument(
        "--frozen-clock",
        action="store_true",
        help="keep the clock still (set it via /_emulator/clock)",
    )
    data.add_argument(
        "--no-require-blobs",
        action="store_true",
        help="accept manifests whose blobs or index children were never pushed",
    )


def _auth_options(p: argparse.ArgumentParser) -> None:
    auth = p.add_argument_group("auth")
    auth.add_argument(
        "--admin-username", default="emulator", help="admin user name (default emulator)"
    )
    auth.add_argument(
        "--admin-password", help="admin password (default: random, printed in the JSON line)"
    )
    auth.add_argument("--no-admin", action="store_true", help="disable the admin user")
    auth.add_argument(
        "--anonymous-pull",
        action="store_true",
        help="allow anonymous pull, metadata read and catalog",
    )
    auth.add_argument("--no-auth", action="store_true", help="accept every request without a token")
    auth.add_argument(
        "--abac", action="store_true", help="ABAC role-assignment mode (Acr* roles ignored)"
    )
    auth.add_argument(
        "--token-lifetime",
        type=float,
        default=THREE_HOURS,
        help="access-token lifetime in seconds (default 10800)",
    )
    auth.add_argument(
        "--refresh-token-lifetime",
        type=float,
        default=THREE_HOURS,
        help="refresh-token lifetime in seconds (default 10800)",
    )


def _throttling_options(p: argparse.ArgumentParser) -> None:
    limits = p.add_argument_group(
        "throttling (off unless --rate-limits, --rate-limit, --sku or both ops options are given)"
    )
    limits.add_argument(
        "--rate-limits",
        metavar="SKU",
        type=str.lower,
        choices=sorted(SKU_PRESETS),
        help="ACR's 2026 request-rate limits of a SKU: basic, standard or premium",
    )
    limits.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="FIELD=N",
        help="a custom 2026 limit per minute, e.g. delete_per_identity=500 (fields: "
        f"{', '.join(LIMIT_NAMES)}); replaces the SKU's number; repeatable",
    )
    limits.add_argument(
        "--rate-capacity-seconds",
        type=float,
        default=DEFAULT_CAPACITY_SECONDS,
        help="seconds of refill a 2026 bucket holds (default 60; ACR's is not published)",
    )
    limits.add_argument(
        "--sku",
        choices=sorted(SKU_LIMITS),
        help="the retired model: ReadOps/WriteOps per minute of an ACR SKU",
    )
    limits.add_argument("--read-ops-per-minute", type=float, help="custom ReadOps per minute")
    limits.add_argument("--write-ops-per-minute", type=float, help="custom WriteOps per minute")
    limits.add_argument(
        "--burst-seconds",
        type=float,
        default=1.0,
        help="budget that can be spent at once, in seconds of refill (default 1)",
    )
    limits.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="speed-up factor for the budgets of either model, e.g. 10 (default 1)",
    )


def _fault_options(p: argparse.ArgumentParser) -> None:
    faults = p.add_argument_group("faults")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    faults.add_argument(
        "--jitter-ms", type=float, default=0.0, help="random extra latency, up to this"
    )
    faults.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of requests answered 5xx"
    )
    faults.add_argument(
        "--error-status", type=int, default=503, help="status for injected errors (default 503)"
    )
    faults.add_argument(
        "--drop-rate", type=float, default=0.0, help="fraction of connections dropped"
    )
    faults.add_argument("--fault-seed", type=int, help="random seed for faults")


def _event_options(p: argparse.ArgumentParser) -> None:
    events = p.add_argument_group("events")
    events.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST Event Grid schema events to this loopback URL; repeatable",
    )
    events.add_argument(
        "--cloudevents-webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST CloudEvents 1.0 events to this loopback URL; repeatable",
    )
    events.add_argument("--webhook-ca", metavar="FILE", help="CA file for HTTPS webhooks")


def rate_limits(args: argparse.Namespace) -> RateLimits | None:
    """The 2026 limits `--rate-limits` and `--rate-limit` ask for, or None (off)."""
    custom: dict[str, float] = {}
    for item in args.rate_limit:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in LIMIT_NAMES:
            raise ValueError(
                f"--rate-limit {item!r}: expected FIELD=N, FIELD one of {', '.join(LIMIT_NAMES)}"
            )
        try:
            custom[name] = float(value)
        except ValueError:
            raise ValueError(f"--rate-limit {item!r}: {value!r} is not a number") from None
    if not args.rate_limits and not custom:
        return None
    common = {"capacity_seconds": args.rate_capacity_seconds, "time_scale": args.time_scale}
    if args.rate_limits:
        return RateLimits.sku(args.rate_limits, **common, **custom)
    return RateLimits(**common, **custom)


def build(args: argparse.Namespace) -> Emulator:
    """The emulator the arguments describe; ValueError names what is wrong."""
    throttle = None
    if args.sku:
        throttle = ThrottleConfig.sku(
            args.sku, burst_seconds=args.burst_seconds, time_scale=args.time_scale
        )
    elif args.read_ops_per_minute or args.write_ops_per_minute:
        if not (args.read_ops_per_minute and args.write_ops_per_minute):
            raise ValueError("give both --read-ops-per-minute and --write-ops-per-minute, or --sku")
        throttle = ThrottleConfig(
            args.read_ops_per_minute, args.write_ops_per_minute, args.burst_seconds, args.time_scale
        )
    webhooks = tuple(Webhook(url, "eventgrid") for url in args.webhook) + tuple(
        Webhook(url, "cloudevents") for url in args.cloudevents_webhook
    )
    config = EmulatorConfig(
        login_server=args.login_server,
        resource_id=args.resource_id,
        location=args.location,
        require_auth=not args.no_auth,
        admin_enabled=not args.no_admin,
        admin_username=args.admin_username,
        admin_password=args.admin_password,
        anonymous_pull=args.anonymous_pull,
        abac=args.abac,
        access_token_lifetime=args.token_lifetime,
        refresh_token_lifetime=args.refresh_token_lifetime,
        now=parse_time(args.now) if args.now else None,
        frozen_clock=args.frozen_clock,
        require_blobs=not args.no_require_blobs,
        throttle=throttle,
        rate_limits=rate_limits(args),
        faults=Faults(
            latency=args.latency_ms / 1000,
            jitter=args.jitter_ms / 1000,
            error_rate=args.error_rate,
            error_status=args.error_status,
            drop_rate=args.drop_rate,
            seed=args.fault_seed,
        ),
        webhooks=webhooks,
        webhook_verify=args.webhook_ca or True,
    )
    emu = Emulator(config)
    for path in args.fixture:
        emu.seed(load_fixture(path))
    if args.generate:
        emu.seed(generate(args.generate, seed=args.generate_seed, now=emu.clock.peek()))
    return emu


async def run(args: argparse.Namespace) -> None:
    emu = build(args)
    tls = not args.http
    async with emu.serve(
        host=args.host, port=args.port, tls=tls, log_level=args.log_level
    ) as server:
        line = {
            "url": server.url,
            "ca_file": server.ca_file,
            "admin_username": server.admin_username,
            "admin_password": server.admin_password,
        }
        if args.env_file:
            write_env_file(Path(args.env_file), line)
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()


# The variables `acr-cleanup` reads (ACR_USERNAME, ACR_PASSWORD) and the two its flags want.
ENV_NAMES = {
    "ACR_REGISTRY": "url",
    "ACR_USERNAME": "admin_username",
    "ACR_PASSWORD": "admin_password",
    "ACR_CA_FILE": "ca_file",
}


def write_env_file(path: Path, line: Mapping[str, str | None]) -> None:
    """Write `export NAME=value` for each fact the JSON line has (null ones are left out),
    readable by its owner only (it holds the admin password), and whole or not at all: it is
    renamed into place, so a script waiting for it never reads half of it."""
    exports = [
        f"export {name}={shlex.quote(value)}\n"
        for name, key in ENV_NAMES.items()
        if (value := line.get(key)) is not None
    ]
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies to a new file only
    with os.fdopen(fd, "w") as out:
        out.write("# written by python -m acr_emulator --env-file; valid while it runs\n")
        out.writelines(exports)
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run(args))
    except (ValueError, FixtureError, RuntimeError, OSError) as exc:
        print(f"acr_emulator: {exc}", file=sys.stderr)
        return 2
    return 0

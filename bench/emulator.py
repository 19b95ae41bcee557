"""Start an emulator process, seed it, read its counters and its state, push to it.

Each side of each scenario gets its own `python -m acr_emulator --port 0` process, seeded from
scratch: identical fresh state, and a process whose CPU use is not the side's. Seeding and the
reads of the initial and final state happen with latency and throttling off (admin endpoints
`/_emulator/faults` and `/_emulator/throttle`), so they cost the side nothing; the counters are
read before and after the side runs, so their difference is the side's requests alone.

The state is read with Microsoft's SDK, not with `acr_core`, so that the code under test never
judges itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

import httpx

from bench.scenarios import OCI_MANIFEST, SeedImage
from scripts.oci_push import BasicTokenAuth

# ReadOps / WriteOps per minute (docs/acr-facts.md section 4.2; the retired model's presets).
SKUS = {"Basic": (1_000, 100), "Standard": (3_000, 500), "Premium": (10_000, 2_000)}
# The 2026 model (section 4.1): DataplaneRead and DataplaneDelete per identity, per minute.
SKUS_2026 = {"Basic": (5_000, 500), "Standard": (5_000, 500), "Premium": (10_000, 2_000)}
START_TIMEOUT = 60.0
# The registry's ARM id: the topic of its events, which the function checks.
RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/bench"
    "/providers/Microsoft.ContainerRegistry/registries/bench"
)
STATE_CONCURRENCY = 16
STATE_TIMEOUT = 300.0
# One repository's state is read through at most this many manifests (a bound, never reached).
MAX_MANIFESTS = 1_000_000


State = dict[str, dict[str, datetime]]  # repository -> digest -> lastUpdateTime


@dataclass(frozen=True)
class EmulatorSettings:
    latency_ms: float = 10.0
    sku: str = "Premium"
    time_scale: float = 6.0
    burst_seconds: float = 1.0
    # False: no throttle at all (the latency-bound and push-cost scenarios).
    throttle: bool = True
    # "retired": ReadOps/WriteOps buckets holding `burst_seconds` (real seconds) of refill;
    # "2026": the emulator's 2026 model (per category, per registry and per identity), whose
    # buckets hold `capacity_seconds` of the published rate (registry seconds).
    model: str = "retired"
    capacity_seconds: float = 5.0

    @property
    def reads_per_minute(self) -> int:
        return (SKUS_2026 if self.model == "2026" else SKUS)[self.sku][0]

    @property
    def writes_per_minute(self) -> int:
        """The limit deletions count against: WriteOps, or DataplaneDelete per identity."""
        return (SKUS_2026 if self.model == "2026" else SKUS)[self.sku][1]

    @property
    def burst_tokens(self) -> float:
        """Deletions a full bucket lets through at once, beyond the steady rate."""
        if self.model == "2026":
            return self.writes_per_minute / 60 * self.capacity_seconds
        return self.write_limit_per_s * self.burst_seconds

    @property
    def write_limit_per_s(self) -> float:
        return self.writes_per_minute / 60 * self.time_scale

    @property
    def read_limit_per_s(self) -> float:
        return self.reads_per_minute / 60 * self.time_scale

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "sku": self.sku,
            "time_scale": self.time_scale,
            "burst_seconds": self.burst_seconds,
            "throttle": self.throttle,
            "model": self.model,
            "capacity_seconds": self.capacity_seconds,
            "burst_tokens": self.burst_tokens,
            "reads_per_minute": self.reads_per_minute,
            "writes_per_minute": self.writes_per_minute,
            "write_limit_per_s": self.write_limit_per_s,
            "read_limit_per_s": self.read_limit_per_s,
        }


def fixture(images: Sequence[SeedImage]) -> dict[str, Any]:
    """The emulator's bulk-seed fixture (docs/emulator.md) for `images`."""
    repositories: dict[str, list[dict[str, Any]]] = {}
    for img in images:
        repositories.setdefault(img.repository, []).append(
            {
                "kind": "image",
                "id": img.tag,
                "pushed": img.pushed.isoformat(),
                "tags": [img.tag],
                "size": 3 * 1024 * 1024,
            }
        )
    return {"repositories": [{"name": n, "manifests": m} for n, m in repositories.items()]}


class RunningEmulator:
    def __init__(self, process: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.process = process
        self.url: str = info["url"]
        self.ca_file: str = info["ca_file"]
        self.admin_username: str = info["admin_username"]
        self.admin_password: str = info["admin_password"]
        self.resource_id: str = info.get("resource_id") or RESOURCE_ID
        self._admin = httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=self.ca_file), timeout=60
        )

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self._admin.request(method, f"/_emulator/{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def counters(self) -> Counter[tuple[str, str, int]]:
        """Requests so far, keyed by (method, endpoint route, status)."""
        data = self.admin("GET", "counters")
        return Counter(
            {
                (c["method"], c["endpoint"], int(c["status"])): int(c["count"])
                for c in data["counters"]
            }
        )

    def configure(self, settings: EmulatorSettings | None) -> None:
        """Latency and throttle as `settings` say, or both off (None). Fresh buckets either way."""
        if settings is None:
            self.admin("POST", "faults", {})
            self.admin("POST", "throttle", {})
            self._rate({})
            return
        self.admin("POST", "faults", {"latency": settings.latency_ms / 1000})
        if not settings.throttle or settings.model == "2026":
            self.admin("POST", "throttle", {})
        if settings.throttle and settings.model == "2026":
            self._rate(
                {
                    "sku": settings.sku.lower(),
                    "time_scale": settings.time_scale,
                    "capacity_seconds": settings.capacity_seconds,
                }
            )
            return
        self._rate({})
        if not settings.throttle:
            return
        self.admin(
            "POST",
            "throttle",
            {
                "sku": settings.sku,
                "time_scale": settings.time_scale,
                "burst_seconds": settings.burst_seconds,
            },
        )

    def _rate(self, body: dict[str, Any]) -> None:
        """The 2026 model's limits (`{}`: off), on an emulator that has it."""
        response = self._admin.post("/_emulator/rate-limits", json=body)
        if response.status_code != 404 or body:
            response.raise_for_status()

    def now(self) -> datetime:
        from acr_emulator.clock import parse_time

        return parse_time(self.admin("GET", "clock")["now"])

    def state(self) -> State:
        """Every repository's manifests and their lastUpdateTime, read with Microsoft's SDK."""
        return asyncio.run(_read_state(self.url, self.ca_file))

    def push(self, image: SeedImage) -> tuple[str, Counter[tuple[str, str, int]]]:
        """Push `image` as a CI job would (admin user, OCI API); return its digest and the
        requests the push itself made, keyed like `counters()`, to subtract from the side's."""
        return _push(self, image)

    def close(self) -> None:
        self._admin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _first_line(stream: IO[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


@contextmanager
def start(
    settings: EmulatorSettings,
    images: Sequence[SeedImage],
    *,
    webhook: str | None = None,
    seed: dict[str, Any] | None = None,
) -> Iterator[RunningEmulator]:
    """A fresh emulator seeded with `images` (or the fixture `seed`), latency and throttle
    off until `configure(settings)`."""
    cmd = [sys.executable, "-m", "acr_emulator", "--port", "0", "--resource-id", RESOURCE_ID]
    if webhook is not None:
        cmd += ["--webhook", webhook]
    process = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=os.environ.copy()
    )
    assert process.stdout is not None
    line = _first_line(process.stdout, START_TIMEOUT)
    if not line.startswith("{"):
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    # Keep reading whatever else it prints, so a full pipe can never stall the emulator.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    emu = RunningEmulator(process, json.loads(line))
    try:
        emu.configure(None)
        emu.admin("POST", "seed", seed if seed is not None else fixture(images))
        yield emu
    finally:
        emu.close()


async def _read_state(url: str, ca_file: str) -> State:
    async with asyncio.timeout(STATE_TIMEOUT):
        return await _read_state_unbounded(url, ca_file)


async def _read_state_unbounded(url: str, ca_file: str) -> State:
    from azure.containerregistry.aio import ContainerRegistryClient

    from acr_emulator.testing import AsyncFakeCredential

    state: State = {}
    semaphore = asyncio.Semaphore(STATE_CONCURRENCY)
    credential: Any = AsyncFakeCredential()
    async with ContainerRegistryClient(url, credential, connection_verify=ca_file) as client:
        names = [name async for name in client.list_repository_names()]

        async def one(name: str) -> None:
            async with semaphore:
                manifests: dict[str, datetime] = {}
                async for m in client.list_manifest_properties(name):
                    manifests[m.digest] = m.last_updated_on
                    if len(manifests) >= MAX_MANIFESTS:
                        break
                state[name] = manifests

        await asyncio.gather(*(one(n) for n in names))
    return {name: digests for name, digests in state.items() if digests}


def _push(emu: RunningEmulator, image: SeedImage) -> tuple[str, Counter[tuple[str, str, int]]]:
    seen: Counter[tuple[str, str, int]] = Counter()

    def record(response: httpx.Response) -> None:
        request = response.request
        seen[(request.method, request.url.path, response.status_code)] += 1

    repo = image.repository
    with httpx.Client(
        base_url=emu.url,
        verify=ssl.create_default_context(cafile=emu.ca_file),
        auth=BasicTokenAuth(emu.admin_username, emu.admin_password),
        event_hooks={"response": [record]},
        timeout=30,
    ) as client:
        for data in (image.config, image.layer):
            started = client.post(f"/v2/{repo}/blobs/uploads/")
            started.raise_for_status()
            done = client.put(
                started.headers["location"],
                params={"digest": "sha256:" + hashlib.sha256(data).hexdigest()},
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
            done.raise_for_status()
        put = client.put(
            f"/v2/{repo}/manifests/{image.tag}",
            content=image.manifest,
            headers={"content-type": OCI_MANIFEST},
        )
        put.raise_for_status()
    return put.headers.get("docker-content-digest") or image.digest, seen

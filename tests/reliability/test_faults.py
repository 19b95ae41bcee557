"""The fault matrix: a real cleanup under each fault deletes nothing outside the fault-free plan,
and once the faults stop a clean re-run reaches the state the fault-free plan leads to.

Each trial seeds two identical emulators from `acr_emulator.generate` (images, multi-arch indexes
with attestation children, signature and SBOM referrers, untagged CI leftovers, locked release
tags). The twin is planned (dry run) and then cleaned without faults: its plan is the oracle's
allowed deletions and its final state the expected one. The other is cleaned under one fault,
then cleaned again with the faults off. `Chaos`, the transport under the client, adds what the
emulator has no switch for: a hook every few requests (token revocation, clock jumps), writes
whose acknowledgement is lost after they were applied, and Retry-After compressed from seconds
into milliseconds so that throttling costs a test no real waiting.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from acr_core.planning.plan import Plan
from acr_core.planning.policy import load_policy
from acr_core.registry.client import AcrClient
from acr_core.registry.errors import AcrError, is_transient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.report import RunReport
from acr_core.run.service import run_cleanup
from acr_emulator import Emulator, EmulatorConfig, Faults, ThrottleConfig
from acr_emulator.generate import generate
from acr_emulator.testing import AsyncFakeCredential

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = load_policy(
    {
        "version": 1,
        "rules": [
            {
                "name": "all",
                "repositories": ["**"],
                "keepLatest": 2,
                "keepTags": ["latest"],
                "lockTags": ["1.0.1", "1.0.2"],
                "untagged": {"olderThan": "1d"},
            }
        ],
        "safety": {"maxDeletesPerRepository": 1000, "maxDeleteFraction": 1.0},
    }
)
# Short-lived tokens on the emulator's clock, so that a clock jump expires them mid-run.
TOKEN_LIFETIME = 300.0

# What one second of Retry-After becomes (see `Chaos`), and the retry policy's backoff: real
# waits, short enough that a trial takes a second or two.
RETRY_AFTER_MS = 20.0
RETRY = RetryPolicy(backoff_base=0.002, backoff_max=0.02)

State = dict[str, object]


class Chaos(httpx.AsyncBaseTransport):
    """The emulator in-process, with a hook every `every` requests and lost write acks."""

    def __init__(self, emulator: Emulator, seed: int) -> None:
        self._inner = httpx.ASGITransport(app=emulator.app)
        self._rng = random.Random(seed)
        self.sent = 0
        self.every = 0
        self.hook: Callable[[], None] | None = None
        self.lost_ack_rate = 0.0  # DELETEs and PATCHes applied whose answer never arrives
        self.lost_acks = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.hook is not None and self.every and self.sent % self.every == 0:
            self.hook()
        response = await self._inner.handle_async_request(request)
        if response.status_code == 429 and "retry-after" in response.headers:
            # Each second asked becomes 20 ms, as fast as the test's throttle refills.
            body = await response.aread()
            seconds = float(response.headers["retry-after"])
            headers = [(k, v) for k, v in response.headers.items() if k != "retry-after"]
            headers.append(("retry-after-ms", str(seconds * RETRY_AFTER_MS)))
            return httpx.Response(429, headers=headers, content=body, request=request)
        lost = self.lost_ack_rate and self._rng.random() < self.lost_ack_rate
        if request.method in ("DELETE", "PATCH") and lost:
            self.lost_acks += 1
            raise httpx.RemoteProtocolError("connection lost after the write", request=request)
        return response


@dataclass
class Trial:
    """One emulator under faults, and what its fault-free twin planned and reached."""

    emulator: Emulator
    chaos: Chaos
    plan: Plan
    expected: State
    rate: float
    rng: random.Random


def _emulator(fixture: dict[str, Any]) -> Emulator:
    config = EmulatorConfig(
        require_blobs=False,
        tokens_use_clock=True,
        access_token_lifetime=TOKEN_LIFETIME,
        refresh_token_lifetime=TOKEN_LIFETIME,
    )
    emulator = Emulator(config)
    emulator.seed(fixture)
    return emulator


def state(emulator: Emulator) -> State:
    """Every manifest with its tags, and every tag with its lock, as names to compare."""
    manifests = {
        f"{name}@{digest}": sorted(m.tags)
        for name, repo in emulator.registry.repositories.items()
        for digest, m in repo.manifests.items()
    }
    tags = {
        f"{name}:{tag}": (t.attributes.delete_enabled, t.attributes.write_enabled)
        for name, repo in emulator.registry.repositories.items()
        for tag, t in repo.tags.items()
    }
    return {"manifests": manifests, "tags": tags}


def manifests(emulator: Emulator) -> set[str]:
    return {
        f"{name}@{digest}"
        for name, repo in emulator.registry.repositories.items()
        for digest in repo.manifests
    }


def allowed(plan: Plan) -> set[str]:
    """The manifests the plan deletes, and those ACR deletes with them (referrers)."""
    return {
        f"{action.repository}@{digest}"
        for action in plan.actions
        for digest in (action.digest, *action.cascades)
        if action.kind == "delete_manifest"
    }


async def cleanup(emulator: Emulator, transport: httpx.AsyncBaseTransport, dry_run: bool) -> Any:
    """One run through the real client; a run that cannot even list is returned as its error
    (under faults that may be a permanent one: a token refused twice in a row under a storm
    of revocations or clock jumps is an `AuthenticationError`)."""
    async with AcrClient(
        "https://acr.test",
        AsyncFakeCredential(),
        transport=transport,
        retry=RETRY,
    ) as client:
        try:
            return await run_cleanup(client, POLICY, now=NOW, dry_run=dry_run)
        except AcrError as exc:
            return exc


@dataclass(frozen=True)
class Oracle:
    """A generated registry, its fault-free plan, and the state that plan leads to."""

    fixture: dict[str, Any]
    plan: Plan
    expected: State


_ORACLES: dict[int, Oracle] = {}


async def oracle(seed: int) -> Oracle:
    """The twin's plan (dry run) and final state (applied without faults), once per seed."""
    if seed not in _ORACLES:
        fixture = generate("120", seed=seed, now=NOW)
        twin = _emulator(fixture)
        planned = await cleanup(twin, httpx.ASGITransport(app=twin.app), dry_run=True)
        done = await cleanup(twin, httpx.ASGITransport(app=twin.app), dry_run=False)
        assert isinstance(planned, RunReport)
        assert isinstance(done, RunReport)
        assert done.totals.failed == 0
        assert allowed(planned.plan)
        _ORACLES[seed] = Oracle(fixture, planned.plan, state(twin))
    return _ORACLES[seed]


async def trial(seed: int, fault: str) -> Trial:
    known = await oracle(seed)
    emulator = _emulator(known.fixture)
    rng = random.Random(f"{fault}/{seed}")
    rate = rng.uniform(0.1, 0.4)
    return Trial(emulator, Chaos(emulator, seed), known.plan, known.expected, rate, rng)


def read_errors(t: Trial) -> None:
    t.emulator.faults = Faults(
        error_rate=t.rate, methods=frozenset({"GET", "HEAD"}), seed=t.rng.randrange(2**32)
    )


def delete_errors(t: Trial) -> None:
    t.emulator.faults = Faults(
        error_rate=t.rate, methods=frozenset({"DELETE"}), seed=t.rng.randrange(2**32)
    )


def dropped_connections(t: Trial) -> None:
    t.emulator.faults = Faults(drop_rate=t.rate, seed=t.rng.randrange(2**32))


def lost_acks(t: Trial) -> None:
    t.chaos.lost_ack_rate = t.rate


def tiny_throttle(t: Trial) -> None:
    # Bursts of 10 reads and 2 writes, refilling at 200 reads and 50 writes a second.
    t.emulator.throttle.configure(ThrottleConfig(12000, 3000, burst_seconds=0.05))


def expiring_tokens(t: Trial) -> None:
    def jump() -> None:
        t.emulator.clock.advance(timedelta(seconds=TOKEN_LIFETIME + 1))

    t.chaos.every, t.chaos.hook = t.rng.randint(20, 60), jump


def revoked_tokens(t: Trial) -> None:
    t.chaos.every, t.chaos.hook = t.rng.randint(5, 20), t.emulator.revoke_tokens


def clock_jumps(t: Trial) -> None:
    def jump() -> None:
        hours = t.rng.choice((-24, -1, 1, 3, 48))
        t.emulator.clock.advance(timedelta(hours=hours))

    t.chaos.every, t.chaos.hook = t.rng.randint(3, 15), jump


def everything(t: Trial) -> None:
    t.emulator.faults = Faults(
        error_rate=t.rate / 2, drop_rate=t.rate / 2, seed=t.rng.randrange(2**32)
    )
    t.chaos.lost_ack_rate = t.rate / 2
    t.chaos.every, t.chaos.hook = t.rng.randint(20, 60), t.emulator.revoke_tokens


FAULTS: dict[str, Callable[[Trial], None]] = {
    "5xx on reads": read_errors,
    "5xx on deletes": delete_errors,
    "dropped connections": dropped_connections,
    "lost write acknowledgements": lost_acks,
    "tiny 429 budgets": tiny_throttle,
    "tokens expiring mid-run": expiring_tokens,
    "tokens revoked mid-run": revoked_tokens,
    "clock jumps": clock_jumps,
    "all at once": everything,
}


def figures(fault: str, seed: int, faulted: RunReport | AcrError, t: Trial, outside: int) -> str:
    """One line for docs/reliability.md (shown with `pytest -s`): what the faulted run did."""
    if isinstance(faulted, AcrError):
        kind = "transient" if is_transient(faulted) else "permanent"
        done = f"listing failed ({type(faulted).__name__}, {kind})"
    else:
        totals, stats = faulted.totals, faulted.requests
        done = (
            f"deleted={totals.deleted} failed={totals.failed} issues={len(faulted.issues)} "
            f"requests={stats.requests} retries={stats.retries} throttled={stats.throttled}"
        )
    return f"FAULT {fault!r} seed={seed} rate={t.rate:.2f} {done} outside_plan={outside}"


def calm(t: Trial) -> None:
    t.emulator.faults = Faults()
    t.emulator.throttle.configure(None)
    t.chaos.hook, t.chaos.lost_ack_rate = None, 0.0


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_faults_never_delete_outside_the_plan_and_a_clean_rerun_converges(fault, trials):
    """Under each fault only planned deletions happen, and a fault-free re-run ends as planned."""
    for seed in range(trials(1, 12)):
        t = await trial(seed, fault)
        before = manifests(t.emulator)
        FAULTS[fault](t)
        faulted = await cleanup(t.emulator, t.chaos, dry_run=False)
        calm(t)
        outside = (before - manifests(t.emulator)) - allowed(t.plan)
        print(figures(fault, seed, faulted, t, len(outside)))
        assert not outside, (fault, seed)
        rerun = await cleanup(t.emulator, t.chaos, dry_run=False)
        assert isinstance(rerun, RunReport), (fault, seed)
        assert rerun.totals.failed == 0, (fault, seed)
        assert not rerun.issues, (fault, seed)
        assert before - manifests(t.emulator) <= allowed(t.plan), (fault, seed)
        assert state(t.emulator) == t.expected, (fault, seed)

"""429s have one owner, the client's transport: the executor and the run on the real client.

The executor and `run_cleanup` run on a real `AcrClient` against the emulator in-process. The
emulator's own throttle is a token bucket on the wall clock, so to throttle an exact number of
writes the transport below the client answers the next few DELETEs and PATCHes with 429 itself.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from acr_core.planning.plan import Action, ActionKind, Plan, RepositoryPlan
from acr_core.planning.policy import load_policy
from acr_core.registry.client import AcrClient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.executor import ActionOutcome, Executor, Outcome
from acr_core.run.limiter import Governor
from acr_core.run.service import ProgressEvent, gather_repository, run_cleanup
from acr_emulator import Emulator
from acr_emulator.testing import AsyncFakeCredential

REPO = "team/app"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class ThrottledWrites(httpx.AsyncBaseTransport):
    """The emulator, except that the next `count` writes answer 429 as ACR does when its
    WriteOps budget is spent (acr-facts.md section 4), with `Retry-After: 0`."""

    def __init__(self, emulator: Emulator, count: int = 0) -> None:
        self._inner = httpx.ASGITransport(app=emulator.app)
        self.count = count
        self.writes = 0  # DELETE and PATCH requests that reached this transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("DELETE", "PATCH"):
            self.writes += 1
            if self.count > 0:
                self.count -= 1
                body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}
                return httpx.Response(429, json=body, headers={"retry-after": "0"})
        return await self._inner.handle_async_request(request)


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def client_on(transport: ThrottledWrites) -> AcrClient:
    retry = RetryPolicy(sleep=_no_wait)  # the default attempts and deadline, without the waits
    return AcrClient("https://acr.test", AsyncFakeCredential(), transport=transport, retry=retry)


def digests(emulator: Emulator, repository: str = REPO) -> set[str]:
    repo = emulator.registry.repositories.get(repository)  # gone with its last manifest
    return set(repo.manifests) if repo is not None else set()


def deletions(emulator: Emulator) -> Plan:
    actions = tuple(
        Action(ActionKind.DELETE_MANIFEST, REPO, d, (), "untagged", "r", size_in_bytes=1)
        for d in sorted(digests(emulator))
    )
    return Plan((RepositoryPlan(REPO, "r", actions, ()),))


async def apply(client: AcrClient, plan: Plan, governor: Governor) -> list[ActionOutcome]:
    """Read the repository and apply `plan` with the run's limiter listening to the client."""
    client.add_throttle_listener(governor.throttled)
    snapshot = await gather_repository(client, REPO, governor)
    return list(await Executor(client, governor, {REPO: snapshot}).apply(plan))


async def test_throttled_writes_back_off_and_all_succeed():
    """429s the transport retries slow the run down but fail nothing."""
    emulator = Emulator()
    emulator.seed(
        {"repositories": [{"name": REPO, "manifests": [{"id": f"m{i}"} for i in range(20)]}]}
    )
    transport = ThrottledWrites(emulator, count=5)
    async with client_on(transport) as client:
        outcomes = await apply(client, deletions(emulator), Governor())
    assert {o.outcome for o in outcomes} == {Outcome.APPLIED}
    assert digests(emulator) == set()
    assert client.stats.throttled == 5


async def test_a_delete_throttled_beyond_the_retries_fails_transient_and_the_next_run_deletes_it():
    """Each 429 reaches the limiter once and the DELETE is sent `attempts` times, not more; the
    action fails as transient, and a fresh run (the platform's retry) deletes the manifest."""
    emulator = Emulator()
    emulator.seed({"repositories": [{"name": REPO, "manifests": [{"id": "m"}]}]})
    attempts = RetryPolicy().attempts
    transport = ThrottledWrites(emulator, count=attempts)
    async with client_on(transport) as client:
        governor = Governor()
        [outcome] = await apply(client, deletions(emulator), governor)
        assert (outcome.outcome, outcome.transient) == (Outcome.FAILED, True)
        assert transport.writes == attempts
        assert client.stats.throttled == governor.throttle_count == attempts
        assert len(digests(emulator)) == 1

        [again] = await apply(client, deletions(emulator), Governor())
    assert again.outcome is Outcome.APPLIED
    assert digests(emulator) == set()


def two_apps(emulator: Emulator) -> None:
    """In each of apps/a and apps/b: a kept multi-arch 2.0 and an older single image 1.0."""
    day = [(T0 + timedelta(days=n)).isoformat() for n in range(3)]
    repositories: list[dict[str, object]] = [
        {
            "name": name,
            "manifests": [
                {"id": "1.0", "pushed": day[1], "tags": ["1.0"]},
                {"id": "amd", "pushed": day[2], "architecture": "amd64"},
                {"id": "arm", "pushed": day[2], "architecture": "arm64"},
                {"id": "2.0", "pushed": day[2], "manifests": ["amd", "arm"], "tags": ["2.0"]},
            ],
        }
        for name in ("apps/a", "apps/b")
    ]
    repositories.append({"name": "other", "manifests": [{"tags": ["x"]}]})
    emulator.seed({"repositories": repositories})


async def test_progress_and_request_counts_are_reported():
    """Progress reaches every repository and action; throttles are counted in the report."""
    emulator = Emulator()
    two_apps(emulator)
    policy = load_policy(
        {"version": 1, "rules": [{"name": "apps", "repositories": ["apps/**"], "keepLatest": 1}]}
    )
    events: list[ProgressEvent] = []
    async with client_on(ThrottledWrites(emulator, count=1)) as client:
        report = await run_cleanup(
            client, policy, now=T0 + timedelta(days=30), dry_run=False, progress=events.append
        )
    assert report.totals.deleted == 2
    assert ("gather", 2, 2) in [(e.phase, e.done, e.total) for e in events]
    assert ("apply", 2, 2) in [(e.phase, e.done, e.total) for e in events]
    assert report.requests.throttled == 1
    assert report.requests.requests == client.stats.requests

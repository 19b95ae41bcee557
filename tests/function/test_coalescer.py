"""Bursts of pushes to one repository fold into at most one follow-up run per instance."""

from __future__ import annotations

import asyncio

import pytest

from acr_core.app.coalescer import Coalescer


class Recorder:
    """A stand-in run: records which digests each run protected and the `pushed` event each
    was given, and can be held open."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, frozenset[str]]] = []
        self.pushed: list[asyncio.Event] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.fail_with: BaseException | None = None

    def for_repository(self, repository: str):
        async def run(protect: frozenset[str], pushed: asyncio.Event) -> None:
            self.runs.append((repository, protect))
            self.pushed.append(pushed)
            self.started.set()
            await self.release.wait()
            if self.fail_with is not None:
                raise self.fail_with

        return run


async def test_burst_during_a_run_costs_one_follow_up() -> None:
    """Nine pushes arriving while a run is in flight make one more run protecting all nine."""
    coalescer = Coalescer()
    recorder = Recorder()
    run = recorder.for_repository("apps/web")
    first = asyncio.create_task(coalescer.submit("apps/web", "sha256:first", run))
    await recorder.started.wait()
    burst = [
        asyncio.create_task(coalescer.submit("apps/web", f"sha256:{i}", run)) for i in range(9)
    ]
    await asyncio.sleep(0)
    recorder.release.set()
    results = await asyncio.gather(first, *burst)
    assert recorder.runs == [
        ("apps/web", frozenset({"sha256:first"})),
        ("apps/web", frozenset(f"sha256:{i}" for i in range(9))),
    ]
    assert results.count(True) == 2  # the first call and the one that started the follow-up
    assert results.count(False) == 8


async def test_repositories_do_not_wait_for_each_other() -> None:
    """A run in flight for one repository does not hold back another repository's run."""
    coalescer = Coalescer()
    held = Recorder()
    free = Recorder()
    free.release.set()
    slow = asyncio.create_task(coalescer.submit("a", "sha256:a", held.for_repository("a")))
    await held.started.wait()
    assert await coalescer.submit("b", "sha256:b", free.for_repository("b")) is True
    assert free.runs == [("b", frozenset({"sha256:b"}))]
    held.release.set()
    await slow


async def test_failure_reaches_every_caller_of_that_run() -> None:
    """Callers folded into a failed run see its exception, so each event is retried."""
    coalescer = Coalescer()
    recorder = Recorder()
    run = recorder.for_repository("apps/web")
    first = asyncio.create_task(coalescer.submit("apps/web", "sha256:1", run))
    await recorder.started.wait()
    second = asyncio.create_task(coalescer.submit("apps/web", "sha256:2", run))
    third = asyncio.create_task(coalescer.submit("apps/web", "sha256:3", run))
    await asyncio.sleep(0)
    recorder.fail_with = ConnectionError("registry unreachable")
    recorder.release.set()
    outcomes = await asyncio.gather(first, second, third, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert len(recorder.runs) == 2


async def test_nothing_is_left_behind_after_runs() -> None:
    """After the runs finish, the next push starts a fresh run at once."""
    coalescer = Coalescer()
    recorder = Recorder()
    recorder.release.set()
    run = recorder.for_repository("r")
    assert await coalescer.submit("r", "sha256:1", run) is True
    assert await coalescer.submit("r", None, run) is True
    assert recorder.runs == [("r", frozenset({"sha256:1"})), ("r", frozenset())]


async def test_cancelled_follow_up_releases_its_joiners() -> None:
    """If the invocation holding the follow-up run is cancelled, those folded into it are too."""
    coalescer = Coalescer()
    recorder = Recorder()
    run = recorder.for_repository("r")
    first = asyncio.create_task(coalescer.submit("r", "sha256:1", run))
    await recorder.started.wait()
    holder = asyncio.create_task(coalescer.submit("r", "sha256:2", run))
    await asyncio.sleep(0)
    joiner = asyncio.create_task(coalescer.submit("r", "sha256:3", run))
    await asyncio.sleep(0)
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(joiner, timeout=2)
    recorder.release.set()
    assert await first is True
    assert await coalescer.submit("r", "sha256:4", run) is True  # nothing left stuck
    assert [protect for _, protect in recorder.runs] == [
        frozenset({"sha256:1"}),
        frozenset({"sha256:4"}),
    ]


async def test_a_push_while_a_run_is_in_flight_tells_that_run() -> None:
    """A push for the repository sets the running run's `pushed` event; the follow-up's is clear."""
    coalescer = Coalescer()
    recorder = Recorder()
    run = recorder.for_repository("r")
    first = asyncio.create_task(coalescer.submit("r", "sha256:1", run))
    await recorder.started.wait()
    assert not recorder.pushed[0].is_set()
    follow_up = asyncio.create_task(coalescer.submit("r", "sha256:2", run))
    await asyncio.sleep(0)
    assert recorder.pushed[0].is_set()
    recorder.release.set()
    await asyncio.gather(first, follow_up)
    assert len(recorder.pushed) == 2
    assert not recorder.pushed[1].is_set()


async def test_a_sweep_message_does_not_stop_the_running_run() -> None:
    """A submission without a digest (a sweep) waits behind the run without stopping it."""
    coalescer = Coalescer()
    recorder = Recorder()
    run = recorder.for_repository("r")
    first = asyncio.create_task(coalescer.submit("r", "sha256:1", run))
    await recorder.started.wait()
    sweep = asyncio.create_task(coalescer.submit("r", None, run))
    await asyncio.sleep(0)
    assert not recorder.pushed[0].is_set()
    recorder.release.set()
    await asyncio.gather(first, sweep)

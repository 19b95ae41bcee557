"""The sweep: the timer fans covered repositories out to the queue; the queue trigger cleans."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from acr_core.app.sweep import continuation_message, read_continuation, sweep_message
from acr_emulator import Faults
from acr_emulator.testing import DEFAULT_OID
from scripts.func_objects import Out, queue_message, timer
from tests.function.conftest import Registry, summaries
from tests.storage.azurite import azurite_service

DAY = timedelta(days=1)
QUEUE = "acr-cleanup-sweep"


async def three_repositories(registry: Registry) -> None:
    """apps/a and apps/b (covered) and base/x (not), each with four images 10 to 7 days old."""
    for repository in ("apps/a", "apps/b", "base/x"):
        for age, tag in ((10, "v1"), (9, "v2"), (8, "v3"), (7, "v4")):
            await registry.push(repository, tag, age=age * DAY)


async def test_timer_enqueues_one_message_per_covered_repository(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """The timer lists the catalog and queues exactly the repositories a rule covers."""
    await three_repositories(registry)
    before = registry.state()
    out = Out()

    await app.sweep_schedule(timer(), out)

    assert out.value is not None
    assert sorted(json.loads(m)["repository"] for m in out.value) == ["apps/a", "apps/b"]
    assert registry.state() == before  # the timer itself deletes nothing
    messages = [r.getMessage() for r in app_log()]
    (line,) = [m for m in messages if m.startswith("acr-cleanup sweep {")]
    sweep = json.loads(line[len("acr-cleanup sweep ") :])
    assert sweep["enqueued"] == 2
    assert sweep["listed"] == 3
    assert sweep["cutOff"] is False


async def test_queue_message_cleans_its_repository(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """A sweep message cleans the repository it names and no other."""
    await three_repositories(registry)

    await app.sweep_repository(queue_message(sweep_message("apps/a")), Out())

    assert registry.tags("apps/a") == {"v3", "v4"}
    assert registry.tags("apps/b") == {"v1", "v2", "v3", "v4"}
    (summary,) = summaries(app_log())
    assert summary["trigger"] == "sweep"
    assert summary["deleted"] == 2


@pytest.mark.parametrize(
    "body",
    [
        '{"repository": "../../etc"}',
        "apps/a",
        '{"repository": "base/x"}',
        '{"continueAfter": "../x"}',
        '{"continueAfter": "apps/a", "repository": "apps/b"}',
    ],
)
async def test_bad_or_uncovered_messages_change_nothing(
    registry: Registry, app: ModuleType, app_log: Any, body: str
) -> None:
    """A message that is not ours, or names an uncovered repository, deletes and queues nothing."""
    await three_repositories(registry)
    before = registry.state()
    out = Out()

    await app.sweep_repository(queue_message(body), out)

    assert registry.state() == before
    assert out.value is None
    assert len(app_log()) == 1


async def test_a_budget_that_lists_nothing_fails_the_timer(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """A listing that gets nothing within CLEANUP_SWEEP_BUDGET_SECONDS raises (the timer's
    retry reruns it), queues nothing and warns naming the setting."""
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="1")
    await three_repositories(registry)
    registry.emulator.faults = Faults(latency=1.5)
    out = Out()

    with pytest.raises(Exception, match="CLEANUP_SWEEP_BUDGET_SECONDS=1"):
        await app.sweep_schedule(timer(), out)

    registry.emulator.faults = Faults()
    assert out.value is None
    (warning,) = app_log(logging.WARNING)
    assert "CLEANUP_SWEEP_BUDGET_SECONDS=1" in warning.getMessage()


async def test_timer_raises_on_transient_listing_failure(
    registry: Registry, app: ModuleType
) -> None:
    """A registry answering 503 fails the timer (its retry policy reruns it); nothing is queued."""
    await three_repositories(registry)
    registry.emulator.faults = Faults(error_rate=1.0, error_status=503, seed=1)
    out = Out()

    with pytest.raises(Exception, match="503"):
        await app.sweep_schedule(timer(), out)

    registry.emulator.faults = Faults()
    assert out.value is None


# --- resuming a cut-off listing --------------------------------------------------------------

# 2,400 repositories in three catalog pages of 1,000 (the client's page size, ACR's maximum):
# page 1 is acme/* (not covered) and apps/r0000-r0899, page 2 apps/r0900-r1899, page 3
# apps/r1900-r1999 and base/* (not covered).
COVERED = [f"apps/r{i:04d}" for i in range(2000)]
CATALOG = [f"acme/r{i:03d}" for i in range(100)] + COVERED + [f"base/r{i:03d}" for i in range(300)]
CATALOG_PAGE = "/acr/v1/_catalog"


def seed_catalog(registry: Registry) -> None:
    registry.emulator.seed(
        {"repositories": [{"name": name, "manifests": [{"tags": ["v1"]}]} for name in CATALOG]}
    )


class AfterPages(Faults):
    """Faults that begin once `pages` more catalog pages have been served: a registry that slows
    down (or fails) part-way through a listing, at a point that does not depend on timing."""

    def __init__(self, registry: Registry, pages: int, **faults: Any) -> None:
        super().__init__(**faults)
        self.counters = registry.emulator.counters
        self.start = self.counters.count(CATALOG_PAGE, "GET", 200)
        self.pages = pages

    def applies_to(self, method: str) -> bool:
        return self.counters.count(CATALOG_PAGE, "GET", 200) - self.start >= self.pages


class RefusedAfterPages(AfterPages):
    """Once `pages` catalog pages are served, the identity keeps only AcrDelete: it may no
    longer list the catalog, a permanent refusal part-way through a listing."""

    def __init__(self, registry: Registry, pages: int) -> None:
        super().__init__(registry, pages)
        self.emulator = registry.emulator
        self.refused = False

    @property
    def active(self) -> bool:
        return True  # no fault of its own: it only watches the pages go by

    def applies_to(self, method: str) -> bool:
        if not self.refused and super().applies_to(method):
            self.emulator.grant(DEFAULT_OID, "AcrDelete")
            self.emulator.revoke_tokens()
            self.refused = True
        return False


def slow_after_one_page(registry: Registry, budget: float = 1.0) -> AfterPages:
    """Every request after the next catalog page takes longer than a `budget`-second budget."""
    return AfterPages(registry, 1, latency=budget * 1.5)


def read(messages: list[str] | None) -> tuple[list[str], list[str]]:
    """The repositories and the continuations (their `continueAfter`) among queue messages."""
    bodies = [json.loads(m) for m in messages or []]
    repositories = [b["repository"] for b in bodies if "repository" in b]
    continuations = [b["continueAfter"] for b in bodies if "continueAfter" in b]
    assert len(repositories) + len(continuations) == len(bodies)
    return repositories, continuations


def sweep_line(app_log: Any) -> dict[str, Any]:
    messages = [r.getMessage() for r in app_log()]
    (line,) = [m for m in messages if m.startswith("acr-cleanup sweep {")]
    summary: dict[str, Any] = json.loads(line[len("acr-cleanup sweep ") :])
    return summary


async def test_a_cut_off_timer_queues_a_continuation(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """A timer cut off after one catalog page queues that page's covered repositories and one
    continuation after the page's last name."""
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="1")
    seed_catalog(registry)
    registry.emulator.faults = slow_after_one_page(registry)
    out = Out()

    await app.sweep_schedule(timer(), out)

    registry.emulator.faults = Faults()
    repositories, continuations = read(out.value)
    assert repositories == COVERED[:900]
    assert continuations == ["apps/r0899"]
    assert out.value is not None
    assert out.value[-1] == continuation_message("apps/r0899")
    summary = sweep_line(app_log)
    assert summary["listed"] == 1000
    assert summary["cutOff"] is True
    assert summary["continueAfter"] == "apps/r0899"
    (warning,) = app_log(logging.WARNING)
    assert "CLEANUP_SWEEP_BUDGET_SECONDS=1" in warning.getMessage()


async def test_a_continuation_queues_the_rest_and_chains_when_cut_again(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """A continuation lists after its name: cut off again it queues one more continuation;
    reaching the end of the catalog it queues only repositories."""
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="1")
    seed_catalog(registry)

    registry.emulator.faults = slow_after_one_page(registry)
    cut = Out()
    await app.sweep_repository(queue_message(continuation_message("apps/r0899")), cut)
    registry.emulator.faults = Faults()
    rest = Out()
    await app.sweep_repository(queue_message(continuation_message("apps/r1899")), rest)

    assert read(cut.value) == (COVERED[900:1900], ["apps/r1899"])
    assert read(rest.value) == (COVERED[1900:], [])
    lines = [r.getMessage() for r in app_log() if r.getMessage().startswith("acr-cleanup sweep {")]
    first, second = (json.loads(line[len("acr-cleanup sweep ") :]) for line in lines)
    assert (first["trigger"], first["after"], first["continueAfter"]) == (
        "continuation",
        "apps/r0899",
        "apps/r1899",
    )
    assert (second["listed"], second["cutOff"], second["continueAfter"]) == (400, False, None)
    assert summaries(app_log()) == []  # listing cleans nothing itself


async def test_nothing_is_lost_across_the_timer_and_its_continuations(
    registry: Registry, configure: Any
) -> None:
    """With every invocation cut off after one page, the timer and the continuations it chains
    queue every covered repository exactly once and no other, then stop."""
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="1")
    seed_catalog(registry)
    registry.emulator.faults = slow_after_one_page(registry)
    out = Out()
    await app.sweep_schedule(timer(), out)

    queued, pending = read(out.value)
    continued: list[str] = []
    while pending:  # what the queue trigger does with each continuation message
        after = pending.pop(0)
        continued.append(after)
        registry.emulator.faults = slow_after_one_page(registry)
        out = Out()
        await app.sweep_repository(queue_message(continuation_message(after)), out)
        repositories, more = read(out.value)
        queued += repositories
        pending += more

    registry.emulator.faults = Faults()
    assert sorted(queued) == COVERED  # each once: no duplicates, none missing, nothing uncovered
    assert continued == ["apps/r0899", "apps/r1899"]


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda r: AfterPages(r, 1, error_rate=1.0, error_status=503), id="transient"),
        pytest.param(lambda r: RefusedAfterPages(r, 1), id="refused"),
    ],
)
async def test_a_failure_part_way_queues_a_continuation(
    registry: Registry, app: ModuleType, app_log: Any, failure: Any
) -> None:
    """A listing that fails after one page (transiently, or refused for good) queues what it has
    and a continuation, and does not fail the timer: the rest of the catalog does not wait for
    the next sweep."""
    seed_catalog(registry)
    registry.emulator.faults = failure(registry)
    out = Out()

    await app.sweep_schedule(timer(), out)

    registry.emulator.faults = Faults()
    assert read(out.value) == (COVERED[:900], ["apps/r0899"])
    summary = sweep_line(app_log)
    assert (summary["cutOff"], summary["listingFailed"]) == (False, True)


async def test_a_continuation_that_lists_nothing_raises(registry: Registry, configure: Any) -> None:
    """A continuation that lists nothing within the budget raises, so the queue redelivers it
    (then moves it to the poison queue) rather than chaining from the same place forever."""
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="1")
    seed_catalog(registry)
    registry.emulator.faults = Faults(latency=1.5)
    out = Out()

    with pytest.raises(Exception, match="listed no repository"):
        await app.sweep_repository(queue_message(continuation_message("apps/r0899")), out)

    registry.emulator.faults = Faults()
    assert out.value is None


# --- the queue fan-out through Azurite -------------------------------------------------------


@pytest.fixture
def azurite_queue() -> Iterator[str]:
    """Azurite's queue service on a free loopback port; yields its connection string."""
    with azurite_service("queue") as connection:
        yield connection


@pytest.mark.azurite
async def test_sweep_fans_out_through_the_storage_queue(
    registry: Registry, app: ModuleType, azurite_queue: str
) -> None:
    """Timer output written to a Storage queue as the host does (base64) is consumed by the queue
    trigger; a consumer that dies mid-way loses nothing, and every covered repository ends clean."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    await three_repositories(registry)
    out = Out()
    await app.sweep_schedule(timer(), out)
    assert out.value

    queue = QueueClient.from_connection_string(
        azurite_queue,
        QUEUE,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    queue.create_queue()
    for body in out.value:  # what the host does with the function's output binding
        queue.send_message(body)

    # A first instance takes every message, finishes one, and is recycled before the rest.
    taken = list(queue.receive_messages(messages_per_page=32, visibility_timeout=1))
    assert len(taken) == 2
    first = taken[0]
    await app.sweep_repository(queue_message(first.content, message_id=first.id), Out())
    queue.delete_message(first)

    # The others become visible again and a second instance finishes them.
    again: list[Any] = []
    deadline = time.monotonic() + 10
    while len(again) < len(taken) - 1 and time.monotonic() < deadline:
        time.sleep(0.25)
        again += queue.receive_messages(messages_per_page=32, visibility_timeout=30)
    assert [m.content for m in again] == [m.content for m in taken[1:]]
    assert all(m.dequeue_count == 2 for m in again)
    for message in again:
        await app.sweep_repository(queue_message(message.content, message_id=message.id), Out())
        queue.delete_message(message)

    assert queue.get_queue_properties().approximate_message_count == 0
    assert registry.tags("apps/a") == {"v3", "v4"}
    assert registry.tags("apps/b") == {"v3", "v4"}
    assert registry.tags("base/x") == {"v1", "v2", "v3", "v4"}


@pytest.mark.azurite
async def test_a_cut_off_sweep_continues_through_the_storage_queue(
    registry: Registry, configure: Any, azurite_queue: str
) -> None:
    """Continuations written to a Storage queue as the host does, and consumed from it, carry a
    sweep cut off after every catalog page to the end: each covered repository is cleaned."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    covered = ["apps/r0005", "apps/r1005", "apps/r1950"]  # one on each catalog page
    policy = {"version": 1, "rules": [{"name": "three", "repositories": covered, "keepLatest": 1}]}
    # 2 s, not 1: each step's first page (with its token exchange) must arrive within the
    # budget, and this test also waits on Azurite, so a loaded machine needs the headroom.
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="2", CLEANUP_POLICY=json.dumps(policy))
    history = [
        {"pushed": "2025-01-01T00:00:00Z", "tags": ["v1"], "salt": "1"},
        {"pushed": "2025-01-02T00:00:00Z", "tags": ["v2"], "salt": "2"},
    ]
    registry.emulator.seed(
        {
            "repositories": [
                {"name": name, "manifests": history if name in covered else [{"tags": ["v1"]}]}
                for name in CATALOG
            ]
        }
    )
    before = registry.state()
    queue = QueueClient.from_connection_string(
        azurite_queue,
        QUEUE,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    queue.create_queue()
    registry.emulator.faults = slow_after_one_page(registry, budget=2.0)
    out = Out()
    await app.sweep_schedule(timer(), out)
    for body in out.value or []:
        queue.send_message(body)

    continued: list[str] = []
    for _ in range(10):  # rounds of an instance taking what is visible; the chain needs three
        taken = list(queue.receive_messages(messages_per_page=32, visibility_timeout=30))
        if not taken:
            break
        for message in taken:
            after = read_continuation(message.content.encode())
            if after is not None:
                continued.append(after)
            registry.emulator.faults = slow_after_one_page(registry, budget=2.0)
            out = Out()
            await app.sweep_repository(queue_message(message.content, message_id=message.id), out)
            registry.emulator.faults = Faults()
            for body in out.value or []:
                queue.send_message(body)
            queue.delete_message(message)

    assert continued == ["apps/r0899", "apps/r1899"]
    assert queue.get_queue_properties().approximate_message_count == 0
    after_state = registry.state()
    for name in covered:
        assert registry.tags(name) == {"v2"}
    assert {k: v for k, v in after_state.items() if k not in covered} == {
        k: v for k, v in before.items() if k not in covered
    }


async def test_sweep_without_catalog_permission_names_the_role(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """An identity that may not list the catalog queues nothing and is told which role it lacks."""
    await three_repositories(registry)
    registry.emulator.grant(DEFAULT_OID, "AcrDelete")
    out = Out()

    await app.sweep_schedule(timer(), out)

    assert out.value == []
    (error,) = app_log(logging.ERROR)
    assert "will not be retried" in error.getMessage()
    assert "AcrPull" in error.getMessage()
    messages = [r.getMessage() for r in app_log()]
    (line,) = [m for m in messages if m.startswith("acr-cleanup sweep {")]
    assert json.loads(line[len("acr-cleanup sweep ") :])["listingFailed"] is True

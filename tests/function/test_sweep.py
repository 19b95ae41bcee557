"""The sweep: the timer fans covered repositories out to the queue; the queue trigger cleans."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from acr_emulator import Faults
from scripts.func_objects import Out, queue_message, timer
from tests.function.conftest import Registry, summaries

DAY = timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]
QUEUE = "acr-cleanup-sweep"
# Azurite's well-known development account (Azurite README, "Default storage account").
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


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

    await app.sweep_repository(queue_message(app.sweep_message("apps/a")))

    assert registry.tags("apps/a") == {"v3", "v4"}
    assert registry.tags("apps/b") == {"v1", "v2", "v3", "v4"}
    (summary,) = summaries(app_log())
    assert summary["trigger"] == "sweep"
    assert summary["deleted"] == 2


@pytest.mark.parametrize(
    "body", ['{"repository": "../../etc"}', "apps/a", '{"repository": "base/x"}']
)
async def test_bad_or_uncovered_messages_change_nothing(
    registry: Registry, app: ModuleType, app_log: Any, body: str
) -> None:
    """A message that is not ours, or names an uncovered repository, deletes nothing."""
    await three_repositories(registry)
    before = registry.state()

    await app.sweep_repository(queue_message(body))

    assert registry.state() == before
    assert len(app_log()) == 1


async def test_sweep_budget_cuts_the_listing_short(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """A listing slower than CLEANUP_SWEEP_BUDGET_SECONDS stops, queues what it has, and warns."""
    app = configure(CLEANUP_SWEEP_BUDGET_SECONDS="1")
    await three_repositories(registry)
    registry.emulator.faults = Faults(latency=1.5)
    out = Out()

    await app.sweep_schedule(timer(), out)

    registry.emulator.faults = Faults()
    assert out.value == []
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


# --- the queue fan-out through Azurite -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def azurite_queue() -> Iterator[str]:
    """Azurite's queue service on a free loopback port; yields its connection string."""
    binary = os.environ.get("AZURITE")
    if binary:
        binary = str(Path(binary).parent / "azurite-queue")
    else:
        binary = str(ROOT / ".tools/azurite/node_modules/.bin/azurite-queue")
    if not Path(binary).exists():
        pytest.skip(f"Azurite is not installed at {binary} (make setup installs it)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--queueHost", "127.0.0.1", "--queuePort", str(port), "--inMemoryPersistence",
         "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
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
    await app.sweep_repository(queue_message(first.content, message_id=first.id))
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
        await app.sweep_repository(queue_message(message.content, message_id=message.id))
        queue.delete_message(message)

    assert queue.get_queue_properties().approximate_message_count == 0
    assert registry.tags("apps/a") == {"v3", "v4"}
    assert registry.tags("apps/b") == {"v3", "v4"}
    assert registry.tags("base/x") == {"v1", "v2", "v3", "v4"}


async def test_sweep_without_catalog_permission_names_the_role(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """An identity that may not list the catalog queues nothing and is told which role it lacks."""
    from acr_emulator.testing import DEFAULT_OID

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

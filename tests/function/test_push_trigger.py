"""on_image_pushed end to end: a real push to the emulator emits the event that drives it."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from acr_core.run.executor import PUSHED, Outcome
from acr_core.run.report import RunReport
from acr_emulator import Arrival
from scripts.func_objects import event_from_json
from scripts.oci_push import push_multi_arch
from tests.function.conftest import Registry, summaries

DAY = timedelta(days=1)


async def seed_history(registry: Registry, repository: str = "apps/web") -> list[str]:
    """Four tagged images pushed 10, 9, 8 and 7 days ago; returns their digests, oldest first."""
    digests = []
    for age, tag in zip((10, 9, 8, 7), ("v1", "v2", "v3", "v4"), strict=True):
        digests.append((await registry.push(repository, tag, age=age * DAY)).digest)
    registry.eventgrid.clear()
    registry.cloudevents.clear()
    return digests


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_push_applies_the_policy_to_the_pushed_repository(
    registry: Registry, app: ModuleType, app_log: Any, schema: str
) -> None:
    """A push's event deletes what keepLatest=2 no longer keeps, and only in that repository.

    The new image is younger than minAge, so it is kept without taking one of the two places.
    """
    old = await seed_history(registry)
    await registry.push("apps/other", "v1", age=30 * DAY)
    await registry.push("apps/other", "v2", age=29 * DAY)
    await registry.push("apps/other", "v3", age=28 * DAY)
    registry.eventgrid.clear()
    registry.cloudevents.clear()
    new = await registry.push("apps/web", "v5", age=timedelta(0))
    (event,) = registry.pushed_events(schema)

    await app.on_image_pushed(event_from_json(event))

    assert registry.tags("apps/web") == {"v3", "v4", "v5"}
    assert registry.digests("apps/web") == {old[2], old[3], new.digest}
    assert registry.tags("apps/other") == {"v1", "v2", "v3"}
    (summary,) = summaries(app_log())
    assert summary["repository"] == "apps/web"
    assert summary["trigger"] == "push"
    assert summary["deleted"] == 2
    assert summary["dryRun"] is False
    assert summary["requests"] > 0


async def test_the_pushed_digest_is_never_deleted(registry: Registry, app: ModuleType) -> None:
    """A late event for an image the policy would drop still keeps that image."""
    late = await registry.push("apps/web", "late", age=20 * DAY)
    (event,) = registry.pushed_events()
    await seed_history(registry)

    await app.on_image_pushed(event_from_json(event))

    assert "late" in registry.tags("apps/web")
    assert late.digest in registry.digests("apps/web")
    assert registry.tags("apps/web") == {"late", "v3", "v4"}


async def test_dry_run_deletes_nothing(registry: Registry, configure: Any, app_log: Any) -> None:
    """With CLEANUP_DRY_RUN=true the run is planned and reported, and nothing is deleted."""
    app = configure(CLEANUP_DRY_RUN="true")
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    before = registry.state()

    await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))

    assert registry.state() == before
    (summary,) = summaries(app_log())
    assert summary["dryRun"] is True
    assert summary["planned"] == 2
    assert summary["deleted"] == 0


async def test_multi_arch_burst_is_coalesced(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """A multi-arch push's events, delivered together, cost at most two runs and keep the image."""
    await seed_history(registry)
    index, children = await push_multi_arch(registry.http, "apps/web", "v5", label="multi")
    events = registry.pushed_events()
    assert len(events) == 3  # two children by digest, then the index by tag

    await asyncio.gather(*(app.on_image_pushed(event_from_json(e)) for e in events))

    assert registry.tags("apps/web") == {"v3", "v4", "v5"}
    kept = registry.digests("apps/web")
    assert {index.digest, *(c.digest for c in children)} <= kept
    assert len(summaries(app_log())) <= 2


async def test_duplicate_delivery_is_harmless(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """The same event delivered twice changes nothing the second time."""
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    (event,) = registry.pushed_events()

    await app.on_image_pushed(event_from_json(event))
    after_first = registry.state()
    await app.on_image_pushed(event_from_json(copy.deepcopy(event)))

    assert registry.state() == after_first
    first, second = summaries(app_log())
    assert first["deleted"] == 2
    assert second["deleted"] == 0


def _spoof(path: str, value: object) -> Any:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = event
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


OTHER = "/subscriptions/1/resourceGroups/x/providers/Microsoft.ContainerRegistry/registries/other"
DELETED = "Microsoft.ContainerRegistry.ImageDeleted"
WARN = logging.WARNING
BAD_EVENTS = [
    ("foreign registry", _spoof("topic", OTHER), "ACR_RESOURCE_ID", WARN),
    ("spoofed host", _spoof("data.request.host", "evil.example"), "ACR_LOGIN_SERVER", WARN),
    ("bad repository", _spoof("data.target.repository", "apps/../web"), "repository", WARN),
    ("no digest", _spoof("data.target.digest", None), "digest", WARN),
    ("data not an object", _spoof("data", "apps/web"), "data", WARN),
    ("deleted event", _spoof("eventType", DELETED), "ImagePushed", logging.INFO),
]


@pytest.mark.parametrize(
    ("mutate", "words", "level"), [pytest.param(m, w, lv, id=n) for n, m, w, lv in BAD_EVENTS]
)
async def test_bad_events_are_ignored_with_one_line(
    registry: Registry, app: ModuleType, app_log: Any, mutate: Any, words: str, level: int
) -> None:
    """A spoofed, foreign or malformed event deletes nothing, raises nothing, logs one line."""
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    event = copy.deepcopy(registry.pushed_events()[0])
    mutate(event)
    before = registry.state()

    await app.on_image_pushed(event_from_json(event))

    assert registry.state() == before
    (line,) = app_log()
    assert line.levelno == level
    assert "ignored event" in line.getMessage()
    assert words in line.getMessage()


async def test_uncovered_repository_is_left_alone(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """A push to a repository no rule covers touches nothing and says so."""
    for age, tag in ((9, "a"), (8, "b"), (7, "c")):
        await registry.push("base/python", tag, age=age * DAY)
    before = registry.state()

    await app.on_image_pushed(event_from_json(registry.pushed_events()[-1]))

    assert registry.state() == before
    (line,) = app_log()
    assert "no policy rule covers" in line.getMessage()


async def test_missing_role_is_logged_with_the_fix_and_not_retried(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """Without a delete role nothing is deleted, the error names the role, and nothing raises."""
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    from acr_emulator.testing import DEFAULT_OID

    registry.emulator.grant(DEFAULT_OID, "AcrPull")
    before = registry.state()

    await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))

    assert registry.state() == before
    errors = app_log(logging.ERROR)
    assert len(errors) == 1
    assert "AcrDelete" in errors[0].getMessage()


async def test_transient_registry_failure_raises_for_a_retry(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """When the registry keeps answering 503 the invocation fails, so Event Grid redelivers."""
    from acr_emulator import Faults

    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    before = registry.state()
    registry.emulator.faults = Faults(error_rate=1.0, error_status=503, seed=1)

    with pytest.raises(Exception, match=r"503|unavailable|Service"):
        await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))

    registry.emulator.faults = Faults()
    assert registry.state() == before
    assert any("will retry" in r.getMessage() for r in app_log(logging.WARNING))


async def test_deletes_that_keep_failing_transiently_raise_for_a_retry(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """Deletes answered 503 after the client's retries, while reads succeed, fail the invocation
    (Event Grid redelivers) with nothing deleted, and the redelivery then cleans up."""
    from acr_emulator import Faults

    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    (event,) = registry.pushed_events()
    before = registry.state()
    registry.emulator.faults = Faults(
        error_rate=1.0, error_status=503, methods=frozenset({"DELETE"})
    )

    with pytest.raises(Exception, match="transient"):
        await app.on_image_pushed(event_from_json(event))

    registry.emulator.faults = Faults()
    assert registry.state() == before
    assert registry.emulator.counters.count(method="DELETE", status=503) >= 2
    (summary,) = summaries(app_log())
    assert (summary["planned"], summary["deleted"], summary["failed"]) == (2, 0, 2)
    assert any("will retry" in r.getMessage() for r in app_log(logging.WARNING))

    await app.on_image_pushed(event_from_json(event))  # the redelivery

    assert registry.tags("apps/web") == {"v3", "v4", "v5"}


async def test_logs_carry_no_token(
    registry: Registry, app: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing any logger records during a run contains an AAD or ACR token (JWTs start eyJ)."""
    caplog.set_level(logging.DEBUG)
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))

    await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))

    assert registry.tags("apps/web") == {"v3", "v4", "v5"}  # the run did authenticate
    texts = [r.getMessage() + repr(r.__dict__.get("args")) for r in caplog.records]
    assert texts
    assert not [t for t in texts if "eyJ" in t]


async def test_summary_fields_are_record_attributes(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """The summary's fields ride on the log record too, for OpenTelemetry custom dimensions."""
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))

    await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))

    (record,) = [r for r in app_log() if r.getMessage().startswith("acr-cleanup run {")]
    assert record.__dict__["acr_cleanup_repository"] == "apps/web"
    assert record.__dict__["acr_cleanup_deleted"] == 2
    assert record.__dict__["acr_cleanup_trigger"] == "push"


async def test_repository_gone_before_delivery_is_not_an_error(
    registry: Registry, app: ModuleType, app_log: Any
) -> None:
    """An event for a repository deleted before it was delivered is logged as info, not raised."""
    await registry.push("apps/web", "v1", age=10 * DAY)
    (event,) = registry.pushed_events()
    response = await registry.http.delete("/acr/v1/apps/web")
    assert response.status_code in (200, 202)
    assert registry.digests("apps/web") == set()

    await app.on_image_pushed(event_from_json(event))

    assert app_log(logging.WARNING) == []
    assert any("apps/web" in r.getMessage() for r in app_log())


async def test_safety_limit_blocks_and_warns(
    registry: Registry, configure: Any, app_log: Any
) -> None:
    """A plan over the policy's safety limit deletes nothing and warns, naming the limit."""
    policy = {
        "version": 1,
        "rules": [{"repositories": ["apps/**"], "keepLatest": 1, "minAge": "1h"}],
        "safety": {"maxDeletesPerRepository": 1},
    }
    app = configure(CLEANUP_POLICY=json.dumps(policy))
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    before = registry.state()

    await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))

    assert registry.state() == before
    (warning,) = app_log(logging.WARNING)
    assert "maxDeletesPerRepository" in warning.getMessage()
    (summary,) = summaries(app_log())
    assert summary["status"] == "blocked"
    assert summary["blocked"] == 1


async def test_failure_logs_carry_no_token(
    registry: Registry, app: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """A run refused by the registry, and a sweep that may not list, log no token either."""
    from acr_emulator.testing import DEFAULT_OID
    from scripts.func_objects import Out, timer

    caplog.set_level(logging.DEBUG)
    await seed_history(registry)
    await registry.push("apps/web", "v5", age=timedelta(0))
    registry.emulator.grant(DEFAULT_OID, "AcrPull")

    await app.on_image_pushed(event_from_json(registry.pushed_events()[0]))
    registry.emulator.revoke(DEFAULT_OID)
    registry.emulator.grant(DEFAULT_OID, "AcrDelete")
    await app.sweep_schedule(timer(), Out())

    errors = [r for r in caplog.records if r.name == "acr_cleanup" and r.levelno >= logging.ERROR]
    assert len(errors) == 2  # the refused deletions, the refused listing
    texts = [r.getMessage() + repr(r.__dict__.get("args")) for r in caplog.records]
    assert not [t for t in texts if "eyJ" in t or registry.server.admin_password in t]


async def test_a_push_during_deletion_stops_the_run_and_the_follow_up_re_plans(
    registry: Registry, configure: Any
) -> None:
    """A second push arriving while the first run deletes stops that run's DELETEs (the one in
    flight finishes); the follow-up run re-reads the repository and deletes what is left."""
    app = configure(CLEANUP_MAX_CONCURRENCY="1")  # one DELETE in flight at a time
    reports: list[RunReport] = []
    app._shell.on_report = lambda trigger, report: reports.append(report)
    for age, tag in enumerate(("v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8")):
        await registry.push("apps/web", tag, age=(20 - age) * DAY)
    registry.eventgrid.clear()
    await registry.push("apps/web", "v9", age=timedelta(0))
    (first,) = registry.pushed_events()
    reached, release = threading.Event(), threading.Event()

    async def hold_the_first_delete(arrival: Arrival) -> None:  # runs in the server's thread
        if arrival.method == "DELETE" and not reached.is_set():
            reached.set()
            while not release.is_set():
                await asyncio.sleep(0.005)

    registry.emulator.before_request(hold_the_first_delete)
    run = asyncio.create_task(app.on_image_pushed(event_from_json(first)))
    while not reached.is_set():
        await asyncio.sleep(0.005)
    registry.eventgrid.clear()
    await registry.push("apps/web", "v10", age=timedelta(0))
    (second,) = registry.pushed_events()
    follow_up = asyncio.create_task(app.on_image_pushed(event_from_json(second)))
    await asyncio.sleep(0.05)  # the second event reaches the coalescer behind the first run
    release.set()
    await asyncio.gather(run, follow_up)

    stopped, replanned = reports
    assert [o.outcome for o in stopped.outcomes] == [Outcome.APPLIED] + [
        Outcome.SKIPPED_CHANGED
    ] * 5
    assert {o.detail for o in stopped.outcomes[1:]} == {PUSHED}
    assert {o.outcome for o in replanned.outcomes} == {Outcome.APPLIED}
    assert registry.tags("apps/web") == {"v7", "v8", "v9", "v10"}

"""Hostile, broken, repeated and bursting events through `function_app.on_image_pushed`.

The function is configured against the emulator served over HTTPS (one server for the module),
with a policy that would delete four of `apps/web`'s six old images on any accepted event. So
an event that is not a valid ImagePushed from the configured registry shows as a changed
registry or a run summary in the log if it is ever acted on. Events are `func.EventGridEvent`
and `func.CloudEvent` objects built with whatever field values hypothesis draws, as the
worker's converter builds them from a body's fields without checking their types.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import re
import ssl
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from acr_core.app.handlers import RetryableRun
from acr_core.registry.transport import RetryPolicy
from acr_emulator import Emulator, EmulatorConfig, ServerInfo
from acr_emulator.testing import AsyncFakeCredential
from tests.reliability.conftest import CHAOS

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
POLICY = {
    "version": 1,
    "rules": [{"name": "apps", "repositories": ["apps/**"], "keepLatest": 2, "minAge": "1h"}],
}
HISTORY = ("v1", "v2", "v3", "v4", "v5", "v6")  # pushed 10, 9, ... 5 days ago
# The distribution spec's grammar, restated here so the test does not trust the code under test.
OCI_NAME = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
OCI_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# Characters a person reads as an ASCII letter, and characters a person does not see at all.
LOOK_ALIKES = {
    "a": "\u0430",  # CYRILLIC SMALL LETTER A
    "c": "\u0441",
    "e": "\u0435",
    "i": "\u0456",
    "o": "\u043e",
    "p": "\u0440",
    "s": "\u017f",  # LATIN SMALL LETTER LONG S: casefolds to "s"
    "k": "\u212a",  # KELVIN SIGN: lowercases to "k"
    "x": "\u0445",
    "y": "\u0443",
    "/": "\u2215",  # DIVISION SLASH
    ".": "\u2024",  # ONE DOT LEADER
    "-": "\u2010",  # HYPHEN
}
INVISIBLE = ("\u200b", "\u200d", "\ufeff", "\u00ad", "\u2060")
EXAMPLES = settings(
    max_examples=2000 if CHAOS else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Records(logging.Handler):
    """Keeps what the function app logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@dataclass
class Served:
    emulator: Emulator
    server: ServerInfo
    seeded: int = 0
    log: Records = field(default_factory=Records)

    def history(self, repository: str) -> dict[str, str]:
        """Seed `repository` with the six old images; returns their digests by tag."""
        now = datetime.now(UTC)
        manifests = [
            {"id": f"{repository}-{tag}", "pushed": (now - timedelta(days=10 - i)).isoformat()}
            | {"tags": [tag]}
            for i, tag in enumerate(HISTORY)
        ]
        self.emulator.seed({"repositories": [{"name": repository, "manifests": manifests}]})
        return self.digests_by_tag(repository)

    def young(self, repository: str, count: int) -> list[str]:
        """Push `count` untagged images a few minutes ago (younger than minAge)."""
        now = datetime.now(UTC)
        manifests = [
            {
                "id": f"{repository}-young-{i}",
                "pushed": (now - timedelta(minutes=i + 1)).isoformat(),
            }
            for i in range(count)
        ]
        before = set(self.manifests(repository))
        self.emulator.seed({"repositories": [{"name": repository, "manifests": manifests}]})
        return sorted(set(self.manifests(repository)) - before)

    def digests_by_tag(self, repository: str) -> dict[str, str]:
        tags = self.emulator.registry.repositories[repository].tags
        return {name: tag.digest for name, tag in tags.items()}

    def manifests(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)
        return set(repo.manifests) if repo is not None else set()

    def fresh(self, prefix: str) -> str:
        self.seeded += 1
        return f"apps/{prefix}-{self.seeded}"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    emulator = Emulator(EmulatorConfig())
    with emulator.serve_in_thread() as server:
        found = Served(emulator, server)
        found.history("apps/web")
        yield found


@pytest.fixture
def app(served: Served) -> Iterator[ModuleType]:
    """function_app pointed at the served emulator, its log kept in `served.log`."""
    saved = function_app._shell
    env = {
        "ACR_LOGIN_SERVER": served.server.login_server,
        "ACR_RESOURCE_ID": served.emulator.config.resource_id,
        "CLEANUP_POLICY": json.dumps(POLICY),
        "CLEANUP_DRY_RUN": "false",
    }
    function_app.configure(
        env,
        credential=AsyncFakeCredential(),
        verify=ssl.create_default_context(cafile=served.server.ca_file),
        retry=RetryPolicy(attempts=2, deadline=5.0, backoff_base=0.01, backoff_max=0.05),
    )
    logger = logging.getLogger("acr_cleanup")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(served.log)
    yield function_app
    logger.removeHandler(served.log)
    logger.setLevel(level)
    function_app._shell = saved


def valid(served: Served, repository: str, digest: str, tag: str | None) -> dict[str, Any]:
    """A well-formed ImagePushed for `repository@digest`, in schema-neutral field names."""
    target: dict[str, Any] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 1000,
        "digest": digest,
        "length": 1000,
        "repository": repository,
    }
    if tag is not None:
        target["tag"] = tag
    return {
        "id": f"evt-{random.random()}",
        "type": PUSHED,
        "source": served.emulator.config.resource_id,
        "subject": f"{repository}:{tag}",
        "data": {
            "id": "push-1",
            "timestamp": datetime.now(UTC).isoformat(),
            "action": "push",
            "target": target,
            "request": {"id": "r-1", "host": served.server.login_server, "method": "PUT"},
        },
    }


def delivered(event: dict[str, Any], schema: str) -> func.EventGridEvent | func.CloudEvent:
    """The event as the worker hands it over, in Event Grid or CloudEvents 1.0 form."""
    if schema == "cloudevents":
        return func.CloudEvent(
            id=event.get("id"),  # type: ignore[arg-type]
            source=event.get("source"),  # type: ignore[arg-type]
            type=event.get("type"),  # type: ignore[arg-type]
            specversion="1.0",
            data=event.get("data"),
            subject=event.get("subject"),
        )
    return func.EventGridEvent(
        id=event.get("id"),  # type: ignore[arg-type]
        data=event.get("data"),  # type: ignore[arg-type]
        topic=event.get("source"),  # type: ignore[arg-type]
        subject=event.get("subject"),  # type: ignore[arg-type]
        event_type=event.get("type"),  # type: ignore[arg-type]
        event_time=None,
        data_version="1.0",
    )


# ---- what hypothesis draws -------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
huge_strings = st.builds(
    lambda piece, count: piece * count,
    st.text(min_size=1, max_size=3),
    st.sampled_from([300, 10_000, 1_000_000]),
)


@st.composite
def look_alike(draw: st.DrawFn, text: str) -> str:
    """`text` with one character swapped for a look-alike, or an invisible one slipped in."""
    swappable = [i for i, ch in enumerate(text) if ch.lower() in LOOK_ALIKES]
    swap = draw(st.booleans())
    if swappable and swap:
        i = draw(st.sampled_from(swappable))
        return text[:i] + LOOK_ALIKES[text[i].lower()] + text[i + 1 :]
    i = draw(st.integers(0, len(text)))
    return text[:i] + draw(st.sampled_from(INVISIBLE)) + text[i:]


# The fields whose every wrong value must make the event ignored, and when a value is wrong.
CHECKED: dict[tuple[str, ...], Any] = {
    ("id",): lambda v, ok: not (isinstance(v, str) and v),
    ("type",): lambda v, ok: v != ok,
    ("source",): lambda v, ok: not (isinstance(v, str) and v.translate(ASCII_LOWER) == ok.lower()),
    ("data",): lambda v, ok: not isinstance(v, dict) or "target" not in v,
    ("data", "action"): lambda v, ok: v != "push",
    ("data", "request"): lambda v, ok: not isinstance(v, dict) or "host" not in v,
    ("data", "request", "host"): lambda v, ok: (
        not (isinstance(v, str) and v.translate(ASCII_LOWER) == ok.lower())
    ),
    ("data", "target"): lambda v, ok: not isinstance(v, dict) or "digest" not in v,
    ("data", "target", "repository"): lambda v, ok: (
        not (isinstance(v, str) and OCI_NAME.fullmatch(v))
    ),
    ("data", "target", "digest"): lambda v, ok: (
        not (isinstance(v, str) and OCI_DIGEST.fullmatch(v))
    ),
}
UNCHECKED = (
    ("subject",),
    ("data", "id"),
    ("data", "timestamp"),
    ("data", "target", "mediaType"),
    ("data", "target", "size"),
    ("data", "target", "length"),
    ("data", "request", "id"),
    ("data", "request", "method"),
    ("data", "request", "useragent"),
    ("data", "extra"),
    ("extra",),
)


def get(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = event
    for key in path:
        value = value[key]
    return value


def put(event: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    parent = get(event, path[:-1])
    if value is _DELETE:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


_DELETE = object()


@st.composite
def forged(draw: st.DrawFn, template: dict[str, Any]) -> dict[str, Any]:
    """`template` with one or more checked fields made wrong: missing, another JSON value, a
    huge string, a look-alike of the right value, or another registry's."""
    event: dict[str, Any] = json.loads(json.dumps(template))
    paths = draw(st.lists(st.sampled_from(list(CHECKED)), min_size=1, max_size=3, unique=True))
    for path in sorted(paths, key=len, reverse=True):
        try:
            right = get(event, path)
        except (KeyError, TypeError):
            continue  # a shorter path already replaced its parent
        wrong = functools.partial(_wrong, path, right)
        # Only options that can be wrong for this field (any string is a valid event id).
        options: list[st.SearchStrategy[Any]] = [json_values.filter(wrong)]
        if path != ("id",):
            options.append(huge_strings.filter(wrong))
        if isinstance(right, str) and path != ("id",):
            options.append(look_alike(right).filter(wrong))
            other = right.replace("emulator", "other")
            options += [st.just(other)] if wrong(other) else []
        if path != ("data", "action"):
            options.append(st.just(_DELETE))
        value = draw(st.one_of(options))
        put(event, path, value)
    return event


def _wrong(path: tuple[str, ...], right: Any, value: Any) -> bool:
    if value is _DELETE:
        return True
    wrong: bool = bool(CHECKED[path](value, right))
    return wrong


# ---- the properties --------------------------------------------------------------------------


@EXAMPLES
@given(data=st.data(), schema=st.sampled_from(["eventgrid", "cloudevents"]))
async def test_no_forged_or_malformed_event_is_acted_on(served, app, data, schema):
    """A wrong type, source, host, repository, digest or data shape is ignored, quietly."""
    digests = served.digests_by_tag("apps/web")
    template = valid(served, "apps/web", digests["v1"], "v1")
    event = data.draw(forged(template))
    served.log.records.clear()
    before = served.manifests("apps/web")

    await app.on_image_pushed(delivered(event, schema))

    assert served.manifests("apps/web") == before
    lines = served.log.lines()
    assert not [line for line in lines if line.startswith("acr-cleanup run ")], lines
    assert [line for line in lines if line.startswith("acr-cleanup ignored event")], lines
    assert all(len(line) < 1000 for line in lines)  # a megabyte of input, a bounded line


@settings(max_examples=100 if CHAOS else 12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), schema=st.sampled_from(["eventgrid", "cloudevents"]))
async def test_noise_in_unchecked_fields_ends_in_one_run_or_none(served, app, data, schema):
    """Any values in the fields not checked give either no run or one run's state, and the
    pushed image stays."""
    repository = served.fresh("noise")
    digests = served.history(repository)
    event = valid(served, repository, digests["v1"], "v1")
    for path in data.draw(st.lists(st.sampled_from(UNCHECKED), max_size=4, unique=True)):
        put(event, path, data.draw(json_values | huge_strings | st.just(_DELETE)))
    before = served.manifests(repository)

    try:
        await app.on_image_pushed(delivered(event, schema))
    except RetryableRun:
        pytest.fail("a healthy registry made the run transient")

    one_run = {digests[tag] for tag in ("v1", "v5", "v6")}
    assert served.manifests(repository) in (before, one_run)


@pytest.mark.parametrize("seed", range(3))
async def test_bursts_of_duplicate_and_reordered_events_end_as_one_run(served, app, seed, trials):
    """Many pushes to one repository, each delivered up to three times in any order and either
    schema, all at once, end as one run would end, and every pushed image survives."""
    for trial in range(trials(1, 10)):
        rng = random.Random(f"{seed}/{trial}")
        repository = served.fresh("burst")
        digests = served.history(repository)
        pushed = served.young(repository, rng.randint(1, 8))
        events = [
            delivered(
                valid(served, repository, digest, None), rng.choice(["eventgrid", "cloudevents"])
            )
            for digest in pushed
            for _ in range(rng.randint(1, 3))
        ]
        rng.shuffle(events)

        await asyncio.gather(*(app.on_image_pushed(event) for event in events))

        assert served.manifests(repository) == {digests["v5"], digests["v6"], *pushed}


async def test_events_that_arrive_one_after_another_change_nothing_after_the_first(served, app):
    """Out of order and repeated, the events after the first run delete nothing more."""
    repository = served.fresh("serial")
    digests = served.history(repository)
    pushed = served.young(repository, 4)
    events = [valid(served, repository, digest, None) for digest in reversed(pushed)]
    await app.on_image_pushed(delivered(events[0], "eventgrid"))
    after_first = served.manifests(repository)

    for event in [*events, *events]:
        await app.on_image_pushed(delivered(event, "cloudevents"))

    assert served.manifests(repository) == after_first == {digests["v5"], digests["v6"], *pushed}


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
async def test_the_valid_event_the_forgeries_start_from_is_acted_on(served, app, schema):
    """Unforged, the template runs the policy once: the forgeries' silence is not a dead switch."""
    repository = served.fresh("control")
    digests = served.history(repository)

    await app.on_image_pushed(delivered(valid(served, repository, digests["v1"], "v1"), schema))

    assert served.manifests(repository) == {digests[tag] for tag in ("v1", "v5", "v6")}
    assert [line for line in served.log.lines() if line.startswith("acr-cleanup run ")]

"""The moving-tag history: what it remembers of each tag, however the observations arrive."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acr_core.history.model import DEPTH, HistoryError, Observation, Seen, merge, previous
from acr_core.history.store import FileHistory, TableHistory, from_snapshot, user_history_path
from acr_core.models import ChangeableAttributes, RepositorySnapshot, TagProperties
from acr_core.storage.tables import MemoryTable, TableError, escape, unescape

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIGESTS = [f"sha256:{i:064x}" for i in range(30)]
PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def truth(pushes: list[tuple[str, str]], tag: str) -> tuple[str | None, list[str]]:
    """The tag's current digest and the distinct digests before it, most recent first, from
    the pushes in the order they happened."""
    order = [digest for t, digest in pushes if t == tag]
    if not order:
        return None, []
    current, before = order[-1], []
    for digest in reversed(order):
        if digest != current and digest not in before:
            before.append(digest)
    return current, before


def as_observations(pushes: list[tuple[str, str]]) -> list[Observation]:
    return [Observation(tag, d, T0 + timedelta(seconds=i)) for i, (tag, d) in enumerate(pushes)]


pushes_strategy = st.lists(
    st.tuples(st.sampled_from(["prod", "staging"]), st.sampled_from(DIGESTS)),
    min_size=1,
    max_size=80,
)


@PROPERTY
@given(pushes=pushes_strategy, seed=st.integers(0, 2**32 - 1), writers=st.integers(1, 4))
async def test_any_delivery_order_keeps_exactly_the_last_digests_per_tag(
    pushes: list[tuple[str, str]], seed: int, writers: int
) -> None:
    """Pushes delivered shuffled, some twice, by several writers at once into one table,
    leave each tag remembering its current digest and exactly the last DEPTH before it."""
    events = as_observations(pushes)
    rng = random.Random(seed)
    deliveries = events + rng.sample(events, k=len(events) // 3)  # at least once
    rng.shuffle(deliveries)
    table = MemoryTable()
    histories = [TableHistory(table, registry="r.example") for _ in range(writers)]

    async def deliver(i: int) -> None:
        for event in deliveries[i::writers]:
            await histories[i].record("apps/web", [event])
            await asyncio.sleep(0)  # let the writers interleave between read and write

    await asyncio.gather(*(deliver(i) for i in range(writers)))

    memory = await histories[0].observe("apps/web", [])
    for tag in ("prod", "staging"):
        current, before = truth(pushes, tag)
        if current is None:
            assert tag not in memory
            continue
        assert memory[tag][0].digest == current
        assert list(previous(memory[tag])) == before[:DEPTH]


@PROPERTY
@given(pushes=pushes_strategy, seed=st.integers(0, 2**32 - 1))
def test_merge_ignores_order_grouping_and_repetition(
    pushes: list[tuple[str, str]], seed: int
) -> None:
    """Merging the observations in any grouping and order gives what merging them all gives."""
    seen = [Seen(o.at, o.digest) for o in as_observations(pushes)]
    rng = random.Random(seed)
    shuffled = seen + rng.sample(seen, k=len(seen) // 2)
    rng.shuffle(shuffled)
    cut = rng.randint(0, len(shuffled))
    assert merge(merge(shuffled[:cut]), merge(shuffled[cut:])) == merge(seen)


def test_a_digest_pointed_to_again_is_current_not_previous() -> None:
    """prod: a, b, a again: the current digest is a and the one before it b, once."""
    a, b = DIGESTS[:2]
    memory = merge([Seen(T0, a), Seen(T0 + timedelta(1), b), Seen(T0 + timedelta(2), a)])
    assert [s.digest for s in memory] == [a, b]


async def test_an_observation_already_known_writes_nothing() -> None:
    """Recording what the table already holds (a redelivered event) does not write again."""
    table = MemoryTable()
    history = TableHistory(table, registry="r")
    event = Observation("prod", DIGESTS[0], T0)
    await history.record("apps/web", [event])
    await history.record("apps/web", [event])
    await history.observe("apps/web", [event])
    assert table.writes == 1


class RacingTable(MemoryTable):
    """A table where another writer gets in between a reader and its write, once."""

    def __init__(self) -> None:
        super().__init__()
        self.before_write: Callable[[], Awaitable[None]] | None = None

    async def put(self, partition: str, key: str, value: str, *, etag: str | None) -> bool:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            await hook()
        return await super().put(partition, key, value, etag=etag)


async def test_a_writer_that_lost_the_race_merges_with_the_winner() -> None:
    """A write whose ETag went stale is re-read and merged, so neither writer's digest is lost."""
    table = RacingTable()
    history = TableHistory(table, registry="r")
    await history.record("apps/web", [Observation("prod", DIGESTS[0], T0)])

    async def other_instance() -> None:
        other = TableHistory(table, registry="r")
        await other.record("apps/web", [Observation("prod", DIGESTS[1], T0 + timedelta(1))])

    table.before_write = other_instance
    await history.record("apps/web", [Observation("prod", DIGESTS[2], T0 + timedelta(2))])

    memory = await history.observe("apps/web", [])
    assert [s.digest for s in memory["prod"]] == [DIGESTS[2], DIGESTS[1], DIGESTS[0]]
    assert table.writes == 3


async def test_a_corrupt_row_is_an_error_naming_it() -> None:
    """A row that is not tag history makes reading fail with the tag and what to do."""
    table = MemoryTable()
    await table.put("r/apps/web", "prod", "not json", etag=None)
    with pytest.raises(HistoryError, match=r"'prod'.*delete that row"):
        await TableHistory(table, registry="r").observe("apps/web", [])


def test_snapshot_tags_are_observed_at_their_own_update_time() -> None:
    """A listing's tags are observations at the tags' lastUpdateTime (the registry's clock)."""
    tag = TagProperties("r", "apps/web", "prod", DIGESTS[0], T0, T0 + timedelta(hours=1))
    snapshot = RepositorySnapshot("apps/web", ChangeableAttributes(), (), (tag,))
    assert from_snapshot(snapshot, T0 + timedelta(days=1)) == [
        Observation("prod", DIGESTS[0], T0 + timedelta(hours=1))
    ]


def test_keys_are_escaped_for_table_storage_and_back() -> None:
    """Repository slashes (and % itself) survive the trip through a table key."""
    for key in ("r.example/apps/web", "a%2Fb", "x#y?z\\w", "%25"):
        assert "/" not in escape(key)
        assert unescape(escape(key)) == key


async def test_the_file_keeps_the_history_between_runs(tmp_path: Path) -> None:
    """The CLI's file remembers across instances, per registry, and is valid JSON."""
    path = tmp_path / "sub" / "history.json"
    first = FileHistory(path, registry="r")
    await first.observe("apps/web", [Observation("prod", DIGESTS[0], T0)])
    await first.record("apps/web", [Observation("prod", DIGESTS[1], T0 + timedelta(1))])
    memory = await FileHistory(path, registry="r").observe("apps/web", [])
    assert previous(memory["prod"]) == (DIGESTS[0],)
    assert await FileHistory(path, registry="other").observe("apps/web", []) == {}
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.parametrize(
    "content", ["{not json", '{"repositories": []}', '{"version": 9, "repositories": {}}']
)
async def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path, content: str) -> None:
    """A history file that is not ours fails to read, naming the file and the fix."""
    path = tmp_path / "history.json"
    path.write_text(content)
    with pytest.raises(HistoryError, match=f"cannot read the tag history file {path}"):
        await FileHistory(path, registry="r").observe("apps/web", [])


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {}, "/home/u/.local/share/acr-cleanup/history.json"),
        ("linux", {"XDG_DATA_HOME": "/data"}, "/data/acr-cleanup/history.json"),
        ("darwin", {}, "/home/u/Library/Application Support/acr-cleanup/history.json"),
        ("win32", {"LOCALAPPDATA": "/appdata"}, "/appdata/acr-cleanup/history.json"),
    ],
)
def test_the_clis_file_is_in_the_users_data_directory(
    platform: str, environ: dict[str, str], expected: str
) -> None:
    """Without --history the CLI's file is under the platform's user data directory."""
    assert user_history_path(environ, platform, Path("/home/u")) == Path(expected)


class FailingTable(MemoryTable):
    async def put(self, partition: str, key: str, value: str, *, etag: str | None) -> bool:
        raise TableError("cannot write a table in memory: full; free some space")


async def test_a_failed_write_is_one_error_naming_the_table() -> None:
    """A listing whose rows cannot be written fails with the table's own message."""
    history = TableHistory(FailingTable(), registry="r")
    observations = [Observation(t, DIGESTS[0], T0) for t in ("a", "b", "c")]
    with pytest.raises(HistoryError, match=r"^cannot write a table in memory: full"):
        await history.observe("apps/web", observations)


class CountingTable(MemoryTable):
    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def put(self, partition: str, key: str, value: str, *, etag: str | None) -> bool:
        done = await super().put(partition, key, value, etag=etag)
        self.refused += not done
        return done


async def test_an_event_for_a_known_tag_costs_one_read_and_one_write() -> None:
    """Recording a move of a tag the table knows writes once, without a refused write first."""
    table = CountingTable()
    history = TableHistory(table, registry="r")
    await history.record("apps/web", [Observation("prod", DIGESTS[0], T0)])
    await history.record("apps/web", [Observation("prod", DIGESTS[1], T0 + timedelta(1))])
    assert (table.writes, table.refused) == (2, 0)

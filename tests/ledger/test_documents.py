"""Ledger documents read back as written, and an unreadable or tampered one is a clear error."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from acr_core.ledger.entries import Entry, Recorded, RunInfo, digest_of
from acr_core.ledger.ledger import Ledger, LedgerError, Query
from acr_core.storage.objects import MemoryStore

AT = datetime(2026, 1, 31, 3, 0, tzinfo=UTC)
RAW = b'{"schemaVersion":2}'
INFO = RunInfo(
    "20260131T030000Z-0a1b2c3d", "r.azurecr.io", "sweep", "m-1", "oid", "sha256:p", False, AT
)


def _entry(**changes: object) -> Entry:
    fields: dict[str, object] = {
        "info": INFO,
        "time": AT,
        "kind": "delete_manifest",
        "repository": "team/app",
        "digest": digest_of(RAW),
        "tags": ("v1",),
        "rule": "apps",
        "reason": "older than the 2 newest",
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": 1234,
        "outcome": "applied",
        "manifest": Recorded(
            digest_of(RAW), "application/vnd.oci.image.manifest.v1+json", RAW, ("v1",)
        ),
    }
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


async def test_an_entry_reads_back_equal_to_what_was_written() -> None:
    """Every field, the manifest's bytes included, survives the round trip."""
    ledger = Ledger(MemoryStore())
    entry = _entry()
    await ledger.write_run(INFO, "report", [entry], AT)
    assert await ledger.entries() == [entry]
    assert await ledger.entries(Query(since=AT.replace(day=30), until=AT)) == [entry]


async def test_a_report_replaces_its_runs_intent_and_is_written_only_once() -> None:
    """Listing shows the report's outcomes, not the intent's; a second report is refused."""
    ledger = Ledger(MemoryStore())
    await ledger.write_run(INFO, "intent", [_entry(outcome="pending")], AT)
    await ledger.write_run(INFO, "report", [_entry()], AT)
    assert [e.outcome for e in await ledger.entries()] == ["applied"]
    with pytest.raises(LedgerError, match="already exists"):
        await ledger.write_run(INFO, "report", [_entry(outcome="failed")], AT)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"not json", "is not a version 1 run document"),
        (json.dumps({"ledgerVersion": 2}).encode(), "ledgerVersion 2"),
    ],
)
async def test_an_unreadable_document_names_its_key(document: bytes, words: str) -> None:
    """A document that is not this format is a LedgerError naming the key, not a traceback."""
    store = MemoryStore()
    await store.put("runs/20260131T030000Z-0a1b2c3d/report.json", document)
    key = "runs/20260131T030000Z-0a1b2c3d/report.json"
    with pytest.raises(LedgerError, match=re.escape(key)) as caught:
        await Ledger(store).entries()
    assert words in str(caught.value)


async def test_bytes_that_do_not_hash_to_their_digest_are_refused() -> None:
    """A recorded manifest altered after the fact is not handed to restore."""
    store = MemoryStore()
    ledger = Ledger(store)
    await ledger.write_run(INFO, "report", [_entry()], AT)
    key = f"runs/{INFO.run}/report.json"
    data = await store.get(key)
    assert data is not None
    tampered = data.replace(b"eyJzY2hlbWFWZXJzaW9uIjoyfQ==", b"eyJzY2hlbWFWZXJzaW9uIjozfQ==")
    assert tampered != data
    await store.put(key, tampered)
    with pytest.raises(LedgerError, match="do not hash to it"):
        await ledger.entries()

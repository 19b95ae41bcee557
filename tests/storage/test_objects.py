"""The store contract (docs: STORAGE_API), the same for memory, a directory and a blob container.

Every backend: a missing key is None, a write replaces, `overwrite=False` never replaces, keys
list sorted by prefix, a bad key is refused. Then what only one backend promises: the directory
store's atomic, exclusive writes and its `StoreError` on a directory it cannot read; the memory
store's bound; the blob store's `StoreError` when the container is missing.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acr_core.storage.blob import BlobStore
from acr_core.storage.objects import DirectoryStore, MemoryStore, ObjectStore, StoreError

pytestmark = pytest.mark.asyncio
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


async def _blob_store(connection_string: str) -> BlobStore:
    store = BlobStore.from_connection_string(connection_string, f"t{uuid.uuid4().hex}")
    await store.create_container()
    return store


@pytest.fixture(params=["memory", "directory", pytest.param("blob", marks=pytest.mark.azurite)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    """Each backend in turn; the blob one on a fresh container of Azurite."""
    made: ObjectStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "directory":
        made = DirectoryStore(tmp_path / "store")
    else:
        made = await _blob_store(request.getfixturevalue("azurite_blob"))
    yield made
    await made.close()


async def _keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [key async for key in store.list(prefix)]


async def test_missing_key_is_none(store: ObjectStore) -> None:
    """A key never written reads as None, not an error."""
    assert await store.get("manifests/sha256:00") is None


async def test_put_then_get_and_replace(store: ObjectStore) -> None:
    """A write is read back, and a second write replaces it."""
    assert await store.put("a/b", b"one") is True
    assert await store.get("a/b") == b"one"
    assert await store.put("a/b", b"two") is True
    assert await store.get("a/b") == b"two"


async def test_overwrite_false_keeps_the_first(store: ObjectStore) -> None:
    """`overwrite=False` writes a new key once and then refuses, keeping the first bytes."""
    assert await store.put("ledger/1", b"first", overwrite=False) is True
    assert await store.put("ledger/1", b"second", overwrite=False) is False
    assert await store.get("ledger/1") == b"first"


async def test_list_is_sorted_by_prefix(store: ObjectStore) -> None:
    """Listing yields the keys under a prefix in sorted order."""
    for key in ("s/b", "s/a:1", "t/x", "s/c/d"):
        await store.put(key, b"x")
    assert await _keys(store, "s/") == ["s/a:1", "s/b", "s/c/d"]
    assert await _keys(store) == ["s/a:1", "s/b", "s/c/d", "t/x"]


@pytest.mark.parametrize("key", ["", "a//b", "../x", "a/./b", "a b", "a\\b", "/a", "é"])
async def test_bad_keys_are_refused(store: ObjectStore, key: str) -> None:
    """A key outside the grammar is a ValueError before anything is read or written."""
    with pytest.raises(ValueError, match="invalid store key"):
        await store.put(key, b"x")
    with pytest.raises(ValueError, match="invalid store key"):
        await store.get(key)


# --- the directory store ----------------------------------------------------------------------


async def test_directory_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    """After writes and replacements only the keys' own files are in the directory."""
    store = DirectoryStore(tmp_path)
    await store.put("x/y", b"1")
    await store.put("x/y", b"2")
    await store.put("x/z", b"3", overwrite=False)
    await store.put("x/z", b"4", overwrite=False)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["y", "z"]


async def test_directory_concurrent_exclusive_writes_one_wins(tmp_path: Path) -> None:
    """Of many writers racing for one key with `overwrite=False`, exactly one succeeds."""
    store = DirectoryStore(tmp_path)
    results = await asyncio.gather(
        *(store.put("ledger/k", str(i).encode() * 1000, overwrite=False) for i in range(16))
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await store.get("ledger/k") == str(winner).encode() * 1000


@pytest.mark.skipif(IS_ROOT, reason="root reads any file; permissions cannot be tested")
async def test_directory_unreadable_is_a_store_error(tmp_path: Path) -> None:
    """A directory the user cannot read gives StoreError naming it, for get, put and list."""
    store = DirectoryStore(tmp_path / "c")
    await store.put("k/v", b"1")
    (tmp_path / "c" / "k").chmod(0)
    try:
        with pytest.raises(StoreError, match=r"directory .*/c"):
            await store.get("k/v")
        with pytest.raises(StoreError, match="cannot write"):
            await store.put("k/w", b"2")
        with pytest.raises(StoreError, match="cannot list"):
            await _keys(store)
    finally:
        (tmp_path / "c" / "k").chmod(0o700)


async def test_directory_key_that_is_a_directory_is_a_store_error(tmp_path: Path) -> None:
    """Reading a key whose path is a directory (a broken store) is StoreError, not a crash."""
    store = DirectoryStore(tmp_path)
    await store.put("a/b", b"1")
    with pytest.raises(StoreError, match="cannot read 'a'"):
        await store.get("a")


async def test_directory_root_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    """A root that is a file cannot be written into: StoreError, and the file is untouched."""
    (tmp_path / "f").write_bytes(b"mine")
    store = DirectoryStore(tmp_path / "f")
    with pytest.raises(StoreError, match="cannot write"):
        await store.put("k", b"1")
    with pytest.raises(StoreError, match=r"cannot read 'k' in directory .*/f"):
        await store.get("k")
    with pytest.raises(StoreError, match="cannot list"):
        await _keys(store)
    assert (tmp_path / "f").read_bytes() == b"mine"


# --- the memory store -------------------------------------------------------------------------


async def test_memory_bound_evicts_least_recently_used() -> None:
    """Past `max_bytes` the least recently used keys go; a read makes a key recent."""
    store = MemoryStore(max_bytes=30)
    for key in ("a", "b", "c"):
        await store.put(key, b"x" * 10)
    assert await store.get("a") == b"x" * 10  # a is now the most recent
    await store.put("d", b"y" * 10)
    assert await store.get("b") is None
    assert [await store.get(k) for k in ("a", "c", "d")] == [b"x" * 10, b"x" * 10, b"y" * 10]
    assert store.size == 30


async def test_memory_never_holds_more_than_its_bound() -> None:
    """A value larger than the bound is not kept, and the store stays within it."""
    store = MemoryStore(max_bytes=10)
    await store.put("small", b"12345")
    await store.put("huge", b"z" * 11)
    assert await store.get("huge") is None
    assert await store.get("small") == b"12345"
    assert store.size <= 10


# --- the blob store ---------------------------------------------------------------------------


@pytest.mark.azurite
async def test_blob_missing_container_is_a_store_error(azurite_blob: str) -> None:
    """A container that does not exist is a StoreError that says so, not an empty store."""
    store = BlobStore.from_connection_string(azurite_blob, "nosuchcontainer")
    try:
        with pytest.raises(StoreError, match=r"blob container http://127\.0\.0\.1:\d+/.*"):
            await store.get("k")
        with pytest.raises(StoreError, match="ContainerNotFound"):
            await store.put("k", b"1")
    finally:
        await store.close()


@pytest.mark.azurite
async def test_blob_unreachable_is_a_store_error() -> None:
    """A storage account nobody answers for is a StoreError naming the container."""
    store = BlobStore("http://127.0.0.1:9/devstoreaccount1/c", credential=None, retries=0)
    try:
        with pytest.raises(StoreError, match=r"blob container http://127\.0\.0\.1:9/"):
            await store.get("k")
    finally:
        await store.close()

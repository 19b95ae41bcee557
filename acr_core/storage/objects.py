"""Keyed bytes: the one interface every store speaks, and the memory and directory stores.

A key is a few "/"-separated words of ``[A-Za-z0-9._:-]`` (so it is a safe relative path and a
valid blob name everywhere). A missing key reads as ``None``; any failure of the backend (an I/O
error, a permission, the network) is raised as `StoreError`, whose message names the store and
says what to do. A write is never seen half done: the directory store writes a temporary file and
renames it over the key, and ``overwrite=False`` is an exclusive create, so append-only records
(the ledger's) cannot be written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["DirectoryStore", "MemoryStore", "ObjectStore", "StoreError", "check_key"]

_WORD = re.compile(r"[A-Za-z0-9._:-]+")


class StoreError(Exception):
    """The store cannot be read or written; the message names the store and what to do."""


@runtime_checkable
class ObjectStore(Protocol):
    """Keyed bytes, as the manifest cache, the snapshots and the ledger keep them."""

    @property
    def description(self) -> str:
        """Where the store is, for messages: "directory /x", "blob container https://..."."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there is no such key."""
        ...

    async def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        """Store ``data``; False when ``overwrite`` is False and the key exists."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """The keys that start with ``prefix``, sorted."""
        ...

    async def close(self) -> None:
        """Release what the store holds open (connections); the store is not used again."""
        ...


def check_key(key: str) -> str:
    """``key`` itself when it is "/"-separated words of [A-Za-z0-9._:-]; ValueError otherwise.

    "." and ".." are refused as words so that a key can never leave a directory store's root.
    """
    words = key.split("/")
    if not key or any(not _WORD.fullmatch(w) or w in (".", "..") for w in words):
        raise ValueError(f"invalid store key {key!r}: use '/'-separated words of [A-Za-z0-9._:-]")
    return key


class MemoryStore:
    """Keys in a dict; with ``max_bytes``, the least recently used keys go first when full.

    A value larger than the whole bound is not kept at all (a cache may forget, never fail).
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._max_bytes = max_bytes
        self._size = 0

    @property
    def description(self) -> str:
        bound = "unbounded" if self._max_bytes is None else f"at most {self._max_bytes} bytes"
        return f"memory ({bound})"

    @property
    def size(self) -> int:
        """Bytes held now (values only)."""
        return self._size

    async def get(self, key: str) -> bytes | None:
        data = self._items.get(check_key(key))
        if data is not None:
            self._items.move_to_end(key)
        return data

    async def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        check_key(key)
        if key in self._items:
            if not overwrite:
                return False
            self._size -= len(self._items.pop(key))
        if self._max_bytes is not None and len(data) > self._max_bytes:
            return True
        self._items[key] = bytes(data)
        self._size += len(data)
        while self._max_bytes is not None and self._size > self._max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted)
        return True

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        for key in sorted(k for k in self._items if k.startswith(prefix)):
            yield key

    async def close(self) -> None:
        self._items.clear()
        self._size = 0


class DirectoryStore:
    """One file per key under ``root`` (created on first write); the CLI's store.

    Blocking file calls run in a worker thread so that a slow disk does not stall the run's
    requests.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def description(self) -> str:
        return f"directory {self._root}"

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key).split("/"))

    def _fail(self, verb: str, key: str, error: OSError) -> StoreError:
        return StoreError(
            f"cannot {verb} {key!r} in {self.description}: {error.strerror or error}; "
            "check that the directory exists and is readable and writable by this user, "
            "or choose another one"
        )

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._fail("read", key, error) from error

    async def put(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        path = self._path(key)
        try:
            return await asyncio.to_thread(_write_atomically, path, bytes(data), overwrite)
        except OSError as error:
            raise self._fail("write", key, error) from error

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        try:
            keys = await asyncio.to_thread(_walk_keys, self._root)
        except OSError as error:
            raise self._fail("list", prefix or "/", error) from error
        for key in keys:
            if key.startswith(prefix):
                yield key

    async def close(self) -> None:
        return None


def _walk_keys(root: Path) -> list[str]:
    """Every key under ``root``, sorted; temporary files (".name.tmp") and strays are skipped."""
    if not root.exists():
        return []
    found: list[str] = []
    for directory, _, files in os.walk(root, onerror=_raise):
        base = Path(directory).relative_to(root).parts
        for name in files:
            key = "/".join((*base, name))
            if not name.startswith(".") and _is_key(key):
                found.append(key)
    return sorted(found)


def _raise(error: OSError) -> None:
    raise error


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except ValueError:
        return False
    return True


def _write_atomically(path: Path, data: bytes, overwrite: bool) -> bool:
    """Write a temporary file beside ``path``, then rename it into place.

    ``os.replace`` overwrites atomically (POSIX rename, MoveFileEx on Windows); without
    ``overwrite`` the rename is ``os.link``, which fails if the key exists, so two writers
    racing for one append-only key cannot both win. Temporary names start with "." and are
    never listed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)

"""Azurite on a free loopback port for the storage tests (blob here; tables for `history`).

`azurite_service("blob")` starts `azurite-blob` in memory and yields a connection string for
Azurite's well-known development account; the test is skipped when Azurite is not installed
(`make setup` installs it under .tools/).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Azurite's well-known development account (Azurite README, "Default storage account").
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_ENDPOINT = {"blob": "BlobEndpoint", "queue": "QueueEndpoint", "table": "TableEndpoint"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _binary(service: str) -> str:
    configured = os.environ.get("AZURITE")
    folder = Path(configured).parent if configured else ROOT / ".tools/azurite/node_modules/.bin"
    binary = folder / f"azurite-{service}"
    if not binary.exists():
        pytest.skip(f"Azurite is not installed at {binary} (make setup installs it)")
    return str(binary)


def _wait_for(port: int, process: subprocess.Popen[bytes], service: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"azurite-{service} did not start") from None
            time.sleep(0.1)


@contextlib.contextmanager
def azurite_service(service: str) -> Iterator[str]:
    """Run `azurite-<service>` until the block ends; yields the account's connection string."""
    port = free_port()
    process = subprocess.Popen(
        [_binary(service), f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port),
         "--inMemoryPersistence", "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port, process, service)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"{_ENDPOINT[service]}=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

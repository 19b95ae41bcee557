"""Azurite's table service for the history tests, once per module on a free loopback port
(main's tests/storage/azurite.py `azurite_service("table")` can replace it after the merge)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables.aio import TableClient

ROOT = Path(__file__).resolve().parents[2]
# Azurite's well-known development account (Azurite README, "Default storage account").
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CREDENTIAL = AzureNamedKeyCredential(ACCOUNT, KEY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module", name="azurite_tables")
def azurite_tables_fixture() -> Iterator[str]:
    """Azurite's table service on a free loopback port; yields the account's endpoint."""
    binary = os.environ.get("AZURITE")
    path = Path(binary).parent if binary else ROOT / ".tools/azurite/node_modules/.bin"
    if not (path / "azurite-table").exists():
        pytest.skip(f"Azurite is not installed at {path} (make setup installs it)")
    port = free_port()
    process = subprocess.Popen(
        [str(path / "azurite-table"), "--tableHost", "127.0.0.1", "--tablePort", str(port),
         "--inMemoryPersistence", "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
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
                    raise RuntimeError("azurite-table did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/{ACCOUNT}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def new_table(endpoint: str) -> str:
    """A fresh table under Azurite's account endpoint, as the Bicep would create it; its URL."""
    name = f"history{random.randrange(10**9)}"
    async with TableClient(endpoint, name, credential=CREDENTIAL) as client:
        await client.create_table()
    return f"{endpoint}/{name}"

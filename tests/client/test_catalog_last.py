"""`list_repository_names(last=...)` resumes the catalog after a name, as ACR documents."""

from __future__ import annotations

import pytest

from acr_emulator import Emulator
from tests.client.conftest import Connect

NAMES = ["apps/a", "apps/a-x", "apps/a/b", "apps/b", "base", "zeta"]


def seed(emulator: Emulator) -> None:
    emulator.seed(
        {"repositories": [{"name": name, "manifests": [{"tags": ["v1"]}]} for name in NAMES]}
    )


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, NAMES),
        ("apps/a", NAMES[1:]),
        ("apps/a/b", ["apps/b", "base", "zeta"]),
        ("apps/c", ["base", "zeta"]),  # a name the catalog does not hold (deleted since)
        ("zeta", []),
    ],
)
async def test_listing_resumes_lexically_after_last(
    emulator: Emulator, connect: Connect, last: str | None, expected: list[str]
) -> None:
    """Only names lexically after `last` are listed, whether or not `last` still exists."""
    seed(emulator)
    async with connect() as client:
        for per_page in (1000, 2):
            names = [
                n async for n in client.list_repository_names(results_per_page=per_page, last=last)
            ]
            assert names == expected


async def test_a_cut_off_listing_resumed_from_its_last_name_lists_each_name_once(
    emulator: Emulator, connect: Connect
) -> None:
    """Listings resumed from the last name each one returned together list every name once."""
    seed(emulator)
    listed: list[str] = []
    last: str | None = None
    async with connect() as client:
        while True:
            chunk: list[str] = []
            async for name in client.list_repository_names(results_per_page=2, last=last):
                chunk.append(name)
                if len(chunk) == 3:  # cut off mid-page
                    break
            if not chunk:
                break
            listed += chunk
            last = chunk[-1]
    assert listed == NAMES

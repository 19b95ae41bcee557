"""The reliability suite: races, faults, hostile events and policies, secrets in logs.

`make test` runs it small and deterministic (a minute or two); `make chaos` runs the same tests
with `ACR_CLEANUP_CHAOS=1`, and each test then takes its long trial count (docs/reliability.md
has the figures of the last chaos run). Tests ask the `trials` fixture how many to run.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

CHAOS = os.environ.get("ACR_CLEANUP_CHAOS") == "1"


@pytest.fixture
def trials() -> Callable[[int, int], int]:
    """`trials(small, long)`: `long` under `make chaos`, `small` in `make test`."""

    def count(small: int, long: int) -> int:
        return long if CHAOS else small

    return count

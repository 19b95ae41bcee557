"""The CLI's pace flags: `--sku` and the per-category limits it reads into `ExecutionLimits`."""

from __future__ import annotations

from pathlib import Path

import pytest

from acr_core.cli import parse_options
from acr_core.run.limiter import ExecutionLimits


@pytest.fixture
def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.json"
    path.write_text('{"version": 1, "rules": [{"name": "all", "repositories": ["**"]}]}')
    return str(path)


def limits(policy: str, *flags: str) -> ExecutionLimits:
    argv = ["plan", "--registry", "myregistry.azurecr.io", "--policy", policy, *flags]
    return parse_options(argv, {}).limits


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ((), ExecutionLimits()),
        (
            ("--sku", "standard"),
            ExecutionLimits(
                deletes_per_minute=500,
                reads_per_minute=5000,
                writes_per_minute=1000,
                tokens_per_minute=10_000,
            ),
        ),
        (
            ("--sku", "premium", "--deletes-per-minute", "3000", "--max-concurrency", "8"),
            ExecutionLimits(
                max_concurrency=8,
                deletes_per_minute=3000,
                reads_per_minute=10_000,
                writes_per_minute=2000,
                tokens_per_minute=20_000,
            ),
        ),
        (
            ("--deletes-per-minute", "250", "--writes-per-minute", "100"),
            ExecutionLimits(deletes_per_minute=250, writes_per_minute=100),
        ),
    ],
)
def test_pace_flags_become_the_runs_limits(
    policy: str, flags: tuple[str, ...], expected: ExecutionLimits
) -> None:
    """`--sku` gives the SKU's per-identity limits, a number given wins, none means no pace."""
    assert limits(policy, *flags) == expected

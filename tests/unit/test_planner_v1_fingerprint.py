"""v1 policies plan exactly as they did before policy version 2 (issue 13, semantics 6)."""

from __future__ import annotations

from tests.unit.plan_fingerprint import RECORDED, fingerprint


def test_v1_plans_are_those_recorded_before_version_2() -> None:
    """600 random registries and v1 policies plan to the recorded hash: the same actions, in
    the same order, with the same reasons, the same kept manifests and the same blocks (the
    full 6,000 are checked with `python -m tests.unit.plan_fingerprint`)."""
    assert fingerprint(600) == RECORDED[600]

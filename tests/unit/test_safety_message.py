"""The safety block's sentence separates deletions of their own from the referrers that go
with them, so it agrees with the report's count of deletions held back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from acr_core.planning.planner import plan
from acr_core.planning.policy import load_policy
from tests.unit.planner_fixtures import NOW, RepoBuilder


@pytest.mark.parametrize(
    ("safety", "sentence"),
    [
        (
            {"maxDeletesPerRepository": 4, "maxDeleteFraction": None},
            "would delete 8 manifests: 5 deletion(s) and 3 referrer(s) that ACR deletes with "
            "their subjects, more than safety.maxDeletesPerRepository (4)",
        ),
        (
            {"maxDeletesPerRepository": None, "maxDeleteFraction": 0.5},
            "would delete 8 of 9 manifests (89%): 5 deletion(s) and 3 referrer(s) that ACR "
            "deletes with their subjects, more than safety.maxDeleteFraction (0.5)",
        ),
    ],
)
def test_a_block_counts_deletions_and_their_referrers_apart(
    safety: dict[str, object], sentence: str
) -> None:
    """Five old images, three signed, over a limit: 8 manifests, 5 deletions, 3 referrers."""
    b = RepoBuilder()
    for i in range(6):
        b.image(f"t{i}", f"build-{i}", age=timedelta(days=10 + i))
    for i in (1, 2, 3):
        b.referrer(f"sig{i}", f"t{i}")
    rule = {"name": "r", "repositories": ["**"], "keepLatest": 1}
    policy = load_policy({"version": 1, "rules": [rule], "safety": safety})
    (repo_plan,) = plan([b.build()], policy, NOW).repositories
    assert len(repo_plan.deletions) == 5
    assert repo_plan.blocked is not None
    assert sentence in repo_plan.blocked

"""The executor's three ways of re-checking a deletion, as a fixture for the tests that race it.

Import `recheck` into a test module (it is autouse) to run each of its tests three ways.
"""

from __future__ import annotations

import pytest

from acr_core.run import executor


@pytest.fixture(autouse=True, params=["item reads", "listings", "own reads after"])
def recheck(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test of the module runs three ways: deletions re-checked by reading each one's
    manifest, tags and referrers alongside the shared read; from the repository's listings; and
    by their own reads after a shared read that did not list (too few deletions waited for it)."""
    if request.param == "item reads":
        monkeypatch.setattr(executor, "LISTING_PAGE", 0)  # no repository fits in a page
    per_read = 10**9 if request.param == "listings" else 1
    monkeypatch.setattr(executor, "LISTING_ITEMS_PER_READ", per_read)
    return str(request.param)

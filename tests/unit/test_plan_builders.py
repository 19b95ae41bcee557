"""The planner's fast builders of actions and kept manifests make the dataclasses' own values."""

from __future__ import annotations

import pytest

from acr_core.planning.plan import Action, ActionKind, Kept, deletion, kept_manifest


def test_deletion_is_the_action_its_constructor_makes() -> None:
    """Every field lands in its own slot: equal, same hash, same repr, still frozen."""
    built = deletion("r", "sha256:1", ("a", "b"), "why", "rule", 42, ("sha256:2",), ("sha256:3",))
    expected = Action(
        kind=ActionKind.DELETE_MANIFEST,
        repository="r",
        digest="sha256:1",
        tags=("a", "b"),
        reason="why",
        rule="rule",
        size_in_bytes=42,
        cascades=("sha256:2",),
        after=("sha256:3",),
    )
    assert built == expected
    assert hash(built) == hash(expected)
    assert repr(built) == repr(expected)
    with pytest.raises(AttributeError):
        built.reason = "other"  # type: ignore[misc]


def test_kept_manifest_is_the_kept_its_constructor_makes() -> None:
    built = kept_manifest("r", "sha256:1", ("latest",), "why", "rule")
    expected = Kept(repository="r", digest="sha256:1", tags=("latest",), reason="why", rule="rule")
    assert built == expected
    assert repr(built) == repr(expected)

"""Sweep messages are exact JSON objects; a listing knows where its continuation starts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from acr_core.app.sweep import (
    Listing,
    continuation_message,
    read_continuation,
    read_sweep_message,
    sweep_message,
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"repository": "apps/web"}', "apps/web"),
        (b'{"repository": "Apps/Web"}', None),
        (b'{"repository": "../x"}', None),
        (b'{"repo": "apps/web"}', None),
        (b'["apps/web"]', None),
        (b"apps/web", None),
        (b"\xff\xfe", None),
        (b'{"repository": "apps/web", "continueAfter": "apps/a"}', None),
        (b'{"continueAfter": "apps/web"}', None),
    ],
)
def test_sweep_messages_are_validated(body: bytes, expected: str | None) -> None:
    """Only a JSON object with nothing but a valid repository name is read as a sweep message."""
    assert read_sweep_message(body) == expected
    if expected is not None:
        assert read_sweep_message(sweep_message(expected).encode()) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"continueAfter": "apps/web"}', "apps/web"),
        (b'{"continueAfter": "Apps/Web"}', None),
        (b'{"continueAfter": ""}', None),
        (b'{"continueAfter": 7}', None),
        (b'{"continueAfter": "apps/a", "repository": "apps/b"}', None),
        (b'{"repository": "apps/web"}', None),
        (b"\xff\xfe", None),
    ],
)
def test_continuation_messages_are_validated(body: bytes, expected: str | None) -> None:
    """Only a JSON object with nothing but a valid repository name in continueAfter continues."""
    assert read_continuation(body) == expected
    if expected is not None:
        assert read_continuation(continuation_message(expected).encode()) == expected


async def _names(*names: str, then: BaseException | None = None) -> AsyncIterator[str]:
    for name in names:
        yield name
    if then is not None:
        raise then


async def test_a_finished_listing_queues_the_covered_names_and_no_continuation() -> None:
    """A listing that reached the catalog's end queues one message per covered name only."""
    listing = Listing()
    await listing.take(_names("apps/a", "base/b", "apps/c"), lambda n: n.startswith("apps/"))
    assert listing.messages() == [sweep_message("apps/a"), sweep_message("apps/c")]
    summary = listing.summary(cause=None, past_due=False, seconds=0.0)
    assert (summary["listed"], summary["enqueued"], summary["listingFailed"]) == (3, 2, False)
    assert summary["continueAfter"] is None


async def test_a_cut_off_listing_continues_after_the_last_name_listed() -> None:
    """Cut off by the budget, the listing queues a continuation after the last name it saw."""
    listing = Listing(after="apps/a")
    with pytest.raises(TimeoutError):
        await listing.take(_names("apps/b", "base/c", then=TimeoutError()), lambda n: True)
    listing.cut_off = True
    assert listing.messages()[-1] == continuation_message("base/c")
    summary = listing.summary(cause="m-1", past_due=None, seconds=1.23456)
    assert summary["trigger"] == "continuation"
    assert (summary["cutOff"], summary["listingFailed"]) == (True, False)
    assert summary["durationSeconds"] == 1.235


async def test_a_listing_stopped_by_a_permanent_error_continues_after_the_last_name() -> None:
    """A listing stopped part-way by an error nobody retries queues what it found, a
    continuation after the last name, and reports failing."""
    listing = Listing()
    with pytest.raises(PermissionError):
        await listing.take(_names("apps/a", then=PermissionError()), lambda n: True)
    assert listing.messages() == [sweep_message("apps/a"), continuation_message("apps/a")]
    assert listing.summary(cause=None, past_due=True, seconds=0.0)["listingFailed"] is True


async def test_a_listing_that_failed_before_any_name_queues_nothing() -> None:
    """A listing that failed before listing anything has nowhere to continue from."""
    listing = Listing()
    with pytest.raises(PermissionError):
        await listing.take(_names(then=PermissionError()), lambda n: True)
    assert listing.messages() == []

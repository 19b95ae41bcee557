"""The function's tag history settings, and the push time it records from an event."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from acr_core.app.events import Envelope
from acr_core.app.settings import SettingsError, load_settings
from acr_core.app.tag_history import pushed_at
from tests.unit.test_settings import MINIMAL

PREVIOUS = json.dumps(
    {
        "version": 2,
        "rules": [
            {
                "name": "services",
                "repositories": ["**"],
                "keep": [{"previousDigests": {"tags": ["prod"], "count": 3}}],
            }
        ],
    }
)
URL = "https://myaccount.table.core.windows.net/tagHistory"


def test_a_policy_with_previous_digests_needs_the_table() -> None:
    """Without CLEANUP_HISTORY_TABLE_URL such a policy is a settings error naming the rule."""
    with pytest.raises(SettingsError) as raised:
        load_settings({**MINIMAL, "CLEANUP_POLICY": PREVIOUS})
    (problem,) = raised.value.problems
    assert "CLEANUP_HISTORY_TABLE_URL is not set" in problem
    assert "'services'" in problem


@pytest.mark.parametrize(
    "url", [URL, URL + "/", "http://127.0.0.1:10002/devstoreaccount1/tagHistory"]
)
def test_the_table_url_is_read(url: str) -> None:
    """A table URL, Azure's or Azurite's, is taken without its trailing slash."""
    settings = load_settings(
        {**MINIMAL, "CLEANUP_POLICY": PREVIOUS, "CLEANUP_HISTORY_TABLE_URL": url}
    )
    assert settings.history_table_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["myaccount", "https://myaccount.table.core.windows.net", "https://a.b/x/y/t-able"]
)
def test_a_bad_table_url_is_refused(url: str) -> None:
    """Something that is not a table URL is an error saying what one looks like."""
    with pytest.raises(SettingsError, match="is not a table URL"):
        load_settings({**MINIMAL, "CLEANUP_HISTORY_TABLE_URL": url})


def test_without_the_clause_the_table_is_optional() -> None:
    """A policy without previousDigests needs no table."""
    assert load_settings(MINIMAL).history_table_url is None


def envelope(data: object) -> Envelope:
    return Envelope("id", "t", "s", None, data, "eventgrid")


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2018-04-25T21:39:47.276585742Z", datetime(2018, 4, 25, 21, 39, 47, 276585, UTC)),
        ("2018-04-25T21:39:47Z", datetime(2018, 4, 25, 21, 39, 47, tzinfo=UTC)),
        ("2018-04-25T21:39:47.5+00:00", datetime(2018, 4, 25, 21, 39, 47, 500000, UTC)),
        ("2018-04-25T21:39:47", datetime(2018, 4, 25, 21, 39, 47, tzinfo=UTC)),
        ("yesterday", None),
        (12345, None),
        ("2" * 100, None),
    ],
)
def test_the_push_time_is_the_events_data_timestamp(timestamp: object, expected: object) -> None:
    """data.timestamp with ACR's 9 fractional digits is read; anything else is None."""
    assert pushed_at(envelope({"timestamp": timestamp})) == expected


def test_an_event_without_data_has_no_push_time() -> None:
    """No data object, no time (the event is then learnt from the next listing)."""
    assert pushed_at(envelope("x")) is None


def test_plain_http_is_only_for_a_local_emulator() -> None:
    """An http:// table URL off the loopback address is refused (the token would be in clear)."""
    with pytest.raises(SettingsError, match="plain http"):
        load_settings(
            {**MINIMAL, "CLEANUP_HISTORY_TABLE_URL": "http://acct.table.core.windows.net/t1"}
        )

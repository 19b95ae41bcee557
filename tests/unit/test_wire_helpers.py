"""Table tests for the client's pure wire helpers: Link parsing, scopes, redaction, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from acr_core._wire import (
    is_digest,
    parse_datetime,
    parse_next_link,
    parse_retry_after,
    predict_scope,
    redact_url,
    repository_path,
)

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '</acr/v1/_catalog?last=busybox&n=1&orderby=>; rel="next"',
            "/acr/v1/_catalog?last=busybox&n=1&orderby=",
        ),
        (
            '</acr/v1/library%2Fhello-world/_manifests?last=sha256%3A1b&n=1&orderby=>; rel="next"',
            "/acr/v1/library%2Fhello-world/_manifests?last=sha256%3A1b&n=1&orderby=",
        ),
        ("</x?last=a>; rel=next", "/x?last=a"),
        ("</x?last=a>", "/x?last=a"),
        ('</prev>; rel="prev", </next>; rel="next"', "/next"),
        ('</prev>; rel="prev"', None),
        ("", None),
        (None, None),
    ],
)
def test_parse_next_link(header: str | None, expected: str | None) -> None:
    """The next-page target is taken verbatim from rel=next, and absent means last page."""
    assert parse_next_link(header) == expected


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/acr/v1/_catalog", "registry:catalog:*"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/acr/v1/library/busybox", "repository:library/busybox:metadata_read"),
        ("GET", "/acr/v1/a/b/c/_tags", "repository:a/b/c:metadata_read"),
        ("GET", "/acr/v1/app/_manifests/" + D, "repository:app:metadata_read"),
        ("PATCH", "/acr/v1/app/_tags/v1", "repository:app:metadata_write"),
        ("PATCH", "/acr/v1/app", "repository:app:metadata_write"),
        ("DELETE", "/acr/v1/app/_tags/v1", "repository:app:delete"),
        ("DELETE", "/acr/v1/app", "repository:app:delete"),
        ("DELETE", "/v2/team/app/manifests/" + D, "repository:team/app:delete"),
        ("GET", "/v2/team/app/manifests/latest", "repository:team/app:pull"),
        ("GET", "/v2/app/referrers/" + D, "repository:app:pull"),
        ("GET", "/v2/", None),
        ("POST", "/oauth2/token", None),
        ("PUT", "/acr/v1/app", None),
    ],
)
def test_predict_scope(method: str, path: str, scope: str | None) -> None:
    """Each endpoint maps to the scope ACR's recordings show it challenging for."""
    assert predict_scope(method, path) == scope


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://r.io/acr/v1/_catalog?last=secret&n=5",
            "https://r.io/acr/v1/_catalog?last=***&n=***",
        ),
        ("https://user:pw@r.io/v2/", "https://r.io/v2/"),
        ("https://r.io/oauth2/token", "https://r.io/oauth2/token"),
        ("https://r.io/x?flag", "https://r.io/x?flag=***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    """Query values and userinfo never survive redaction; path and keys do."""
    assert redact_url(url) == expected


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Thu, 01 Jan 2026 00:00:10 GMT", 10.0),
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP date, never negative."""
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-09-06T06:17:20.9983915Z", datetime(2018, 9, 6, 6, 17, 20, 998391, tzinfo=UTC)),
        ("2018-04-25T21:39:47.276585742Z", datetime(2018, 4, 25, 21, 39, 47, 276585, tzinfo=UTC)),
        (
            "2018-06-20T12:00:33.6125843-07:00",
            datetime(2018, 6, 20, 12, 0, 33, 612584, tzinfo=timezone(timedelta(hours=-7))),
        ),
        ("2019-03-12T22:42:08", datetime(2019, 3, 12, 22, 42, 8, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_parse_datetime(text: str | None, expected: datetime | None) -> None:
    """ACR timestamps with 7-9 fractional digits or offsets become aware datetimes."""
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


def test_parse_datetime_rejects_garbage() -> None:
    """Text that is not a timestamp is an error, not a silent None."""
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_datetime("yesterday")


@pytest.mark.parametrize(
    ("reference", "digest"),
    [
        (D, True),
        ("sha512:" + "b" * 128, True),
        ("latest", False),
        ("v1.2.3", False),
        ("sha256", False),
    ],
)
def test_is_digest(reference: str, digest: bool) -> None:
    """Digest-shaped references are told apart from tags."""
    assert is_digest(reference) is digest


def test_repository_path_keeps_slashes_and_quotes_the_rest() -> None:
    """Nested repository names keep their slashes in the URL path."""
    assert repository_path("team/app") == "team/app"
    assert repository_path("a b") == "a%20b"

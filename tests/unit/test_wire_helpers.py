"""Table tests for the client's pure helpers: Link, scopes, redaction, times, errors, models."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from acr_core.models import OCI_INDEX
from acr_core.registry import _decode
from acr_core.registry._wire import (
    is_digest,
    parse_datetime,
    parse_next_link,
    parse_retry_after,
    predict_scope,
    redact_url,
    repository_path,
)
from acr_core.registry.errors import (
    AcrResponseError,
    AuthenticationError,
    DisallowedOperationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ThrottledError,
    UnsupportedOperationError,
    error_from_response,
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
        ("PUT", "/v2/team/app/manifests/v1", "repository:team/app:pull,push"),
        ("HEAD", "/v2/app/blobs/" + D, "repository:app:pull"),
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
        ("inf", None),
        ("nan", None),
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


def _response(
    status: int, body: object = None, *, text: str | None = None, **headers: str
) -> httpx.Response:
    request = httpx.Request("DELETE", "https://r.io/v2/app/manifests/x?api-version=2021-07-01")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def _errors(code: str, detail: object = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": f"{code.lower()} happened"}
    if detail is not None:
        error["detail"] = detail
    return {"errors": [error]}


CHALLENGE = 'Bearer realm="https://r.io/oauth2/token",service="r.io",scope="repository:app:delete"'


@pytest.mark.parametrize(
    ("response", "cls", "code"),
    [
        (
            _response(404, _errors("MANIFEST_UNKNOWN", {"Tag": "x"})),
            NotFoundError,
            "MANIFEST_UNKNOWN",
        ),
        (_response(404, _errors("NAME_UNKNOWN", {})), NotFoundError, "NAME_UNKNOWN"),
        (_response(404, text="404 page not found\n"), NotFoundError, None),
        (
            _response(405, _errors("REGISTRY_DISALLOWED_OPERATION", {})),
            DisallowedOperationError,
            "REGISTRY_DISALLOWED_OPERATION",
        ),
        (_response(405, _errors("UNSUPPORTED")), UnsupportedOperationError, "UNSUPPORTED"),
        (
            _response(
                401,
                _errors(
                    "UNAUTHORIZED", [{"Type": "repository", "Name": "app", "Action": "delete"}]
                ),
                **{"WWW-Authenticate": CHALLENGE + ',error="insufficient_scope"'},
            ),
            PermissionDeniedError,
            "UNAUTHORIZED",
        ),
        (
            _response(401, _errors("UNAUTHORIZED"), **{"WWW-Authenticate": CHALLENGE}),
            AuthenticationError,
            "UNAUTHORIZED",
        ),
        (_response(429, {"errors": []}, **{"Retry-After": "3"}), ThrottledError, None),
        (_response(503, text="<html>busy</html>"), ServerError, None),
        (_response(400, {"error": {"code": "Other"}}), AcrResponseError, "Other"),
        (_response(400, {"detail": "no code at all"}), AcrResponseError, None),
    ],
)
def test_error_from_response(
    response: httpx.Response, cls: type[Exception], code: str | None
) -> None:
    """Each status and ACR code maps to its class, keeping the code and redacting the query."""
    error = error_from_response(response)
    assert type(error) is cls
    assert error.code == code
    assert error.method == "DELETE"
    assert error.url == "https://r.io/v2/app/manifests/x?api-version=***"
    assert str(error).startswith(
        f"DELETE https://r.io/v2/app/manifests/x?api-version=*** -> {response.status_code}"
    )


def test_error_names_the_correlation_id_for_support() -> None:
    """The response's X-Ms-Correlation-Request-Id is kept on the error and shown in its text."""
    error = error_from_response(
        _response(
            405,
            _errors("REGISTRY_DISALLOWED_OPERATION", {}),
            **{"X-Ms-Correlation-Request-Id": "0f6c2a1e-5d7b-4f0e-9a43-2b8e7c1d9f00"},
        )
    )
    assert error.correlation_id == "0f6c2a1e-5d7b-4f0e-9a43-2b8e7c1d9f00"
    assert str(error).endswith("(correlation id 0f6c2a1e-5d7b-4f0e-9a43-2b8e7c1d9f00)")
    assert error_from_response(_response(404, _errors("NAME_UNKNOWN"))).correlation_id is None


def test_error_message_is_scrubbed_of_tokens() -> None:
    """A server message that quotes a JWT does not carry it into the exception."""
    token = "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.c2ln"
    error = error_from_response(
        _response(401, {"errors": [{"code": "X", "message": f"bad {token}"}]})
    )
    assert token not in str(error)
    assert "<redacted>" in error.message


BASIC = base64.b64encode(b"admin:hunter2-Pa55word").decode()
OPAQUE = "opaque.Bearer-Token~value/+="
ECHO_TEXT = (
    f"proxy refused GET /v2/ Authorization: Basic {BASIC}\r\n"
    f"Proxy-Authorization: Bearer {OPAQUE}\r\n"
    "grant_type=refresh_token&refresh_token=rt-SECRET-1&access_token=at-SECRET-2&password=pw-SECRET-3"
)
ECHO_JSON = {
    "errors": [
        {
            "code": "DENIED",
            "message": (
                f'echo {{"Authorization": "Basic {BASIC}", "auth": "bearer {OPAQUE}", '
                '"refresh_token": "rt-SECRET-1", "access_token":"at-SECRET-2", '
                "'password': 'pw-SECRET-3'}"
            ),
        }
    ]
}


@pytest.mark.parametrize(
    "response", [_response(502, text=ECHO_TEXT), _response(401, ECHO_JSON)], ids=["text", "json"]
)
def test_error_message_is_scrubbed_of_echoed_credentials(response: httpx.Response) -> None:
    """Basic and Bearer credentials and token or password form fields a body echoes are cut out."""
    text = str(error_from_response(response))
    for secret in (BASIC, "hunter2", OPAQUE, "Token~value", "rt-SECRET-1", "at-SECRET-2"):
        assert secret not in text
    assert "pw-SECRET-3" not in text
    assert "<redacted>" in text


TAG = {"name": "v1", "digest": D, "createdTime": "2024-01-01T00:00:00.1234567Z"}


@pytest.mark.parametrize(
    ("item", "tags", "size", "media_type"),
    [
        ({"digest": D, "createdTime": "2024-01-01T00:00:00Z"}, (), None, None),
        ({"digest": D, "tags": None, "imageSize": 5}, (), 5, None),
        ({"digest": D, "tags": [], "mediaType": OCI_INDEX}, (), None, OCI_INDEX),
        (
            {"digest": D, "tags": ["a", "b"], "newField": {"x": 1}, "imageSize": True},
            ("a", "b"),
            None,
            None,
        ),
    ],
)
def test_manifest_decoding_is_lenient(
    item: dict[str, object], tags: tuple[str, ...], size: int | None, media_type: str | None
) -> None:
    """Missing, null or empty tags, unknown fields and odd types decode without loss or crash."""
    manifest = _decode.manifest(item, "r.io", "app")
    assert (manifest.tags, manifest.size_in_bytes, manifest.media_type) == (tags, size, media_type)
    assert manifest.attributes.deletable


def test_attributes_keep_quarantine_and_default_missing_switches_on() -> None:
    """Quarantine state is kept, and a switch ACR leaves out reads as enabled."""
    attributes = _decode.attributes(
        {"writeEnabled": False, "quarantineState": "Passed", "quarantineDetails": "{}"}
    )
    assert not attributes.deletable
    assert attributes.delete_enabled
    assert attributes.quarantine_state == "Passed"
    tag = _decode.tag({**TAG, "quarantineState": "Quarantined"}, "r.io", "app")
    assert tag.attributes.quarantine_state == "Quarantined"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"createdTime": "2024-01-01T00:00:00Z"}, "has no 'digest'"),
        ({"digest": D, "createdTime": "last tuesday"}, "unreadable 'createdTime'"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_manifest_decoding_rejects_what_a_cleaner_cannot_use(item: object, message: str) -> None:
    """A manifest without a digest or with an unreadable time is an error naming the field."""
    with pytest.raises(InvalidResponseError, match=message):
        _decode.manifest(item, "r.io", "app")

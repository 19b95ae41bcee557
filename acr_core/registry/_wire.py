"""Pure helpers for ACR's wire text: challenges, scopes, Link headers, JWT expiry, redaction.

No I/O and no state; every function here is table-tested in tests/unit/test_wire_helpers.py.
Wire facts: docs/acr-facts.md sections 1.0, 1.12, 2.1 and 2.4.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote

import httpx

# One auth-param: name=token or name="quoted string" (RFC 9110 section 11.2). Scope values hold
# ':' '*' and sometimes ',' (`pull,push`), so quoted strings are read whole, never split.
_AUTH_PARAM = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^,;]+)*)")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed `WWW-Authenticate` header."""

    scheme: str
    realm: str | None = None
    service: str | None = None
    scope: str | None = None
    error: str | None = None


def parse_challenge(header: str) -> Challenge | None:
    """The challenge in a `WWW-Authenticate` value, or None when there is none to parse."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _AUTH_PARAM.match(rest, position)
        if not match or match.end() == position:
            break
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    return Challenge(
        scheme=scheme.lower(),
        realm=params.get("realm"),
        service=params.get("service"),
        scope=params.get("scope") or None,
        error=params.get("error"),
    )


def predict_scope(method: str, path: str) -> str | None:
    """The scope ACR will challenge for a request, from its method and decoded path.

    Observed per operation in ACR's recordings (docs/acr-facts.md section 2.1). Only a guess to
    save a 401: the auth flow always obeys the scope the registry actually asks for.
    """
    method = method.upper()
    if path in ("/acr/v1/_catalog", "/v2/_catalog"):
        return "registry:catalog:*"
    if path.startswith("/acr/v1/"):
        name = re.split(r"/_(?:tags|manifests)(?:/|$)", path[len("/acr/v1/") :], maxsplit=1)[0]
        action = {"GET": "metadata_read", "HEAD": "metadata_read", "PATCH": "metadata_write"}
        if method == "DELETE":
            return f"repository:{name}:delete" if name else None
        return f"repository:{name}:{action[method]}" if name and method in action else None
    if path.startswith("/v2/"):
        match = re.match(r"^/v2/(.+?)/(manifests|referrers|blobs)/[^/]+$", path)
        if not match:
            return None
        if method == "DELETE" and match.group(2) == "manifests":
            return f"repository:{match.group(1)}:delete"
        if method == "PUT" and match.group(2) == "manifests":
            return f"repository:{match.group(1)}:pull,push"
        if method in ("GET", "HEAD"):
            return f"repository:{match.group(1)}:pull"
    return None


def parse_next_link(header: str | None) -> str | None:
    """The target of the `rel="next"` link in a `Link` header, verbatim, or None on the last page.

    ACR sends one relative link (`</acr/v1/_catalog?last=x&n=1&orderby=>; rel="next"`,
    docs/acr-facts.md section 1.12); a link without any `rel` is taken as next, as the SDKs do.
    """
    if not header:
        return None
    for match in _LINK.finditer(header):
        params = [p.strip() for p in match.group(2).split(";") if p.strip()]
        rels = [p.partition("=")[2].strip().strip('"').lower() for p in params if _is_rel(p)]
        if not rels or any("next" in rel.split() for rel in rels):
            return match.group(1) or None
    return None


def _is_rel(param: str) -> bool:
    return param.partition("=")[0].strip().lower() == "rel"


def jwt_claims(token: str) -> dict[str, object]:
    """The payload of a JWT, unverified (the registry verifies; we only read `exp`/`iat`)."""
    parts = token.split(".")
    if len(parts) < 2:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def token_lifetime(token: str, now: float) -> float | None:
    """Seconds a token stays valid from when it was issued to us, or None when it does not say.

    Measured as `exp - iat` when both are present, so a registry whose clock differs from ours
    (an emulator set to the past, a skewed host) still gets its tokens reused; else `exp - now`.
    """
    claims = jwt_claims(token)
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    if isinstance(iat, int | float) and not isinstance(iat, bool):
        return float(exp) - float(iat)
    return float(exp) - now


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a token is replaced: 5 minutes (as acr-cli does), or a quarter
    of a short lifetime."""
    return min(300.0, lifetime / 4)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# Azure services may give the wait in milliseconds; azure-core's pipelines read these two
# before `Retry-After` (@azure/core-rest-pipeline throttlingRetryStrategy). ACR documents none
# of them for its 429s (docs/acr-facts.md section 4), so every form is honoured.
_RETRY_AFTER_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")


def retry_after_from(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, from `retry-after-ms`, `x-ms-retry-after-ms` or
    `Retry-After`, or None when it did not say."""
    for name in _RETRY_AFTER_MS_HEADERS:
        try:
            milliseconds = float(headers.get(name, ""))
        except ValueError:
            continue
        if math.isfinite(milliseconds):
            return max(0.0, milliseconds / 1000)
    return parse_retry_after(headers.get("retry-after"), now)


def redact_url(url: httpx.URL | str) -> str:
    """`url` without credentials and with every query value replaced by `***`.

    Query values (`last=`, continuation markers) are opaque and may be long; the keys stay so
    a reader can tell which page or filter failed.
    """
    url = httpx.URL(url)
    base = str(url.copy_with(query=None, fragment=None, username=None, password=None))
    if not url.query:
        return base
    keys = [key for key, _ in parse_qsl(url.query.decode("ascii", "replace"), True)]
    return base + "?" + "&".join(f"{key}=***" for key in keys)


def parse_datetime(value: object) -> datetime | None:
    """A timezone-aware datetime from ACR's ISO 8601 text (7-9 fractional digits, Z or offset).

    Python 3.11's `fromisoformat` reads all of these (docs/acr-facts.md section 1.0); a naive value
    is taken as UTC. Raises ValueError for text that is not a timestamp.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be text, got {type(value).__name__}")
    return _parse_timestamp(value.strip())


@functools.lru_cache(maxsize=8192)
def _parse_timestamp(text: str) -> datetime:
    """Cached: a run re-reads the same timestamps in every listing (datetimes are immutable)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # Should a `fromisoformat` refuse more than 6 fractional digits, trim them and retry.
        parsed = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_digest(reference: str) -> bool:
    """True when `reference` is digest-shaped (`algorithm:hex`), as opposed to a tag."""
    return bool(_DIGEST.match(reference))


def repository_path(name: str) -> str:
    """A repository name for a URL path: raw `/` (as acr-cli sends), everything else quoted."""
    return quote(name, safe="/")


def segment(value: str) -> str:
    """A tag or digest as one path segment."""
    return quote(value, safe=":")

"""The one exception tree of `acr_core`, and the one place where responses become exceptions.

```
AcrError                          anything this library raises on purpose
├── AcrResponseError              the registry answered with an error status
│   ├── NotFoundError             404: repository, tag or manifest unknown
│   ├── DisallowedOperationError  405 REGISTRY_DISALLOWED_OPERATION: a lock (or a full registry)
│   ├── UnsupportedOperationError 405 UNSUPPORTED, e.g. deleting a manifest by tag
│   ├── AuthenticationError       401 that is not a scope problem; token endpoint refusals
│   ├── TokenRevokedError         401 for a refresh token an exchange had just issued (transient)
│   ├── PermissionDeniedError     401 insufficient_scope after one retry with a fresh token
│   ├── ThrottledError            429 after retries
│   └── ServerError               5xx after retries
├── AcrConnectionError            the transport failed (connect, read, timeout) after retries
└── InvalidResponseError          a 2xx whose body is not what ACR documents, or a digest mismatch
```

Messages name the method, the URL with its query redacted, ACR's code and what to do. No
token, password or Authorization header ever reaches a message: bodies are scrubbed of
credentials (`scrub`) before they are quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import httpx

from acr_core.registry._wire import Challenge, parse_challenge, redact_url, retry_after_from

# JWTs start with a base64url-encoded '{"' ("eyJ"); ACR tokens and AAD tokens are JWTs.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*")
# What a proxy or a server may echo of a request: an (Proxy-)Authorization header, whatever its
# scheme, and the token service's form fields (docs/acr-facts.md section 2). A value runs to its
# closing quote, or unquoted to the end of the line (a header) or the next separator (a field).
_QUOTED = r"\"[^\"]*\"|'[^']*'"
_AUTH_HEADER = re.compile(rf"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*)({_QUOTED}|[^\r\n]+)")
# A field is `name=value` (a form) or `"name": value` (JSON): prose such as "refresh token:
# expired" is left alone.
_SECRET_FIELD = re.compile(
    r"(?i)\b(password|client_secret|(?:access_|refresh_)?token)(?:[\"']\s*:|\s*=)\s*"
    rf"({_QUOTED}|[^\s&,;}}]+)"
)
# A credential quoted without its header name; a challenge's `Bearer realm=...` is not one.
_AUTH_SCHEME = re.compile(
    r"(?i)\b(basic|bearer)\s+(?!(?:realm|service|scope|error)=|<redacted>)[^\s\"',;]+"
)

# ACR's codes are identifiers of a few dozen characters (docs/acr-facts.md section 1.0).
_MAX_CODE = 100

# What grants each ACR action (docs/acr-facts.md section 6). Keys are the action part of a scope.
_ROLE_FOR_ACTION: Mapping[str, str] = {
    "pull": "AcrPull (ABAC registries: Container Registry Repository Reader)",
    "metadata_read": "AcrPull (ABAC registries: Container Registry Repository Reader)",
    "metadata_write": (
        "a role with Microsoft.ContainerRegistry/registries/metadata/write, e.g. a custom role; "
        "no Acr* built-in role can change locks (ABAC registries: Container Registry "
        "Repository Writer or Contributor)"
    ),
    "delete": "AcrDelete (ABAC registries: Container Registry Repository Contributor)",
    "*": (
        "AcrPull to list the catalog (ABAC registries: Container Registry Repository "
        "Catalog Lister), or pass the repositories explicitly"
    ),
}


# The ACR token (scope map) action that allows each wire action, as `az acr scope-map` names
# them (container-registry-repository-scoped-permissions.md).
_SCOPE_MAP_ACTION: Mapping[str, str] = {
    "pull": "content/read",
    "push": "content/write",
    "delete": "content/delete",
    "metadata_read": "metadata/read",
    "metadata_write": "metadata/write",
}


class AcrError(Exception):
    """Root of every error this library raises on purpose."""


class AcrResponseError(AcrError):
    """The registry answered with an error status; keeps ACR's error code and message, and the
    response's `X-Ms-Correlation-Request-Id`, which Azure support asks for (docs/acr-facts.md
    1.0)."""

    def __init__(
        self,
        *,
        status: int,
        code: str | None,
        message: str,
        method: str,
        url: str,
        hint: str = "",
        correlation_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.url = url
        self.hint = hint
        self.correlation_id = correlation_id
        code_part = f" {code}" if code else ""
        text = f"{method} {url} -> {status}{code_part}: {message}"
        text = f"{text}. {hint}" if hint else text
        super().__init__(f"{text} (correlation id {correlation_id})" if correlation_id else text)


class NotFoundError(AcrResponseError):
    """404: the repository, tag or manifest does not exist (ACR's NAME/TAG/MANIFEST_UNKNOWN)."""


class DisallowedOperationError(AcrResponseError):
    """405 REGISTRY_DISALLOWED_OPERATION: a lock at repository, tag or manifest level refused it."""


class UnsupportedOperationError(AcrResponseError):
    """405 UNSUPPORTED: the registry does not do this (e.g. a manifest deleted by tag)."""


class AuthenticationError(AcrResponseError):
    """401 that is not a missing scope: the credential or token was refused."""


class TokenRevokedError(AcrResponseError):
    """The token endpoint refused a refresh token that an exchange had issued moments before.

    The exchange accepted the identity, so the refusal is of the token, revoked again as soon as
    it was issued (a revocation storm): transient, unlike `AuthenticationError`."""


class PermissionDeniedError(AcrResponseError):
    """401 insufficient_scope after one retry with a fresh token: the identity lacks a role."""

    scope: str | None = None


class ThrottledError(AcrResponseError):
    """429 after the retry policy gave up; `retry_after` is the registry's hint in seconds."""

    retry_after: float | None = None


class ServerError(AcrResponseError):
    """5xx after the retry policy gave up."""


class AcrConnectionError(AcrError):
    """The transport failed (connection refused or reset, timeout, TLS) after retries."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        self.method = method
        self.url = url
        super().__init__(f"{method} {url}: {message}")


class InvalidResponseError(AcrError):
    """A successful response whose body is not what ACR documents, or whose digest is wrong."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying later as a whole: throttling, 5xx, connection errors,
    and refresh tokens revoked as soon as they were issued."""
    return isinstance(exc, ThrottledError | ServerError | TokenRevokedError | AcrConnectionError)


def scrub(text: str) -> str:
    """`text` with credentials replaced, so quoted bodies cannot leak them: Authorization header
    values, `Basic`/`Bearer` credentials, password and token fields, and anything shaped like a
    JWT."""
    text = _AUTH_HEADER.sub(_redact_value, text)
    text = _SECRET_FIELD.sub(_redact_value, text)
    text = _AUTH_SCHEME.sub(lambda match: f"{match.group(1)} <redacted>", text)
    return _JWT_LIKE.sub("<redacted>", text)


def _redact_value(match: re.Match[str]) -> str:
    """The match up to its value (group 2), then the redaction mark."""
    return match.group(0)[: match.start(2) - match.start(0)] + "<redacted>"


def role_hint(scope: str | None, *, scope_map: bool = False) -> str:
    """A sentence naming the action a scope asks for and the Azure role that grants it, or
    with `scope_map` (Basic auth: an ACR token), the scope-map action to add to the token."""
    if not scope:
        return "The identity lacks a data-plane role on this registry"
    parts = []
    for one in scope.split():
        kind, _, rest = one.partition(":")
        name, _, actions = rest.rpartition(":")
        for action in actions.split(","):
            if not scope_map:
                needs = _ROLE_FOR_ACTION.get(action, "a role that grants it")
            elif kind == "repository" and action in _SCOPE_MAP_ACTION:
                needs = f"repositories/{name}/{_SCOPE_MAP_ACTION[action]} in the token's scope map"
            else:
                needs = "more than a scope map grants: pass the repositories explicitly"
            parts.append(f"'{action}' on {kind} '{name}' needs {needs}")
    return "The identity is not allowed: " + "; ".join(parts)


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    """ACR's first error code and message from `{"errors":[...]}`, or the plain text body."""
    try:
        body = response.content
    except httpx.ResponseNotRead:
        return None, response.reason_phrase
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        errors = data.get("errors")
        # The wire form is `{"errors":[...]}`; the TypeSpec spec declares `{"error":{...}}`
        # (docs/acr-facts.md section 1.0), so that is read too.
        if not (isinstance(errors, list) and errors) and isinstance(data.get("error"), dict):
            errors = [data["error"]]
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("code")
            message = first.get("message")
            return (
                # Scrubbed as the message is: a proxy or a broken server may echo anything here.
                scrub(str(code))[:_MAX_CODE] if code is not None else None,
                scrub(str(message)) if message is not None else response.reason_phrase,
            )
    text = body.decode("utf-8", "replace").strip() if body else ""
    return None, scrub(text[:200]) if text else response.reason_phrase


def error_from_response(
    response: httpx.Response, *, scope_map: bool = False, fresh_refresh_token: bool = False
) -> AcrResponseError:
    """The exception for an error response: the one place statuses become exception classes.

    `scope_map`: the caller logs in with Basic (an ACR token), so a permission error names
    the scope-map action to add rather than an Azure role. `fresh_refresh_token`: the response
    refused a refresh token that an exchange had just issued (`TokenRevokedError` for a 401)."""
    request = response.request
    code, message = _error_fields(response)
    challenge = parse_challenge(response.headers.get("www-authenticate", ""))
    scope = challenge.scope if challenge else None
    cls, hint = _classify(response.status_code, code, challenge, fresh_refresh_token)
    error = cls(
        status=response.status_code,
        code=code,
        message=message,
        method=request.method,
        url=redact_url(request.url),
        hint=role_hint(scope, scope_map=scope_map) if cls is PermissionDeniedError else hint,
        correlation_id=_correlation_id(response),
    )
    if isinstance(error, PermissionDeniedError):
        error.scope = scope
    if isinstance(error, ThrottledError):
        error.retry_after = retry_after_from(response.headers)
    return error


_REVOKED_HINT = (
    "The registry revoked the tokens it had just issued (as when tokens or the refresh token "
    "are revoked while the run goes on); this is retried later"
)


def _correlation_id(response: httpx.Response) -> str | None:
    value = response.headers.get("x-ms-correlation-request-id", "").strip()
    # A request id, not a secret; bounded and scrubbed all the same before it enters a message.
    return scrub(value[:100]) or None


def _classify(
    status: int, code: str | None, challenge: Challenge | None, fresh_refresh_token: bool
) -> tuple[type[AcrResponseError], str]:
    if status == 401 and fresh_refresh_token:
        return TokenRevokedError, _REVOKED_HINT
    if status == 401 and challenge is not None and challenge.error == "insufficient_scope":
        return PermissionDeniedError, ""
    if status == 401:
        return AuthenticationError, (
            "Check the credential (managed identity, client id, tenant) or the admin user / "
            "token password"
        )
    if status == 404:
        return NotFoundError, ""
    if status == 405 and code == "UNSUPPORTED":
        return UnsupportedOperationError, ""
    if status == 405:
        return DisallowedOperationError, (
            "Unlock the repository, the tag or the manifest (deleteEnabled and writeEnabled), "
            "or check the registry's storage limit"
        )
    if status == 429:
        return ThrottledError, "The registry is throttling; lower the concurrency or write budget"
    if status >= 500:
        return ServerError, "The registry failed; retry later"
    return AcrResponseError, ""


# What a library caller should do about an untrusted certificate (the CLI words its own).
UNTRUSTED_ADVICE = (
    "; the registry's certificate is not trusted: pass verify=<CA bundle or SSLContext>"
)


def error_from_transport(exc: Exception, request: httpx.Request) -> AcrConnectionError:
    """The exception for a transport failure that outlasted the retries."""
    reason = type(exc).__name__
    detail = scrub(str(exc))
    text = f"{reason}: {detail}" if detail else reason
    if "CERTIFICATE_VERIFY_FAILED" in detail:
        text += UNTRUSTED_ADVICE
    return AcrConnectionError(text, method=request.method, url=redact_url(request.url))

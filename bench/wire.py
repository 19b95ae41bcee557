"""Sort requests into kinds, and time each side's accepted deletes as its client sees them.

The emulator's counters are the authority on how many requests of each kind a side sent; the
client-side `DeleteClock` only supplies when the first and the last delete were accepted, so that
the sustained delete rate is measured over the delete phase rather than the whole run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

KINDS = (
    "auth",  # /oauth2/exchange and /oauth2/token
    "challenge_401",  # any 401 (the SDK sends every request once without a token)
    "throttled_429",
    "list",  # catalog, manifest and tag listings (one per page)
    "read",  # one manifest's or tag's properties, a raw manifest, a repository
    "delete_manifest",  # DELETE /v2/{name}/manifests/{digest}: the write being measured
    "write_other",  # PATCH, PUT, other DELETEs
    "other",
)

_MANIFEST_DELETE = re.compile(r"^/v2/.+/manifests/[^/]+$")
_LISTINGS = (
    re.compile(r"^/acr/v1/_catalog$"),
    re.compile(r"^/v2/_catalog$"),
    re.compile(r"^/acr/v1/.+/_manifests$"),
    re.compile(r"^/acr/v1/.+/_tags$"),
    re.compile(r"^/v2/.+/tags/list$"),
)


def classify(method: str, path: str, status: int) -> str:
    """The kind of one request, from its method, path (no query) and status."""
    method = method.upper()
    if status == 401:
        return "challenge_401"
    if status == 429:
        return "throttled_429"
    if path.startswith("/oauth2/"):
        return "auth"
    if method == "DELETE" and _MANIFEST_DELETE.match(path):
        return "delete_manifest"
    if method in ("GET", "HEAD"):
        if any(p.match(path) for p in _LISTINGS):
            return "list"
        if path.startswith(("/acr/v1/", "/v2/")):
            return "read"
    if method in ("PATCH", "PUT", "POST", "DELETE"):
        return "write_other"
    return "other"


def is_manifest_delete(method: str, path: str) -> bool:
    return method.upper() == "DELETE" and _MANIFEST_DELETE.match(path) is not None


def tally(requests: Mapping[tuple[str, str, int], int]) -> dict[str, int]:
    """Counts by kind from counts keyed by (method, path, status)."""
    kinds = dict.fromkeys(KINDS, 0)
    for (method, path, status), count in requests.items():
        kinds[classify(method, path, status)] += count
    return kinds


@dataclass
class DeleteClock:
    """When manifest deletes were accepted (2xx), on the wall clock shared by all processes."""

    times: list[float] = field(default_factory=list)

    def record(self, method: str, path: str, status: int) -> None:
        if 200 <= status < 300 and is_manifest_delete(method, path):
            self.times.append(time.time())

    def as_dict(self) -> dict[str, Any]:
        return {"times": self.times}


def phase_rate(times: list[float]) -> float | None:
    """Accepted deletes per second from the first to the last (burst credit included)."""
    if len(times) < 2 or max(times) <= min(times):
        return None
    return (len(times) - 1) / (max(times) - min(times))


def sustained_rate(times: list[float], burst: float, *, minimum: int = 50) -> float | None:
    """Accepted deletes per second that the throttle's burst credit does not explain.

    The registry's bucket holds `burst` tokens beyond its steady refill, and a side can save
    them up in any slower stretch and spend them later, so deletes over time can exceed the
    limit for a while. Leaving `burst` deletes out of the count gives a rate that no side can
    push past the limit: (accepted - burst) / (last - first). None when fewer than `minimum`
    deletes lie beyond the burst: too short to say anything sustained.
    """
    if len(times) - burst < minimum:
        return None
    span = max(times) - min(times)
    return (len(times) - burst) / span if span > 0 else None


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps our client's transport to feed a `DeleteClock`; changes nothing on the wire."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: DeleteClock) -> None:
        self._inner = inner
        self._clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        self._clock.record(request.method, request.url.path, response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

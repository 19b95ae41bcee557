"""Retries of named transient failures, as a thin wrapper around the HTTP transport.

Every request the client sends passes through `RetryingTransport`, token requests included, so
one policy covers them all and `ClientStats` counts every request that reached the wire.
Retried: 408, 429, 5xx other than 501/505, and transport errors, waiting as long as a 429 or
503 asks (`Retry-After`, or Azure's `retry-after-ms` forms), for idempotent requests only:
GET, HEAD, PUT, PATCH, DELETE, and POSTs to `/oauth2/` (a token request has no side effect).
A PATCH of locks is idempotent even though azure-core does not retry it (docs/acr-facts.md
section 7). Bounded by attempts and by a total deadline.

This is the one place 429s are handled. Each 429 is counted and reported once to the throttle
listeners (the run's limiter, which only adapts its pace and never retries), then retried here
after `Retry-After`. Nothing above retries a request again: the executor reports a request
still throttled after these retries as a transient failure, and the platform re-runs the
whole run from a fresh read (docs/operations.md, "Failure modes and fixes").
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from acr_core.registry._wire import retry_after_from

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 506, 507, 508, 509, 510, 511})

# httpx's transport errors, and the socket errors an in-process (ASGI) transport lets through.
CONNECTION_ERRORS = (httpx.TransportError, ConnectionError)

# Called with the 429's Retry-After (None when it sent none) for every 429 received, before the
# wait for its retry.
ThrottleListener = Callable[[float | None], None]
# Awaited with (method, path) before each attempt is sent: the run's pace for requests it does
# not send itself (token requests, which the auth flow sends).
RequestPacer = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry. `RetryPolicy.off()` sends every request once (tests use it).

    Defaults: 6 attempts within 120 s. azure-core, which the official SDK uses, allows 3 status
    retries with backoff factor 0.8 capped at 120 s (docs/acr-facts.md section 7); ACR's throttling
    windows are per minute (section 4), so a run must be able to wait out most of one.

    Worst case per HTTP request: `attempts` (6) attempts; a retry is only started when its wait
    ends before `deadline` (120 s), so the request ends within 120 s plus its last attempt,
    which `AcrClient(timeout=30.0)` bounds (per httpx phase): about 150 s. A token request the
    auth flow sends on a 401 is a request of its own with the same budget.
    """

    attempts: int = 6
    deadline: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # True (the CLI): failing to connect before the registry ever answered (a wrong URL or
    # port, nothing listening) is raised at once instead of after the retries' ~15 s.
    fail_fast_unreached: bool = False

    @classmethod
    def off(cls) -> RetryPolicy:
        return cls(attempts=1)

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


@dataclass(slots=True)
class ClientStats:
    """What the client sent: every request that reached the transport, by status and purpose."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    throttled: int = 0
    retries: int = 0
    connection_errors: int = 0
    challenges: int = 0  # 401 responses
    exchanges: int = 0  # POST /oauth2/exchange
    token_requests: int = 0  # /oauth2/token

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "by_status": {str(status): count for status, count in sorted(self.by_status.items())},
            "throttled": self.throttled,
            "retries": self.retries,
            "connection_errors": self.connection_errors,
            "challenges": self.challenges,
            "exchanges": self.exchanges,
            "token_requests": self.token_requests,
        }


def is_retryable_request(request: httpx.Request) -> bool:
    if request.method in _IDEMPOTENT:
        return True
    return request.method == "POST" and request.url.path.startswith("/oauth2/")


class RetryingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport: counts every request and retries the transient failures."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        stats: ClientStats,
        listeners: list[ThrottleListener],
        pacers: list[RequestPacer] | None = None,
    ) -> None:
        self._inner = inner
        self._pacers = pacers if pacers is not None else []
        self._policy = policy
        self._stats = stats
        self._listeners = listeners
        # Jitter only spreads retries in time; it needs no cryptographic quality.
        self._rng = random.Random()  # noqa: S311
        self._answered = False  # any response received yet

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy = self._policy
        deadline = time.monotonic() + policy.deadline
        retryable = is_retryable_request(request)
        attempt = 0
        while True:
            attempt += 1
            for pace in list(self._pacers):
                await pace(request.method, request.url.path)
            self._count(request)
            try:
                response = await self._inner.handle_async_request(request)
            except CONNECTION_ERRORS as exc:
                self._stats.connection_errors += 1
                delay = policy.backoff(attempt, self._rng)
                if _untrusted(exc) or self._unreached(exc):
                    raise
                if not self._may_retry(retryable, attempt, deadline, delay):
                    raise
                await self._wait(delay)
                continue
            self._answered = True
            status = response.status_code
            self._stats.by_status[status] += 1
            if status == 401:
                self._stats.challenges += 1
            # Honoured on 503 as well as 429: RFC 9110 section 10.2.3 defines it for both.
            retry_after = retry_after_from(response.headers) if status in (429, 503) else None
            if status == 429:
                self._stats.throttled += 1
                for listener in list(self._listeners):
                    listener(retry_after)
            if status not in _RETRY_STATUSES:
                try:
                    return await _buffered(response, request)
                except CONNECTION_ERRORS:
                    # The connection died mid-body (a 200 that never completed).
                    self._stats.connection_errors += 1
                    delay = policy.backoff(attempt, self._rng)
                    if not self._may_retry(retryable, attempt, deadline, delay):
                        raise
                    await self._wait(delay)
                    continue
            delay = retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
            if not self._may_retry(retryable, attempt, deadline, delay):
                return response
            await response.aclose()
            await self._wait(delay)

    def _unreached(self, exc: BaseException) -> bool:
        connecting = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return self._policy.fail_fast_unreached and connecting and not self._answered

    def _may_retry(self, retryable: bool, attempt: int, deadline: float, delay: float) -> bool:
        return retryable and attempt < self._policy.attempts and time.monotonic() + delay < deadline

    async def _wait(self, delay: float) -> None:
        self._stats.retries += 1
        await self._policy.sleep(delay)

    def _count(self, request: httpx.Request) -> None:
        self._stats.requests += 1
        if request.url.path.endswith("/oauth2/exchange"):
            self._stats.exchanges += 1
        elif request.url.path.endswith("/oauth2/token"):
            self._stats.token_requests += 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def _untrusted(exc: BaseException) -> bool:
    """True when TLS verification failed: a wrong CA is not transient, so it is not retried."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


async def _buffered(response: httpx.Response, request: httpx.Request) -> httpx.Response:
    """The response with its body read here, so a connection lost mid-body can be retried.

    ACR's bodies are small JSON documents and manifests (4 MiB at most, docs/acr-facts.md
    section 4). The raw bytes are kept: decoding stays with the client, as for any response.
    """
    if response.is_stream_consumed:  # already in memory (in-process transports)
        return response
    try:
        raw = b"".join([part async for part in response.aiter_raw()])
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=raw,
        request=request,
        extensions=response.extensions,
    )

"""What stands in front of every registry endpoint: injected faults, then ACR's throttling
(the 2026 rate limits of `ratelimit`, then the retired ReadOps/WriteOps model of `throttle`).

Admin endpoints under `/_emulator/` never pass through here.
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

from acr_emulator.errors import RegistryError
from acr_emulator.faults import DroppedConnection, Faults
from acr_emulator.http import Request, Response, Send, error_response
from acr_emulator.ratelimit import RateLimiter
from acr_emulator.throttle import Throttle

READ_METHODS = frozenset({"GET", "HEAD"})


class Guard:
    """Faults (latency, 5xx, drops) and the operations-per-minute budget.

    `faults` is replaced whole, by tests or `/_emulator/faults`, while requests are in flight.
    """

    def __init__(self, faults: Faults, throttle: Throttle, rate: RateLimiter) -> None:
        self.faults = faults
        self.throttle = throttle
        self.rate = rate

    async def check(
        self, req: Request, send: Send, categories: tuple[str, ...] = (), identity: str = ""
    ) -> Response | None:
        """A response that replaces the handler's, or None to let the request through.

        `categories` and `identity` (from `identity.categories` and `identity.Identify`) say
        which of the rate limiter's buckets the request draws from."""
        faults = self.faults
        if faults.active and faults.applies_to(req.method):
            delay = faults.delay()
            if delay:
                await asyncio.sleep(delay)
            outcome = faults.roll()
            if outcome == "drop":
                await _drop(send)
            if outcome == "error":
                return error_response(
                    RegistryError(faults.error_status, "SERVICE_UNAVAILABLE", "injected fault")
                )
        refusal = self.rate.admit(categories, identity)
        if refusal is not None:
            return _too_many(
                f"the registry's {refusal.category} limit per {refusal.scope} was exceeded",
                refusal.retry_after,
            )
        kind = "read" if req.method in READ_METHODS or req.path.startswith("/oauth2/") else "write"
        retry_after = self.throttle.admit(kind)
        if retry_after is not None:
            return _too_many("the registry's operations-per-minute limit was exceeded", retry_after)
        return None


def _too_many(reason: str, retry_after: int) -> Response:
    return error_response(
        RegistryError(
            429,
            "TOOMANYREQUESTS",
            f"too many requests: {reason}",
            headers=[("retry-after", str(retry_after))],
        )
    )


async def _drop(send: Send) -> NoReturn:
    """Start a response that never completes: over HTTP the client sees the connection close
    mid-response; in-process the ASGI transport raises the `DroppedConnection` raised here."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"100")],
        }
    )
    raise DroppedConnection("acr_emulator dropped the connection (fault injection)")

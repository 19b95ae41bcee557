"""Admin endpoints under /_emulator/ for tests, the demo and benchmarks (not part of ACR).

They need no auth (the emulator listens on loopback only), are never throttled or faulted,
and are not counted.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from acr_emulator.access import Principals
from acr_emulator.auth import TokenService
from acr_emulator.clock import Clock, format_acr_time, parse_time
from acr_emulator.counters import Counters
from acr_emulator.errors import invalid
from acr_emulator.events import EventBus
from acr_emulator.faults import Faults
from acr_emulator.guard import Guard
from acr_emulator.http import Request, Response, Route, route
from acr_emulator.ratelimit import RateLimits
from acr_emulator.seed import FixtureError, seed
from acr_emulator.store import Registry
from acr_emulator.throttle import ThrottleConfig


class AdminApi:
    """The emulator's knobs over HTTP: counters, clock, faults, throttling, seeding, events,
    token revocation and role grants, each handed in as the object it turns."""

    def __init__(
        self,
        *,
        registry: Registry,
        clock: Clock,
        counters: Counters,
        guard: Guard,
        bus: EventBus,
        tokens: TokenService,
        principals: Principals,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._counters = counters
        self._guard = guard
        self._bus = bus
        self._tokens = tokens
        self._principals = principals

    def routes(self) -> list[Route]:
        return [
            route(
                "/_emulator/counters",
                r"/_emulator/counters",
                {"GET": self.counters, "DELETE": self.counters},
            ),
            route("/_emulator/clock", r"/_emulator/clock", {"GET": self.clock, "POST": self.clock}),
            route(
                "/_emulator/faults", r"/_emulator/faults", {"GET": self.faults, "POST": self.faults}
            ),
            route(
                "/_emulator/throttle",
                r"/_emulator/throttle",
                {"GET": self.throttle, "POST": self.throttle},
            ),
            route(
                "/_emulator/rate-limits",
                r"/_emulator/rate-limits",
                {"GET": self.rate_limits, "POST": self.rate_limits, "DELETE": self.rate_limits},
            ),
            route("/_emulator/seed", r"/_emulator/seed", {"POST": self.seed}),
            route("/_emulator/events", r"/_emulator/events", {"GET": self.events}),
            route(
                "/_emulator/tokens/revoke",
                r"/_emulator/tokens/revoke",
                {"POST": self.revoke_tokens},
            ),
            route("/_emulator/grants", r"/_emulator/grants", {"POST": self.grants}),
        ]

    async def counters(self, req: Request) -> Response:
        if req.method == "DELETE":
            self._counters.reset()
            self._guard.rate.counters.reset()
            return Response.empty(204)
        counters = self._counters
        return Response.json({"total": counters.total, "counters": counters.snapshot()})

    async def clock(self, req: Request) -> Response:
        clock = self._clock
        if req.method == "POST":
            body = _object(req)
            try:
                if "now" in body:
                    clock.set(parse_time(str(body["now"])))
                if "advance_seconds" in body:
                    clock.advance(timedelta(seconds=float(body["advance_seconds"])))
                if "frozen" in body:
                    clock.freeze(bool(body["frozen"]))
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"clock: {exc}") from None
        return Response.json({"now": format_acr_time(clock.peek()), "frozen": clock.frozen})

    async def faults(self, req: Request) -> Response:
        if req.method == "POST":
            try:
                self._guard.faults = Faults(**_object(req))
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"faults: {exc}") from None
        state = asdict(self._guard.faults)
        state.pop("_random", None)
        if state["methods"] is not None:
            state["methods"] = sorted(state["methods"])
        return Response.json(state)

    async def throttle(self, req: Request) -> Response:
        throttle = self._guard.throttle
        if req.method == "POST":
            body = _object(req)
            try:
                if body.get("sku"):
                    sku = str(body.pop("sku"))
                    throttle.configure(ThrottleConfig.sku(sku, **body))
                elif body:
                    throttle.configure(ThrottleConfig(**body))
                else:
                    throttle.configure(None)
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"throttle: {exc}") from None
        config = throttle.config
        return Response.json(None if config is None else asdict(config))

    async def rate_limits(self, req: Request) -> Response:
        """POST `{"sku": "standard", ...overrides}`, explicit `RateLimits` fields, or `{}` (off);
        DELETE resets the per-identity counters. Answers the limits and the counters."""
        rate = self._guard.rate
        if req.method == "DELETE":
            rate.counters.reset()
        elif req.method == "POST":
            body = _object(req)
            try:
                if body.get("sku"):
                    rate.configure(RateLimits.sku(str(body.pop("sku")), **body))
                else:
                    rate.configure(RateLimits(**body) if body else None)
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"rate-limits: {exc}") from None
        limits = rate.limits
        return Response.json(
            {
                "limits": None if limits is None else asdict(limits),
                "counters": rate.counters.snapshot(),
                "by_identity": rate.counters.summary(),
            }
        )

    async def seed(self, req: Request) -> Response:
        try:
            seed(self._registry, self._clock, _object(req))
        except FixtureError as exc:
            raise invalid("BAD_REQUEST", str(exc)) from None
        return Response.json({"repositories": len(self._registry.repositories)}, 201)

    async def events(self, req: Request) -> Response:
        return Response.json(list(self._bus.published))

    async def revoke_tokens(self, req: Request) -> Response:
        self._tokens.revoke_all()
        return Response.empty(204)

    async def grants(self, req: Request) -> Response:
        body = _object(req)
        try:
            repos = body.get("repositories")
            self._principals.grant(
                str(body["principal"]),
                str(body["role"]),
                tuple(repos) if repos is not None else None,
            )
        except (KeyError, ValueError) as exc:
            raise invalid("BAD_REQUEST", f"grants: {exc}") from None
        return Response.empty(204)


def _object(req: Request) -> dict[str, Any]:
    body = req.json()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid("BAD_REQUEST", "the body must be a JSON object")
    return body

"""Admin endpoints under /_emulator/ for tests, the demo and benchmarks (not part of ACR).

They need no auth (the emulator listens on loopback only), are never throttled or faulted,
and are not counted.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from acr_emulator.clock import format_acr_time, parse_time
from acr_emulator.errors import invalid
from acr_emulator.faults import Faults
from acr_emulator.http import Request, Response, Route, route
from acr_emulator.seed import FixtureError
from acr_emulator.throttle import ThrottleConfig

if TYPE_CHECKING:
    from acr_emulator.emulator import Emulator


def build(emu: Emulator) -> list[Route]:
    async def counters(req: Request) -> Response:
        if req.method == "DELETE":
            emu.counters.reset()
            return Response.empty(204)
        return Response.json({"total": emu.counters.total, "counters": emu.counters.snapshot()})

    async def clock(req: Request) -> Response:
        if req.method == "POST":
            body = _object(req)
            try:
                if "now" in body:
                    emu.clock.set(parse_time(str(body["now"])))
                if "advance_seconds" in body:
                    emu.clock.advance(timedelta(seconds=float(body["advance_seconds"])))
                if "frozen" in body:
                    emu.clock.freeze(bool(body["frozen"]))
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"clock: {exc}") from None
        return Response.json({"now": format_acr_time(emu.clock.peek()), "frozen": emu.clock.frozen})

    async def faults(req: Request) -> Response:
        if req.method == "POST":
            try:
                emu.faults = Faults(**_object(req))
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"faults: {exc}") from None
        state = asdict(emu.faults)
        state.pop("_random", None)
        if state["methods"] is not None:
            state["methods"] = sorted(state["methods"])
        return Response.json(state)

    async def throttle(req: Request) -> Response:
        if req.method == "POST":
            body = _object(req)
            try:
                if body.get("sku"):
                    sku = str(body.pop("sku"))
                    emu.throttle.configure(ThrottleConfig.sku(sku, **body))
                elif body:
                    emu.throttle.configure(ThrottleConfig(**body))
                else:
                    emu.throttle.configure(None)
            except (TypeError, ValueError) as exc:
                raise invalid("BAD_REQUEST", f"throttle: {exc}") from None
        config = emu.throttle.config
        return Response.json(None if config is None else asdict(config))

    async def seed(req: Request) -> Response:
        try:
            emu.seed(_object(req))
        except FixtureError as exc:
            raise invalid("BAD_REQUEST", str(exc)) from None
        return Response.json({"repositories": len(emu.registry.repositories)}, 201)

    async def events(req: Request) -> Response:
        return Response.json(list(emu.events.published))

    async def revoke_tokens(req: Request) -> Response:
        emu.revoke_tokens()
        return Response.empty(204)

    async def grants(req: Request) -> Response:
        body = _object(req)
        try:
            repos = body.get("repositories")
            emu.grant(
                str(body["principal"]),
                str(body["role"]),
                repositories=tuple(repos) if repos is not None else None,
            )
        except (KeyError, ValueError) as exc:
            raise invalid("BAD_REQUEST", f"grants: {exc}") from None
        return Response.empty(204)

    return [
        route("/_emulator/counters", r"/_emulator/counters", {"GET": counters, "DELETE": counters}),
        route("/_emulator/clock", r"/_emulator/clock", {"GET": clock, "POST": clock}),
        route("/_emulator/faults", r"/_emulator/faults", {"GET": faults, "POST": faults}),
        route("/_emulator/throttle", r"/_emulator/throttle", {"GET": throttle, "POST": throttle}),
        route("/_emulator/seed", r"/_emulator/seed", {"POST": seed}),
        route("/_emulator/events", r"/_emulator/events", {"GET": events}),
        route("/_emulator/tokens/revoke", r"/_emulator/tokens/revoke", {"POST": revoke_tokens}),
        route("/_emulator/grants", r"/_emulator/grants", {"POST": grants}),
    ]


def _object(req: Request) -> dict[str, Any]:
    body = req.json()
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid("BAD_REQUEST", "the body must be a JSON object")
    return body

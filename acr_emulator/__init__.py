"""acr_emulator: a local Azure Container Registry that speaks ACR's wire protocol.

`Emulator(EmulatorConfig(...))` holds the registry; `emu.app` is its ASGI app and
`emu.serve()` runs it over HTTPS on loopback. See docs/emulator.md.
"""

from __future__ import annotations

from acr_emulator.auth import ScopedToken
from acr_emulator.config import EmulatorConfig
from acr_emulator.emulator import Emulator
from acr_emulator.events import Webhook
from acr_emulator.faults import Faults
from acr_emulator.hooks import Arrival
from acr_emulator.ratelimit import RateLimits
from acr_emulator.server import ServerInfo
from acr_emulator.throttle import ThrottleConfig

__all__ = [
    "Arrival",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "RateLimits",
    "ScopedToken",
    "ServerInfo",
    "ThrottleConfig",
    "Webhook",
]

"""How an emulator is set up: identity, auth, clock, throttling, faults and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from acr_emulator.auth import ScopedToken
from acr_emulator.events import Webhook
from acr_emulator.faults import Faults
from acr_emulator.ratelimit import RateLimits
from acr_emulator.throttle import ThrottleConfig

DEFAULT_RESOURCE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/acr-emulator"
    "/providers/Microsoft.ContainerRegistry/registries/emulator"
)
# Audiences an AAD token may carry for the exchange (docs/acr-facts.md section 2.5): ACR's own, and
# the ARM ones accepted while azureADAuthenticationAsArmPolicy is enabled (the default).
DEFAULT_AUDIENCES = (
    "https://containerregistry.azure.net",
    "https://management.azure.com",
    "https://management.core.windows.net",
)
# "the token used by az acr login is valid for 3 hours" (container-registry-authentication.md).
THREE_HOURS = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Everything an `Emulator` is built from; every field has a working default.

    `login_server` is the registry's host[:port] (the `service` in challenges and tokens);
    None means whatever Host the request was sent to. `default_roles` are what a principal
    with no `Emulator.grant` gets; None means full data-plane access in the chosen mode.
    `retag_moves_manifest_time`: whether tagging a manifest the repository already holds
    moves that manifest's `lastUpdateTime` (the tag's always moves). ACR documents only the
    tag's (docs/acr-facts.md 1.4, UNCERTAIN), so a cleaner's tests should pass both ways.
    `tokens_use_clock`: the emulator's tokens take `iat`/`exp` from the registry clock (so a
    test expires them with `emu.clock.advance`) instead of the wall clock. Off by default:
    Microsoft's SDK compares `exp` with its own wall clock. `scoped_tokens`: ACR tokens with
    scope maps (`ScopedToken`), for Basic auth limited to some repository actions.
    `rate_limits`: ACR's 2026 request-rate limits (`RateLimits.sku("standard")`, see
    `acr_emulator.ratelimit`); `throttle`: the retired ReadOps/WriteOps model. Both off by
    default; either or both may be on.
    """

    login_server: str | None = None
    resource_id: str = DEFAULT_RESOURCE_ID
    location: str = "eastus"
    require_auth: bool = True
    admin_enabled: bool = True
    admin_username: str = "emulator"
    admin_password: str | None = None
    anonymous_pull: bool = False
    abac: bool = False
    default_roles: tuple[str, ...] | None = None
    accepted_audiences: tuple[str, ...] = DEFAULT_AUDIENCES
    access_token_lifetime: float = THREE_HOURS
    refresh_token_lifetime: float = THREE_HOURS
    tokens_use_clock: bool = False
    scoped_tokens: tuple[ScopedToken, ...] = ()
    now: datetime | None = None
    frozen_clock: bool = False
    require_blobs: bool = True
    retag_moves_manifest_time: bool = True
    throttle: ThrottleConfig | None = None
    rate_limits: RateLimits | None = None
    faults: Faults = field(default_factory=Faults)
    webhooks: tuple[Webhook, ...] = ()
    webhook_verify: str | bool = True

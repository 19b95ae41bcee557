"""acr_core: the ACR cleanup library: `registry` (talks to ACR), `planning` (decides, purely),
`run` (gather, plan, apply, report), `app` (the function app's logic), and the `cli`.

For scripts: `AcrClient` (async) and `SyncAcrClient` (the same methods, without `async`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acr_core.registry.client import AcrClient
    from acr_core.registry.errors import (
        AcrConnectionError,
        AcrError,
        AcrResponseError,
        AuthenticationError,
        DisallowedOperationError,
        InvalidResponseError,
        NotFoundError,
        PermissionDeniedError,
        ServerError,
        ThrottledError,
        TokenRevokedError,
        UnsupportedOperationError,
        is_transient,
    )
    from acr_core.registry.sync import SyncAcrClient
    from acr_core.registry.transport import ClientStats, RetryPolicy

# Loaded on first use, so that importing a pure module (acr_core.models, .planner, ...) does
# not pull httpx in through this package (tests/unit/test_imports.py).
_EXPORTS = {
    "AcrClient": "acr_core.registry.client",
    "ClientStats": "acr_core.registry.transport",
    "RetryPolicy": "acr_core.registry.transport",
    "SyncAcrClient": "acr_core.registry.sync",
    **dict.fromkeys(
        [
            "AcrConnectionError",
            "AcrError",
            "AcrResponseError",
            "AuthenticationError",
            "DisallowedOperationError",
            "InvalidResponseError",
            "NotFoundError",
            "PermissionDeniedError",
            "ServerError",
            "ThrottledError",
            "TokenRevokedError",
            "UnsupportedOperationError",
            "is_transient",
        ],
        "acr_core.registry.errors",
    ),
}

__all__ = [
    "AcrClient",
    "AcrConnectionError",
    "AcrError",
    "AcrResponseError",
    "AuthenticationError",
    "ClientStats",
    "DisallowedOperationError",
    "InvalidResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "RetryPolicy",
    "ServerError",
    "SyncAcrClient",
    "ThrottledError",
    "TokenRevokedError",
    "UnsupportedOperationError",
    "is_transient",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'acr_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

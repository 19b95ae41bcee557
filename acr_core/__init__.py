"""acr_core: the ACR cleanup library (client, auth, policy, planner, executor, CLI)."""

from acr_core.client import AcrClient
from acr_core.errors import (
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
    UnsupportedOperationError,
    is_transient,
)
from acr_core.retry import ClientStats, RetryPolicy

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
    "ThrottledError",
    "UnsupportedOperationError",
    "is_transient",
]

"""Fake AAD tokens and credentials that the emulator's /oauth2/exchange accepts.

`FakeCredential` and `AsyncFakeCredential` have azure-core's `TokenCredential` /
`AsyncTokenCredential` shape (`get_token(*scopes, **kwargs) -> AccessToken`), so they can be
handed to Microsoft's SDK or to our client in place of azure-identity's credentials.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken

DEFAULT_OID = "11111111-2222-3333-4444-555555555555"
DEFAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ACR_AUDIENCE = "https://containerregistry.azure.net"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def aad_token(
    *,
    oid: str = DEFAULT_OID,
    tenant: str = DEFAULT_TENANT,
    audience: str = ACR_AUDIENCE,
    lifetime: float = 3600.0,
) -> str:
    """An AAD-shaped access token (a JWT naming `oid`); the signature is not a real one.

    A negative `lifetime` gives an already-expired token, which the exchange refuses.
    """
    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now,
        "nbf": now,
        "exp": int(now + lifetime),
        "oid": oid,
        "sub": oid,
        "tid": tenant,
        "uti": uuid.uuid4().hex,
        "ver": "1.0",
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": "acr-emulator"}
    return f"{_b64(header)}.{_b64(claims)}.c2lnbmF0dXJl"


def _audience(scopes: tuple[str, ...]) -> str:
    if not scopes:
        raise ValueError(
            "get_token needs at least one scope, e.g. https://containerregistry.azure.net/.default"
        )
    scope = scopes[0]
    return scope[: -len("/.default")] if scope.endswith("/.default") else scope


class FakeCredential:
    """A synchronous TokenCredential handing out `aad_token(oid=...)` for the asked audience."""

    def __init__(
        self, oid: str = DEFAULT_OID, *, tenant: str = DEFAULT_TENANT, lifetime: float = 3600.0
    ) -> None:
        self.oid = oid
        self.tenant = tenant
        self.lifetime = lifetime
        self.calls: list[tuple[str, ...]] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls.append(scopes)
        token = aad_token(
            oid=self.oid,
            tenant=tenant_id or self.tenant,
            audience=_audience(scopes),
            lifetime=self.lifetime,
        )
        return AccessToken(token, int(time.time() + self.lifetime))

    def close(self) -> None:
        return None

    def __enter__(self) -> FakeCredential:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.close()


class AsyncFakeCredential:
    """The asynchronous twin of `FakeCredential` (azure-core's AsyncTokenCredential shape)."""

    def __init__(
        self, oid: str = DEFAULT_OID, *, tenant: str = DEFAULT_TENANT, lifetime: float = 3600.0
    ) -> None:
        self._sync = FakeCredential(oid, tenant=tenant, lifetime=lifetime)

    @property
    def oid(self) -> str:
        return self._sync.oid

    @property
    def calls(self) -> list[tuple[str, ...]]:
        return self._sync.calls

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return self._sync.get_token(
            *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
        )

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncFakeCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()

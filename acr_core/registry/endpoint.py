"""Where the registry is: the one parser for the login server or URL that the settings, the CLI
and the client accept.

A registry is named by its login server (`myregistry.azurecr.io`, optionally with a port) or by an
`https://` URL of it. Plain `http://` is accepted only for loopback, where the local emulator may
run without TLS: the client sends registry tokens on every request, so they must not cross a
network in clear text. A path is refused rather than dropped: ACR's API lives at the host's root
(docs/acr-facts.md section 1), so `https://r.azurecr.io/v2/` is a mistake worth naming.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# A DNS name (RFC 1123 labels, lower-cased before matching) or an IP literal's text.
_DNS_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_LOOPBACK_NAMES = frozenset({"localhost"})


class EndpointError(ValueError):
    """The text does not name a registry; `problem` says why, phrased to follow the value
    (`--registry 'x' ` + problem), so each caller can name its own flag or setting."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str  # "https", or "http" to a loopback address only
    host: str  # lower-cased; an IPv6 address without brackets
    port: int | None = None

    @property
    def login_server(self) -> str:
        """`host[:port]`, as ACR's token service and `docker login` name the registry."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.login_server}"


def parse_endpoint(text: str, *, allow_scheme: bool = True) -> Endpoint:
    """The registry `text` names; `allow_scheme=False` accepts a bare login server only.

    Raises `EndpointError` saying what is wrong and what to give instead.
    """
    value = text.strip()
    if not value:
        raise EndpointError("is empty: give the login server, e.g. myregistry.azurecr.io")
    if not allow_scheme and ("://" in value or "/" in value):
        raise EndpointError(
            "is not a host name: give the login server only, e.g. myregistry.azurecr.io "
            "(no https://, no path)"
        )
    try:
        parts = urlsplit(value if "://" in value else f"https://{value}")
        port = parts.port
    except ValueError:
        parts, port = None, None
    host = (parts.hostname or "") if parts is not None else ""
    if parts is None or parts.scheme not in ("https", "http") or not _is_host(host):
        raise EndpointError(
            "is not a login server (e.g. myregistry.azurecr.io) or an https URL of one"
        )
    if parts.scheme == "http" and not is_loopback(host):
        raise EndpointError(
            "uses plain http: use https (plain http only to loopback), since registry tokens "
            "go with every request"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise EndpointError("has a path: give the registry only, without a path")
    return Endpoint(parts.scheme, host, port)


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine: `localhost`, 127.0.0.0/8 or ::1."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_host(host: str) -> bool:
    if _DNS_NAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True

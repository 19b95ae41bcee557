"""The one endpoint parser the settings, the CLI and the client share."""

from __future__ import annotations

import pytest

from acr_core.registry.endpoint import EndpointError, parse_endpoint


@pytest.mark.parametrize(
    ("text", "url", "login_server"),
    [
        ("myregistry.azurecr.io", "https://myregistry.azurecr.io", "myregistry.azurecr.io"),
        (" MyRegistry.AzureCR.io/ ", "https://myregistry.azurecr.io", "myregistry.azurecr.io"),
        ("https://r.azurecr.io:443", "https://r.azurecr.io:443", "r.azurecr.io:443"),
        ("127.0.0.1:5443", "https://127.0.0.1:5443", "127.0.0.1:5443"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://localhost:5000/", "http://localhost:5000", "localhost:5000"),
        ("https://[::1]:5000", "https://[::1]:5000", "[::1]:5000"),
    ],
)
def test_a_login_server_or_url_is_normalised(text: str, url: str, login_server: str) -> None:
    """A login server or an https URL of one gives the same lower-cased URL and login server."""
    endpoint = parse_endpoint(text)
    assert (endpoint.url, endpoint.login_server) == (url, login_server)


@pytest.mark.parametrize(
    ("text", "allow_scheme", "problem"),
    [
        ("", True, "is empty"),
        ("my registry.example", True, "is not a login server"),
        ("https://[::1", True, "is not a login server"),
        ("ftp://r.azurecr.io", True, "is not a login server"),
        ("https://r.azurecr.io:99999", True, "is not a login server"),
        ("http://r.azurecr.io", True, "use https"),
        ("http://10.0.0.1", True, "use https"),
        ("https://r.azurecr.io/v2/", True, "without a path"),
        ("https://r.azurecr.io/?x=1", True, "without a path"),
        ("https://r.azurecr.io", False, "no https://"),
        ("r.azurecr.io/x", False, "no https://"),
    ],
)
def test_what_names_no_registry_is_refused_with_the_reason(
    text: str, allow_scheme: bool, problem: str
) -> None:
    """Malformed names, plain http off loopback, paths and (for settings) schemes say why."""
    with pytest.raises(EndpointError) as caught:
        parse_endpoint(text, allow_scheme=allow_scheme)
    assert problem in caught.value.problem

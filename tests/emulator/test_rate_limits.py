"""ACR's 2026 rate-limit model (docs/acr-facts.md section 4.1), over real HTTPS.

Each test sets small custom limits so a bucket empties in a handful of requests, and moves the
emulator's frozen registry clock instead of sleeping.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from acr_emulator import Emulator, EmulatorConfig, RateLimits, ServerInfo
from acr_emulator.identity import ADMIN, ANONYMOUS
from acr_emulator.ratelimit import DELETE, OAUTH, READ, REFERRERS, WRITE
from acr_emulator.testing import aad_token

ALL_SCOPES = "registry:catalog:* repository:*:*"
ALICE, BOB = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(frozen_clock=True, anonymous_pull=True)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Emulator:
    emu = Emulator(emulator_config)
    emu.seed(
        {
            "repositories": [
                {
                    "name": "app",
                    "manifests": [
                        {"tags": ["v1"]},
                        {"tags": ["v2"], "architecture": "arm64"},
                    ],
                }
            ]
        }
    )
    return emu


@dataclass
class Caller:
    """One identity's HTTPS client: `call` sends a request with its access token."""

    http: httpx.Client
    token: str | None

    def call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        return self.http.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def statuses(self, method: str, path: str, times: int) -> list[int]:
        return [self.call(method, path).status_code for _ in range(times)]


class Callers:
    """Tokens for the admin user, AAD principals and anonymous, all from the emulator."""

    def __init__(self, http: httpx.Client, server: ServerInfo) -> None:
        self.http = http
        self.server = server

    def admin(self, *, grant: str = "basic") -> Caller:
        service = self.server.login_server
        if grant == "basic":
            login = f"{self.server.admin_username}:{self.server.admin_password}".encode()
            response = self.http.get(
                "/oauth2/token",
                params={"service": service, "scope": ALL_SCOPES},
                headers={"authorization": "Basic " + base64.b64encode(login).decode()},
            )
        else:
            response = self.http.post(
                "/oauth2/token",
                data={
                    "grant_type": "password",
                    "service": service,
                    "scope": ALL_SCOPES,
                    "username": self.server.admin_username,
                    "password": self.server.admin_password,
                },
            )
        assert response.status_code == 200, response.text
        return Caller(self.http, response.json()["access_token"])

    def aad(self, oid: str) -> Caller:
        service = self.server.login_server
        exchange = self.http.post(
            "/oauth2/exchange",
            data={
                "grant_type": "access_token",
                "service": service,
                "access_token": aad_token(oid=oid),
            },
        )
        assert exchange.status_code == 200, exchange.text
        response = self.http.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "service": service,
                "scope": ALL_SCOPES,
                "refresh_token": exchange.json()["refresh_token"],
            },
        )
        assert response.status_code == 200, response.text
        return Caller(self.http, response.json()["access_token"])

    def anonymous(self) -> Caller:
        response = self.http.get(
            "/oauth2/token",
            params={"service": self.server.login_server, "scope": "repository:app:pull"},
        )
        assert response.status_code == 200, response.text
        return Caller(self.http, response.json()["access_token"])


@pytest.fixture
def callers(emulator_server: ServerInfo) -> Iterator[Callers]:
    verify = ssl.create_default_context(cafile=emulator_server.ca_file)
    with httpx.Client(base_url=emulator_server.url, verify=verify) as http:
        yield Callers(http, emulator_server)


def limit(emu: Emulator, **fields: float) -> None:
    """Fresh buckets with only these limits (a rate of 60/min is one token per second)."""
    emu.rate.configure(RateLimits(**fields))


def advance(emu: Emulator, seconds: float) -> None:
    emu.clock.advance(timedelta(seconds=seconds))


def digest_of_v1(emu: Emulator) -> str:
    return emu.registry.repositories["app"].tags["v1"].digest


# ---- categories -----------------------------------------------------------------------------

REQUESTS = {
    READ: [
        ("GET", "/v2/"),
        ("GET", "/v2/_catalog"),
        ("GET", "/v2/app/tags/list"),
        ("HEAD", "/v2/app/manifests/v1"),
        ("GET", "/acr/v1/_catalog"),
        ("GET", "/acr/v1/app/_tags"),
        ("GET", "/acr/v1/app/_manifests"),
    ],
    WRITE: [
        ("POST", "/v2/app/blobs/uploads/"),
        ("PATCH", "/acr/v1/app/_tags/v1"),
        ("PUT", "/v2/app/manifests/v3"),
    ],
    DELETE: [("DELETE", "/acr/v1/app/_tags/v2"), ("DELETE", "/v2/app/manifests/v1")],
}


@pytest.mark.parametrize(
    ("category", "method", "path"),
    [(c, m, p) for c, requests in REQUESTS.items() for m, p in requests],
)
def test_each_request_counts_against_its_category(emulator, callers, category, method, path):
    """A request draws from its category's bucket alone: once that bucket (one token) is
    spent the same request is 429, while requests of the other categories still pass."""
    admin = callers.admin()
    field = {READ: "read_per_identity", WRITE: "write_per_identity", DELETE: "delete_per_identity"}
    limit(emulator, **{field[category]: 60}, capacity_seconds=1)
    first, second = admin.call(method, path), admin.call(method, path)
    assert first.status_code != 429
    assert second.status_code == 429
    for other, requests in REQUESTS.items():
        if other != category:
            other_method, other_path = requests[0]
            assert admin.call(other_method, other_path).status_code != 429
    assert emulator.rate.counters.count(category, ADMIN) == 2
    assert emulator.rate.counters.throttled(category, ADMIN) == 1


def test_token_requests_are_oauth_whatever_the_method(emulator, callers):
    """GET and POST /oauth2/token and POST /oauth2/exchange are OAuth, never DataplaneRead."""
    limit(emulator, read_per_registry=60, oauth_per_registry=600, capacity_seconds=1)
    callers.admin()
    callers.admin(grant="password")
    callers.aad(ALICE)
    counters = emulator.rate.counters
    assert counters.count(OAUTH) == 4  # exchange + token for Alice, two for the admin
    assert counters.count(OAUTH, ADMIN) == 2
    assert counters.count(OAUTH, ALICE) == 2
    assert counters.count(READ) == 0


def test_a_referrers_listing_counts_as_list_referrers_and_dataplane_read(emulator, callers):
    """One referrers GET spends a ListReferrers and a DataplaneRead token; it is 429 when
    either bucket is empty, and an empty ListReferrers bucket leaves other reads alone."""
    admin = callers.admin()
    path = f"/v2/app/referrers/{digest_of_v1(emulator)}"
    limit(emulator, referrers_per_identity=60, read_per_identity=120, capacity_seconds=1)
    assert admin.call("GET", path).status_code == 200
    assert admin.call("GET", path).status_code == 429  # ListReferrers empty
    assert admin.call("GET", "/v2/app/tags/list").status_code == 200  # the read bucket's last
    counters = emulator.rate.counters
    assert (counters.count(REFERRERS, ADMIN), counters.count(READ, ADMIN)) == (2, 3)

    limit(emulator, referrers_per_identity=600, read_per_identity=60, capacity_seconds=1)
    assert admin.call("GET", "/v2/app/tags/list").status_code == 200
    assert admin.call("GET", path).status_code == 429  # DataplaneRead empty


# ---- identities and scopes ------------------------------------------------------------------


def test_each_identity_has_its_own_buckets(emulator, callers):
    """Two AAD principals, the admin user and anonymous each get the per-identity budget."""
    alice, bob, admin, anonymous = (
        callers.aad(ALICE),
        callers.aad(BOB),
        callers.admin(),
        callers.anonymous(),
    )
    limit(emulator, read_per_identity=120, capacity_seconds=1)  # two reads each
    for caller in (alice, bob, admin, anonymous):
        assert caller.statuses("GET", "/v2/app/tags/list", 3) == [200, 200, 429]
    summary = emulator.rate.counters.summary()
    for identity in (ALICE, BOB, ADMIN, ANONYMOUS):
        assert summary[identity][READ] == {"requests": 3, "throttled": 1}


def test_the_admin_user_is_one_identity_however_it_logs_in(emulator, callers):
    """Tokens from a Basic GET and from a password grant share the admin user's bucket."""
    basic, password = callers.admin(), callers.admin(grant="password")
    limit(emulator, delete_per_identity=120, capacity_seconds=1)
    assert basic.call("DELETE", "/acr/v1/app/_tags/nope").status_code == 404
    assert password.call("DELETE", "/acr/v1/app/_tags/nope").status_code == 404
    assert basic.call("DELETE", "/acr/v1/app/_tags/nope").status_code == 429
    assert password.call("DELETE", "/acr/v1/app/_tags/nope").status_code == 429
    assert emulator.rate.counters.identities() == [ADMIN]


def test_a_request_without_a_token_is_anonymous(emulator, callers):
    """The first, challenged request carries no identity, so it spends anonymous's budget."""
    nobody = Caller(callers.http, None)
    limit(emulator, read_per_identity=60, capacity_seconds=1)
    assert nobody.statuses("GET", "/v2/", 2) == [401, 429]
    assert callers.anonymous().call("GET", "/v2/app/tags/list").status_code == 429
    assert callers.admin().call("GET", "/v2/app/tags/list").status_code == 200


def test_the_per_registry_limit_caps_all_identities_together(emulator, callers):
    """Three reads per registry: Alice takes two, Bob one, then everyone is refused."""
    alice, bob, admin = callers.aad(ALICE), callers.aad(BOB), callers.admin()
    limit(emulator, read_per_registry=180, read_per_identity=600, capacity_seconds=1)
    assert alice.statuses("GET", "/v2/app/tags/list", 2) == [200, 200]
    assert bob.statuses("GET", "/v2/app/tags/list", 2) == [200, 429]
    assert admin.call("GET", "/v2/app/tags/list").status_code == 429
    assert "DataplaneRead limit per registry" in admin.call("GET", "/v2/").text


def test_oauth_is_limited_per_registry_only(emulator, callers):
    """Token requests of different identities draw from one registry-wide OAuth bucket, and
    there is no per-identity OAuth limit to set."""
    limit(emulator, oauth_per_registry=180, capacity_seconds=1)
    callers.aad(ALICE)  # exchange + token: two
    callers.admin()  # the third
    response = callers.http.get(
        "/oauth2/token", params={"service": callers.server.login_server, "scope": ALL_SCOPES}
    )
    assert response.status_code == 429
    assert "OAuth limit per registry" in response.text
    assert RateLimits.sku("premium").limit(OAUTH, "identity") is None


# ---- refill and the throttling period -------------------------------------------------------


def test_the_buckets_refill_continuously(emulator, callers):
    """At 60/min with 5 s of capacity: 5 deletes pass at once; 2.5 s later 2.5 tokens are
    back, so two more pass and the third is refused."""
    admin = callers.admin()
    limit(emulator, delete_per_identity=60, capacity_seconds=5)
    assert admin.statuses("DELETE", "/acr/v1/app/_tags/nope", 5) == [404] * 5
    advance(emulator, 2.5)
    assert admin.statuses("DELETE", "/acr/v1/app/_tags/nope", 3) == [404, 404, 429]


def test_retry_after_counts_down_to_the_end_of_the_throttling_period(emulator, callers):
    """A burst that empties a one-minute bucket throttles for 60 s: Retry-After says 60, then
    50 ten seconds later (though a token has refilled since), then 1, then requests pass."""
    admin = callers.admin()
    limit(emulator, delete_per_identity=6, capacity_seconds=60)  # 6 tokens, one per 10 s
    path = "/acr/v1/app/_tags/nope"
    assert admin.statuses("DELETE", path, 6) == [404] * 6
    refused = admin.call("DELETE", path)
    retry_afters = [refused.headers["retry-after"]]
    for seconds in (10, 0, 49.5):
        advance(emulator, seconds)
        retry_afters.append(admin.call("DELETE", path).headers["retry-after"])
    advance(emulator, 0.5)
    assert retry_afters == ["60", "50", "50", "1"]
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert admin.statuses("DELETE", path, 7) == [404] * 6 + [429]  # full again


def test_time_scale_shortens_the_registry_minute(emulator, callers):
    """time_scale=60: a minute's budget refills in one clock second, and the period after an
    emptied bucket lasts one second."""
    admin = callers.admin()
    limit(emulator, delete_per_identity=3, capacity_seconds=60, time_scale=60)
    path = "/acr/v1/app/_tags/nope"
    assert admin.statuses("DELETE", path, 4) == [404, 404, 404, 429]
    assert admin.call("DELETE", path).headers["retry-after"] == "1"
    advance(emulator, 1.0)
    assert admin.statuses("DELETE", path, 4) == [404, 404, 404, 429]


# ---- presets, configuration, counters -------------------------------------------------------


@pytest.mark.parametrize(
    ("sku", "numbers"),
    [
        ("basic", (10_000, 5_000, 2_000, 1_000, 1_000, 500, 500, 250, 10_000)),
        ("Standard", (10_000, 5_000, 2_000, 1_000, 1_000, 500, 500, 250, 10_000)),
        ("premium", (20_000, 10_000, 4_000, 2_000, 4_000, 2_000, 2_000, 1_000, 20_000)),
    ],
)
def test_sku_presets_carry_the_published_numbers(sku, numbers):
    """Per registry / per identity for read, write, delete, referrers; OAuth per registry."""
    limits = RateLimits.sku(sku)
    got = [
        limits.limit(category, scope)
        for category in (READ, WRITE, DELETE, REFERRERS)
        for scope in ("registry", "identity")
    ]
    assert (*got, limits.limit(OAUTH, "registry")) == numbers


def test_bad_limits_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="delete_per_identity"):
        RateLimits(delete_per_identity=0)
    with pytest.raises(ValueError, match="unknown SKU"):
        RateLimits.sku("gold")


def test_requests_are_counted_with_limits_off(emulator, callers):
    """Counting per category and identity does not need limits switched on."""
    callers.aad(ALICE).statuses("DELETE", "/acr/v1/app/_tags/nope", 2)
    assert emulator.rate.limits is None
    assert emulator.rate.counters.count(DELETE, ALICE) == 2
    assert emulator.rate.counters.throttled() == 0


def test_rate_limits_can_be_set_over_the_admin_endpoint(emulator, callers):
    """POST /_emulator/rate-limits with a SKU and overrides; GET shows counters; {} is off."""
    on = callers.http.post(
        "/_emulator/rate-limits", json={"sku": "premium", "time_scale": 10, "capacity_seconds": 5}
    ).json()
    assert on["limits"]["delete_per_identity"] == 2000
    assert (on["limits"]["time_scale"], on["limits"]["capacity_seconds"]) == (10, 5)
    callers.admin()
    shown = callers.http.get("/_emulator/rate-limits").json()
    assert shown["by_identity"][ADMIN][OAUTH] == {"requests": 1, "throttled": 0}
    bad = callers.http.post("/_emulator/rate-limits", json={"read_per_identity": -1})
    assert bad.status_code == 400
    assert callers.http.post("/_emulator/rate-limits", json={}).json()["limits"] is None
    assert emulator.rate.limits is None
    callers.http.delete("/_emulator/counters")
    assert emulator.rate.counters.count() == 0

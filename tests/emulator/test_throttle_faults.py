"""Throttling (continuous token buckets per ReadOps/WriteOps), faults, counters."""

from __future__ import annotations

import httpx
import pytest

from acr_emulator import Faults, ThrottleConfig
from acr_emulator.throttle import Throttle
from tests.emulator.helpers import admin_headers


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admitted(throttle: Throttle, kind: str, attempts: int) -> int:
    return sum(throttle.admit(kind) is None for _ in range(attempts))


@pytest.mark.parametrize(
    ("sku", "read", "write"),
    [("Basic", 1000, 100), ("Standard", 3000, 500), ("Premium", 10000, 2000)],
)
def test_sku_presets_use_acr_s_per_minute_limits(sku, read, write):
    """Basic/Standard/Premium carry ACR's ReadOps/WriteOps per minute."""
    config = ThrottleConfig.sku(sku)
    assert (config.read_per_minute, config.write_per_minute) == (read, write)


def test_only_about_a_second_of_budget_can_be_spent_at_once():
    """Standard allows a burst of 50 reads (1 s of 3000/min), not the whole minute's 3000."""
    clock = FakeTime()
    throttle = Throttle(ThrottleConfig.sku("Standard"), clock=clock)
    assert admitted(throttle, "read", 3000) == 50


def test_the_budget_refills_continuously():
    """After a burst, half a second later 25 more reads pass (3000/min = 50/s)."""
    clock = FakeTime()
    throttle = Throttle(ThrottleConfig.sku("Standard"), clock=clock)
    admitted(throttle, "read", 100)
    clock.now += 0.5
    assert admitted(throttle, "read", 100) == 25


def test_reads_and_writes_have_separate_budgets():
    """Spending all writes (Basic: 100/min, burst 1.67) leaves reads untouched."""
    clock = FakeTime()
    throttle = Throttle(ThrottleConfig.sku("Basic"), clock=clock)
    admitted(throttle, "write", 10)
    assert throttle.admit("write") is not None
    assert throttle.admit("read") is None


def test_time_scale_and_burst_seconds_multiply_the_budget():
    """time_scale=10 and burst_seconds=2 let 20 s of Basic writes (33) through at once."""
    clock = FakeTime()
    throttle = Throttle(ThrottleConfig.sku("Basic", burst_seconds=2, time_scale=10), clock=clock)
    assert admitted(throttle, "write", 1000) == 33


def test_retry_after_is_the_whole_seconds_until_a_token():
    """With 6 writes/min a refused write is told to retry after 10 s."""
    clock = FakeTime()
    throttle = Throttle(ThrottleConfig(600, 6), clock=clock)
    throttle.admit("write")
    assert throttle.admit("write") == 10


async def test_a_throttled_request_is_429_with_retry_after(emulator, emulator_client):
    """Over budget the emulator answers 429 TOOMANYREQUESTS with Retry-After, and counts it."""
    emulator.throttle.configure(ThrottleConfig(read_per_minute=120, write_per_minute=60))
    statuses = [(await emulator_client.get("/v2/")).status_code for _ in range(3)]
    response = await emulator_client.get("/v2/")
    assert statuses == [401, 401, 429]
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(response.headers["retry-after"]) >= 1
    assert emulator.counters.count(endpoint="/v2/", status=429) == 2


async def test_throttling_can_be_switched_over_the_admin_endpoint(emulator, emulator_client):
    """POST /_emulator/throttle with a SKU turns it on; an empty body turns it off."""
    on = await emulator_client.post("/_emulator/throttle", json={"sku": "Basic", "time_scale": 2})
    off = await emulator_client.post("/_emulator/throttle", json={})
    assert on.json()["write_per_minute"] == 100
    assert on.json()["time_scale"] == 2
    assert off.json() is None
    assert emulator.throttle.config is None


async def test_injected_errors_answer_5xx(emulator, emulator_client):
    """error_rate=1 answers every data-plane request with the chosen 5xx, never the admin API."""
    emulator.faults = Faults(error_rate=1.0, error_status=502)
    response = await emulator_client.get("/acr/v1/_catalog")
    admin = await emulator_client.get("/_emulator/counters")
    assert response.status_code == 502
    assert admin.status_code == 200


async def test_injected_drops_break_the_connection_in_process(emulator, emulator_client):
    """drop_rate=1 raises ConnectionResetError through the in-process transport."""
    emulator.faults = Faults(drop_rate=1.0)
    with pytest.raises(ConnectionResetError):
        await emulator_client.get("/v2/")


def test_injected_drops_close_real_connections(emulator, emulator_server):
    """Over HTTPS a dropped request ends with the peer closing mid-response."""
    emulator.faults = Faults(drop_rate=1.0)
    with (
        httpx.Client(verify=_context(emulator_server.ca_file)) as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.get(f"{emulator_server.url}/v2/")


def _context(ca_file):
    import ssl

    return ssl.create_default_context(cafile=ca_file)


async def test_fault_rates_are_repeatable_with_a_seed(emulator, emulator_client):
    """The same seed gives the same sequence of failures."""
    runs = []
    for _ in range(2):
        emulator.faults = Faults(error_rate=0.5, seed=7)
        runs.append([(await emulator_client.get("/v2/")).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {401, 503}


async def test_faults_can_be_set_over_the_admin_endpoint(emulator, emulator_client):
    """POST /_emulator/faults replaces the faults; bad values are a 400 naming the field."""
    good = await emulator_client.post(
        "/_emulator/faults", json={"latency": 0.001, "error_rate": 0.1}
    )
    bad = await emulator_client.post("/_emulator/faults", json={"drop_rate": 2})
    assert good.json()["error_rate"] == 0.1
    assert emulator.faults.latency == 0.001
    assert bad.status_code == 400
    assert "drop_rate" in bad.json()["errors"][0]["message"]


async def test_counters_count_by_endpoint_method_and_status(emulator, emulator_client):
    """In-process and admin-endpoint counters agree on requests by route, method and status."""
    emulator.seed({"repositories": [{"name": "app", "manifests": [{"tags": ["v1"]}]}]})
    headers = await admin_headers(emulator_client, emulator)
    await emulator_client.get("/acr/v1/app/_tags")
    await emulator_client.get("/acr/v1/app/_tags", headers=headers)
    await emulator_client.delete("/acr/v1/app/_tags/v1", headers=headers)
    snapshot = (await emulator_client.get("/_emulator/counters")).json()
    assert emulator.counters.count(endpoint="/acr/v1/{name}/_tags", status=401) == 1
    assert emulator.counters.count(endpoint="/acr/v1/{name}/_tags", status=200) == 1
    assert emulator.counters.count(endpoint="/acr/v1/{name}/_tags/{tag}", method="DELETE") == 1
    assert {
        "endpoint": "/acr/v1/{name}/_tags/{tag}",
        "method": "DELETE",
        "status": 202,
        "count": 1,
    } in snapshot["counters"]
    assert snapshot["total"] == emulator.counters.total == 4
    await emulator_client.delete("/_emulator/counters")
    assert emulator.counters.total == 0


async def test_injected_latency_delays_answers(emulator, emulator_client):
    """latency=0.05 holds every data-plane answer back by at least 50 ms."""
    import time

    emulator.faults = Faults(latency=0.05)
    started = time.perf_counter()
    await emulator_client.get("/v2/")
    assert time.perf_counter() - started >= 0.05

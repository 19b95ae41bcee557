"""`RetryPolicy(fail_fast_unreached=True)` (the CLI's): no retry until the registry answers."""

from __future__ import annotations

import httpx
import pytest

from acr_core import AcrConnectionError, RetryPolicy
from tests.client.fake_acr import FakeAcr
from tests.client.test_client_mock import Sleeps, client_for, repo_props


async def test_a_refused_first_connection_is_not_retried() -> None:
    """Before any answer, a refused connection is raised at once, without waiting."""
    fake = FakeAcr()
    fake.faults.append(("/acr/v1/app", httpx.ConnectError("refused")))
    sleeps = Sleeps()
    async with client_for(fake, retry=RetryPolicy(sleep=sleeps, fail_fast_unreached=True)) as c:
        with pytest.raises(AcrConnectionError, match="ConnectError"):
            await c.get_repository_properties("app")
    assert sleeps.waits == []


async def test_once_the_registry_answered_connection_errors_are_retried() -> None:
    """After a first answer, a connection error is transient again and is retried."""
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    sleeps = Sleeps()
    async with client_for(fake, retry=RetryPolicy(sleep=sleeps, fail_fast_unreached=True)) as c:
        assert (await c.get_repository_properties("app")).name == "app"
        fake.faults.append(("/acr/v1/app", httpx.ConnectError("reset")))
        assert (await c.get_repository_properties("app")).name == "app"
    assert len(sleeps.waits) == 1

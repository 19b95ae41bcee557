"""Client behaviour that needs exact control of the server: auth caching, retries, hostile input."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime

import httpx
import pytest

from acr_core import (
    AcrClient,
    AcrConnectionError,
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RetryPolicy,
    ServerError,
    ThrottledError,
)
from tests.client.fake_acr import ENDPOINT, FakeAcr, StaticCredential

D = "sha256:" + "d" * 64


class Sleeps:
    """A fake sleep that records how long the retry layer asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_for(fake: FakeAcr, *, retry: RetryPolicy | None = None, **kwargs: object) -> AcrClient:
    credential = kwargs.pop("credential", StaticCredential())
    return AcrClient(
        ENDPOINT,
        credential,  # type: ignore[arg-type]
        transport=fake.transport(),
        retry=retry or RetryPolicy.off(),
        **kwargs,  # type: ignore[arg-type]
    )


def deleted(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202)


def repo_props(name: str) -> dict[str, object]:
    return {
        "registry": "fake.azurecr.io",
        "imageName": name,
        "createdTime": "2024-01-01T00:00:00.1234567Z",
        "lastUpdateTime": "2024-01-02T00:00:00.1234567Z",
        "manifestCount": 2,
        "tagCount": 1,
        "changeableAttributes": {"deleteEnabled": True, "writeEnabled": False},
        "somethingNew": {"x": 1},
    }


async def test_concurrent_requests_for_one_scope_cost_one_exchange_and_one_token() -> None:
    """Fifty concurrent deletes in one repository make one 401, one exchange, one token request."""
    fake = FakeAcr()
    for i in range(50):
        digest = "sha256:" + f"{i:064x}"
        fake.routes[("DELETE", f"/v2/app/manifests/{digest}")] = deleted
    async with client_for(fake) as client:
        results = await asyncio.gather(
            *(client.delete_manifest("app", "sha256:" + f"{i:064x}") for i in range(50))
        )
        assert results == [True] * 50
        assert (fake.calls["401"], fake.calls["exchange"], fake.calls["token"]) == (1, 1, 1)
        # A new scope after the first challenge is predicted: a token up front, no 401.
        fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
        props = await client.get_repository_properties("app")
        assert props.name == "app"
        assert not props.attributes.deletable
        assert (fake.calls["401"], fake.calls["exchange"], fake.calls["token"]) == (1, 1, 2)
        assert client.stats.challenges == 1
        assert client.stats.token_requests == 2


async def test_insufficient_scope_retries_once_then_names_the_role() -> None:
    """A scope the identity lacks is retried once with a fresh grant, then raised with its role."""
    fake = FakeAcr(denied={"repository:app:delete"})
    async with client_for(fake) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await client.delete_manifest("app", D)
    error = caught.value
    assert error.scope == "repository:app:delete"
    assert "AcrDelete" in str(error)
    assert "DELETE https://fake.azurecr.io/v2/app/manifests/" in str(error)
    assert fake.calls["401"] == 2  # the first challenge, and the retry: no loop


async def test_expired_token_is_replaced_mid_listing() -> None:
    """A token the registry stops accepting is replaced once and the listing carries on."""
    fake = FakeAcr()
    pages = {
        None: (["a", "b"], '</acr/v1/_catalog?last=b&n=2>; rel="next"'),
        "b": (["c"], None),
    }

    def catalog(request: httpx.Request) -> httpx.Response:
        names, link = pages[request.url.params.get("last")]
        if request.url.params.get("last") == "b":
            # The registry revoked the first token between pages (say, its clock moved on).
            token = request.headers["authorization"].split()[1]
            if not revoked_once:
                fake.revoked.add(token)
                revoked_once.append(token)
                return fake._challenge("registry:catalog:*", "invalid_token")
        return httpx.Response(
            200, json={"repositories": names}, headers={"Link": link} if link else {}
        )

    revoked_once: list[str] = []
    fake.routes[("GET", "/acr/v1/_catalog")] = catalog
    async with client_for(fake) as client:
        names = [name async for name in client.list_repository_names(results_per_page=2)]
    assert names == ["a", "b", "c"]
    assert fake.calls["token"] == 2
    assert fake.calls["exchange"] == 1


async def test_revoked_refresh_token_is_exchanged_again() -> None:
    """When the token endpoint refuses the cached refresh token, the client exchanges once more."""
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    async with client_for(fake) as client:
        await client.get_repository_properties("app")
        token_request = [r for r in fake.log if r.url.path == "/oauth2/token"][-1]
        fake.revoked.add(httpx.QueryParams(token_request.content.decode())["refresh_token"])
        fake.revoked.add(_last_bearer(fake))
        assert (await client.get_repository_properties("app")).name == "app"
    assert fake.calls["exchange"] == 2
    assert fake.calls["token"] == 3  # first grant, refused grant, grant after re-exchange


def _last_bearer(fake: FakeAcr) -> str:
    return next(
        r.headers["authorization"].split()[1]
        for r in reversed(fake.log)
        if r.headers.get("authorization", "").startswith("Bearer ")
    )


async def test_throttling_honours_retry_after_and_tells_listeners() -> None:
    """A 429 waits the Retry-After seconds, notifies listeners, then succeeds on retry."""
    sleeps = Sleeps()
    fake = FakeAcr()
    fake.routes[("PATCH", "/acr/v1/app/_tags/v1")] = lambda r: httpx.Response(
        200,
        json={"tag": {"name": "v1", "digest": D, "changeableAttributes": json.loads(r.content)}},
    )
    fake.faults.append(("/acr/v1/app/_tags", httpx.Response(429, headers={"Retry-After": "7"})))
    heard: list[float | None] = []
    async with client_for(fake, retry=RetryPolicy(sleep=sleeps)) as client:
        client.add_throttle_listener(heard.append)
        tag = await client.update_tag_properties("app", "v1", can_write=False, can_delete=False)
    assert tag.attributes.fully_locked
    assert heard == [7.0]
    assert 7.0 in sleeps.waits
    assert client.stats.throttled == 1
    assert client.stats.retries >= 1


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        (429, {"x-ms-retry-after-ms": "250"}, 0.25),
        (503, {"Retry-After": "4"}, 4.0),
    ],
)
async def test_every_retry_after_form_sets_the_wait(
    status: int, headers: dict[str, str], wait: float
) -> None:
    """Azure's millisecond headers win over Retry-After, and a 503's Retry-After is waited out."""
    sleeps = Sleeps()
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    fake.faults.append(("/acr/v1/app", httpx.Response(status, headers=headers)))
    async with client_for(fake, retry=RetryPolicy(sleep=sleeps)) as client:
        repository = await client.get_repository_properties("app")
    assert repository.name == "app"
    assert sleeps.waits == [wait]


async def test_throttling_past_the_deadline_raises_throttled_error() -> None:
    """A Retry-After longer than the deadline gives up with ThrottledError at once."""
    sleeps = Sleeps()
    fake = FakeAcr()
    fake.faults.append(("/acr/v1/app", httpx.Response(429, headers={"Retry-After": "600"})))
    async with client_for(fake, retry=RetryPolicy(deadline=60, sleep=sleeps)) as client:
        with pytest.raises(ThrottledError) as caught:
            await client.get_repository_properties("app")
    assert caught.value.retry_after == 600.0
    assert caught.value.status == 429
    assert 600.0 not in sleeps.waits


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "GET"])
async def test_server_errors_are_retried_for_idempotent_calls(method: str) -> None:
    """5xx on DELETE, PATCH and GET (and on the token POST) is retried until success."""
    sleeps = Sleeps()
    fake = FakeAcr()
    fake.routes[("DELETE", "/acr/v1/app")] = lambda r: httpx.Response(202, json={})
    fake.routes[("PATCH", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    fake.faults.append(("/oauth2/token", httpx.Response(503)))
    fake.faults.append(("/acr/v1/app", httpx.Response(500)))
    fake.faults.append(("/acr/v1/app", httpx.Response(502)))
    async with client_for(fake, retry=RetryPolicy(sleep=sleeps)) as client:
        if method == "DELETE":
            assert await client.delete_repository("app") is True
        elif method == "PATCH":
            await client.update_repository_properties("app", can_delete=False)
        else:
            await client.get_repository_properties("app")
    assert fake.faults == []
    assert fake.calls[f"{method} /acr/v1/app"] == 1
    assert len(sleeps.waits) == 3
    assert all(0 <= w <= 30 for w in sleeps.waits)


async def test_retries_stop_after_the_attempt_budget() -> None:
    """Persistent 503s end in ServerError after exactly the configured attempts."""
    fake = FakeAcr()
    fake.faults.extend(("/acr/v1/app", httpx.Response(503)) for _ in range(10))
    async with client_for(fake, retry=RetryPolicy(attempts=3, sleep=Sleeps())) as client:
        with pytest.raises(ServerError):
            await client.get_repository_properties("app")
    assert fake.calls["fault /acr/v1/app"] == 3


async def test_connection_errors_are_retried_then_raised() -> None:
    """Connection failures are retried, and after the budget become AcrConnectionError."""
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    fake.faults.append(("/acr/v1/app", httpx.ConnectError("reset")))
    async with client_for(fake, retry=RetryPolicy(sleep=Sleeps())) as client:
        assert (await client.get_repository_properties("app")).name == "app"
        fake.faults.extend(("/acr/v1/app", httpx.ConnectError("reset")) for _ in range(3))
        client_off = client_for(fake, retry=RetryPolicy(attempts=2, sleep=Sleeps()))
    async with client_off:
        with pytest.raises(AcrConnectionError, match="ConnectError"):
            await client_off.get_repository_properties("app")
    assert client.stats.connection_errors == 1


async def test_delete_of_missing_artifact_is_success() -> None:
    """Deleting something already gone returns False instead of raising."""
    fake = FakeAcr()
    async with client_for(fake) as client:
        assert await client.delete_manifest("app", D) is False
        assert await client.delete_tag("app", "v1") is False
        assert await client.delete_repository("app") is False


async def test_text_plain_404_becomes_not_found() -> None:
    """ACR's router-level text/plain 404 is a NotFoundError carrying its text."""
    fake = FakeAcr()
    fake.routes[("GET", f"/acr/v1/app/_manifests/{D}")] = lambda r: httpx.Response(
        404, text="404 page not found\n", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    async with client_for(fake) as client:
        with pytest.raises(NotFoundError, match="404 page not found") as caught:
            await client.get_manifest_properties("app", D)
    assert caught.value.code is None
    assert caught.value.method == "GET"


def manifest_route(raw: bytes, media_type: str, header_digest: str | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": media_type}
        if header_digest:
            headers["Docker-Content-Digest"] = header_digest
        return httpx.Response(200, content=raw, headers=headers)

    return handler


async def test_get_manifest_verifies_the_digest() -> None:
    """Bytes that do not hash to the requested digest are refused, never returned."""
    raw = b'{"schemaVersion":2}'
    fake = FakeAcr()
    fake.routes[("GET", f"/v2/app/manifests/{D}")] = manifest_route(raw, "application/json")
    async with client_for(fake) as client:
        with pytest.raises(InvalidResponseError, match="refusing"):
            await client.get_manifest("app", D)


async def test_get_manifest_by_tag_checks_the_digest_header_and_parses_edges() -> None:
    """A manifest fetched by tag is checked against Docker-Content-Digest and its edges parsed."""
    body = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "artifactType": "application/vnd.example",
        "subject": {"mediaType": "x", "digest": D, "size": 1},
        "manifests": [
            {
                "mediaType": "m",
                "digest": "sha256:" + "1" * 64,
                "size": 5,
                "platform": {"os": "linux"},
            }
        ],
        "future": True,
    }
    raw = json.dumps(body).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    fake = FakeAcr()
    fake.routes[("GET", "/v2/app/manifests/v1")] = manifest_route(raw, body["mediaType"], digest)  # type: ignore[arg-type]
    async with client_for(fake) as client:
        content = await client.get_manifest("app", "v1")
    assert (content.digest, content.subject, content.artifact_type) == (
        digest,
        D,
        "application/vnd.example",
    )
    assert content.is_index
    assert content.children[0].platform == {"os": "linux"}
    accept = [r for r in fake.log if r.url.path == "/v2/app/manifests/v1"][-1].headers["accept"]
    assert "application/vnd.docker.distribution.manifest.list.v2+json" in accept
    assert "application/vnd.oci.artifact.manifest.v1+json" in accept


async def test_realm_on_another_host_is_refused() -> None:
    """Credentials are never sent to a token realm that is not the registry itself."""
    fake = FakeAcr(realm="https://evil.example/oauth2/token")
    async with client_for(fake) as client:
        with pytest.raises(AuthenticationError, match="refusing to send credentials"):
            await client.get_repository_properties("app")
    assert fake.calls["exchange"] == 0
    assert fake.calls["token"] == 0


async def test_link_is_followed_verbatim_with_encoded_names() -> None:
    """The next page is fetched exactly as the Link header wrote it, %2F and all."""
    fake = FakeAcr()
    link = '</acr/v1/team%2Fapp/_tags?last=v%3A1&n=1&orderby=timedesc>; rel="next"'

    def tags(request: httpx.Request) -> httpx.Response:
        tag = {"name": "v1", "digest": D, "createdTime": "2024-01-01T00:00:00Z"}
        if request.url.params.get("last"):
            return httpx.Response(200, json={"tags": [{**tag, "name": "v0"}]})
        return httpx.Response(200, json={"tags": [tag]}, headers={"Link": link})

    fake.routes[("GET", "/acr/v1/team/app/_tags")] = tags
    async with client_for(fake) as client:
        names = [
            t.name
            async for t in client.list_tag_properties(
                "team/app", order_by="timedesc", results_per_page=1
            )
        ]
    assert names == ["v1", "v0"]
    second = [r for r in fake.log if r.url.params.get("last")][-1]
    assert second.url.raw_path == b"/acr/v1/team%2Fapp/_tags?last=v%3A1&n=1&orderby=timedesc"


async def test_tokens_never_reach_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    """No AAD, refresh or access token appears in logs, reprs or exception text."""
    caplog.set_level(logging.DEBUG)
    credential = StaticCredential()
    fake = FakeAcr(denied={"repository:app:delete"})
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    async with client_for(fake, credential=credential) as client:
        await client.get_repository_properties("app")
        with pytest.raises(PermissionDeniedError) as caught:
            await client.delete_manifest("app", D)
        texts = [
            caplog.text,
            repr(client),
            repr(client._auth),
            str(caught.value),
            repr(caught.value),
        ]
    secrets = {credential.token_value}
    for request in fake.log:
        auth = request.headers.get("authorization", "")
        if auth:
            secrets.add(auth.split()[-1])
        secrets.update(
            v for k, v in httpx.QueryParams(request.content.decode()).items() if "token" in k and v
        )
    assert len(secrets) >= 4  # the AAD token, a refresh token, and access tokens were in play
    assert not [s for s in secrets for text in texts if s in text]


async def test_basic_auth_gets_tokens_with_basic_credentials() -> None:
    """The admin user is exchanged for scope tokens with GET /oauth2/token and HTTP Basic."""
    fake = FakeAcr(admin=("admin", "s3cret"))
    fake.routes[("GET", "/acr/v1/app")] = lambda r: httpx.Response(200, json=repo_props("app"))
    client = AcrClient(
        ENDPOINT,
        username="admin",
        password="s3cret",
        transport=fake.transport(),
        retry=RetryPolicy.off(),
    )
    async with client:
        assert (await client.get_repository_properties("app")).manifest_count == 2
    assert fake.calls["exchange"] == 0
    assert fake.calls["token"] == 1
    wrong = AcrClient(
        ENDPOINT,
        username="admin",
        password="nope",
        transport=fake.transport(),
        retry=RetryPolicy.off(),
    )
    async with wrong:
        with pytest.raises(AuthenticationError) as caught:
            await wrong.get_repository_properties("app")
    assert "nope" not in str(caught.value)


async def test_anonymous_access_uses_password_grant() -> None:
    """Without a credential the client asks for anonymous tokens and gets what they allow."""
    fake = FakeAcr(anonymous_scopes={"registry:catalog:*"})
    fake.routes[("GET", "/acr/v1/_catalog")] = lambda r: httpx.Response(
        200, json={"repositories": ["x"]}
    )
    async with AcrClient(ENDPOINT, transport=fake.transport(), retry=RetryPolicy.off()) as client:
        assert [n async for n in client.list_repository_names()] == ["x"]
        with pytest.raises(AuthenticationError):
            await client.update_repository_properties("x", can_delete=False)
    assert fake.calls["exchange"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"results_per_page": 0}, "results_per_page"),
        ({"results_per_page": 1001}, "results_per_page"),
        ({"order_by": "newest"}, "order_by"),
    ],
)
async def test_bad_listing_arguments_are_rejected_before_any_request(
    kwargs: dict[str, object], message: str
) -> None:
    """Invalid paging or ordering arguments fail with a message naming the argument."""
    fake = FakeAcr()
    async with client_for(fake) as client:
        with pytest.raises(ValueError, match=message):
            [m async for m in client.list_manifest_properties("app", **kwargs)]  # type: ignore[arg-type]
    assert fake.log == []


async def test_delete_manifest_by_tag_is_refused_locally() -> None:
    """A tag passed to delete_manifest is rejected before anything is sent."""
    fake = FakeAcr()
    async with client_for(fake) as client:
        with pytest.raises(ValueError, match="only by digest"):
            await client.delete_manifest("app", "latest")
    assert fake.log == []


@pytest.mark.parametrize(
    "link",
    [
        '<https://elsewhere.example/acr/v1/_catalog?last=a>; rel="next"',
        '</acr/v1/_catalog?n=1000>; rel="next"',
    ],
)
async def test_link_that_leaves_or_loops_is_refused(link: str) -> None:
    """A Link pointing off the registry, or back to a page already read, stops the listing."""
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/_catalog")] = lambda r: httpx.Response(
        200, json={"repositories": ["a"]}, headers={"Link": link}
    )
    async with client_for(fake) as client:
        with pytest.raises(InvalidResponseError, match="Link header"):
            [n async for n in client.list_repository_names()]
    assert all(r.url.host == "fake.azurecr.io" for r in fake.log)
    assert fake.calls["GET /acr/v1/_catalog"] <= 2


async def test_repeated_permission_errors_stop_costing_token_requests() -> None:
    """After a fresh grant was refused, more denied calls add no exchanges or token requests."""
    fake = FakeAcr(denied={"repository:app:delete"})
    async with client_for(fake) as client:
        for _ in range(3):
            with pytest.raises(PermissionDeniedError):
                await client.delete_manifest("app", D)
    assert fake.calls["exchange"] == 2  # the first grant, and one re-grant after the refusal
    assert fake.calls["token"] == 2
    # Two each for the first calls (the challenge or refusal, then one retry with a new token);
    # the third has no newer token to try, so the refused one is not sent again.
    assert fake.calls["401"] == 5


async def test_older_and_richer_listing_shapes_decode_and_body_link_is_ignored() -> None:
    """Empty tags, no mediaType, offsets, 9-digit fractions and quarantine fields decode, and
    a `link` in the body (not the header) ends the listing."""
    other = "sha256:" + "e" * 64
    page = {
        "registry": "fake.azurecr.io",
        "imageName": "app",
        "manifests": [
            {
                "digest": D,
                "createdTime": "2019-03-12T22:42:08.3783775+00:00",
                "lastUpdateTime": "2018-06-20T12:00:33.6125843-07:00",
                "tags": [],
                "changeableAttributes": {
                    "deleteEnabled": True,
                    "writeEnabled": True,
                    "quarantineState": "Passed",
                    "quarantineDetails": '{"state":"Scan Passed"}',
                },
            },
            {
                "digest": other,
                "createdTime": "2018-04-25T21:39:47.276585742Z",
                "lastUpdateTime": "2018-04-25T21:39:47.276585742Z",
                "tags": ["v1"],
                "mediaType": "application/vnd.oci.image.index.v1+json",
            },
        ],
        "link": "/acr/v1/app/_manifests?last=x&n=2",
    }
    fake = FakeAcr()
    fake.routes[("GET", "/acr/v1/app/_manifests")] = lambda r: httpx.Response(200, json=page)
    async with client_for(fake) as client:
        manifests = [m async for m in client.list_manifest_properties("app", results_per_page=2)]
    first, second = manifests
    assert first.tags == ()
    assert first.media_type is None
    assert first.last_updated_on == datetime(2018, 6, 20, 19, 0, 33, 612584, tzinfo=UTC)
    assert first.created_on == datetime(2019, 3, 12, 22, 42, 8, 378377, tzinfo=UTC)
    assert first.attributes.quarantine_state == "Passed"
    assert first.attributes.quarantine_details == '{"state":"Scan Passed"}'
    assert second.tags == ("v1",)
    assert second.is_index
    assert second.created_on == datetime(2018, 4, 25, 21, 39, 47, 276585, tzinfo=UTC)
    assert fake.calls["GET /acr/v1/app/_manifests"] == 1

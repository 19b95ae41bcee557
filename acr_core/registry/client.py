"""`AcrClient`: one short async method per ACR data-plane endpoint, over one `httpx.AsyncClient`.

Method names follow Microsoft's Python SDK (docs/acr-facts.md section 7) so users feel at
home; unlike it, nothing ACR sends is dropped, access tokens are cached per scope, and PATCH is
retried.
The cleaner itself only reads, deletes manifests and locks tags; the repository, manifest and
tag property updates and the repository and tag deletes are here for parity with the SDK's
`ContainerRegistryClient` (same names and keywords), which the sync client and the quickstart
examples follow.
Listings are async iterators that follow the `Link` header verbatim (section 1.12). Deletes are
idempotent: a 404 returns False, "already gone" (section 3). Errors: `acr_core.registry.errors`.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from http.cookiejar import CookieJar
from types import TracebackType
from typing import Any, Literal

import httpx

from acr_core.models import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_ARTIFACT_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ManifestContent,
    ManifestProperties,
    RepositoryProperties,
    TagProperties,
)
from acr_core.registry import _decode
from acr_core.registry._network import http_transport
from acr_core.registry._wire import is_digest, parse_next_link, redact_url, repository_path, segment
from acr_core.registry.auth import AcrAuth, AsyncTokenCredential
from acr_core.registry.endpoint import EndpointError, parse_endpoint
from acr_core.registry.errors import (
    InvalidResponseError,
    NotFoundError,
    error_from_response,
    error_from_transport,
)
from acr_core.registry.transport import (
    CONNECTION_ERRORS,
    ClientStats,
    RequestPacer,
    RetryingTransport,
    RetryPolicy,
    ThrottleListener,
)

OrderBy = Literal["timedesc", "timeasc"] | None

# ACR caps `n` at 1000 and its default is smaller (docs/acr-facts.md section 1.12): always send it.
MAX_PAGE_SIZE = 1000
# Every manifest type a cleaner must see as itself; without the index types ACR may not
# return an index as such (docs/acr-facts.md section 1.8). The ORAS type is what ACR's SDKs add.
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        OCI_ARTIFACT_MANIFEST,
        "application/vnd.cncf.oras.artifact.manifest.v1+json",
    ]
)


class AcrClient:
    """An async client for one registry's data plane. Use as `async with AcrClient(...) as c`."""

    def __init__(
        self,
        endpoint: str,
        credential: AsyncTokenCredential | None = None,
        *,
        audience: str | None = None,
        username: str | None = None,
        password: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        connect_timeout: float | None = None,
    ) -> None:
        self._base = _endpoint_url(endpoint)
        self._origin = str(self._base).rstrip("/")
        self.stats = ClientStats()
        self._listeners: list[ThrottleListener] = []
        self._pacers: list[RequestPacer] = []
        if isinstance(verify, str):  # a CA bundle path; httpx 0.28 wants an SSLContext
            verify = ssl.create_default_context(cafile=verify)
        inner = transport or http_transport(verify)
        self._auth = AcrAuth(
            self._base,
            credential=credential,
            audience=audience,
            username=username,
            password=password,
        )
        self._http = httpx.AsyncClient(
            base_url=self._base,
            auth=self._auth,
            transport=RetryingTransport(
                inner, retry or RetryPolicy(), self.stats, self._listeners, self._pacers
            ),
            timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
            follow_redirects=False,
            cookies=_NoCookies(),
        )
        self._auth.bind(self._http)

    def __repr__(self) -> str:
        return f"AcrClient({str(self._base)!r}, auth={self._auth.mode!r})"

    @property
    def login_server(self) -> str:
        return self._base.netloc.decode("ascii")

    @property
    def principal(self) -> str | None:
        """Who this client acts as: the Basic username, or the Azure AD object id once a token
        was exchanged (the deletion ledger records it); None when anonymous."""
        return self._auth.principal

    def add_throttle_listener(self, callback: ThrottleListener) -> None:
        """Call `callback(retry_after)` on every 429 received, before the client's own wait."""
        self._listeners.append(callback)

    def add_request_pacer(self, pacer: RequestPacer) -> None:
        """Await `pacer(method, path)` before each request is sent, retries and token
        requests included (the run's OAuth budget)."""
        self._pacers.append(pacer)

    async def __aenter__(self) -> AcrClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # -- repositories ---------------------------------------------------------------------

    async def list_repository_names(
        self, *, results_per_page: int = MAX_PAGE_SIZE, last: str | None = None
    ) -> AsyncIterator[str]:
        """Repository names in lexical order; with `last`, only those after it.

        ACR: "Result set will include values lexically after last" (docs/acr-facts.md 1.2), so a
        listing cut short can be resumed from the last name it returned.
        """
        params = {"n": str(_page_size(results_per_page))}
        if last is not None:
            params["last"] = last
        async for body in self._pages("/acr/v1/_catalog", params):
            for name in _list(body, "repositories"):
                if isinstance(name, str):
                    yield name

    async def get_repository_properties(self, repository: str) -> RepositoryProperties:
        response = await self._send("GET", _repo(repository))
        return _decode.repository(_json(response), self.login_server)

    async def update_repository_properties(
        self,
        repository: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
        can_read: bool | None = None,
        can_list: bool | None = None,
    ) -> RepositoryProperties:
        """Change the repository's locks; for parity with the SDK (the cleaner never calls it)."""
        body = _writeable(can_delete, can_write, can_read, can_list)
        response = await self._send("PATCH", _repo(repository), json=body)
        return _decode.repository(_json(response), self.login_server)

    async def delete_repository(self, repository: str) -> bool:
        """Delete the repository and everything in it; False when it was already gone. For
        parity with the SDK (the cleaner never calls it)."""
        return await self._delete(_repo(repository))

    # -- manifests --------------------------------------------------------------------------

    async def list_manifest_properties(
        self,
        repository: str,
        *,
        order_by: OrderBy = None,
        results_per_page: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[ManifestProperties]:
        params = _list_params(order_by, results_per_page)
        async for body in self._pages(f"{_repo(repository)}/_manifests", params):
            for item in _list(body, "manifests"):
                yield _decode.manifest(item, self.login_server, repository)

    async def get_manifest_properties(
        self, repository: str, tag_or_digest: str
    ) -> ManifestProperties:
        digest = await self._digest_of(repository, tag_or_digest)
        response = await self._send("GET", f"{_repo(repository)}/_manifests/{segment(digest)}")
        return _decode.manifest(_member(response, "manifest"), self.login_server, repository)

    async def update_manifest_properties(
        self,
        repository: str,
        tag_or_digest: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
        can_read: bool | None = None,
        can_list: bool | None = None,
    ) -> ManifestProperties:
        """Change a manifest's locks; for parity with the SDK (the cleaner never calls it)."""
        digest = await self._digest_of(repository, tag_or_digest)
        body = _writeable(can_delete, can_write, can_read, can_list)
        path = f"{_repo(repository)}/_manifests/{segment(digest)}"
        response = await self._send("PATCH", path, json=body)
        return _decode.manifest(_member(response, "manifest"), self.login_server, repository)

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest (ACR deletes its tags and referrers with it)."""
        if not is_digest(digest):
            raise ValueError(
                f"delete_manifest needs a digest like 'sha256:<hex>', got {digest!r}; ACR deletes "
                "manifests only by digest (resolve a tag with get_tag_properties first)"
            )
        return await self._delete(f"{_v2(repository)}/manifests/{segment(digest)}")

    async def get_manifest(self, repository: str, tag_or_digest: str) -> ManifestContent:
        """The raw manifest, its media type, and its digest verified against the bytes."""
        path = f"{_v2(repository)}/manifests/{segment(tag_or_digest)}"
        response = await self._send("GET", path, headers={"Accept": MANIFEST_ACCEPT})
        expected = tag_or_digest if is_digest(tag_or_digest) else None
        header = response.headers.get("docker-content-digest")
        content = _decode.manifest_content(
            response.content, response.headers.get("content-type"), expected or header
        )
        if expected and header and header != content.digest:
            raise InvalidResponseError(
                f"GET {path}: Docker-Content-Digest {header} does not match the bytes "
                f"({content.digest})"
            )
        return content

    async def set_manifest(
        self,
        repository: str,
        manifest: bytes | Mapping[str, Any],
        *,
        tag: str | None = None,
        media_type: str = OCI_MANIFEST,
    ) -> str:
        """Upload a manifest (by `tag`, else by its own digest) and return its digest, as the
        SDK's `set_manifest` does. Bytes go up unchanged, so a recorded manifest comes back with
        its original digest; the registry refuses it while a blob or child it names is missing."""
        raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        path = f"{_v2(repository)}/manifests/{segment(tag or digest)}"
        response = await self._send("PUT", path, content=raw, headers={"Content-Type": media_type})
        header = response.headers.get("docker-content-digest")
        if header and header != digest:
            raise InvalidResponseError(
                f"PUT {path}: Docker-Content-Digest {header} does not match the bytes ({digest})"
            )
        return digest

    async def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether the repository still has the blob (`HEAD /v2/{name}/blobs/{digest}`)."""
        try:
            await self._send("HEAD", f"{_v2(repository)}/blobs/{segment(digest)}")
        except NotFoundError:
            return False
        return True

    # -- tags ---------------------------------------------------------------------------------

    async def list_tag_properties(
        self,
        repository: str,
        *,
        order_by: OrderBy = None,
        results_per_page: int = MAX_PAGE_SIZE,
        digest: str | None = None,
    ) -> AsyncIterator[TagProperties]:
        params = _list_params(order_by, results_per_page)
        if digest is not None:
            params["digest"] = digest
        async for body in self._pages(f"{_repo(repository)}/_tags", params):
            for item in _list(body, "tags"):
                yield _decode.tag(item, self.login_server, repository)

    async def get_tag_properties(self, repository: str, tag: str) -> TagProperties:
        response = await self._send("GET", f"{_repo(repository)}/_tags/{segment(tag)}")
        return _decode.tag(_member(response, "tag"), self.login_server, repository)

    async def update_tag_properties(
        self,
        repository: str,
        tag: str,
        *,
        can_delete: bool | None = None,
        can_write: bool | None = None,
        can_read: bool | None = None,
        can_list: bool | None = None,
    ) -> TagProperties:
        body = _writeable(can_delete, can_write, can_read, can_list)
        path = f"{_repo(repository)}/_tags/{segment(tag)}"
        response = await self._send("PATCH", path, json=body)
        return _decode.tag(_member(response, "tag"), self.login_server, repository)

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Untag (the manifest stays). False when the tag was already gone. For parity with the
        SDK (the cleaner never calls it: it deletes manifests, which takes their tags along)."""
        return await self._delete(f"{_repo(repository)}/_tags/{segment(tag)}")

    # -- plumbing -----------------------------------------------------------------------------

    async def _digest_of(self, repository: str, tag_or_digest: str) -> str:
        if is_digest(tag_or_digest):
            return tag_or_digest
        return (await self.get_tag_properties(repository, tag_or_digest)).digest

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request; any error status becomes an `AcrError` (after retries)."""
        # A path is made absolute here, in one parse, rather than parsed and then merged with
        # the base URL (a second parse) by httpx: URL parsing showed in the CPU profile.
        target = httpx.URL(self._origin + url) if url.startswith("/") else url
        try:
            response = await self._http.request(method, target, **kwargs)
        except CONNECTION_ERRORS as exc:
            raise error_from_transport(exc, self._http.build_request(method, url)) from None
        if not response.is_success:
            raise error_from_response(response, scope_map=self._auth.mode == "basic")
        return response

    async def _delete(self, url: str) -> bool:
        try:
            await self._send("DELETE", url)
        except NotFoundError:
            return False
        return True

    async def _pages(self, path: str, params: dict[str, str]) -> AsyncIterator[Any]:
        """Each page's JSON body, following `Link: <...>; rel="next"` verbatim until absent."""
        seen: set[str] = set()
        response = await self._send("GET", path, params=params)
        while True:
            yield _json(response)
            link = parse_next_link(response.headers.get("link"))
            if link is None:
                return
            url = self._base.join(link)
            if url.netloc != self._base.netloc or str(url) in seen:
                raise InvalidResponseError(
                    f"GET {path}: the Link header {link!r} leaves the registry or repeats a page"
                )
            seen.add(str(url))
            response = await self._send("GET", str(url))


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing. ACR's protocol carries tokens, not cookies
    (docs/acr-facts.md section 2), and httpx's search of every response for cookies to keep
    showed in the client's CPU profile (bench/cpu.py)."""

    def extract_cookies(self, response: object, request: object) -> None:
        return None


def _endpoint_url(endpoint: str) -> httpx.URL:
    try:
        return httpx.URL(parse_endpoint(endpoint).url + "/")
    except EndpointError as exc:
        raise ValueError(f"endpoint {endpoint!r} {exc.problem}") from None


def _repo(repository: str) -> str:
    return f"/acr/v1/{_name(repository)}"


def _v2(repository: str) -> str:
    return f"/v2/{_name(repository)}"


def _name(repository: str) -> str:
    if not repository or repository.startswith("/") or repository.endswith("/"):
        raise ValueError(f"repository name {repository!r} is not valid")
    return repository_path(repository)


def _page_size(results_per_page: int) -> int:
    if not 1 <= results_per_page <= MAX_PAGE_SIZE:
        raise ValueError(f"results_per_page must be 1..{MAX_PAGE_SIZE}, got {results_per_page}")
    return results_per_page


def _list_params(order_by: OrderBy, results_per_page: int) -> dict[str, str]:
    params = {"n": str(_page_size(results_per_page))}
    if order_by is not None:
        if order_by not in ("timedesc", "timeasc"):
            raise ValueError(f"order_by must be 'timedesc', 'timeasc' or None, got {order_by!r}")
        params["orderby"] = order_by
    return params


def _writeable(
    can_delete: bool | None, can_write: bool | None, can_read: bool | None, can_list: bool | None
) -> dict[str, bool]:
    fields = {
        "deleteEnabled": can_delete,
        "writeEnabled": can_write,
        "readEnabled": can_read,
        "listEnabled": can_list,
    }
    body = {key: value for key, value in fields.items() if value is not None}
    if not body:
        raise ValueError("give at least one of can_delete, can_write, can_read, can_list")
    return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        request = response.request
        raise InvalidResponseError(
            f"{request.method} {redact_url(request.url)} returned a body that is not JSON"
        ) from None


def _member(response: httpx.Response, key: str) -> Any:
    body = _json(response)
    if not isinstance(body, dict) or key not in body:
        request = response.request
        raise InvalidResponseError(
            f"{request.method} {redact_url(request.url)} returned no '{key}'"
        )
    return body[key]


def _list(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, list) else []

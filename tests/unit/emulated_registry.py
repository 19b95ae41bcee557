"""The emulator with a real `AcrClient` on it, and a short way to stage state, for executor and
service tests.

`EmulatedRegistry.push` seeds one manifest (an image, an index over earlier manifests, or a
referrer of one) straight into the emulator's store, at the time it is given; everything the
code under test does goes through the real client, its auth flow and the emulator's wire
protocol. `Wire`, the transport under the client, watches and steers requests where the
emulator has no switch of its own: it records which manifests a DELETE was sent for and which
it deleted, in order, counts requests in flight, answers 429 to an exact number of writes (the
emulator's own throttle is a token bucket on the wall clock), holds one DELETE forever, and
answers 503 to the raw read of one manifest.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta

import httpx

from acr_core.models import OCI_INDEX, OCI_MANIFEST, ChangeableAttributes, RepositorySnapshot
from acr_core.registry.client import AcrClient
from acr_core.registry.transport import RetryPolicy
from acr_core.run.service import gather_repository
from acr_emulator import Emulator, EmulatorConfig
from acr_emulator.content import parse_manifest
from acr_emulator.testing import AsyncFakeCredential

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOCKED = ChangeableAttributes(delete_enabled=False, write_enabled=False)
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def later(days: int) -> datetime:
    return T0 + timedelta(days=days)


class Wire(httpx.AsyncBaseTransport):
    """The emulator in-process, with what a test needs to see or stage at the wire."""

    def __init__(self, emulator: Emulator) -> None:
        self._inner = httpx.ASGITransport(app=emulator.app)
        self.in_flight = 0
        self.peak = 0
        self.delete_sent: set[str] = set()  # manifests a DELETE was sent for
        self.deleted: list[str] = []  # manifests a DELETE removed, in order
        self.stalled: str | None = None  # its DELETE never answers, as a run cut off mid-request
        self.reached = asyncio.Event()  # set when the stalled DELETE arrives
        self.broken: str | None = None  # its raw read answers 503
        self.throttle_writes = 0  # the next this many DELETEs and PATCHes answer 429

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        manifest = path.rsplit("/", 1)[-1] if path.startswith("/v2/") else None
        if manifest is not None and "/manifests/" not in path:
            manifest = None
        if request.method in ("DELETE", "PATCH") and self.throttle_writes > 0:
            # As ACR answers when its WriteOps budget is spent (docs/acr-facts.md section 4).
            self.throttle_writes -= 1
            body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}
            return httpx.Response(429, json=body, headers={"retry-after": "0"})
        if request.method == "DELETE" and manifest is not None:
            self.delete_sent.add(manifest)
            if manifest == self.stalled:
                self.reached.set()
                await asyncio.Event().wait()
        if request.method == "GET" and manifest is not None and manifest == self.broken:
            body = {"errors": [{"code": "UNAVAILABLE", "message": "busy"}]}
            return httpx.Response(503, json=body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            response = await self._inner.handle_async_request(request)
        finally:
            self.in_flight -= 1
        if request.method == "DELETE" and manifest is not None and response.status_code == 202:
            self.deleted.append(manifest)
        return response


class EmulatedRegistry:
    """An emulator, staged by `push` and `tag`, with `client` (a real `AcrClient`) on it."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.emulator = Emulator(config or EmulatorConfig(now=T0))
        self.wire = Wire(self.emulator)
        self.client = AcrClient(
            "https://acr.test",
            AsyncFakeCredential(),
            transport=self.wire,
            retry=RetryPolicy(sleep=_no_wait),  # the default attempts and deadline, unslept
        )

    def push(
        self,
        repository: str,
        name: str,
        *,
        tags: tuple[str, ...] = (),
        updated: datetime = T0,
        children: tuple[str, ...] = (),
        subject: str | None = None,
        attributes: ChangeableAttributes | None = None,
        size: int = 1000,
    ) -> str:
        """Store a manifest (unique to `name`), pushed at `updated` and tagged `tags`; an index
        over `children` when given, a referrer of `subject` when given. Returns its digest."""
        document = self._index(repository, name, children) if children else _image(name, size)
        if subject is not None:
            [(media_type, body)] = self._bodies(repository, (subject,))
            document["subject"] = {"mediaType": media_type, "digest": subject, "size": len(body)}
        item: dict[str, object] = {
            "kind": "raw",
            "content": document,
            "pushed": updated.isoformat(),
            "tags": list(tags),
        }
        if attributes is not None:
            item["attributes"] = {
                "deleteEnabled": attributes.delete_enabled,
                "writeEnabled": attributes.write_enabled,
            }
        self.emulator.seed({"repositories": [{"name": repository, "manifests": [item]}]})
        raw = json.dumps(document, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def tag(self, repository: str, tag: str, digest: str, *, updated: datetime = T0) -> None:
        """Point `tag` at `digest` as a push at `updated` does (the manifest counts as updated)."""
        manifest = self.emulator.registry.repositories[repository].manifests[digest]
        parsed = parse_manifest(manifest.body, manifest.media_type)
        self.emulator.registry.put_manifest(
            repository, manifest.body, digest, parsed, tag, updated, require_references=False
        )

    async def snapshots(self) -> dict[str, RepositorySnapshot]:
        """Every repository as a run gathers it, through the client; the wire's peak restarts."""
        names = [name async for name in self.client.list_repository_names()]
        taken = {name: await gather_repository(self.client, name) for name in names}
        self.wire.peak = 0
        return taken

    def digests(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)  # gone with its last manifest
        return set(repo.manifests) if repo is not None else set()

    def tags(self, repository: str) -> set[str]:
        repo = self.emulator.registry.repositories.get(repository)
        return set(repo.tags) if repo is not None else set()

    def state(self) -> dict[tuple[str, str], tuple[tuple[str, ...], datetime, bool]]:
        """Each manifest's tags, lastUpdateTime and deletability, to compare before and after."""
        return {
            (name, digest): (tuple(sorted(m.tags)), m.updated, m.attributes.deletable)
            for name, repo in self.emulator.registry.repositories.items()
            for digest, m in repo.manifests.items()
        }

    def _bodies(self, repository: str, digests: tuple[str, ...]) -> list[tuple[str, bytes]]:
        stored = self.emulator.registry.repositories[repository].manifests
        return [(stored[d].media_type, stored[d].body) for d in digests]

    def _index(self, repository: str, name: str, children: tuple[str, ...]) -> dict[str, object]:
        platform = {"architecture": "amd64", "os": "linux"}
        manifests = [
            {"mediaType": media_type, "digest": d, "size": len(body), "platform": platform}
            for d, (media_type, body) in zip(
                children, self._bodies(repository, children), strict=True
            )
        ]
        # The annotation makes two indexes over the same children two manifests.
        annotations = {"org.example.name": name}
        return {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
            "annotations": annotations,
        }


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def _image(name: str, size: int) -> dict[str, object]:
    # The config digest only makes each manifest unique; seeded content needs no blobs.
    config = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config, "size": size},
        "layers": [],
    }

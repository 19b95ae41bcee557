"""`make demo`: the cleanup function, end to end, on a local ACR emulator.

1. Start the emulator (HTTPS on 127.0.0.1) with a few months of a team's history.
2. Push new images the way CI does; the emulator emits `ImagePushed` events, which are handed
   to `function_app.on_image_pushed` as the Functions worker would hand them over.
3. Fire the nightly timer: `sweep_schedule` queues every covered repository and
   `sweep_repository` cleans each.
4. Print what changed: deleted, kept, locked, and why.
5. Show one deletion as the ledger recorded it, and restore it (`scripts/demo_ledger.py`).

Everything runs in this process and stops with it; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/demo.py` puts only scripts/ on the path
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from azure.core.credentials_async import AsyncTokenCredential  # noqa: E402

import function_app  # noqa: E402
from acr_core.ledger.ledger import Ledger  # noqa: E402
from acr_core.run.report import RunReport  # noqa: E402
from acr_core.storage.objects import DirectoryStore  # noqa: E402
from acr_emulator import Emulator, EmulatorConfig  # noqa: E402
from acr_emulator.testing import AsyncFakeCredential  # noqa: E402
from scripts.demo_ledger import ledger_and_restore, push_old_experiment  # noqa: E402
from scripts.demo_registry import demo_registry  # noqa: E402
from scripts.demo_view import Screen, Snapshot, Tally  # noqa: E402
from scripts.func_objects import Out, event_from_json, queue_message, timer  # noqa: E402
from scripts.oci_push import (  # noqa: E402
    BasicTokenAuth,
    push_image,
    push_multi_arch,
    push_referrer,
)

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
# What the Bicep sets; the demo's store factory puts the ledger in a temporary directory instead.
LEDGER_URL = "https://stacrcleandemo.blob.core.windows.net/acr-cleanup-ledger"
COSIGN = "application/vnd.dev.cosign.artifact.sig.v1+json"
FOREIGN_REGISTRY = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/elsewhere"
    "/providers/Microsoft.ContainerRegistry/registries/someoneelse"
)


class Demo:
    def __init__(self, emulator: Emulator, server: Any, screen: Screen) -> None:
        self.emulator = emulator
        self.server = server
        self.screen = screen
        self.events: list[dict[str, Any]] = []
        self.tally = Tally()
        self.pushed = 0  # images pushed by tag: what a user would call a new image
        # The event subscription delivers ImagePushed only (the infra filters on it).
        emulator.subscribe(self._on_event, schema="eventgrid")

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("eventType") == PUSHED:
            self.events.append(event)

    def take_events(self) -> list[dict[str, Any]]:
        taken, self.events[:] = list(self.events), []
        self.pushed += sum(1 for e in taken if e["data"]["target"].get("tag"))
        return taken

    def on_report(self, trigger: str, report: RunReport) -> None:
        self.tally.add(report)
        self.screen.run_line(trigger, report)

    async def deliver(self, events: list[dict[str, Any]]) -> None:
        """Hand events to on_image_pushed together, as Event Grid delivers a burst."""
        for event in events:
            self.screen.event_line(event)
        await asyncio.gather(*(function_app.on_image_pushed(event_from_json(e)) for e in events))

    async def pushes(self, http: httpx.AsyncClient) -> None:
        s = self.screen
        s.step("docker buildx push shop/web:v1.3.0  (amd64 + arm64, then the index)")
        await push_multi_arch(http, "shop/web", "v1.3.0", label="v1.3.0")
        await self.deliver(self.take_events())

        s.step("docker push shop/api:build-50, then cosign sign (a referrer, pushed by digest)")
        image = await push_image(http, "shop/api", "build-50", label="build-50")
        await push_referrer(http, "shop/api", image, artifact_type=COSIGN, label="signature")
        await self.deliver(self.take_events())

        s.step("docker push sandbox/spikes:try-5")
        await push_image(http, "sandbox/spikes", "try-5", label="try-5")
        events = self.take_events()
        await self.deliver(events)

        s.step("Event Grid delivers that event again (at-least-once delivery)")
        await self.deliver(events)

        s.step("a forged event: same payload, another registry's topic")
        forged = json.loads(json.dumps(events[0]))
        forged["topic"] = FOREIGN_REGISTRY
        await self.deliver([forged])

        s.step("docker push payments/api:1.2.0  (a repository the generator made)")
        await push_image(http, "payments/api", "1.2.0", label="1.2.0")
        await self.deliver(self.take_events())

        s.step("docker push base/python:3.14  (no rule covers base/**)")
        await push_image(http, "base/python", "3.14", label="3.14")
        await self.deliver(self.take_events())

    async def sweep(self) -> None:
        s = self.screen
        s.step("the timer fires: sweep_schedule lists the catalog")
        out = Out()
        await function_app.sweep_schedule(timer(), out)
        messages = list(out.value or [])
        s.note(f"{len(messages)} messages on queue acr-cleanup-sweep: " + ", ".join(
            _describe(m) for m in messages))  # fmt: skip
        s.step("sweep_repository takes them, up to 4 at a time (host.json batchSize)")
        gate = asyncio.Semaphore(4)
        taken = 0

        async def one(index: int, body: str) -> list[str]:
            async with gate:
                more = Out()
                await function_app.sweep_repository(
                    queue_message(body, message_id=f"m-{index}"), more
                )
                return list(more.value or [])  # a continuation queues the rest of the catalog

        while messages:
            batch, messages = messages, []
            for queued in await asyncio.gather(*(one(taken + i, m) for i, m in enumerate(batch))):
                messages.extend(queued)
            taken += len(batch)


def _describe(message: str) -> str:
    """A sweep message as the screen shows it: the repository, or where a continuation resumes."""
    body = json.loads(message)
    repository = body.get("repository")
    return str(repository) if repository else f"(the catalog after {body.get('continueAfter')})"


class _ScreenLog(logging.Handler):
    """Shows the function's own log lines (what Application Insights gets), minus summaries,
    which the screen renders from the reports."""

    def __init__(self, screen: Screen) -> None:
        super().__init__(logging.INFO)
        self.screen = screen
        self.summary: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("acr-cleanup run {"):
            self.summary = self.summary or message
            return
        if message.startswith("acr-cleanup sweep {"):
            return
        self.screen.log_line(record.levelname, message)


async def main() -> int:
    screen = Screen.for_terminal(sys.stdout)
    started = time.monotonic()
    emulator = Emulator(EmulatorConfig())
    screen.title()
    registry = demo_registry(emulator.clock.now())
    emulator.seed(registry.fixture)
    # The ledger's container, played by a directory that goes with the demo.
    folder = tempfile.TemporaryDirectory(prefix="acr-cleanup-demo-ledger-")
    async with emulator.serve() as server:
        screen.intro(server.url, emulator.config.resource_id)
        await push_old_experiment(
            emulator, server.url, str(server.ca_file), server.admin_username, server.admin_password
        )
        before = Snapshot.of(emulator)
        screen.registry("The registry before", before)
        screen.policy(registry.policy)

        demo = Demo(emulator, server, screen)
        context = ssl.create_default_context(cafile=server.ca_file)
        function_app.configure(
            {
                "ACR_LOGIN_SERVER": server.login_server,
                "ACR_RESOURCE_ID": emulator.config.resource_id,
                "CLEANUP_POLICY": json.dumps(registry.policy),
                "CLEANUP_DRY_RUN": "false",
                "CLEANUP_LEDGER_URL": LEDGER_URL,
            },
            credential=cast(AsyncTokenCredential, AsyncFakeCredential()),
            verify=context,
            on_report=demo.on_report,
            ledger_store=lambda _: DirectoryStore(Path(folder.name)),
        )
        log = logging.getLogger("acr_cleanup")
        handler = _ScreenLog(screen)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        try:
            auth = BasicTokenAuth(server.admin_username, server.admin_password)
            async with httpx.AsyncClient(base_url=server.url, verify=context, auth=auth) as http:
                screen.section("1. Pushes: each ImagePushed event triggers on_image_pushed")
                await demo.pushes(http)
            screen.section("2. The nightly sweep: timer, then the queue")
            await demo.sweep()
        finally:
            log.removeHandler(handler)
        after = Snapshot.of(emulator)
        screen.section("3. What changed")
        screen.changes(before, after, demo.tally, registry.ours, registry.generated)
        screen.summary_line(handler.summary)
        ledger = Ledger(DirectoryStore(Path(folder.name)))
        await ledger_and_restore(screen, ledger, emulator, server.url, str(server.ca_file))
        folder.cleanup()
        screen.closing(before, after, demo.tally, demo.pushed, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

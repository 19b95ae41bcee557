"""What the registry APIs tell the event bus: an ImagePushed per manifest stored, an
ImageDeleted per manifest removed (shapes in `events`, docs/acr-facts.md section 5)."""

from __future__ import annotations

from collections.abc import Callable

from acr_emulator.clock import Clock
from acr_emulator.events import DELETED, PUSHED, EventBus, RequestInfo, image_event
from acr_emulator.http import Request
from acr_emulator.records import Deleted, Manifest


class Notifier:
    """Turns store changes made by a request into events on `bus`, stamped with `clock`."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        service: Callable[[Request], str],
        *,
        resource_id: str,
        location: str,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._service = service
        self._resource_id = resource_id
        self._location = location

    def pushed(self, req: Request, repository: str, manifest: Manifest, tag: str | None) -> None:
        self._bus.publish(
            image_event(
                PUSHED,
                resource_id=self._resource_id,
                location=self._location,
                repository=repository,
                digest=manifest.digest,
                media_type=manifest.media_type,
                size=len(manifest.body),
                tag=tag,
                request=self._request_info(req),
                when=self._clock.peek(),
            )
        )

    def deleted(self, req: Request, deleted: list[Deleted]) -> None:
        for item in deleted:
            self._bus.publish(
                image_event(
                    DELETED,
                    resource_id=self._resource_id,
                    location=self._location,
                    repository=item.repository,
                    digest=item.digest,
                    media_type=item.media_type,
                    size=None,
                    tag=None,
                    request=self._request_info(req),
                    when=self._clock.peek(),
                )
            )

    def _request_info(self, req: Request) -> RequestInfo:
        return RequestInfo(self._service(req), req.method, req.headers.get("user-agent", ""))

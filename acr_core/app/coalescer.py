"""At most one cleanup run per repository at a time in one function instance.

Event Grid delivers one ImagePushed per manifest, so a multi-arch push arrives as a burst of
events for the same repository; each would otherwise start its own full run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


class Coalescer:
    """At most one run per repository at a time in this instance.

    Events that arrive while a repository's run is in flight fold into a single follow-up run
    that protects all of their digests, so a multi-arch push (one event per child, then the
    index) costs two runs, not one per event. Every caller waits for the run that covers its
    event and sees that run's exception, so a transient failure is retried per event.

    A push (a submission that names a digest) for a repository whose run is in flight also
    sets that run's `pushed` event: the run stops sending DELETEs there (docs/reliability.md),
    since what it planned may no longer hold, and the follow-up run re-reads and re-plans.
    """

    def __init__(self) -> None:
        self._running: dict[str, _Batch] = {}
        self._waiting: dict[str, _Batch] = {}

    async def submit(
        self,
        repository: str,
        digest: str | None,
        run: Callable[[frozenset[str], asyncio.Event], Awaitable[object]],
    ) -> bool:
        """Run `run(protected digests, pushed)` for `repository`, or join the follow-up run
        already waiting. Returns True if this call started the run, False if it joined one."""
        running = self._running.get(repository)
        if running is not None and digest is not None:
            running.pushed.set()
        batch = self._waiting.get(repository)
        if batch is not None:
            batch.add(digest)
            await asyncio.shield(batch.done)
            return False
        batch = _Batch(asyncio.get_running_loop().create_future())
        batch.add(digest)
        if running is not None:
            self._waiting[repository] = batch
            try:
                await asyncio.wait([running.done])
            except BaseException:
                batch.done.cancel()  # cancelled while waiting: joiners must not wait forever
                raise
            finally:
                del self._waiting[repository]
        self._running[repository] = batch
        try:
            await run(frozenset(batch.digests), batch.pushed)
        except asyncio.CancelledError:
            batch.done.cancel()
            raise
        except BaseException as exc:
            batch.done.set_exception(exc)
            raise
        else:
            batch.done.set_result(None)
        finally:
            if self._running.get(repository) is batch:
                del self._running[repository]
        return True


@dataclass
class _Batch:
    done: asyncio.Future[None]
    digests: set[str] = field(default_factory=set)
    pushed: asyncio.Event = field(default_factory=asyncio.Event)  # a push arrived while it ran

    def __post_init__(self) -> None:
        # The starter re-raises the run's exception itself; joiners may be absent, so mark it
        # retrieved to keep asyncio from logging "exception was never retrieved".
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def add(self, digest: str | None) -> None:
        if digest is not None:
            self.digests.add(digest)

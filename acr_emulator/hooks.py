"""Callbacks run at an exact point of request handling, so a test can stage a race.

`Emulator.before_request(callback)` calls `callback(arrival)` for every data-plane request the
guard lets through, just before its handler runs. The callback may change the registry's state
(lock a repository, push a referrer or an index, re-tag, lock a manifest): the request then
sees the changed state, as if the change had reached ACR an instant before it. An async
callback is awaited, so it can also hold the request back. Admin endpoints never reach hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as a hook sees it. `count` is 1 for the first request this hook saw, 2 for
    the next, and so on; `route` names the endpoint, e.g. "/v2/{name}/manifests/{reference}"."""

    method: str
    path: str
    route: str
    count: int


Hook = Callable[[Arrival], Awaitable[None] | None]


class Hooks:
    """The installed hooks, called in the order they were added."""

    def __init__(self) -> None:
        self._hooks: list[_Installed] = []

    def add(self, hook: Hook) -> Callable[[], None]:
        """Install `hook`; returns a function that removes it."""
        installed = _Installed(hook)
        self._hooks.append(installed)

        def remove() -> None:
            if installed in self._hooks:
                self._hooks.remove(installed)

        return remove

    async def run(self, method: str, path: str, route: str) -> None:
        for installed in list(self._hooks):
            installed.seen += 1
            result = installed.hook(Arrival(method, path, route, installed.seen))
            if inspect.isawaitable(result):
                await result


@dataclass(eq=False, slots=True)
class _Installed:
    hook: Hook
    seen: int = 0

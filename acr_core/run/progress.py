"""A one-line progress display for a terminal: reading, planning, applying.

The run emits a `ProgressEvent` per repository read and per action applied, which can be seconds
apart (a repository of thousands of manifests is read page by page), and nothing while it plans.
`ProgressLine` keeps the latest event and, while it is entered, a background thread redraws the
line at least once a second with the time spent in the phase, so a long run is never silent. A
finished phase is left on its own line (`40/40 repositories read`). Only for terminals: the
caller decides (`sys.stderr.isatty()`), as a log file or a pipe should get no progress at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TextIO, TypeVar

from acr_core.run.service import ProgressEvent

T = TypeVar("T")
R = TypeVar("R")

# At least once a second, as docs/cli.md promises; twice, so a slow write never skips a second.
REDRAW_SECONDS = 0.5
_NOUN = {"gather": "repositories read", "apply": "actions applied"}


class ProgressLine:
    """Call it with each `ProgressEvent`; use it as a context manager to redraw in between."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = REDRAW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: ProgressEvent | None = None
        self._phase = "gather"
        self._since = clock()
        self._width = 0  # of the line drawn last, to blank what a shorter one leaves
        self._paused = False

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if event.phase != self._phase:
                self._phase, self._since = event.phase, self._clock()
            self._latest = event
            if event.done == event.total:
                self._write(f"{event.done}/{event.total} {_NOUN.get(event.phase, event.phase)}")
                self._stream.write("\n")
                self._width = 0
                after = "planning" if event.phase == "gather" else "done"
                self._phase, self._since = after, self._clock()
                self._latest = None
            self._stream.flush()

    def __enter__(self) -> ProgressLine:
        self._since = self._clock()
        self._thread = threading.Thread(target=self._tick, name="acr-cleanup-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._clear()

    def paused(self, ask: Callable[[T], Awaitable[R]]) -> Callable[[T], Awaitable[R]]:
        """`ask` with the line cleared and not redrawn while it runs (a prompt on the same
        terminal); the clock of the next phase starts when it returns."""

        async def asking(value: T) -> R:
            with self._lock:
                self._clear()
                self._paused = True
            try:
                return await ask(value)
            finally:
                with self._lock:
                    self._paused, self._since = False, self._clock()
                    if self._phase == "planning":
                        self._phase = "applying"

        return asking

    # ---------------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                text = self._text()
                if text and not self._paused:
                    self._write(text)
                    self._stream.flush()

    def _text(self) -> str:
        seconds = f"{self._clock() - self._since:.0f} s"
        event = self._latest
        if event is not None:
            return f"{event.done}/{event.total} {_NOUN.get(event.phase, event.phase)}, {seconds}"
        return {
            "gather": f"reading the registry, {seconds}",
            "planning": f"planning, {seconds}",
            "applying": f"applying, {seconds}",
        }.get(self._phase, "")

    def _write(self, text: str) -> None:
        self._stream.write("\r" + text.ljust(self._width))
        self._width = len(text)

    def _clear(self) -> None:
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0

"""Python's cycle collector paused for a burst of allocations that builds no reference cycles.

Planning a large repository, or encoding and decoding its snapshot, allocates hundreds of
thousands of containers; every so many allocations the collector scans all of the process's
objects (the snapshot's too) and finds nothing to free. Measured at 50,000 manifests: about a
fifth of the plan time and two fifths of a snapshot's encode and decode (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Pause the cycle collector (reference counting still frees everything) for the block.

    Only a collector that was running is started again, so a caller that paused it keeps it
    paused, and nested or concurrent blocks end with it running if it ran before them.
    """
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()

"""ACR's asynchronous reclamation of the layers a deleted manifest leaves unreferenced.

Deleting a manifest by digest frees "the layers unique to it", and the storage is reclaimed
asynchronously after the delete (docs/acr-facts.md section 3). Until then the blobs are still
there, so the same manifest pushed again is accepted; afterwards the registry refuses it with
MANIFEST_BLOB_UNKNOWN. How long ACR waits is not documented: the emulator makes it a setting
(`EmulatorConfig.reclaim_blobs_after`; None, the default, never reclaims), so a test can stage
both outcomes of putting a deleted manifest back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


class Reclamation:
    """Blobs a delete left without a manifest, and since when; `due` hands back the ones whose
    delay has passed (the registry then drops those that are still unreferenced)."""

    def __init__(self, delay: timedelta | None) -> None:
        self.delay = delay
        self._released: dict[tuple[str, str], datetime] = {}

    def released(self, repository: str, blobs: Iterable[str], now: datetime) -> None:
        """A delete in `repository` stopped referencing `blobs` at `now` (its own, at least)."""
        if self.delay is None:
            return
        for blob in blobs:
            self._released.setdefault((repository, blob), now)

    def uploaded(self, repository: str, blob: str) -> None:
        """The blob was pushed again: its clock starts over at its next release."""
        self._released.pop((repository, blob), None)

    def due(self, now: datetime) -> list[tuple[str, str]]:
        """(repository, blob) pairs released at least `delay` ago, forgotten once returned."""
        if self.delay is None or not self._released:
            return []
        ready = [key for key, since in self._released.items() if now - since >= self.delay]
        for key in ready:
            del self._released[key]
        return ready

"""The emulator's whole state as plain data, to assert that a read-only command changed nothing."""

from __future__ import annotations

from typing import Any

from acr_emulator import Emulator


def registry_state(emulator: Emulator) -> dict[str, Any]:
    """Everything a cleaner could change: each manifest's tags, times and locks, each tag's."""
    return {
        name: {
            "manifests": {
                d: (sorted(m.tags), m.updated, m.attributes.to_wire())
                for d, m in repo.manifests.items()
            },
            "tags": {t: (tag.digest, tag.attributes.to_wire()) for t, tag in repo.tags.items()},
            "attributes": repo.attributes.to_wire(),
        }
        for name, repo in emulator.registry.repositories.items()
    }

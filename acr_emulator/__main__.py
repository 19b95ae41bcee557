"""`python -m acr_emulator --port 0 [options]`; see `--help` and docs/emulator.md."""

from __future__ import annotations

import sys

from acr_emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())

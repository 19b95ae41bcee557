"""`python -m acr_core`: the same as the `acr-cleanup` command."""

from __future__ import annotations

from acr_core.cli import main

raise SystemExit(main())

"""`make demo` runs end to end, tells the story it promises, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_and_reports_what_changed() -> None:
    """The demo exits 0 and reports deletions, locks, the ignored forgery, untouched base images."""
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())  # wrapping depends on the terminal width
    assert "\033[" not in out  # NO_COLOR is honoured
    assert "ImagePushed shop/web:v1.3.0" in out
    assert "folded into the run" in out  # the multi-arch burst was coalesced
    assert "is not the configured ACR_RESOURCE_ID" in out  # the forged event was ignored
    assert "base/python no rule: untouched" in out
    assert "v1.2.0, v1.3.0" in out  # both unlocked releases got locked
    assert "manifests deleted" in out
    assert "acr-cleanup ledger show sha256:" in out  # a deletion as the ledger recorded it
    assert "restored sandbox/spikes@sha256:" in out  # and put back with its tag
    assert "back in the registry with its original digest" in out
    assert "nothing is left running" in out


def test_the_demo_shows_each_reason_whole() -> None:
    """A reason longer than the screen is wrapped onto more lines, never cut short."""
    import io

    from scripts.demo_view import Screen

    out = io.StringIO()
    reason = "older than the 3 newest unprotected tagged images (keepLatest) " * 3
    Screen(out, colour=False, width=60)._item("✗ deleted", 2, reason.strip(), [])
    shown = " ".join(line.strip() for line in out.getvalue().splitlines())
    assert reason.strip() in shown
    assert "…" not in out.getvalue()

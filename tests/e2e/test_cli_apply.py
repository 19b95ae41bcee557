"""`acr-cleanup apply` as a person runs it: the preview before `[y/N]`, and Ctrl-C part-way."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acr_core.cli import EXIT_DONE, EXIT_INTERRUPTED
from acr_core.run.service import INTERRUPTED
from acr_emulator import Emulator, EmulatorConfig, Faults, ServerInfo
from tests.e2e.registry import API_AFTER, NOW, digests, state


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def _apply(
    server: ServerInfo, policy: Path, *args: str, stdin: int | None
) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "ACR_USERNAME": server.admin_username,
        "ACR_PASSWORD": server.admin_password,
    }
    command = [sys.executable, "-m", "acr_core", "apply", "--registry", server.url]
    command += ["--ca-file", str(server.ca_file), "--policy", str(policy), *args]
    return subprocess.Popen(
        command,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )


def _read_until(stream: int, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, seen
        chunk = os.read(stream, 4096)
        assert chunk, seen
        seen += chunk
    return seen


def test_the_preview_shows_the_read_and_the_apply_excludes_the_prompt(
    emulator, server, policy_file
):
    """Before `[y/N]` the preview is headed as a preview with this run's requests; the report
    after the answer is printed once, and its apply time leaves out the time at the prompt."""
    controller, terminal = pty.openpty()
    process = _apply(
        server, policy_file, "--repository", "services/api", "--output", "json", stdin=terminal
    )
    try:
        assert process.stderr is not None
        preview = _read_until(process.stderr.fileno(), b"[y/N]").decode()
        time.sleep(1.5)  # the person reads the preview
        os.write(controller, b"y\n")
        out, rest = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
        os.close(terminal)
        os.close(controller)
    assert process.returncode == EXIT_DONE, rest
    assert "preview of what apply will do" in preview
    assert "dry run" not in preview
    requests = re.search(r"Requests: (\d+)", preview)
    assert requests is not None, preview
    assert int(requests.group(1)) > 0
    report = json.loads(out)
    assert report["durations"]["applySeconds"] < 1.5
    assert report["durations"]["totalSeconds"] < 1.5 + report["durations"]["gatherSeconds"]
    assert out.count(b'"schemaVersion"') == 1
    assert state(emulator, "services/api") == API_AFTER


@pytest.mark.parametrize("output", ["json", "table"])
def test_ctrl_c_while_applying_prints_what_was_done(
    emulator: Emulator, server, policy_file, output
):
    """SIGINT once two deletions are done exits 130 after printing the report, whose
    applied deletions are exactly those the registry lost, the rest marked not done."""
    before = digests(emulator, "services/api")
    emulator.faults = Faults(latency=0.4, methods=frozenset({"DELETE"}))
    process = _apply(
        server,
        policy_file,
        "--yes",
        "--repository",
        "services/api",
        "--max-concurrency",
        "1",
        "--output",
        output,
        stdin=None,
    )
    try:
        # Two deletions seen by the registry: with --max-concurrency 1 the second DELETE is sent
        # only once the first one's answer reached the CLI, so the report has one applied.
        deadline = time.monotonic() + 30
        seen = [before]
        while len(seen) < 3:
            assert time.monotonic() < deadline
            assert process.poll() is None
            now = digests(emulator, "services/api")
            if now != seen[-1]:
                seen.append(now)
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    gone = before - digests(emulator, "services/api")
    assert process.returncode == EXIT_INTERRUPTED, err
    assert b"Traceback" not in err
    assert b"interrupted" in err
    text = out.decode()
    if output == "table":
        assert "interrupted; the actions marked applied were done" in text
        assert text.count(" applied ") >= 1
        assert INTERRUPTED in text
        return
    report = json.loads(text)
    [api] = report["repositories"]
    deletions = [a for a in api["actions"] if a["action"] == "delete_manifest"]
    applied = {
        d for a in deletions if a["outcome"] == "applied" for d in [a["digest"], *a["cascades"]]
    }
    undone = [a for a in deletions if a["outcome"] == "planned"]
    assert applied
    assert undone
    assert all(a["detail"] == INTERRUPTED for a in undone)
    # What the registry lost is what the report says was applied, or (one at most, with
    # --max-concurrency 1) a deletion in flight when the run stopped.
    assert applied <= gone
    assert len(gone - applied) <= 2  # an in-flight deletion, with its referrer

"""Progress on stderr: redrawn at least once a second on a terminal, silent off one."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Awaitable

import pytest

from acr_core.cli import EXIT_BLOCKED, _progress
from acr_core.run.progress import ProgressLine
from acr_core.run.service import ProgressEvent
from acr_emulator import EmulatorConfig
from tests.e2e.registry import NOW
from tests.e2e.test_cli import cli


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(now=NOW)


def _wait_for(terminal: _Terminal, text: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while text not in terminal.getvalue():
        assert time.monotonic() < deadline, terminal.getvalue()
        time.sleep(0.01)


def test_a_terminal_gets_a_redraw_every_second_without_any_event():
    """On a terminal the line is redrawn at least once a second even while no event arrives."""
    terminal = _Terminal()
    line = _progress(terminal)
    assert line is not None
    with line:
        time.sleep(2.2)
    assert terminal.getvalue().count("reading the registry, ") >= 2


def test_the_line_says_what_each_phase_is_doing():
    """The line counts repositories read, then says planning, then counts actions applied."""
    terminal = _Terminal()
    ticks = iter(range(10_000))
    with ProgressLine(terminal, interval=0.01, clock=lambda: float(next(ticks))) as progress:
        _wait_for(terminal, "reading the registry, ")
        progress(ProgressEvent("gather", 1, 2, "a"))
        _wait_for(terminal, "1/2 repositories read, ")
        progress(ProgressEvent("gather", 2, 2, "b"))
        _wait_for(terminal, "planning, ")
        progress(ProgressEvent("apply", 3, 10, "b"))
        _wait_for(terminal, "3/10 actions applied, ")
    assert re.search(r"\r2/2 repositories read *\n", terminal.getvalue())
    assert terminal.getvalue().endswith("\r")  # the last line is blanked for the report


async def _await(answer: Awaitable[bool]) -> bool:
    return await answer


def test_a_prompt_pauses_the_line():
    """While the confirmation prompt runs nothing is drawn, and the line is cleared first."""
    terminal = _Terminal()
    seen: list[str] = []

    async def ask(value: int) -> bool:
        seen.append(terminal.getvalue())
        await asyncio.sleep(0.2)
        seen.append(terminal.getvalue())
        return True

    with ProgressLine(terminal, interval=0.01) as progress:
        progress(ProgressEvent("gather", 1, 1, "a"))
        _wait_for(terminal, "planning, 0 s")
        assert asyncio.run(_await(progress.paused(ask)(1))) is True
        _wait_for(terminal, "applying, 0 s")
    assert seen[0] == seen[1]
    assert seen[0].endswith(" \r")


def test_off_a_terminal_the_cli_prints_no_progress(server, policy_file, capsys):
    """A plan with stderr not a terminal writes nothing to stderr."""
    assert cli(server, policy_file, "plan") == EXIT_BLOCKED
    assert capsys.readouterr().err == ""

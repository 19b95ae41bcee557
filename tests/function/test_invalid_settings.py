"""Invalid app settings: every invocation logs one error naming the setting; nothing is deleted."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

import function_app
from acr_core.app.settings import SettingsError
from acr_core.app.sweep import continuation_message, sweep_message
from scripts.func_objects import Out, event_from_json, queue_message, timer
from tests.function.conftest import Registry

DAY = timedelta(days=1)

# (setting, bad value or "<unset>")
BAD_SETTINGS = [
    ("ACR_RESOURCE_ID", "<unset>"),
    ("ACR_LOGIN_SERVER", "https://myregistry.azurecr.io"),
    ("CLEANUP_POLICY", '{"version": 1, "rules": [{"repositories": ["apps/**"], "keepLast": 2}]}'),
    ("CLEANUP_DRY_RUN", "no"),
    ("CLEANUP_MAX_CONCURRENCY", "many"),
]


@pytest.mark.parametrize(("setting", "value"), BAD_SETTINGS)
async def test_each_invocation_names_the_bad_setting(
    registry: Registry, configure: Any, app_log: Any, setting: str, value: str
) -> None:
    """All three functions do nothing but log one error naming the setting, every time."""
    for age, tag in ((9, "v1"), (8, "v2"), (7, "v3"), (6, "v4")):
        await registry.push("apps/web", tag, age=age * DAY)
    event = registry.pushed_events()[-1]
    app = configure(**{setting: value})
    before = registry.state()
    out = Out()

    for _ in range(2):
        await app.on_image_pushed(event_from_json(event))
        await app.sweep_schedule(timer(), out)
        await app.sweep_repository(queue_message(sweep_message("apps/web")), out)
        await app.sweep_repository(queue_message(continuation_message("apps/a")), out)

    assert registry.state() == before
    assert out.value is None
    lines = app_log()
    assert len(lines) == 8
    assert all(line.levelno == logging.ERROR for line in lines)
    assert all(setting in line.getMessage() for line in lines)
    functions = [line.getMessage().split()[1] for line in lines]
    assert functions == ["on_image_pushed", "sweep_schedule", *["sweep_repository"] * 2] * 2


class _UnreadableEnvironment(Mapping[str, str]):
    """An environment whose every read fails, as a broken platform might."""

    def __getitem__(self, key: str) -> str:
        raise OSError(f"cannot read {key}")

    def __iter__(self) -> Iterator[str]:
        raise OSError("cannot list the environment")

    def __len__(self) -> int:
        return 0


async def test_unexpected_failure_reading_settings_is_logged_not_raised(
    registry: Registry, app_log: Any
) -> None:
    """If reading the settings fails unexpectedly, configure still succeeds and each invocation
    logs one error and deletes nothing (an exception would have broken the module import)."""
    for age, tag in ((9, "v1"), (8, "v2"), (7, "v3"), (6, "v4")):
        await registry.push("apps/web", tag, age=age * DAY)
    event = registry.pushed_events()[-1]
    saved = function_app._shell
    before = registry.state()
    try:
        app = function_app.configure(_UnreadableEnvironment())
        await function_app.on_image_pushed(event_from_json(event))
        await function_app.sweep_repository(queue_message(sweep_message("apps/web")), Out())
    finally:
        function_app._shell = saved

    assert isinstance(app.settings, SettingsError)
    assert registry.state() == before
    lines = app_log()
    assert [line.levelno for line in lines] == [logging.ERROR, logging.ERROR]
    assert all("cannot read" in line.getMessage() for line in lines)

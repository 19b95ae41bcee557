"""`acr-cleanup apply --history`: the CLI keeps its own tag history and honours previousDigests."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acr_core.cli import EXIT_BLOCKED, EXIT_DONE, Options, UsageError, main, parse_options
from tests.function.conftest import Registry, registry  # noqa: F401 - the fixture

DAY = timedelta(days=1)
POLICY: dict[str, Any] = {
    "version": 2,
    "rules": [
        {
            "name": "apps",
            "repositories": ["apps/**"],
            "keep": [{"previousDigests": {"tags": ["prod"], "count": 2}}],
            "delete": {"untagged": {"olderThan": "1d"}},
        }
    ],
    "safety": {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
}


async def apply(
    registry: Registry,  # noqa: F811 - the fixture's value
    policy: Path,
    history: Path,
    command: str = "apply",
) -> int:
    server = registry.server
    argv = [command, "--registry", server.login_server, "--ca-file", str(server.ca_file),
            "--policy", str(policy), "--history", str(history), "--output", "json"]  # fmt: skip
    if command == "apply":
        argv.append("--yes")
    environ = {"ACR_USERNAME": server.admin_username, "ACR_PASSWORD": server.admin_password}
    return await asyncio.to_thread(main, argv, environ=environ)  # main runs its own loop


async def test_apply_keeps_what_prod_left_between_runs(
    registry: Registry,  # noqa: F811 - the fixture's value
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each apply records where prod points; once prod has moved twice, the two digests it
    left survive while an untagged build is deleted; a corrupt file blocks the rule."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    history = tmp_path / "state" / "history.json"
    p1 = (await registry.push("apps/web", "prod", age=10 * DAY)).digest
    assert await apply(registry, policy, history) == EXIT_DONE
    p2 = (await registry.push("apps/web", "prod", age=9 * DAY)).digest
    assert await apply(registry, policy, history) == EXIT_DONE
    build = (await registry.push("apps/web", None, age=9 * DAY)).digest
    p3 = (await registry.push("apps/web", "prod", age=8 * DAY)).digest

    assert await apply(registry, policy, history) == EXIT_DONE

    assert registry.digests("apps/web") == {p3, p2, p1}
    assert build not in registry.digests("apps/web")
    assert history.exists()

    history.write_text("{oops")
    stray = (await registry.push("apps/web", None, age=9 * DAY)).digest
    assert await apply(registry, policy, history, "apply") == EXIT_BLOCKED
    assert stray in registry.digests("apps/web")


def options(tmp_path: Path, *extra: str, policy: object = POLICY) -> Options:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    argv = ["plan", "--registry", "myregistry.azurecr.io", "--policy", str(path), *extra]
    return parse_options(argv, {"XDG_DATA_HOME": str(tmp_path / "data")})


def test_history_is_a_file_or_the_functions_table(tmp_path: Path) -> None:
    """--history takes a file or a table URL; without it, a policy with the clause uses the
    user data directory's file, and one without the clause none at all."""
    url = "https://acct.table.core.windows.net/taghistory"
    assert options(tmp_path, "--history", url).history == url
    assert options(tmp_path, "--history", "h.json").history == Path("h.json")
    if sys.platform.startswith("linux"):
        expected = tmp_path / "data" / "acr-cleanup" / "history.json"
        assert options(tmp_path).history == expected
    plain = {**POLICY, "rules": [{**POLICY["rules"][0], "keep": [{"tags": ["prod"]}]}]}
    assert options(tmp_path, policy=plain).history is None


def test_a_table_url_in_clear_is_refused(tmp_path: Path) -> None:
    """A plain-http table URL off the loopback address is a usage error naming --history."""
    with pytest.raises(UsageError, match=r"--history .* is not a table URL"):
        options(tmp_path, "--history", "http://acct.table.core.windows.net/taghistory")

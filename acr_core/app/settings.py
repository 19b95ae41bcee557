"""The function app's settings, read once from a mapping and validated.

`load_settings(env)` turns the app settings (`os.environ` in `function_app.py`, a dict in tests)
into a frozen `Settings`, or raises `SettingsError` listing every problem, each naming the
setting and what to put there. Nothing here reads the environment itself; the only I/O is
reading `CLEANUP_POLICY_FILE` when that setting is used. The table of settings is in the README
and docs/architecture.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from acr_core.planning.policy import Policy, PolicyError, load_policy
from acr_core.registry.endpoint import EndpointError, parse_endpoint
from acr_core.run.limiter import DEFAULT_MAX_CONCURRENCY, SKUS, ExecutionLimits
from acr_core.storage.tables import TableError, check_table_url

DEFAULT_SCHEDULE = "0 0 3 * * *"
DEFAULT_AUDIENCE = "https://containerregistry.azure.net"
MAX_CONCURRENCY_LIMIT = 128
DEFAULT_SWEEP_BUDGET_SECONDS = 600.0
# How long push runs build on one full listing (acr_core.run.snapshots.DEFAULT_MAX_AGE).
DEFAULT_SNAPSHOT_MAX_AGE_SECONDS = 3600
# host.json sets functionTimeout to 30 minutes; the sweep must hand over well before that.
MAX_SWEEP_BUDGET_SECONDS = 1500.0

_RESOURCE_ID_RE = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.ContainerRegistry/registries/[^/]+",
    re.IGNORECASE,
)
# NCRONTAB with seconds: {second} {minute} {hour} {day} {month} {day-of-week}.
_NCRONTAB_FIELD_RE = re.compile(r"[0-9A-Za-z*/,\-]+")

T = TypeVar("T")


class SettingsError(ValueError):
    """The app settings are unusable; `problems` names each setting and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid app settings: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class Settings:
    login_server: str
    resource_id: str
    policy: Policy
    policy_origin: str  # "CLEANUP_POLICY" or "CLEANUP_POLICY_FILE=<path>", for log lines
    schedule: str = DEFAULT_SCHEDULE
    dry_run: bool = True
    client_id: str | None = None
    token_audience: str = DEFAULT_AUDIENCE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_writes_per_minute: int | None = None
    sweep_budget_seconds: float = DEFAULT_SWEEP_BUDGET_SECONDS
    ledger_url: str | None = None  # CLEANUP_LEDGER_URL: the deletion ledger's blob container
    history_table_url: str | None = None  # CLEANUP_HISTORY_TABLE_URL: the tag history (issue 14)
    cache_url: str | None = None  # CLEANUP_CACHE_URL: blob container for manifests, snapshots
    snapshot_max_age_seconds: int = DEFAULT_SNAPSHOT_MAX_AGE_SECONDS
    # Pace (docs/operations.md, "A fleet within one identity's budget"): the registry's SKU,
    # and this run's share of the identity's per-minute limits, which the Bicep computes.
    registry_sku: str | None = None
    max_deletes_per_minute: int | None = None
    max_reads_per_minute: int | None = None

    @property
    def endpoint(self) -> str:
        return f"https://{self.login_server}"

    def limits(self) -> ExecutionLimits:
        """What one run may send: the numbers set, else the SKU's per-identity limits."""
        return ExecutionLimits.for_sku(
            self.registry_sku,
            max_concurrency=self.max_concurrency,
            deletes_per_minute=self.max_deletes_per_minute,
            reads_per_minute=self.max_reads_per_minute,
            writes_per_minute=self.max_writes_per_minute,
        )


def load_settings(env: Mapping[str, str], *, app_root: Path | None = None) -> Settings:
    """Read and validate every setting; raise `SettingsError` naming all that are wrong.

    `app_root` is the directory `CLEANUP_POLICY_FILE` is relative to (the function app's root).
    """
    problems: list[str] = []

    def check(parse: Callable[[], T], fallback: T) -> T:
        try:
            return parse()
        except ValueError as exc:
            problems.append(str(exc))
            return fallback

    login_server = check(lambda: _login_server(env), "")
    resource_id = check(lambda: _resource_id(env), "")
    schedule = check(lambda: _schedule(env), DEFAULT_SCHEDULE)
    dry_run = check(lambda: _bool(env, "CLEANUP_DRY_RUN", default=True), True)
    client_id = check(lambda: _client_id(env), None)
    audience = check(lambda: _audience(env), DEFAULT_AUDIENCE)
    concurrency = check(
        lambda: _int(
            env, "CLEANUP_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY, MAX_CONCURRENCY_LIMIT
        ),
        None,
    )
    writes = check(lambda: _int(env, "CLEANUP_MAX_WRITES_PER_MINUTE", None, 1_000_000), None)
    deletes = check(lambda: _int(env, "CLEANUP_MAX_DELETES_PER_MINUTE", None, 1_000_000), None)
    reads = check(lambda: _int(env, "CLEANUP_MAX_READS_PER_MINUTE", None, 1_000_000), None)
    sku = check(lambda: _sku(env), None)
    budget = check(lambda: _budget(env), DEFAULT_SWEEP_BUDGET_SECONDS)
    ledger_url = check(lambda: _ledger_url(env), None)
    cache_url = check(lambda: _cache_url(env), None)
    max_age = check(lambda: _snapshot_max_age(env), None)
    loaded = check(lambda: _policy(env, app_root), None)
    history = check(lambda: _history_table_url(env, loaded[0] if loaded else None), None)
    if problems or loaded is None:
        raise SettingsError(problems)
    return Settings(
        login_server=login_server,
        resource_id=resource_id,
        policy=loaded[0],
        policy_origin=loaded[1],
        schedule=schedule,
        dry_run=dry_run,
        client_id=client_id,
        token_audience=audience,
        max_concurrency=concurrency or DEFAULT_MAX_CONCURRENCY,
        max_writes_per_minute=writes,
        sweep_budget_seconds=budget,
        ledger_url=ledger_url,
        history_table_url=history,
        cache_url=cache_url,
        snapshot_max_age_seconds=max_age or DEFAULT_SNAPSHOT_MAX_AGE_SECONDS,
        registry_sku=sku,
        max_deletes_per_minute=deletes,
        max_reads_per_minute=reads,
    )


def _snapshot_max_age(env: Mapping[str, str]) -> int | None:
    """CLEANUP_SNAPSHOT_MAX_AGE_SECONDS: how long push runs build on one full listing."""
    return _int(env, "CLEANUP_SNAPSHOT_MAX_AGE_SECONDS", DEFAULT_SNAPSHOT_MAX_AGE_SECONDS, 86_400)


def _get(env: Mapping[str, str], name: str) -> str | None:
    """A setting's value with surrounding whitespace removed; unset or blank is None."""
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _login_server(env: Mapping[str, str]) -> str:
    value = _get(env, "ACR_LOGIN_SERVER")
    if value is None:
        raise ValueError(
            "ACR_LOGIN_SERVER is not set: set it to the registry's login server, "
            "e.g. myregistry.azurecr.io"
        )
    try:
        return parse_endpoint(value, allow_scheme=False).login_server
    except EndpointError as exc:
        raise ValueError(f"ACR_LOGIN_SERVER {value!r} {exc.problem}") from None


def _resource_id(env: Mapping[str, str]) -> str:
    value = _get(env, "ACR_RESOURCE_ID")
    example = (
        "/subscriptions/<id>/resourceGroups/<group>/providers/"
        "Microsoft.ContainerRegistry/registries/<name>"
    )
    if value is None:
        raise ValueError(f"ACR_RESOURCE_ID is not set: set it to the registry's ARM id, {example}")
    if not _RESOURCE_ID_RE.fullmatch(value):
        raise ValueError(f"ACR_RESOURCE_ID {value!r} is not a registry's ARM id: want {example}")
    return value


def _schedule(env: Mapping[str, str]) -> str:
    value = _get(env, "CLEANUP_SCHEDULE") or DEFAULT_SCHEDULE
    fields = value.split()
    if len(fields) != 6 or not all(_NCRONTAB_FIELD_RE.fullmatch(f) for f in fields):
        raise ValueError(
            f"CLEANUP_SCHEDULE {value!r} is not a 6-field NCRONTAB expression "
            f"({{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}, UTC), "
            f"e.g. {DEFAULT_SCHEDULE!r} for 03:00 every day"
        )
    return " ".join(fields)


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = _get(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in {"true", "false"}:
        raise ValueError(f"{name} {value!r} is not true or false")
    return lowered == "true"


def _client_id(env: Mapping[str, str]) -> str | None:
    value = _get(env, "AZURE_CLIENT_ID")
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(
            f"AZURE_CLIENT_ID {value!r} is not a GUID: set it to the client id of the "
            "user-assigned managed identity, or remove it to use the system-assigned one"
        ) from None


def _audience(env: Mapping[str, str]) -> str:
    value = _get(env, "ACR_TOKEN_AUDIENCE") or DEFAULT_AUDIENCE
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+/?", value):
        raise ValueError(
            f"ACR_TOKEN_AUDIENCE {value!r} is not an https:// audience URI: "
            f"leave it unset for {DEFAULT_AUDIENCE} (public cloud)"
        )
    return value.rstrip("/")


def _int(env: Mapping[str, str], name: str, default: int | None, high: int) -> int | None:
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not 1 <= number <= high:
        raise ValueError(f"{name} {value!r} is not a whole number from 1 to {high}")
    return number


def _sku(env: Mapping[str, str]) -> str | None:
    """`CLEANUP_REGISTRY_SKU`: the registry's SKU as ARM names it (`Basic`, `Standard`,
    `Premium`; any case)."""
    value = _get(env, "CLEANUP_REGISTRY_SKU")
    if value is None:
        return None
    if value.lower() not in SKUS:
        raise ValueError(
            f"CLEANUP_REGISTRY_SKU {value!r} is not a registry SKU: set it to Basic, Standard "
            "or Premium (the registry's sku.name), or remove it to pace by 429s only"
        )
    return value.lower()


def _budget(env: Mapping[str, str]) -> float:
    name = "CLEANUP_SWEEP_BUDGET_SECONDS"
    value = _get(env, name)
    if value is None:
        return DEFAULT_SWEEP_BUDGET_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= MAX_SWEEP_BUDGET_SECONDS:
        raise ValueError(
            f"{name} {value!r} is not a number of seconds from 1 to {MAX_SWEEP_BUDGET_SECONDS:g} "
            "(it must stay below host.json's functionTimeout of 30 minutes)"
        )
    return seconds


def _ledger_url(env: Mapping[str, str]) -> str | None:
    """A blob container's URL: https://<account>.blob.core.windows.net/<container> (plain
    http only on loopback, for Azurite)."""
    value = _get(env, "CLEANUP_LEDGER_URL")
    if value is None:
        return None
    secure = re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9-]+){1,2}/?", value)
    local = re.fullmatch(r"http://127\.0\.0\.1:[0-9]+/[a-z0-9]+/[a-z0-9-]+/?", value)
    if not (secure or local) or "?" in value:
        raise ValueError(
            f"CLEANUP_LEDGER_URL {value!r} is not a blob container's URL: want "
            "https://<account>.blob.core.windows.net/<container> (no SAS: the function signs "
            "in with its managed identity)"
        )
    return value.rstrip("/")


def _cache_url(env: Mapping[str, str]) -> str | None:
    """The blob container of the function's own storage account for its cache, as
    `https://<account>.blob.core.windows.net/<container>` (infra/ sets it)."""
    value = _get(env, "CLEANUP_CACHE_URL")
    if value is None:
        return None
    parts = urlsplit(value)
    path = parts.path.strip("/")
    if parts.scheme not in ("https", "http") or not parts.netloc or not path or parts.query:
        raise ValueError(
            f"CLEANUP_CACHE_URL {value!r} is not a blob container URL such as "
            "https://<account>.blob.core.windows.net/acr-cleanup-cache (no SAS token: the "
            "function uses its managed identity)"
        )
    return value.rstrip("/")


def _policy(env: Mapping[str, str], app_root: Path | None) -> tuple[Policy, str]:
    inline = _get(env, "CLEANUP_POLICY")
    path = _get(env, "CLEANUP_POLICY_FILE")
    if inline is not None and path is not None:
        raise ValueError("CLEANUP_POLICY and CLEANUP_POLICY_FILE are both set: keep exactly one")
    if inline is None and path is None:
        raise ValueError(
            "neither CLEANUP_POLICY nor CLEANUP_POLICY_FILE is set: set one to the policy JSON "
            "or to a file holding it (docs/policy.md)"
        )
    if inline is not None:
        origin, source = "CLEANUP_POLICY", inline
    else:
        assert path is not None
        origin = f"CLEANUP_POLICY_FILE={path}"
        file = Path(path) if app_root is None else app_root / path
        try:
            source = file.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is fine
        except OSError as exc:
            raise ValueError(
                f"CLEANUP_POLICY_FILE {path!r} cannot be read ({exc.strerror or exc}): "
                "give a path relative to the function app's root and deploy the file with it"
            ) from None
        except UnicodeDecodeError:
            raise ValueError(
                f"CLEANUP_POLICY_FILE {path!r} is not UTF-8 text: save the policy JSON as UTF-8"
            ) from None
    setting = origin.split("=")[0]
    try:
        return load_policy(source), origin
    except PolicyError as exc:
        raise ValueError(f"{setting} is not a valid policy: {exc}") from None
    except RecursionError:
        # json.loads raises it for arrays or objects nested a few thousand deep.
        raise ValueError(
            f"{setting} is not a valid policy: its JSON is nested too deeply to read"
        ) from None


# --- the tag history (issue 14) ----------------------------------------------------------------

_TABLE_URL_RE = re.compile(r"https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9]+)?/[A-Za-z][A-Za-z0-9]{2,62}")


def _history_table_url(env: Mapping[str, str], policy: Policy | None) -> str | None:
    """The tag history's table; required when a rule uses `previousDigests`."""
    name = "CLEANUP_HISTORY_TABLE_URL"
    value = _get(env, name)
    users = [r.name for r in policy.rules if r.previous_digests] if policy is not None else []
    if value is None:
        if users:
            raise ValueError(
                f"{name} is not set, and rule {users[0]!r} keeps previousDigests, which reads "
                "the tag history: set it to https://<account>.table.core.windows.net/<table> "
                "(the Bicep sets it)"
            )
        return None
    loopback = re.match(r"http://(127\.0\.0\.1|localhost)[:/]", value)
    if value.startswith("http://") and not loopback:
        raise ValueError(
            f"{name} {value!r} is plain http: the identity's token would cross the network "
            "in clear; use https (http only for a local emulator on 127.0.0.1)"
        )
    if not _TABLE_URL_RE.fullmatch(value.rstrip("/")):
        raise ValueError(
            f"{name} {value!r} is not a table URL: want "
            "https://<account>.table.core.windows.net/<table> (a table name is 3-63 letters "
            "and digits, starting with a letter)"
        )
    try:
        return check_table_url(value)  # what the table client will be given
    except TableError as exc:
        raise ValueError(f"{name} {exc}") from None

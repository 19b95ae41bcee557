"""`acr-cleanup ledger list|show` and `acr-cleanup restore`: the logic behind the commands.

`acr_core.cli` parses the command line, opens the ledger's store and the registry client, and
calls these; they read the ledger, print, and return the exit code. Times on the command line
are ISO 8601 with a time zone, or a duration back from now (`7d`, `12h`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from acr_core.ledger.entries import Entry
from acr_core.ledger.ledger import Ledger, Query
from acr_core.ledger.restore import RestoreClient, RestoreReport, State, restore, select
from acr_core.names import short_digest
from acr_core.planning.patterns import parse_duration
from acr_core.storage.objects import DirectoryStore

__all__ = [
    "default_ledger_dir",
    "is_blob_url",
    "list_entries",
    "open_ledger",
    "parse_time",
    "read_command",
    "render_entries",
    "render_restore",
    "restore_entries",
    "run",
    "show_entries",
]


class LedgerUsageError(ValueError):
    """A ledger or restore option is unusable; the message names the flag."""


def default_ledger_dir(environ: Mapping[str, str]) -> Path:
    """Where the CLI keeps its ledger unless told: the user's data directory, as the
    platform has it (XDG_DATA_HOME or ~/.local/share; %LOCALAPPDATA% on Windows)."""
    base = environ.get("XDG_DATA_HOME")
    if not base and os.name == "nt":
        base = environ.get("LOCALAPPDATA")
    root = Path(base) if base else Path.home() / ".local" / "share"
    return root / "acr-cleanup" / "ledger"


def is_blob_url(value: str) -> bool:
    """`https://<account>.blob.core.windows.net/<container>` (or any https URL: Azurite)."""
    return value.startswith("https://") or value.startswith("http://127.0.0.1")


def open_ledger(value: str, credential: Any) -> Ledger:
    """The ledger `--ledger` names: a blob container (through `credential`, Azure AD) or a
    local directory (created when first written)."""
    if is_blob_url(value):
        from acr_core.storage.blob import BlobStore

        return Ledger(BlobStore(value, credential))
    return Ledger(DirectoryStore(Path(value).expanduser()))


def parse_time(text: str, flag: str, now: datetime) -> datetime:
    """ISO 8601 with a time zone, or a duration back from `now` (7d, 12h, 30m)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LedgerUsageError(
            f"{flag} {text!r} is neither ISO 8601 (2026-01-31T12:00:00Z) nor a duration (7d)"
        ) from None
    if moment.tzinfo is None:
        raise LedgerUsageError(f"{flag} {text!r} needs a time zone, e.g. {text}Z")
    return moment


def parse_period(text: str, flag: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise LedgerUsageError(f"{flag} {text!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Listing:
    query: Query
    output: str  # "table" or "json"


async def list_entries(ledger: Ledger, listing: Listing, out: TextIO) -> int:
    entries = await ledger.entries(listing.query)
    out.write(render_entries(entries, listing.output, ledger.description))
    return 0


async def show_entries(ledger: Ledger, what: str, out: TextIO) -> int:
    """Every entry of run `what`, or every entry that deleted digest `what`, in full."""
    query = Query(digest=what) if what.startswith("sha256:") else Query(run=what)
    entries = await ledger.entries(query)
    if not entries:
        out.write(f"no ledger entry for {what} in {ledger.description}\n")
        return 1
    for entry in entries:
        out.write(json.dumps(entry.to_dict(with_raw=False), indent=2, sort_keys=True) + "\n")
        for recorded in (entry.manifest, *entry.cascades):
            if recorded is not None and recorded.raw is not None:
                out.write(f"manifest {recorded.digest} ({recorded.media_type}):\n")
                out.write(recorded.raw.decode("utf-8", "replace") + "\n")
    return 0


def render_entries(entries: Sequence[Entry], output: str, where: str) -> str:
    if output == "json":
        items = [e.to_dict(with_raw=False) for e in entries]
        return json.dumps({"ledger": where, "entries": items}, indent=2) + "\n"
    header = ("time", "run", "repository", "digest", "tags", "action", "outcome", "rule")
    rows = [
        (
            e.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.info.run + (" (dry)" if e.info.dry_run else ""),
            e.repository,
            short_digest(e.digest) + (f" +{len(e.cascades)}" if e.cascades else ""),
            ",".join(e.tags) or "-",
            "delete" if e.kind == "delete_manifest" else "lock",
            e.outcome,
            e.rule,
        )
        for e in entries
    ]
    if not rows:
        return f"no ledger entries match in {where}\n"
    return _table(header, rows) + f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'} in {where}\n"


@dataclass(frozen=True, slots=True)
class Restoring:
    query: Query
    dry_run: bool
    protect_for: timedelta
    output: str
    now: datetime


async def restore_entries(
    ledger: Ledger, client: RestoreClient, options: Restoring, out: TextIO
) -> int:
    """Restore what the matching entries deleted; 0 when all of it is back (or, dry, can be),
    1 when something cannot be restored, 4 when nothing in the ledger matched."""
    entries = await select(ledger, options.query)
    if not entries:
        out.write(f"nothing in {ledger.description} matches: no deletion to restore\n")
        return 4
    report = await restore(
        ledger,
        client,
        entries,
        now=options.now,
        dry_run=options.dry_run,
        protect_for=options.protect_for,
    )
    out.write(render_restore(report, options.output))
    return 0 if report.complete else 1


_VERB = {
    State.RESTORED: "restored",
    State.WOULD_RESTORE: "would restore",
    State.PRESENT: "already present",
    State.MISSING: "cannot restore",
    State.UNREADABLE: "cannot restore",
    State.FAILED: "failed",
}


def render_restore(report: RestoreReport, output: str) -> str:
    if output == "json":
        return json.dumps(report.to_dict(), indent=2) + "\n"
    mode = "dry run, nothing changed" if report.dry_run else "restore"
    lines = [f"Registry {report.registry} ({mode})"]
    for r in report.results:
        line = f"  {_VERB[r.state]:<16} {r.repository}@{short_digest(r.digest)} (run {r.run})"
        if r.tags_restored:
            line += f" tags {', '.join(r.tags_restored)}"
        lines.append(line)
        for tag, digest in sorted(r.tags_skipped.items()):
            lines.append(f"      tag {tag} skipped: it now points to {short_digest(digest)}")
        if r.state is State.MISSING:
            lines += [f"      missing: {digest}" for digest in r.missing]
        elif r.detail:
            lines.append(f"      {r.detail}")
    if report.protect_until is not None and not report.dry_run:
        until = report.protect_until.astimezone(UTC).isoformat().replace("+00:00", "Z")
        lines.append(f"Protected from age-based deletion until {until} (restore {report.restore})")
    return "\n".join(lines) + "\n"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in (header, *rows)
    )


Command = Listing | Restoring | str  # a str: `ledger show` of that run or digest


def read_command(args: argparse.Namespace, now: datetime) -> Command:
    """What `ledger list|show` or `restore` was asked to do; `LedgerUsageError` names the flag."""
    if args.command == "ledger" and args.ledger_command == "show":
        return str(args.what)
    query = Query(
        repository=args.repository,
        digest=args.digest,
        run=args.run,
        rule=getattr(args, "rule", None),
        since=parse_time(args.since, "--since", now) if args.since else None,
        until=parse_time(args.until, "--until", now) if getattr(args, "until", None) else None,
    )
    if args.command == "ledger":
        return Listing(query, args.output)
    if not (args.run or args.digest or (args.repository and args.since)):
        raise LedgerUsageError(
            "restore needs --run ID, --digest D, or --repository R with --since T"
        )
    return Restoring(
        query=query,
        dry_run=args.dry_run,
        protect_for=parse_period(args.protect_for, "--protect-for"),
        output=args.output,
        now=now,
    )


async def run(command: Command, ledger: Ledger, client: RestoreClient | None, out: TextIO) -> int:
    if isinstance(command, str):
        return await show_entries(ledger, command, out)
    if isinstance(command, Listing):
        return await list_entries(ledger, command, out)
    assert client is not None, "restore needs a registry client"
    return await restore_entries(ledger, client, command, out)

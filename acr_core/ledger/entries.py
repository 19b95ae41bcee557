"""The ledger's records as plain data, and their JSON (format version 1).

A run writes one document per stage under `runs/<run id>/`: `intent.json` before its first
change (what it is about to do, with the raw bytes of every manifest a deletion destroys) and
`report.json` once it is done (each action with its outcome, as the run's report says). Both
are written once and never changed. A restore writes `restores/<restore id>.json`: what it put
back, and until when the next runs must keep it. Keys: docs/operations.md, "The deletion
ledger". Run ids begin with their UTC start time, so keys sort by time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FORMAT_VERSION = 1
INTENT = "intent"
REPORT = "report"
_ID_TIME = "%Y%m%dT%H%M%SZ"


class EntryFormatError(ValueError):
    """A ledger document is not what this version writes (the message names its key)."""


def new_id(now: datetime) -> str:
    """A run or restore id: its UTC time to the second, then 8 random hex digits."""
    return f"{now.astimezone(UTC).strftime(_ID_TIME)}-{secrets.token_hex(4)}"


def id_time(identifier: str) -> datetime | None:
    """When the run or restore with this id started (None: not an id this ledger made)."""
    try:
        return datetime.strptime(identifier.split("-", 1)[0], _ID_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Recorded:
    """A manifest as the registry served it: enough to put it back with the same digest.
    `raw` is None when it could not be read (gone already, or `readEnabled=false`)."""

    digest: str
    media_type: str | None
    raw: bytes | None
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "mediaType": self.media_type,
            "tags": list(self.tags),
            "raw": base64.b64encode(self.raw).decode("ascii") if self.raw is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recorded:
        raw = data.get("raw")
        content = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        if content is not None and digest_of(content) != data["digest"]:
            raise EntryFormatError(f"the bytes recorded for {data['digest']} do not hash to it")
        return cls(str(data["digest"]), data.get("mediaType"), content, tuple(data.get("tags", ())))


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What every entry of one run shares."""

    run: str
    registry: str
    trigger: str
    event_id: str | None
    principal: str | None
    policy_hash: str
    dry_run: bool
    started_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "registry": self.registry,
            "trigger": self.trigger,
            "eventId": self.event_id,
            "principal": self.principal,
            "policyHash": self.policy_hash,
            "dryRun": self.dry_run,
            "startedAt": self.started_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        return cls(
            run=str(data["run"]),
            registry=str(data["registry"]),
            trigger=str(data["trigger"]),
            event_id=data.get("eventId"),
            principal=data.get("principal"),
            policy_hash=str(data["policyHash"]),
            dry_run=bool(data["dryRun"]),
            started_at=datetime.fromisoformat(data["startedAt"]),
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One action of one run: a deletion (with the manifests it takes along) or a tag lock.

    `outcome` is the report's (`planned` in a dry run, `pending` in an intent that has no
    report, i.e. a run that stopped before recording its outcome)."""

    info: RunInfo
    time: datetime
    kind: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    rule: str
    reason: str
    media_type: str | None
    size: int
    outcome: str
    detail: str = ""
    manifest: Recorded | None = None
    cascades: tuple[Recorded, ...] = field(default=())

    @property
    def deleted(self) -> bool:
        """The registry no longer has it because of this run (or it was gone already)."""
        return self.kind == "delete_manifest" and self.outcome in ("applied", "already_gone")

    @property
    def may_be_deleted(self) -> bool:
        """Deleted, or possibly: the run stopped before recording the outcome (`pending`)."""
        return self.deleted or (self.kind == "delete_manifest" and self.outcome == "pending")

    def to_dict(self, *, with_raw: bool = True) -> dict[str, object]:
        def recorded(item: Recorded) -> dict[str, object]:
            data = item.to_dict()
            if not with_raw:
                data.pop("raw")
            return data

        return {
            **self.info.to_dict(),
            "time": self.time.isoformat(),
            "kind": self.kind,
            "repository": self.repository,
            "digest": self.digest,
            "tags": list(self.tags),
            "rule": self.rule,
            "reason": self.reason,
            "mediaType": self.media_type,
            "sizeInBytes": self.size,
            "outcome": self.outcome,
            "detail": self.detail,
            "manifest": recorded(self.manifest) if self.manifest is not None else None,
            "cascades": [recorded(c) for c in self.cascades],
        }


_RUN_KEYS = ("run", "registry", "trigger", "eventId", "principal", "policyHash", "dryRun")


def run_document(info: RunInfo, stage: str, entries: list[Entry], recorded_at: datetime) -> bytes:
    """The JSON written at `runs/<run>/<stage>.json` (the shared fields once, not per entry)."""
    items = []
    for entry in entries:
        data = entry.to_dict()
        for key in (*_RUN_KEYS, "startedAt"):
            data.pop(key)
        items.append(data)
    document = {
        "ledgerVersion": FORMAT_VERSION,
        "stage": stage,
        "recordedAt": recorded_at.isoformat(),
        **info.to_dict(),
        "entries": items,
    }
    return json.dumps(document, sort_keys=True).encode()


def read_run_document(key: str, data: bytes) -> list[Entry]:
    """The entries of a run document; `EntryFormatError` names the key when it is unreadable."""
    try:
        document = json.loads(data)
        if document.get("ledgerVersion") != FORMAT_VERSION:
            raise EntryFormatError(f"ledgerVersion {document.get('ledgerVersion')!r}")
        info = RunInfo.from_dict(document)
        return [_entry(info, item) for item in document["entries"]]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise EntryFormatError(
            f"ledger record {key} is not a version {FORMAT_VERSION} run document ({exc})"
        ) from None


def _entry(info: RunInfo, item: dict[str, Any]) -> Entry:
    manifest = item.get("manifest")
    return Entry(
        info=info,
        time=datetime.fromisoformat(item["time"]),
        kind=str(item["kind"]),
        repository=str(item["repository"]),
        digest=str(item["digest"]),
        tags=tuple(item.get("tags", ())),
        rule=str(item["rule"]),
        reason=str(item["reason"]),
        media_type=item.get("mediaType"),
        size=int(item.get("sizeInBytes", 0)),
        outcome=str(item["outcome"]),
        detail=str(item.get("detail", "")),
        manifest=Recorded.from_dict(manifest) if manifest is not None else None,
        cascades=tuple(Recorded.from_dict(c) for c in item.get("cascades", ())),
    )


@dataclass(frozen=True, slots=True)
class Protection:
    """A restored manifest the next runs keep until `until`, whatever its age."""

    repository: str
    digest: str
    until: datetime


def restore_document(
    restore: str,
    principal: str | None,
    registry: str,
    at: datetime,
    protections: list[Protection],
) -> bytes:
    document = {
        "ledgerVersion": FORMAT_VERSION,
        "restore": restore,
        "registry": registry,
        "principal": principal,
        "time": at.isoformat(),
        "restored": [
            {"repository": p.repository, "digest": p.digest, "protectUntil": p.until.isoformat()}
            for p in protections
        ],
    }
    return json.dumps(document, sort_keys=True).encode()


def read_restore_document(key: str, data: bytes) -> tuple[str, list[Protection]]:
    """The registry a restore was made in, and what it protects."""
    try:
        document = json.loads(data)
        return str(document["registry"]), [
            Protection(
                str(item["repository"]),
                str(item["digest"]),
                datetime.fromisoformat(item["protectUntil"]),
            )
            for item in document["restored"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EntryFormatError(f"ledger record {key} is not a restore document ({exc})") from None

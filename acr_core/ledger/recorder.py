"""`LedgerRecorder`: the `RunRecorder` that writes one run into the deletion ledger.

Before the first change it reads the raw bytes of every manifest the apply may delete, and of
every referrer ACR deletes with it, and writes them with the plan (`intent.json`); a manifest
the snapshot already holds is not read again. If that cannot be done the run stops there and
nothing is deleted. Once the run is done it writes every action with its outcome exactly as
the report says (`report.json`). A dry run writes only the report, its actions `planned`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from acr_core.ledger.entries import INTENT, REPORT, Entry, Recorded, RunInfo, new_id
from acr_core.ledger.ledger import Ledger, LedgerError
from acr_core.models import ManifestContent, RepositorySnapshot
from acr_core.planning.plan import Action, ActionKind
from acr_core.planning.policy import Policy
from acr_core.registry.errors import AcrError, DisallowedOperationError, NotFoundError
from acr_core.run.report import RunReport

__all__ = ["LedgerRecorder", "ManifestSource", "policy_hash"]

# Manifests read at the same time while recording (each is one GET from the registry).
READ_CONCURRENCY = 8

Key = tuple[str, str]


class ManifestSource(Protocol):
    """The part of `AcrClient` the recorder uses."""

    @property
    def login_server(self) -> str: ...

    @property
    def principal(self) -> str | None: ...

    async def get_manifest(self, repository: str, tag_or_digest: str) -> ManifestContent: ...


def policy_hash(policy: Policy) -> str:
    """A digest of the policy as parsed: the same rules give the same hash, however written."""
    return "sha256:" + hashlib.sha256(repr(policy).encode()).hexdigest()


class LedgerRecorder:
    """Records one run (create one per run) of `client`'s registry under `policy`."""

    def __init__(
        self,
        ledger: Ledger,
        client: ManifestSource,
        policy: Policy,
        *,
        trigger: str,
        event_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._policy_hash = policy_hash(policy)
        self._trigger = trigger
        self._event_id = event_id
        self._clock = clock
        self._run: str | None = None
        self._captured: dict[Key, Recorded] = {}

    @property
    def run_id(self) -> str | None:
        """The run's id in the ledger, once it has recorded something."""
        return self._run

    async def protected(self, now: datetime) -> Mapping[str, frozenset[str]]:
        return await self._ledger.protections(self._client.login_server, now)

    async def before_apply(
        self, preview: RunReport, snapshots: Mapping[str, RepositorySnapshot]
    ) -> None:
        self._captured = await self._capture(preview, snapshots)
        await self._write(preview, snapshots, INTENT)

    async def record(self, report: RunReport, snapshots: Mapping[str, RepositorySnapshot]) -> None:
        if not report.plan.actions:
            return
        try:
            await self._write(report, snapshots, REPORT)
        except LedgerError as exc:
            if report.dry_run or not report.outcomes:
                raise
            raise LedgerError(
                f"{exc}. The run did apply its plan: `acr-cleanup ledger show {self._run}` "
                "lists what it was about to do (its outcomes were not recorded), and restore "
                "can put it back"
            ) from None

    async def _write(
        self, report: RunReport, snapshots: Mapping[str, RepositorySnapshot], stage: str
    ) -> None:
        if self._run is None:
            self._run = new_id(report.started_at)
        info = RunInfo(
            run=self._run,
            registry=report.registry,
            trigger=self._trigger,
            event_id=self._event_id,
            principal=self._client.principal,
            policy_hash=self._policy_hash,
            dry_run=report.dry_run,
            started_at=report.started_at,
        )
        now, known = self._clock(), _Known(snapshots)
        entries = [
            self._entry(info, now, result.action, known, outcome, result.detail)
            for repository in report.plan.repositories
            for result in report.results(repository)
            for outcome in ["pending" if stage == INTENT else result.outcome.value]
        ]
        await self._ledger.write_run(info, stage, entries, now)

    def _entry(
        self,
        info: RunInfo,
        now: datetime,
        action: Action,
        known: _Known,
        outcome: str,
        detail: str,
    ) -> Entry:
        repository = action.repository
        deleting = action.kind is ActionKind.DELETE_MANIFEST
        return Entry(
            info=info,
            time=now,
            kind=action.kind.value,
            repository=repository,
            digest=action.digest,
            tags=action.tags,
            rule=action.rule,
            reason=action.reason,
            media_type=known.media_type((repository, action.digest)),
            size=action.size_in_bytes,
            outcome=outcome,
            detail=detail,
            manifest=self._captured.get((repository, action.digest)) if deleting else None,
            cascades=tuple(
                self._captured.get((repository, d)) or known.unread((repository, d))
                for d in action.cascades
            ),
        )

    async def _capture(
        self, preview: RunReport, snapshots: Mapping[str, RepositorySnapshot]
    ) -> dict[Key, Recorded]:
        """Every manifest the apply may delete, as the registry serves it."""
        wanted = [
            (plan.repository, digest)
            for plan in preview.plan.repositories
            if not plan.blocked
            for action in plan.deletions
            for digest in (action.digest, *action.cascades)
        ]
        slots, known = asyncio.Semaphore(READ_CONCURRENCY), _Known(snapshots)

        async def capture(key: Key) -> tuple[Key, Recorded]:
            content = known.content(key)
            if content is None:
                async with slots:
                    content = await self._read(*key)
            if content is None:
                return key, known.unread(key)
            return key, Recorded(key[1], content.media_type, content.raw, known.tags(key))

        return dict(await asyncio.gather(*(capture(key) for key in dict.fromkeys(wanted))))

    async def _read(self, repository: str, digest: str) -> ManifestContent | None:
        try:
            return await self._client.get_manifest(repository, digest)
        except (NotFoundError, DisallowedOperationError):
            # Gone already (its deletion will say so), or readEnabled=false: recorded without
            # its bytes, and `restore` reports it as not restorable.
            return None
        except AcrError as exc:
            raise LedgerError(
                f"cannot read {repository}@{digest} to record it in the deletion ledger "
                f"before deleting it: {exc}; nothing was deleted"
            ) from None


class _Known:
    """What the snapshots say about each manifest, indexed once per run."""

    def __init__(self, snapshots: Mapping[str, RepositorySnapshot]) -> None:
        self._snapshots = snapshots
        self._properties = {(s.name, m.digest): m for s in snapshots.values() for m in s.manifests}

    def content(self, key: Key) -> ManifestContent | None:
        snapshot = self._snapshots.get(key[0])
        return snapshot.contents.get(key[1]) if snapshot is not None else None

    def media_type(self, key: Key) -> str | None:
        content = self.content(key)
        if content is not None:
            return content.media_type
        properties = self._properties.get(key)
        return properties.media_type if properties is not None else None

    def tags(self, key: Key) -> tuple[str, ...]:
        properties = self._properties.get(key)
        return properties.tags if properties is not None else ()

    def unread(self, key: Key) -> Recorded:
        return Recorded(key[1], self.media_type(key), None, self.tags(key))

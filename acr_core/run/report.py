"""What a run did, as plain data: the plan, each action's outcome, and the numbers.

`RunReport.to_dict()` / `to_json()` is the stable schema (version 1) the CLI prints with
`--output json`; docs/cli.md documents every field. `RunReport.summary()` is the flat subset
the function logs once per run (docs/operations.md, "The summary line"). Keys are camelCase
like ACR's own JSON. `render_table()` is the same report for people.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from acr_core.names import short_digest
from acr_core.planning.plan import Action, ActionKind, Kept, Plan, RepositoryPlan
from acr_core.run.executor import ActionOutcome, Outcome

SCHEMA_VERSION = 1


class Status(StrEnum):
    """How a run (or one repository) ended; the CLI's exit code follows the run's status."""

    DONE = "done"
    BLOCKED = "blocked"  # a safety limit kept deletions from being applied
    FAILED = "failed"
    GONE = "gone"  # the repository vanished while it was being read
    NOT_COVERED = "not_covered"  # named on the command line, but no policy rule matches it


@dataclass(frozen=True, slots=True)
class RepositoryIssue:
    """A repository that has no plan: its gather failed, it vanished, or no rule covers it."""

    repository: str
    status: Status
    detail: str
    transient: bool = False  # worth retrying as a whole (throttling, 5xx, connection)
    # The exception behind a failed read, for callers that explain it in their own terms
    # (the CLI words a refused sign-in for the way it signed in); not part of the JSON.
    cause: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RequestStats:
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    # Requests in flight on average over the run (gather, plan and apply): the seconds the
    # run's requests were in flight, summed, over its duration. Its effective concurrency.
    concurrency: float = 0.0


@dataclass(frozen=True, slots=True)
class Durations:
    gather: float = 0.0
    plan: float = 0.0
    apply: float = 0.0
    total: float = 0.0


@dataclass(frozen=True, slots=True)
class RepositoryDurations:
    """Seconds spent on one repository: reading it, planning it, and from its first action's
    start to its last action's end. Repositories are read and applied concurrently, so these
    overlap and do not add up to the run's `Durations`."""

    gather: float = 0.0
    plan: float = 0.0
    apply: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "gatherSeconds": round(self.gather, 3),
            "planSeconds": round(self.plan, 3),
            "applySeconds": round(self.apply, 3),
        }


@dataclass(frozen=True, slots=True)
class Counts:
    planned_deletions: int = 0
    planned_locks: int = 0
    deleted: int = 0
    already_gone: int = 0
    locked: int = 0
    kept: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_planned: int = 0
    bytes_deleted: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))

    def to_dict(self) -> dict[str, int]:
        return {
            "plannedDeletions": self.planned_deletions,
            "plannedLocks": self.planned_locks,
            "deleted": self.deleted,
            "alreadyGone": self.already_gone,
            "locked": self.locked,
            "kept": self.kept,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytesPlanned": self.bytes_planned,
            "bytesDeleted": self.bytes_deleted,
        }


def _values(counts: Counts) -> tuple[int, ...]:
    return tuple(getattr(counts, name) for name in Counts.__slots__)


@dataclass(frozen=True, slots=True)
class RunReport:
    """One run. `outcomes` matches `plan.actions` one to one; it is empty when nothing was
    applied (a dry run, or an apply the user cancelled), and every action then reads `planned`."""

    registry: str
    dry_run: bool
    now: datetime
    started_at: datetime
    plan: Plan
    outcomes: tuple[ActionOutcome, ...] = ()
    issues: tuple[RepositoryIssue, ...] = ()
    durations: Durations = field(default_factory=Durations)
    repository_durations: Mapping[str, RepositoryDurations] = field(default_factory=dict)
    requests: RequestStats = field(default_factory=RequestStats)
    cancelled: bool = False
    _by_repository: dict[str, tuple[ActionOutcome, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.outcomes and len(self.outcomes) != len(self.plan.actions):
            raise ValueError("a report needs one outcome per action of its plan, or none")
        start = 0
        for repository in self.plan.repositories:
            end = start + len(repository.actions)
            if self.outcomes:
                self._by_repository[repository.repository] = self.outcomes[start:end]
            start = end

    def results(self, repository: RepositoryPlan) -> Iterator[ActionOutcome]:
        """Each action of `repository` with what happened to it."""
        done = self._by_repository.get(repository.repository)
        if done is not None:
            yield from done
            return
        for action in repository.actions:
            yield ActionOutcome(action, Outcome.PLANNED)

    def counts(self, repository: RepositoryPlan) -> Counts:
        counts = Counts(
            planned_deletions=len(repository.deletions),
            planned_locks=len(repository.locks),
            kept=len(repository.kept),
            bytes_planned=sum(a.size_in_bytes for a in repository.deletions),
        )
        tally: dict[str, int] = {}
        for result in self.results(repository):
            if result.outcome is Outcome.APPLIED and result.action.kind is ActionKind.LOCK_TAG:
                key = "locked"
            elif result.outcome is Outcome.APPLIED:
                key = "deleted"
                tally["bytes_deleted"] = tally.get("bytes_deleted", 0) + result.action.size_in_bytes
            elif result.outcome is Outcome.ALREADY_GONE:
                key = "already_gone"
            elif result.outcome is Outcome.FAILED:
                key = "failed"
            elif result.outcome is Outcome.PLANNED:
                continue
            else:
                key = "skipped"
            tally[key] = tally.get(key, 0) + 1
        return counts + Counts(**tally)

    @property
    def totals(self) -> Counts:
        total = Counts()
        for repository in self.plan.repositories:
            total += self.counts(repository)
        return total

    def repository_status(self, repository: RepositoryPlan) -> Status:
        if any(r.outcome is Outcome.FAILED for r in self.results(repository)):
            return Status.FAILED
        if repository.blocked:
            return Status.BLOCKED
        return Status.DONE

    @property
    def status(self) -> Status:
        """`failed` if any repository or action failed, else `blocked` if a safety limit held
        deletions back (in a dry run too: the apply would be blocked), else `done`."""
        statuses = {self.repository_status(r) for r in self.plan.repositories}
        statuses |= {issue.status for issue in self.issues}
        for status in (Status.FAILED, Status.BLOCKED):
            if status in statuses:
                return status
        return Status.DONE

    def to_dict(self) -> dict[str, object]:
        repositories: list[dict[str, object]] = [
            self._repository_dict(r) for r in self.plan.repositories
        ]
        repositories += [
            _issue_dict(issue, self.durations_of(issue.repository)) for issue in self.issues
        ]
        repositories.sort(key=lambda r: str(r["repository"]))
        return {
            "schemaVersion": SCHEMA_VERSION,
            "registry": self.registry,
            "dryRun": self.dry_run,
            "cancelled": self.cancelled,
            "status": self.status.value,
            "now": self.now.isoformat(),
            "startedAt": self.started_at.isoformat(),
            "durations": {
                "gatherSeconds": round(self.durations.gather, 3),
                "planSeconds": round(self.durations.plan, 3),
                "applySeconds": round(self.durations.apply, 3),
                "totalSeconds": round(self.durations.total, 3),
            },
            "requests": {
                "total": self.requests.requests,
                "throttled": self.requests.throttled,
                "retries": self.requests.retries,
                "concurrency": round(self.requests.concurrency, 2),
            },
            "totals": {
                "repositories": len(repositories),
                "blockedRepositories": sum(1 for r in self.plan.repositories if r.blocked),
                "failedRepositories": sum(1 for r in repositories if r["status"] == "failed"),
                **self.totals.to_dict(),
            },
            "repositories": repositories,
        }

    def summary(self) -> dict[str, object]:
        """The run's numbers, flat, for one log line and Application Insights: the fields of
        docs/operations.md's summary line except `repository`, `trigger` and `cause`, which
        the caller knows."""
        totals = self.totals
        return {
            "status": self.status.value,
            "dryRun": self.dry_run,
            "kept": totals.kept,
            "planned": totals.planned_deletions,
            "deleted": totals.deleted,
            "alreadyGone": totals.already_gone,
            "locked": totals.locked,
            "skipped": totals.skipped,
            "failed": totals.failed,
            "blocked": sum(1 for r in self.plan.repositories if r.blocked),
            "bytesDeleted": totals.bytes_deleted,
            "durationSeconds": round(self.durations.total, 3),
            "requests": self.requests.requests,
            "throttled": self.requests.throttled,
            "concurrency": round(self.requests.concurrency, 2),
        }

    def durations_of(self, repository: str) -> RepositoryDurations:
        """Time spent on `repository` (zeros when the run did not measure it)."""
        return self.repository_durations.get(repository, RepositoryDurations())

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _repository_dict(self, repository: RepositoryPlan) -> dict[str, object]:
        return {
            "repository": repository.repository,
            "rule": repository.rule,
            "status": self.repository_status(repository).value,
            "blocked": repository.blocked,
            "error": None,
            "counts": self.counts(repository).to_dict(),
            "durations": self.durations_of(repository.repository).to_dict(),
            "actions": [_action_dict(r) for r in self.results(repository)],
            "kept": [_kept_dict(k) for k in repository.kept],
        }


def _action_dict(result: ActionOutcome) -> dict[str, object]:
    action = result.action
    return {
        "action": action.kind.value,
        "repository": action.repository,
        "digest": action.digest,
        "tags": list(action.tags),
        "reason": action.reason,
        "rule": action.rule,
        "sizeInBytes": action.size_in_bytes,
        "cascades": list(action.cascades),
        "after": list(action.after),
        "outcome": result.outcome.value,
        "detail": result.detail,
    }


def _kept_dict(kept: Kept) -> dict[str, object]:
    return {
        "repository": kept.repository,
        "digest": kept.digest,
        "tags": list(kept.tags),
        "reason": kept.reason,
        "rule": kept.rule,
    }


def _issue_dict(issue: RepositoryIssue, durations: RepositoryDurations) -> dict[str, object]:
    return {
        "repository": issue.repository,
        "rule": None,
        "status": issue.status.value,
        "blocked": None,
        "error": issue.detail,
        "transient": issue.transient,
        "counts": Counts().to_dict(),
        "durations": durations.to_dict(),
        "actions": [],
        "kept": [],
    }


# --- for people: the table and markdown -----------------------------------------------------
#
# Both show the same things: each repository's actions grouped by image (an index's children,
# the actions whose `after` names it, under it; its referrers, its `cascades`, under it too),
# kept manifests only when asked, then one summary table with a row per repository. At scale
# (tens of thousands of manifests) the kept rows are most of the plan, so they are opt-in.

_VERB: Mapping[ActionKind, str] = {
    ActionKind.DELETE_MANIFEST: "delete",
    ActionKind.LOCK_TAG: "lock",
}
_CASCADED = "deleted by ACR with its subject"


@dataclass(frozen=True, slots=True)
class _Row:
    """One line of a repository's actions; `depth` 1 is a child or referrer of the line above."""

    depth: int
    verb: str
    digest: str
    tags: str
    outcome: str
    reason: str


def render_table(report: RunReport, *, show_kept: bool = False) -> str:
    """The report as aligned text: each repository's actions grouped by image (and, with
    `show_kept`, what it keeps), then a summary table with a row per repository and the totals."""
    lines = [_heading(report), ""]
    for name, rows, note in _sections(report, show_kept):
        lines.append(name)
        if rows:
            lines += _aligned(_text_cells(rows, bool(report.outcomes)), indent="  ")
        lines += [f"  {line}" for line in note]
        lines.append("")
    header, body, total = _summary_table(report)
    lines += _aligned([header, *body, total], indent="", numeric=_numeric(header))
    lines += ["", _summary(report)]
    return "\n".join(lines) + "\n"


def render_markdown(report: RunReport, *, show_kept: bool = False) -> str:
    """The report as GitHub-flavoured markdown, for a CI job summary or a pull-request
    comment: the summary table first, then each repository's grouped actions, folded."""
    header, body, total = _summary_table(report)
    align = ["---:" if n else "---" for n in _numeric(header)]
    cells = [
        [h.lower() for h in header],
        align,
        *([f"`{row[0]}`", *map(_md, row[1:])] for row in body),
        [f"**{cell}**" if cell else "" for cell in total],
    ]
    lines = [f"### {_md(_heading(report))}", ""]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    first, requests = _summary(report).split("\n")
    lines += ["", _md(first), "", _md(requests), ""]
    for name, rows, note in _sections(report, show_kept):
        lines += [f"<details><summary>{_html(name)}</summary>", ""]
        lines += [f"> {_md(line)}" for line in note] + ([""] if note else [])
        if rows:
            lines += _markdown_rows(rows, bool(report.outcomes))
            lines.append("")
        lines += ["</details>", ""]
    return "\n".join(lines)


def _heading(report: RunReport) -> str:
    mode = "dry run, nothing changed" if report.dry_run else "applied"
    if report.cancelled:
        mode = "cancelled, nothing changed"
    return f"Registry {report.registry} ({mode}; as of {report.now.isoformat()})"


def _sections(report: RunReport, show_kept: bool) -> list[tuple[str, list[_Row], list[str]]]:
    """(title, rows, notes) for each repository with something to show, sorted by name."""
    sections: list[tuple[str, list[_Row], list[str]]] = []
    for repository in report.plan.repositories:
        rows = _grouped(report, repository)
        if show_kept:
            rows += [
                _Row(0, "keep", short_digest(k.digest), ", ".join(k.tags) or "-", "-", k.reason)
                for k in repository.kept
            ]
        if not rows and not repository.blocked:
            continue
        note = [f"BLOCKED: {repository.blocked}"] if repository.blocked else []
        note.append(_repository_summary(report, repository))
        sections.append((f"{repository.repository}  (rule {repository.rule})", rows, note))
    for issue in report.issues:
        label = {Status.GONE: "GONE", Status.NOT_COVERED: "NOT COVERED"}.get(issue.status, "FAILED")
        sections.append((f"{issue.repository}  {label}: {issue.detail}", [], []))
    return sorted(sections, key=lambda s: s[0])


def _grouped(report: RunReport, repository: RepositoryPlan) -> list[_Row]:
    """The repository's actions by image: deletions first, each with its children and its
    referrers under it, then locks, those of one manifest together; otherwise plan order."""
    results = list(report.results(repository))
    deleted = {r.action.digest for r in results if r.action.kind is ActionKind.DELETE_MANIFEST}
    children: dict[str, list[ActionOutcome]] = {}
    top: list[tuple[tuple[bool, int], ActionOutcome]] = []
    first_lock: dict[str, int] = {}
    for position, result in enumerate(results):
        action = result.action
        parent = next((d for d in action.after if d in deleted), None)
        if parent is not None:
            children.setdefault(parent, []).append(result)
            continue
        is_lock = action.kind is ActionKind.LOCK_TAG
        order = first_lock.setdefault(action.digest, position) if is_lock else position
        top.append(((is_lock, order), result))
    rows: list[_Row] = []
    for _, result in sorted(top, key=lambda t: t[0]):
        rows += _image_rows(result, children, 0)
    return rows


def _image_rows(
    result: ActionOutcome, children: Mapping[str, list[ActionOutcome]], depth: int
) -> list[_Row]:
    action = result.action
    reason = action.reason + (f" [{result.detail}]" if result.detail else "")
    tags = ", ".join(action.tags) or "-"
    verb, digest, outcome = _VERB[action.kind], short_digest(action.digest), result.outcome.value
    rows = [_Row(depth, verb, digest, tags, outcome, reason)]
    if action.kind is ActionKind.DELETE_MANIFEST:
        for child in children.get(action.digest, ()):
            rows += _image_rows(child, children, depth + 1)
    rows += [
        _Row(depth + 1, "referrer", short_digest(d), "-", "-", _CASCADED) for d in action.cascades
    ]
    return rows


def _text_cells(rows: list[_Row], with_outcome: bool) -> list[tuple[str, ...]]:
    """Header and rows; the outcome column only once something was applied."""
    header = ("ACTION", "DIGEST", "TAGS", *(("OUTCOME",) if with_outcome else ()), "REASON")
    cells = [
        (
            "  " * row.depth + row.verb,
            row.digest,
            row.tags,
            *((row.outcome,) if with_outcome else ()),
            row.reason,
        )
        for row in rows
    ]
    return [header, *cells]


def _markdown_rows(rows: list[_Row], with_outcome: bool) -> list[str]:
    header = ["action", "digest", "tags", *(["outcome"] if with_outcome else []), "reason"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        verb = "\u21b3 " * row.depth + row.verb
        tags = "" if row.tags == "-" else _md(row.tags)
        outcome = [row.outcome] if with_outcome else []
        cells = [verb, f"`{row.digest}`", tags, *outcome, _md(row.reason)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _summary_table(
    report: RunReport,
) -> tuple[tuple[str, ...], list[tuple[str, ...]], tuple[str, ...]]:
    """Header, a row per repository (planned or not), and the totals row. In a dry run the
    deletions a safety limit holds back count under BLOCKED, not DELETE."""
    applied = bool(report.outcomes)
    numbers: tuple[str, ...]
    if applied:
        numbers = ("KEPT", "DELETED", "LOCKED", "SKIPPED", "FAILED", "BYTES", "BLOCKED")
    else:
        numbers = ("KEPT", "DELETE", "LOCK", "BYTES", "BLOCKED")
    header = ("REPOSITORY", "RULE", *numbers, "STATUS")
    rows: list[tuple[str, ...]] = []
    for repository in report.plan.repositories:
        held = repository.deletions if repository.blocked else ()
        counts = _numbers(report.counts(repository), applied, held)
        status = report.repository_status(repository).value
        rows.append((repository.repository, repository.rule, *counts, status))
    for issue in report.issues:
        rows.append((issue.repository, "-", *("-" for _ in numbers), issue.status.value))
    rows.sort(key=lambda row: row[0])
    held = tuple(a for r in report.plan.repositories if r.blocked for a in r.deletions)
    total = _numbers(report.totals, applied, held)
    return header, rows, ("total", "", *total, report.status.value)


def _numbers(c: Counts, applied: bool, held: tuple[Action, ...]) -> tuple[str, ...]:
    blocked = str(len(held)) if held else "-"
    if applied:
        done = (c.deleted + c.already_gone, c.locked, c.skipped, c.failed)
        return (str(c.kept), *map(str, done), _bytes(c.bytes_deleted), blocked)
    size = c.bytes_planned - sum(a.size_in_bytes for a in held)
    deletions = str(c.planned_deletions - len(held))
    return (str(c.kept), deletions, str(c.planned_locks), _bytes(size), blocked)


def _numeric(header: tuple[str, ...]) -> list[bool]:
    return [cell not in ("REPOSITORY", "RULE", "STATUS") for cell in header]


def _aligned(
    rows: list[tuple[str, ...]], *, indent: str, numeric: list[bool] | None = None
) -> list[str]:
    """Rows as columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = numeric or [False] * len(widths)
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if right[i] else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        if not right[-1]:
            cells[-1] = row[-1]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#"})


def _md(text: str) -> str:
    """Text as markdown that renders as the same text (a regex keeps its backslashes)."""
    return text.translate(_MD_SPECIAL)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _repository_summary(report: RunReport, repository: RepositoryPlan) -> str:
    c, d = report.counts(repository), report.durations_of(repository.repository)
    if report.outcomes:
        done = (
            f"{c.deleted} deleted ({_bytes(c.bytes_deleted)}), {c.already_gone} already gone, "
            f"{c.locked} locked, {c.kept} kept, {c.skipped} skipped, {c.failed} failed"
        )
    elif repository.blocked:
        done = (
            f"{c.planned_deletions} deletion(s) held back ({_bytes(c.bytes_planned)}), "
            f"would lock {c.planned_locks}, {c.kept} kept"
        )
    else:
        done = (
            f"would delete {c.planned_deletions} ({_bytes(c.bytes_planned)}), "
            f"would lock {c.planned_locks}, {c.kept} kept"
        )
    timing = f"gather {d.gather:.1f} s, plan {d.plan:.1f} s"
    if report.outcomes:
        timing += f", apply {d.apply:.1f} s"
    return f"{done}; {timing}"


def _summary(report: RunReport) -> str:
    t = report.totals
    if report.outcomes:
        done = (
            f"{t.deleted} deleted ({_bytes(t.bytes_deleted)}), {t.already_gone} already gone, "
            f"{t.locked} locked, {t.kept} kept, {t.skipped} skipped, {t.failed} failed"
        )
    else:
        held = [r for r in report.plan.repositories if r.blocked]
        deletions = t.planned_deletions - sum(len(r.deletions) for r in held)
        size = t.bytes_planned - sum(a.size_in_bytes for r in held for a in r.deletions)
        done = (
            f"would delete {deletions} ({_bytes(size)}), would lock {t.planned_locks}, "
            f"{t.kept} kept"
        )
    held_back = [r for r in report.plan.repositories if r.blocked]
    blocked = len(held_back)
    withheld = sum(len(r.deletions) for r in held_back)
    failed = sum(1 for i in report.issues if i.status is Status.FAILED)
    extra = "".join(
        [
            f"; {blocked} repositor{'y' if blocked == 1 else 'ies'} blocked "
            f"({withheld} deletion(s) held back)"
            if blocked
            else "",
            f"; {failed} repositor{'y' if failed == 1 else 'ies'} failed" if failed else "",
        ]
    )
    d, r = report.durations, report.requests
    return (
        f"Summary: {done}{extra}. Status: {report.status.value}.\n"
        f"Requests: {r.requests} ({r.throttled} throttled, {r.retries} retried); "
        f"gather {d.gather:.1f} s, plan {d.plan:.1f} s, apply {d.apply:.1f} s"
    )


def _bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"

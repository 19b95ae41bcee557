"""`acr-cleanup diff` for people: a table for the terminal and markdown for a pull request.

Both show, for each repository the policies treat differently, every manifest the new policy
would newly delete or newly keep with its size and the new policy's reason, and with it what
the current policy (`--against`) decides; then a summary table of those repositories and the
totals. Repositories both policies treat alike are counted, not listed.
"""

from __future__ import annotations

from acr_core.run.diff import Change, PolicyDiff, RepositoryDiff
from acr_core.run.report import _aligned, _bytes, _md

_HEADER = ("CHANGE", "DIGEST", "TAGS", "SIZE", "REASON")
_SUMMARY_HEADER = ("REPOSITORY", "RULE", "AGAINST", "NEWLY DELETED", "BYTES", "NEWLY KEPT", "BYTES")


def render_diff_table(diff: PolicyDiff) -> str:
    lines = [_heading(diff), ""]
    for repository in diff.changed:
        lines.append(_title(repository))
        rows = _rows(repository)
        aligned = _aligned([_HEADER, *(row for row, _ in rows)], indent="  ")
        lines += aligned[:1] if rows else []
        for line, (_, was) in zip(aligned[1:], rows, strict=True):
            lines += [line, f"      against: {was}"]
        lines += [f"  {note}" for note in _blocked(repository)]
        lines.append("")
    if diff.changed:
        lines += [*_aligned(_summary_rows(diff), indent="", numeric=_numeric()), ""]
    lines += [f"{issue.repository}: {issue.status.value}: {issue.detail}" for issue in diff.issues]
    lines.append(_summary(diff))
    return "\n".join(lines) + "\n"


def render_diff_markdown(diff: PolicyDiff) -> str:
    lines = [f"### {_md(_heading(diff))}", "", _md(_summary(diff)), ""]
    if diff.changed:
        summary = _summary_rows(diff)
        lines += [_md_row(summary[0]), "|" + "|".join(_md_align()) + "|"]
        lines += [_md_row(row) for row in summary[1:]] + [""]
    for repository in diff.changed:
        lines += [f"<details><summary>{_md(_title(repository))}</summary>", ""]
        changes = _rows(repository)
        if changes:
            lines += [_md_row((*_HEADER, "AGAINST")), "|" + "---|" * (len(_HEADER) + 1)]
            lines += [_md_row((*row, was)) for row, was in changes]
        lines += ["", *(_md(note) for note in _blocked(repository)), "</details>", ""]
    for issue in diff.issues:
        lines.append(f"- {_md(issue.repository)}: {issue.status.value}: {_md(issue.detail)}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _heading(diff: PolicyDiff) -> str:
    return (
        f"Registry {diff.registry} (diff of {diff.policy} against {diff.against}, nothing "
        f"changed; as of {diff.now.isoformat()})"
    )


def _title(repository: RepositoryDiff) -> str:
    new, old = repository.rule, repository.against_rule
    rule = f"rule {new}" if new else "no rule"
    if old != new:
        rule += f"; against: {f'rule {old}' if old else 'no rule'}"
    return f"{repository.repository}  ({rule})"


def _rows(repository: RepositoryDiff) -> list[tuple[tuple[str, ...], str]]:
    """Each change as its cells, and what the other policy decides."""
    out = []
    for verb, changes in (
        ("newly delete", repository.newly_deleted),
        ("newly keep", repository.newly_kept),
        ("newly lock", repository.newly_locked),
        ("no longer lock", repository.no_longer_locked),
    ):
        out += [(_cells(verb, change), change.against_reason) for change in changes]
    return out


def _cells(verb: str, change: Change) -> tuple[str, ...]:
    tags = ", ".join(change.tags) or "-"
    size = "-" if verb.endswith("lock") else _bytes(change.size_in_bytes)
    return (verb, change.digest[:19], tags, size, change.reason)


def _blocked(repository: RepositoryDiff) -> list[str]:
    notes = []
    if repository.blocked:
        notes.append(f"BLOCKED under the new policy: {repository.blocked}")
    if repository.against_blocked:
        notes.append(f"BLOCKED under the current policy: {repository.against_blocked}")
    return notes


def _summary_rows(diff: PolicyDiff) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [_SUMMARY_HEADER]
    for r in diff.changed:
        rows.append(
            (
                r.repository,
                r.rule or "-",
                r.against_rule or "-",
                str(len(r.newly_deleted)),
                _bytes(sum(c.size_in_bytes for c in r.newly_deleted)),
                str(len(r.newly_kept)),
                _bytes(sum(c.size_in_bytes for c in r.newly_kept)),
            )
        )
    t = diff.totals()
    rows.append(
        (
            "total",
            "",
            "",
            str(t["newlyDeleted"]),
            _bytes(t["bytesNewlyDeleted"]),
            str(t["newlyKept"]),
            _bytes(t["bytesNewlyKept"]),
        )
    )
    return rows


def _numeric() -> list[bool]:
    return [i >= 3 for i in range(len(_SUMMARY_HEADER))]


def _md_align() -> list[str]:
    return ["---:" if right else "---" for right in _numeric()]


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(_md(cell) for cell in cells) + " |"


def _summary(diff: PolicyDiff) -> str:
    t = diff.totals()
    failed = t["failedRepositories"]
    text = (
        f"Summary: {diff.policy} would newly delete {t['newlyDeleted']} manifest(s) "
        f"({_bytes(t['bytesNewlyDeleted'])}) and newly keep {t['newlyKept']} "
        f"({_bytes(t['bytesNewlyKept'])}) compared with {diff.against}, in "
        f"{t['changedRepositories']} of {t['repositories']} repositories compared"
    )
    if t["newlyLocked"] or t["noLongerLocked"]:
        text += (
            f"; it would lock {t['newlyLocked']} tag(s) the other does not, and not lock "
            f"{t['noLongerLocked']} it does"
        )
    if failed:
        text += f"; {failed} repositor{'y' if failed == 1 else 'ies'} could not be read"
    return text + "."

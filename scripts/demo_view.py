"""How `make demo` looks in a terminal: registry snapshots, run lines, and the before/after.

Colour only on a terminal, and never with NO_COLOR set (no-color.org).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TextIO

from acr_core.planning.plan import Action, ActionKind, Kept
from acr_core.run.executor import Outcome
from acr_core.run.report import RunReport
from acr_emulator import Emulator

_DIGEST = re.compile(r"sha256:[0-9a-f]{6,}")
_TAG_NAME = re.compile(r"'[^']*'")


# --- what the registry holds --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepoView:
    images: int  # what a user pushed: not index children, not referrers
    manifests: int
    tags: frozenset[str]
    locked: frozenset[str]
    size: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    repositories: dict[str, RepoView]

    @classmethod
    def of(cls, emulator: Emulator) -> Snapshot:
        views = {}
        with emulator.registry.lock:
            for name, repo in sorted(emulator.registry.repositories.items()):
                children = {c.digest for m in repo.manifests.values() for c in m.children}
                images = [
                    m for d, m in repo.manifests.items() if d not in children and m.subject is None
                ]
                views[name] = RepoView(
                    images=len(images),
                    manifests=len(repo.manifests),
                    tags=frozenset(repo.tags),
                    locked=frozenset(
                        t.name for t in repo.tags.values() if not t.attributes.deletable
                    ),
                    size=sum(m.image_size for m in repo.manifests.values()),
                )  # fmt: skip
        return cls(views)

    def total(self, attribute: str) -> int:
        return sum(
            len(v) if isinstance(v := getattr(r, attribute), frozenset) else int(v)
            for r in self.repositories.values()
        )


# --- what the runs did --------------------------------------------------------------------


@dataclass
class Tally:
    """Every run's applied actions, and each repository's latest plan (its kept list)."""

    deleted: dict[str, list[Action]] = field(default_factory=lambda: defaultdict(list))
    locked: dict[str, list[Action]] = field(default_factory=lambda: defaultdict(list))
    kept: dict[str, tuple[Kept, ...]] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    requests: int = 0
    throttled: int = 0

    def add(self, report: RunReport) -> None:
        self.runs += 1
        self.requests += report.requests.requests
        self.throttled += report.requests.throttled
        for plan in report.plan.repositories:
            self.kept[plan.repository] = plan.kept
            self.rules[plan.repository] = plan.rule
            for result in report.results(plan):
                if result.outcome is not Outcome.APPLIED:
                    continue
                target = self.locked if result.action.kind is ActionKind.LOCK_TAG else self.deleted
                target[plan.repository].append(result.action)


# --- the screen ---------------------------------------------------------------------------


class Screen:
    def __init__(self, out: TextIO, *, colour: bool, width: int) -> None:
        self.out = out
        self.colour = colour
        self.width = width

    @classmethod
    def for_terminal(cls, out: TextIO) -> Screen:
        colour = out.isatty() and "NO_COLOR" not in os.environ
        width = max(80, min(120, shutil.get_terminal_size((100, 24)).columns))
        return cls(out, colour=colour, width=width)

    def _c(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def bold(self, text: str) -> str:
        return self._c("1", text)

    def dim(self, text: str) -> str:
        return self._c("2", text)

    def red(self, text: str) -> str:
        return self._c("31", text)

    def green(self, text: str) -> str:
        return self._c("32", text)

    def yellow(self, text: str) -> str:
        return self._c("33", text)

    def cyan(self, text: str) -> str:
        return self._c("36", text)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def clip(self, text: str, room: int) -> str:
        return text if len(text) <= room else text[: max(room - 1, 1)] + "…"

    # -- framing

    def title(self) -> None:
        rule = "━" * self.width
        self.print(self.cyan(rule))
        self.print(
            self.bold("  acr-cleanup demo") + "  the Azure Function, end to end, on a local ACR"
        )
        self.print(self.cyan(rule))

    def intro(self, url: str, resource_id: str) -> None:
        self.print(f"  registry   {url}  {self.dim('(acr_emulator, loopback only)')}")
        self.print(f"  resource   {self.dim(resource_id)}")
        self.print(
            f"  function   {self.dim('function_app.py, called as the Functions worker calls it')}"
        )

    def section(self, title: str) -> None:
        self.print()
        self.print(self.bold(self.cyan(f"▌ {title}")))

    def step(self, text: str) -> None:
        self.print()
        self.print(f"  {self.bold('$')} {text}")

    def note(self, text: str, indent: int = 4) -> None:
        for line in textwrap.wrap(text, self.width - indent):
            self.print(" " * indent + self.dim(line))

    # -- the registry and the policy

    def registry(self, title: str, snapshot: Snapshot) -> None:
        self.section(title)
        columns = ("images", 8), ("manifests", 11), ("tags", 6), ("locked", 8), ("size", 11)
        header = f"  {'repository':<16}" + "".join(f"{title:>{w}}" for title, w in columns)
        self.print(self.dim(header))
        for name, view in snapshot.repositories.items():
            self.print(
                f"  {name:<16}{view.images:>8}{view.manifests:>11}{len(view.tags):>6}"
                f"{len(view.locked):>8}{_bytes(view.size):>11}"
            )
        self.note("manifests include index children (platforms, attestations) and referrers "
                  "(signatures, SBOMs)")  # fmt: skip

    def policy(self, policy: dict[str, Any]) -> None:
        self.section("The policy (CLEANUP_POLICY)")
        for rule in policy["rules"]:
            name = self.bold(f"{rule['name']:<8}")
            patterns = ", ".join(rule["repositories"])
            self.print(f"  {name} {patterns}  {self.dim(rule.get('description', ''))}")
            parts = [f"{k}={json.dumps(v)}" for k, v in rule.items()
                     if k not in ("name", "repositories", "description")]  # fmt: skip
            self.note(" ".join(parts), indent=11)
        self.note(
            "No rule covers base/**: it is never touched. "
            "Dry run is off for the demo (deployed default: CLEANUP_DRY_RUN=true)."
        )

    # -- live lines

    def event_line(self, event: dict[str, Any]) -> None:
        target = event.get("data", {}).get("target", {})
        tag = target.get("tag")
        what = f":{tag}" if tag else f"@{_short(target.get('digest', '?'))} (by digest)"
        self.print(f"    {self.cyan('event')}  {event.get('eventType', '?').split('.')[-1]}  "
                   f"{target.get('repository', '?')}{what}")  # fmt: skip

    def run_line(self, trigger: str, report: RunReport) -> None:
        totals = report.totals
        for plan in report.plan.repositories:
            parts = [self.red(f"deleted {totals.deleted}") if totals.deleted else "deleted 0"]
            if totals.locked:
                parts.append(self.yellow(f"locked {totals.locked}"))
            parts.append(self.green(f"kept {totals.kept}"))
            stats = f"{report.durations.total:.2f} s, {report.requests.requests} requests"
            self.print(f"    {self.green('run')}    {trigger:<5}  {plan.repository:<15} "
                       f"{', '.join(parts)}  {self.dim(stats)}")  # fmt: skip

    def log_line(self, level: str, message: str) -> None:
        colour = self.yellow if level == "WARNING" else self.dim
        # Ids and ARM paths are full of hyphens: break them only where they must break.
        lines = textwrap.wrap(message, self.width - 13, break_on_hyphens=False) or [""]
        self.print(f"    {colour(f'{level.lower():<9}')}{self.dim(lines[0])}")
        for line in lines[1:]:
            self.print(" " * 13 + self.dim(line))

    # -- the before/after

    def changes(
        self,
        before: Snapshot,
        after: Snapshot,
        tally: Tally,
        ours: tuple[str, ...],
        generated: tuple[str, ...],
    ) -> None:
        header = f"  {'repository':<16}{'images':>14}{'manifests':>14}{'tags':>11}{'size':>22}"
        self.print(self.dim(header))
        for name, old in before.repositories.items():
            new = after.repositories.get(name) or RepoView(0, 0, frozenset(), frozenset(), 0)
            self.print(
                f"  {name:<16}{_arrow(old.images, new.images):>14}"
                f"{_arrow(old.manifests, new.manifests):>14}"
                f"{_arrow(len(old.tags), len(new.tags)):>11}"
                f"{_bytes(old.size) + ' → ' + _bytes(new.size):>22}"
            )
        for name in ours:
            self._repository_story(name, tally)
        if generated:
            self._generated_story(generated, tally)

    def _repository_story(self, name: str, tally: Tally) -> None:
        self.print()
        rule = tally.rules.get(name)
        self.print(
            f"  {self.bold(name)}  " + self.dim(f"rule {rule}" if rule else "no rule: untouched")
        )
        if rule is None:
            return
        for reason, actions in _grouped(tally.deleted.get(name, [])):
            self._item(self.red("✗ deleted"), len(actions), reason, [_label(a) for a in actions])
        locks = tally.locked.get(name, [])
        if locks:
            tags = [tag for action in locks for tag in action.tags]
            reason = "tag matches lockTags: writeEnabled and deleteEnabled now off"
            self._item(self.yellow("■ locked "), len(locks), reason, tags)
        for reason, kept in _grouped_kept(tally.kept.get(name, ())):
            self._item(self.green("✓ kept   "), len(kept), reason, [_kept_label(k) for k in kept])

    def _generated_story(self, names: tuple[str, ...], tally: Tally) -> None:
        self.print()
        rules = sorted({tally.rules[n] for n in names if n in tally.rules})
        title = f"{len(names)} generated repositories"
        self.print(f"  {self.bold(title)}  " + self.dim(f"rule {', '.join(rules)}"))
        self.note(", ".join(names))
        deleted = [a for n in names for a in tally.deleted.get(n, [])]
        locked = [a for n in names for a in tally.locked.get(n, [])]
        kept = tuple(k for n in names for k in tally.kept.get(n, ()))
        for reason, actions in _grouped(deleted):
            self._item(self.red("✗ deleted"), len(actions), reason, [])
        if locked:
            self._item(self.yellow("■ locked "), len(locked), "tag matches lockTags", [])
        for reason, items in _grouped_kept(kept, mask_tags=True):
            self._item(self.green("✓ kept   "), len(items), reason, [])

    def _item(self, verb: str, count: int, reason: str, labels: list[str]) -> None:
        named = sorted((label for label in labels if not label.startswith("sha256:")), key=_natural)
        shown = ", ".join(named[:6]) + (f" +{len(named) - 6}" if len(named) > 6 else "")
        head = f"    {verb} {count:>2}  "
        indent = len(head) - (len(verb) - 9)  # the head's width on screen, colour codes aside
        lines = textwrap.wrap(reason, self.width - indent, break_on_hyphens=False) or [""]
        self.print(head + lines[0])
        for line in lines[1:]:  # the whole reason: it is the point of the demo
            self.print(" " * indent + line)
        if shown:
            self.print(" " * 16 + self.dim(self.clip(shown, self.width - 16)))

    def summary_line(self, line: str | None) -> None:
        if not line:
            return
        self.section("What Application Insights receives: one line per run (the first one here)")
        self.note(line, indent=2)
        self.note("Query these with the KQL in docs/operations.md.", indent=2)

    def closing(
        self, before: Snapshot, after: Snapshot, tally: Tally, pushed: int, seconds: float
    ) -> None:
        deleted = sum(len(a) for a in tally.deleted.values())
        freed = sum(a.size_in_bytes for actions in tally.deleted.values() for a in actions)
        locked = sum(len(a) for a in tally.locked.values())
        kept, had = after.total("images"), before.total("images")
        rule = "━" * self.width
        self.print()
        self.print(self.cyan(rule))
        self.print(
            "  "
            + self.red(f"{deleted} manifests deleted")
            + f" ({_bytes(freed)}), "
            + self.yellow(f"{locked} release tags locked")
            + ", "
            + self.green(f"{kept} images left")
        )
        self.print(
            f"  ({had} before, {pushed} pushed during the demo; "
            "index children, signatures and SBOMs are not counted as images)"
        )  # fmt: skip
        self.print(
            f"  {tally.runs} runs, {tally.requests} registry requests, "
            f"{tally.throttled} throttled; "
            f"done in {seconds:.1f} s, and nothing is left running"
        )
        self.print(self.cyan(rule))


def _grouped(actions: list[Action]) -> list[tuple[str, list[Action]]]:
    groups: dict[str, list[Action]] = defaultdict(list)
    for action in actions:
        groups[_DIGEST.sub("…", action.reason)].append(action)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def _grouped_kept(
    kept: tuple[Kept, ...], *, mask_tags: bool = False
) -> list[tuple[str, list[Kept]]]:
    groups: dict[str, list[Kept]] = defaultdict(list)
    for item in kept:
        first = item.reason.split("; ")[0]  # the deciding reason; the rest repeat it in kind
        reason = _DIGEST.sub("…", first)
        groups[_TAG_NAME.sub("'…'", reason) if mask_tags else reason].append(item)
    return sorted(groups.items(), key=lambda entry: (-len(entry[1]), entry[0]))


def _label(action: Action) -> str:
    return ", ".join(action.tags) if action.tags else action.digest


def _kept_label(kept: Kept) -> str:
    return ", ".join(kept.tags) if kept.tags else kept.digest


def _natural(text: str) -> list[Any]:
    """Sort key that puts nightly-2 before nightly-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 20 else digest


def _arrow(old: int, new: int) -> str:
    return f"{old} → {new}"


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"

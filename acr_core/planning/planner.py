"""The planner: from a snapshot of each repository, a policy and a time, the plan. Pure.

No I/O, no clock, no logging: the same input always gives the same plan, in the same order.
The semantics are written out for users in docs/policy.md; in short, per repository:

1. The graph. Decisions are per digest (deleting a manifest deletes all its tags; acr-facts.md
   section 3). A *referrer* has a `subject` (known from `RepositorySnapshot.contents`); an
   *attached artifact* carries only tags of the OCI referrers tag schema (`sha256-<hex>` with an
   optional suffix such as `.sig`) and belongs to the manifest that tag names; a *child* is
   listed by an index in the repository. Everything else is an *image*. Children and attached
   artifacts are *anchored*: they live while any parent index (or their subject) lives.
2. Protection, decided per manifest before anything else: locks (manifest, any of its tags, the
   repository), `keepTags`/`lockTags` matches, younger than `minAge`, missing timestamps, the
   run's `protect` set, a tag the tag listing does not confirm (its lock is unknown). A protected
   referrer protects its subject, because ACR deletes referrers with their subject.
3. Images are judged: protected ones are kept; tagged ones compete for `keepLatest`; untagged
   ones go when older than `untagged.olderThan`. A deletion takes down what it anchors: its
   referrers go with it (ACR cascades them: `Action.cascades`), and each child or attached
   artifact left with no living anchor is deleted after it (`Action.after`) unless protected, or,
   when it carries tags of its own, is judged as an image in the same run. The `keepLatest`
   competition is a streaming top-N, so newly orphaned tagged children are ranked with the rest
   and one run reaches the state the next run would keep.
4. Guards: a manifest that would be deleted but whose content the gatherer did not read
   (`needs_inspection`) is kept, and so is everything in a repository where an index's children
   are unknown.
5. Safety limits mark the repository's plan `blocked` (the executor applies none of its
   deletions), and `lockTags` adds a lock for each matching tag not already locked both ways.
"""

from __future__ import annotations

import gc
import heapq
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from acr_core.models import (
    DOCKER_MANIFEST,
    IMAGE_CONFIG_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    OCI_MANIFEST,
    ManifestContent,
    ManifestProperties,
    RepositorySnapshot,
    TagProperties,
)
from acr_core.planning.patterns import format_duration
from acr_core.planning.plan import Action, ActionKind, Kept, Plan, RepositoryPlan
from acr_core.planning.policy import Policy, Rule, Safety

_PARENT_DELETED = "its last parent index is deleted"
_SUBJECT_DELETED = "its subject is deleted"
# OCI distribution spec v1.1, "Referrers Tag Schema": `<alg>-<ref>`, the subject digest with `:`
# replaced by `-`; cosign's legacy scheme appends `.sig`, `.att` or `.sbom` to the same form.
_TAG_SCHEMA = re.compile(r"sha256-([0-9a-f]{64})(?:\.[A-Za-z0-9_-]+)?")


def needs_inspection(manifest: ManifestProperties) -> bool:
    """Whether the gatherer must read this manifest raw before the planner may delete it.

    The listing tells neither an index's children for sure nor whether a manifest has a
    `subject`; a tagged, plain image manifest (OCI or Docker v2 with an image config) is the
    only kind whose role the listing settles.
    """
    if manifest.is_index or not manifest.tags:
        return True
    if manifest.media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        return True
    return manifest.config_media_type not in IMAGE_CONFIG_MEDIA_TYPES


def attached_subject(tag: str) -> str | None:
    """The subject digest a referrers-tag-schema tag names (`sha256-<hex>[.sig]`), if it is one."""
    match = _TAG_SCHEMA.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match else None


def plan(
    snapshots: Sequence[RepositorySnapshot],
    policy: Policy,
    now: datetime,
    *,
    protect: Mapping[str, frozenset[str]] | None = None,
) -> Plan:
    """Decide, for every repository the policy covers, what to delete, lock and keep, and why.

    Repositories no rule matches are left out of the plan: they are never touched.
    `protect` maps a repository to digests that must be kept whatever the policy says.
    """
    if now.tzinfo is None:
        # ACR's timestamps are UTC; comparing them with a naive time would raise mid-plan.
        raise ValueError("plan() needs a timezone-aware `now`, such as datetime.now(UTC)")
    protect = protect or {}
    plans: list[RepositoryPlan] = []
    # Planning allocates several objects per manifest and makes no reference cycles, so CPython's
    # cycle collector would only re-scan the whole snapshot, again and again (a third of the time
    # at 100,000 manifests, measured). It is paused for the call and restored as it was.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for snapshot in sorted(snapshots, key=lambda s: s.name):
            rule = policy.rule_for(snapshot.name)
            if rule is None:
                continue
            repository_protect = protect.get(snapshot.name, frozenset())
            planner = _RepositoryPlanner(snapshot, rule, now, repository_protect)
            plans.append(planner.run(policy.safety))
    finally:
        if collecting:
            gc.enable()
    return Plan(tuple(plans))


@dataclass(slots=True)
class _Graph:
    """The repository as a graph of digests, built once in linear time."""

    manifests: dict[str, ManifestProperties]
    tags: dict[str, tuple[str, ...]]
    tag_properties: dict[str, TagProperties]
    # When each manifest last changed, counting its tags: the later of the manifest's own
    # lastUpdateTime and those of the tags on it. ACR documents that a re-pointed tag's
    # lastUpdateTime moves (acr-facts.md 1.4) but not that its manifest's does, so an old image
    # just re-tagged `prod` (a rollback) must count as new for minAge and keepLatest.
    updated: dict[str, datetime | None] = field(default_factory=dict)
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)
    parents: dict[str, list[str]] = field(default_factory=dict)
    subject: dict[str, str] = field(default_factory=dict)
    referrers: dict[str, list[str]] = field(default_factory=dict)
    attached_to: dict[str, str] = field(default_factory=dict)
    attached: dict[str, list[str]] = field(default_factory=dict)
    unknown_children: list[str] = field(default_factory=list)
    attachments: set[str] = field(default_factory=set)  # tagged only with tag-schema tags
    unread: set[str] = field(default_factory=set)  # needs_inspection, but not in contents
    incomplete: str | None = None  # why the listings may miss manifests or tags

    @classmethod
    def build(cls, snapshot: RepositorySnapshot) -> _Graph:
        manifests = {m.digest: m for m in snapshot.manifests}
        tags = {
            d: m.tags if len(m.tags) < 2 else tuple(sorted(set(m.tags)))
            for d, m in manifests.items()
        }
        for tag in snapshot.tags:
            # A tag the manifest listing does not show (it moved while we read) still counts.
            known = tags.get(tag.digest)
            if known is not None and tag.name not in known:
                tags[tag.digest] = tuple(sorted((*known, tag.name)))
        graph = cls(
            manifests=manifests,
            tags=tags,
            tag_properties={t.name: t for t in snapshot.tags},
        )
        graph.updated = _updated_with_tags(manifests, snapshot.tags)
        for digest, manifest in manifests.items():
            graph.add_edges(manifest, snapshot.contents.get(digest))
        graph.unknown_children.sort()
        graph.incomplete = _missing_from_listings(snapshot, manifests)
        return graph

    def add_edges(self, manifest: ManifestProperties, content: ManifestContent | None) -> None:
        digest, media_type = manifest.digest, manifest.media_type
        if content is None:
            if media_type in INDEX_MEDIA_TYPES:
                self.add_children(digest, {r.digest for r in manifest.references}, known=False)
            elif media_type is None:
                self.unknown_children.append(digest)  # it may be an index: children unknown
            if needs_inspection(manifest):
                self.unread.add(digest)
        else:
            subject = content.subject
            if subject is not None:
                self.subject[digest] = subject
                if subject in self.manifests and subject != digest:
                    self.referrers.setdefault(subject, []).append(digest)
            if media_type in INDEX_MEDIA_TYPES or content.media_type in INDEX_MEDIA_TYPES:
                listed = {r.digest for r in manifest.references}
                listed.update(c.digest for c in content.children)
                self.add_children(digest, listed, known=True)
        self.add_attachment(digest)

    def add_attachment(self, digest: str) -> None:
        """Anchor a manifest tagged only with referrers-tag-schema tags to the subject named."""
        tags = self.tags[digest]
        if not tags or not tags[0].startswith("sha256-"):
            return
        if not all(t.startswith("sha256-") for t in tags):
            return
        subjects = {attached_subject(t) for t in tags}
        if None in subjects:
            return
        self.attachments.add(digest)
        if digest not in self.subject:
            # Tag-schema tags naming several subjects: anchored to the first in digest order.
            named = sorted(s for s in subjects if s is not None)[0]
            if named in self.manifests and named != digest:
                self.attached_to[digest] = named
                self.attached.setdefault(named, []).append(digest)

    def add_children(self, digest: str, listed: set[str], *, known: bool) -> None:
        if not listed and not known:
            self.unknown_children.append(digest)
        manifests = self.manifests
        present = tuple(sorted(c for c in listed if c in manifests and c != digest))
        self.children[digest] = present
        for child in present:
            self.parents.setdefault(child, []).append(digest)

    def subject_chain(self, digest: str) -> list[str]:
        """The subject, its subject, ...: every deletion that cascades to `digest`."""
        chain: list[str] = []
        current = self.subject.get(digest)
        while current is not None and current in self.manifests and current not in chain:
            chain.append(current)
            current = self.subject.get(current)
        return chain


class _RepositoryPlanner:
    """Plans one repository; see the module docstring for the steps."""

    def __init__(
        self, snapshot: RepositorySnapshot, rule: Rule, now: datetime, protect: frozenset[str]
    ) -> None:
        self.snapshot = snapshot
        self.rule = rule
        self.now = now
        self.protect = protect
        self.graph = _Graph.build(snapshot)
        self.protected: dict[str, str] = {}
        self.kept_reason: dict[str, str] = {}
        self.deleted: dict[str, tuple[str, tuple[str, ...]]] = {}  # digest -> (reason, after)
        self.cascades: dict[str, list[str]] = {}
        self.removed_by: dict[str, str] = {}
        self.anchors_left: dict[str, int] = {}
        self.kept_heap: list[tuple[int, str]] = []
        self.rank: dict[str, int] = {}
        self.queue: deque[str] = deque()
        self.pinned_by: dict[str, set[str]] = {}  # subject -> indexes listing one of its referrers
        self.pins_of: dict[str, list[str]] = {}  # index -> subjects it pins
        self.removed_anchor: set[str] = set()  # lost a parent, subject or pin this run
        self.heap_members: frozenset[str] = frozenset()
        self.digests: list[str] = []
        older = format_duration(rule.untagged_older_than or timedelta(0))
        self.untagged_reasons = [
            (
                f"{what}, not updated for more than {older}",
                f"{what}, updated within untagged.olderThan ({older})",
                f"{what}, and the rule has no untagged.olderThan",
            )
            for what in ("untagged", "its subject is gone and it")
        ]
        self.beyond_keep_latest = (
            f"older than the {rule.keep_latest} newest unprotected tagged images (keepLatest)"
        )

    def run(self, safety: Safety) -> RepositoryPlan:
        self.protect_statically()
        self.pin_subjects()
        self.rank_by_age()
        graph = self.graph
        digests = self.digests = sorted(graph.manifests)
        for digest in digests:
            anchors = len(graph.parents.get(digest, ()))
            anchors += 1 if digest in graph.attached_to else 0
            anchors += len(self.pinned_by.get(digest, ()))
            self.anchors_left[digest] = anchors
        roots = [d for d in digests if self.anchors_left[d] == 0]
        for digest in roots:
            if digest not in graph.subject:
                self.judge(digest)
            self.drain()
        return self.result(safety)

    # --- step 2: protection -------------------------------------------------------------

    def protect_statically(self) -> None:
        graph, repo = self.graph, self.snapshot.attributes
        repo_locked = not (repo.delete_enabled and repo.write_enabled)
        young_after = self.now - self.rule.min_age
        for digest, manifest in graph.manifests.items():
            attributes, updated = manifest.attributes, graph.updated[digest]
            if (
                # The common case, decided without building a list of reasons.
                not repo_locked
                and attributes.delete_enabled
                and attributes.write_enabled
                and not graph.tags[digest]
                and updated is not None
                and manifest.created_on is not None
                and updated <= young_after
                and digest not in self.protect
            ):
                continue
            reasons = self.protection_reasons(manifest)
            if reasons:
                self.protected[digest] = "; ".join(reasons)
        for digest in sorted(graph.subject):
            chain = graph.subject_chain(digest)
            why = self.protected.get(digest)
            if why is None:
                continue
            for subject in chain:
                self.protected.setdefault(
                    subject, f"its referrer {_short(digest)} must be kept ({why})"
                )

    def protection_reasons(self, manifest: ManifestProperties) -> list[str]:
        rule, reasons = self.rule, []
        repo = self.snapshot.attributes
        if not repo.deletable:
            reasons.append(f"the repository is locked ({_lock_text(repo.delete_enabled)})")
        if not manifest.attributes.deletable:
            reasons.append(
                f"the manifest is locked ({_lock_text(manifest.attributes.delete_enabled)})"
            )
        for tag in self.graph.tags[manifest.digest]:
            props = self.graph.tag_properties.get(tag)
            if props is None or props.digest != manifest.digest:
                reasons.append(
                    f"tag {tag!r} is missing from the tag listing or points elsewhere there "
                    "(it changed while the snapshot was read), so its lock is unknown"
                )
            elif not props.attributes.deletable:
                reasons.append(
                    f"tag {tag!r} is locked ({_lock_text(props.attributes.delete_enabled)})"
                )
            for field_name, patterns in (
                ("keepTags", rule.keep_tags),
                ("lockTags", rule.lock_tags),
            ):
                pattern = patterns.first_match(tag)
                if pattern is not None:
                    reasons.append(f"tag {tag!r} matches {field_name} pattern {pattern!r}")
        updated = self.graph.updated[manifest.digest]
        if manifest.created_on is None or updated is None:
            reasons.append("its createdTime or lastUpdateTime is missing")
        elif self.now - updated < rule.min_age:
            reasons.append(
                f"updated or tagged less than minAge ({format_duration(rule.min_age)}) ago"
            )
        if manifest.digest in self.protect:
            reasons.append("this run was triggered for it (protected by the caller)")
        return reasons

    def pin_subjects(self) -> None:
        """A referrer that an index also lists pins its subjects while that index lives.

        Deleting a subject removes its referrers (ACR cascades them), so a subject must wait
        for every index listing one of its referrers, unless that index goes with the subject
        anyway (the referrers tag-schema fallback index is an attachment of the same subject).
        """
        graph = self.graph
        for referrer in sorted(graph.subject):
            parents = graph.parents.get(referrer)
            if not parents:
                continue
            chain = graph.subject_chain(referrer)
            for parent in parents:
                removed_with = set(graph.subject_chain(parent))
                attached = graph.attached_to.get(parent)
                if attached is not None:
                    removed_with.add(attached)
                    removed_with.update(graph.subject_chain(attached))
                for subject in chain:
                    if subject not in removed_with:
                        self.pinned_by.setdefault(subject, set()).add(parent)
                        self.pins_of.setdefault(parent, []).append(subject)

    def rank_by_age(self) -> None:
        # Newest lastUpdateTime first, then newest createdTime, then digest; manifests with a
        # missing timestamp are protected and never ranked.
        # Only tagged manifests ever compete for keepLatest.
        tags, updated = self.graph.tags, self.graph.updated
        dated = [
            m
            for m in self.graph.manifests.values()
            if tags[m.digest] and updated[m.digest] is not None and m.created_on is not None
        ]
        dated.sort(key=lambda m: m.digest)
        dated.sort(key=lambda m: (updated[m.digest], m.created_on), reverse=True)
        self.rank = {m.digest: position for position, m in enumerate(dated)}

    # --- step 3: judging ----------------------------------------------------------------

    def judge(self, digest: str) -> None:
        """Decide a manifest nothing (or nothing any more) anchors: a root image, or a dependent
        whose last parent index or subject was just deleted."""
        graph = self.graph
        if digest in graph.subject:
            return  # referrers go only with their subject
        if digest in self.protected:
            return
        orphaned = digest in graph.parents or digest in graph.attached_to
        after = self.after_for(digest) if digest in self.removed_anchor else ()
        if graph.tags[digest] and digest not in graph.attachments:
            self.compete(digest, after)
        elif orphaned:
            reason = _SUBJECT_DELETED if digest in graph.attached_to else _PARENT_DELETED
            self.delete(digest, reason, after)
        else:
            self.judge_untagged(digest)

    def judge_untagged(self, digest: str) -> None:
        """Untagged images, and attachments whose subject is gone, go after untagged.olderThan."""
        what = 0 if not self.graph.tags[digest] else 1
        older_than = self.rule.untagged_older_than
        if older_than is None:
            self.kept_reason[digest] = self.untagged_reasons[what][2]
            return
        updated = self.graph.updated[digest]
        assert updated is not None  # missing timestamps are protected
        if updated < self.now - older_than:
            self.delete(digest, self.untagged_reasons[what][0])
        else:
            self.kept_reason[digest] = self.untagged_reasons[what][1]

    def compete(self, digest: str, after: tuple[str, ...]) -> None:
        """Streaming top-N by rank: the heap holds the N best so far, worst on top."""
        keep_latest = self.rule.keep_latest
        if keep_latest is None:
            self.kept_reason[digest] = "tagged, and the rule has no keepLatest"
            return
        entry = (-self.rank[digest], digest)
        if len(self.kept_heap) < keep_latest:
            heapq.heappush(self.kept_heap, entry)
            return
        if self.kept_heap and entry > self.kept_heap[0]:
            _, loser = heapq.heapreplace(self.kept_heap, entry)
            loser_after = self.after_for(loser) if loser in self.removed_anchor else ()
            self.delete(loser, self.beyond_keep_latest, loser_after)
        else:
            self.delete(digest, self.beyond_keep_latest, after)

    def after_for(self, digest: str) -> tuple[str, ...]:
        removed_by = self.removed_by
        anchors = self.graph.parents.get(digest, ())
        subject = self.graph.attached_to.get(digest)
        if subject is not None:
            anchors = (*anchors, subject)
        if digest in self.pinned_by:
            anchors = (*anchors, *sorted(self.pinned_by[digest]))
        if len(anchors) == 1:
            return (removed_by[anchors[0]],) if anchors[0] in removed_by else ()
        return tuple(sorted({removed_by[a] for a in anchors if a in removed_by}))

    def delete(self, digest: str, reason: str, after: tuple[str, ...] = ()) -> None:
        if digest in self.graph.unread:
            self.kept_reason[digest] = (
                f"would be deleted ({reason}), but its manifest was not read, so its "
                "children and subject are unknown"
            )
            return
        if self.graph.unknown_children:
            self.kept_reason[digest] = (
                f"would be deleted ({reason}), but index {_short(self.graph.unknown_children[0])} "
                "was not read, so which manifests are its children is unknown"
            )
            return
        if self.graph.incomplete is not None:
            self.kept_reason[digest] = (
                f"would be deleted ({reason}), but {self.graph.incomplete}; nothing in this "
                "repository is deleted until a run sees all of it"
            )
            return
        self.deleted[digest] = (reason, after)
        self.removed_by[digest] = digest
        gone = [digest, *self.cascade(digest)] if digest in self.graph.referrers else [digest]
        anchors_left, children, attached = (
            self.anchors_left,
            self.graph.children,
            self.graph.attached,
        )
        for item in gone:
            dependents = children.get(item, ())
            if item in attached:
                dependents = (*dependents, *attached[item])
            if item in self.pins_of:
                dependents = (*dependents, *self.pins_of[item])
            for dependent in dependents:
                self.removed_anchor.add(dependent)
                anchors_left[dependent] -= 1
                if anchors_left[dependent] == 0:
                    self.queue.append(dependent)

    def cascade(self, digest: str) -> list[str]:
        """Referrers ACR removes with `digest`, through referrers of referrers."""
        found: list[str] = []
        stack = list(self.graph.referrers.get(digest, ()))
        while stack:
            referrer = stack.pop()
            if referrer in self.removed_by:
                continue
            self.removed_by[referrer] = digest
            found.append(referrer)
            stack.extend(self.graph.referrers.get(referrer, ()))
        if found:
            self.cascades[digest] = sorted(found)
        return found

    def drain(self) -> None:
        while self.queue:
            self.judge(self.queue.popleft())

    # --- step 5: the plan ---------------------------------------------------------------

    def result(self, safety: Safety) -> RepositoryPlan:
        self.heap_members = frozenset(digest for _, digest in self.kept_heap)
        rule, graph, name = self.rule, self.graph, self.snapshot.name
        deletions = [
            Action(
                kind=ActionKind.DELETE_MANIFEST,
                repository=name,
                digest=digest,
                tags=graph.tags[digest],
                reason=reason,
                rule=rule.name,
                size_in_bytes=graph.manifests[digest].size_in_bytes or 0,
                cascades=tuple(self.cascades.get(digest, ())),
                after=after,
            )
            for digest, (reason, after) in self.deleted.items()
        ]
        # Insertion order is a topological order: a deletion's `after` digests were decided first.
        depth: dict[str, int] = {}
        for action in deletions:
            after = action.after
            depth[action.digest] = 1 + max(depth[a] for a in after) if after else 0
        deletions.sort(key=lambda a: (depth[a.digest], a.digest))
        removed_by = self.removed_by
        kept = tuple(
            Kept(name, digest, graph.tags[digest], self.why_kept(digest), rule.name)
            for digest in self.digests
            if digest not in removed_by
        )
        return RepositoryPlan(
            repository=name,
            rule=rule.name,
            actions=(*self.locks(), *deletions),
            kept=kept,
            blocked=self.blocked(safety),
        )

    def why_kept(self, digest: str) -> str:
        graph = self.graph
        if digest in self.protected:
            return f"protected: {self.protected[digest]}"
        if digest in self.kept_reason:
            return self.kept_reason[digest]
        if digest in self.heap_members:
            return (
                f"one of the {self.rule.keep_latest} newest unprotected tagged images (keepLatest)"
            )
        pins = sorted(p for p in self.pinned_by.get(digest, ()) if p not in self.removed_by)
        if pins:
            return (
                f"kept index {_short(pins[0])} lists one of its referrers, which ACR would "
                "delete with it"
            )
        subject = graph.subject.get(digest)
        if subject is not None:
            if subject in graph.manifests:
                return (
                    f"referrer of kept {_short(subject)}; ACR deletes referrers with their subject"
                )
            return (
                f"referrer of {_short(subject)}, which is not in the repository; "
                "referrers are never deleted directly"
            )
        living = [p for p in graph.parents.get(digest, ()) if p not in self.removed_by]
        if living:
            return f"child of kept index {_short(living[0])}"
        if digest in graph.attached_to:
            subject = graph.attached_to[digest]
            return f"attached artifact (referrers tag schema) of kept {_short(subject)}"
        return "kept: it is part of a reference cycle, which no image anchors"

    def locks(self) -> list[Action]:
        graph, rule = self.graph, self.rule
        actions: list[Action] = []
        for tag in sorted(
            {t for tags in graph.tags.values() for t in tags} | set(graph.tag_properties)
        ):
            pattern = rule.lock_tags.first_match(tag)
            if pattern is None:
                continue
            props = graph.tag_properties.get(tag)
            if props is not None and props.attributes.fully_locked:
                continue
            digest = (
                props.digest
                if props is not None
                else next(d for d, tags in sorted(graph.tags.items()) if tag in tags)
            )
            actions.append(
                Action(
                    kind=ActionKind.LOCK_TAG,
                    repository=self.snapshot.name,
                    digest=digest,
                    tags=(tag,),
                    reason=f"tag matches lockTags pattern {pattern!r} and is not locked both ways",
                    rule=rule.name,
                )
            )
        return actions

    def blocked(self, safety: Safety) -> str | None:
        removed = len(self.removed_by)
        total = len(self.graph.manifests)
        limit = safety.max_deletes_per_repository
        if limit is not None and removed > limit:
            return (
                f"would delete {removed} manifests, more than safety.maxDeletesPerRepository "
                f"({limit}); nothing in {self.snapshot.name} is deleted until you raise that "
                "setting in the policy (or set it to null)"
            )
        fraction = safety.max_delete_fraction
        if fraction is not None and total and removed / total > fraction:
            return (
                f"would delete {removed} of {total} manifests ({removed / total:.0%}), more than "
                f"safety.maxDeleteFraction ({fraction:g}); nothing in {self.snapshot.name} is "
                "deleted until you raise that setting in the policy (1 or null turns it off)"
            )
        return None


def _missing_from_listings(
    snapshot: RepositorySnapshot, manifests: Mapping[str, ManifestProperties]
) -> str | None:
    """Why the snapshot may lack a manifest or a tag, or None when the listings look whole.

    A manifest missing from the listing (hidden by `listEnabled=false`, or pushed while the
    listing was read) may be an index whose children then look orphaned, or a tag on a manifest
    that then looks untagged.
    """
    listed, counted = len(manifests), snapshot.manifest_count
    if counted is not None and counted > listed:
        return (
            f"the repository reports {counted} manifests but its listing showed {listed} "
            "(hidden with listEnabled=false, or deleted while it was read)"
        )
    # A tag the manifest listing shows but the tag listing hides already protects its manifest;
    # only a tag neither listing shows leaves a manifest looking less tagged than it is.
    names = {t.name for t in snapshot.tags}
    names.update(tag for manifest in manifests.values() for tag in manifest.tags)
    counted = snapshot.tag_count
    if counted is not None and counted > len(names):
        return (
            f"the repository reports {counted} tags but its listings showed {len(names)} "
            "(hidden with listEnabled=false, or deleted while it was read)"
        )
    unlisted = [t for t in snapshot.tags if t.digest not in manifests]
    if unlisted:
        tag = min(unlisted, key=lambda t: t.name)
        return (
            f"tag {tag.name!r} names {_short(tag.digest)}, which the manifest listing does "
            "not show (hidden with listEnabled=false, or pushed while it was read)"
        )
    return None


def _updated_with_tags(
    manifests: Mapping[str, ManifestProperties], tags: Sequence[TagProperties]
) -> dict[str, datetime | None]:
    updated = {digest: m.last_updated_on for digest, m in manifests.items()}
    for tag in tags:
        current = updated.get(tag.digest)
        moved = tag.last_updated_on
        if current is not None and moved is not None and moved > current:
            updated[tag.digest] = moved
    return updated


def _short(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}" if hex_part else digest


def _lock_text(delete_enabled: bool) -> str:
    return "deleteEnabled=false" if not delete_enabled else "writeEnabled=false"

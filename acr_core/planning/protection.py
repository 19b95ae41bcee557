"""Planning stage 2, protection: which manifests no rule may delete, and why.

Decided per manifest before anything is judged: locks (manifest, any of its tags, the
repository), `lockTags` matches, keep clauses without `newest` that select it (v1: `keepTags`),
younger than `minAge`, missing timestamps, the run's `protect` set, a tag the tag listing does
not confirm (its lock is unknown). A protected referrer protects its subject, because ACR deletes
referrers with their subject.

A protecting keep clause selects a manifest (an image or a dependent, tagged or not) when it
passes all of the clause's filters: a tag matching one of its `tags` patterns, and an update
within `pushedWithin` (measured as `minAge` measures age). A clause with no filters selects all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from acr_core.models import ManifestProperties
from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.patterns import NameKind, PatternSet
from acr_core.planning.policy import Rule
from acr_core.planning.rules import KeepClause

_NO_TAGS = PatternSet.compile((), NameKind.TAG)


def protection(
    graph: Graph, rule: Rule, now: datetime, caller: frozenset[str]
) -> Mapping[str, str]:
    """Each protected digest and why (its reasons joined with `; `)."""
    protected: dict[str, str] = {}
    repository_locked = not graph.attributes.deletable
    young_after = now - rule.min_age
    clauses = _protecting(rule)
    # Clauses that may select an untagged manifest rule out the quick path for those.
    untagged_selected = any(c.tags is None for c in clauses)
    # v1's `keepTags`, read once: `Rule.keep_tags` searches the keep clauses on each call.
    keep_tags = rule.keep_tags if rule.version == 1 else _NO_TAGS
    quiet = {} if repository_locked else _quiet_tags(graph, rule, keep_tags)
    for digest, manifest in graph.manifests.items():
        attributes, updated, tags = manifest.attributes, graph.updated[digest], graph.tags[digest]
        if (
            # The common case, decided without building a list of reasons: `_reasons` finds
            # none (the checks below are its checks, in the same order of cost).
            not repository_locked
            and attributes.delete_enabled
            and attributes.write_enabled
            and updated is not None
            and manifest.created_on is not None
            and updated <= young_after
            and digest not in caller
            and all(quiet.get(t) == digest for t in tags)
        ):
            if not clauses or (not tags and not untagged_selected):
                continue
            why = _selected(graph, digest, clauses, now)
        else:
            why = _reasons(graph, manifest, rule, keep_tags, now, caller)
            why.extend(_selected(graph, digest, clauses, now))
        if why:
            protected[digest] = "; ".join(why)
    for referrer in sorted(graph.subject):
        why_referrer = protected.get(referrer)
        if why_referrer is not None:
            for subject in graph.subject_chain(referrer):
                protected.setdefault(subject, reasons.referrer_kept(referrer, why_referrer))
    return protected


def _protecting(rule: Rule) -> tuple[KeepClause, ...]:
    """The keep clauses without `newest` whose selections this stage protects; a v1 rule's
    `keepTags` is named per tag instead, in v1's words (`_reasons`)."""
    if rule.version == 1:
        return ()
    return tuple(c for c in rule.keep if isinstance(c, KeepClause) and not c.counting)


def _quiet_tags(graph: Graph, rule: Rule, keep_tags: PatternSet) -> dict[str, str]:
    """Each listed tag that gives no reason to protect the manifest it points to (not locked,
    matching neither `keepTags` nor `lockTags`) -> that manifest. Matched once per tag, so a
    tagged manifest whose tags are all here skips `_reasons`; a tag missing from the listing,
    or listed at another digest, is unconfirmed, a reason `_reasons` gives."""
    quiet = {
        name: props.digest
        for name, props in graph.tag_properties.items()
        if props.attributes.delete_enabled and props.attributes.write_enabled
    }
    for patterns in (keep_tags, rule.lock_tags):
        if patterns.patterns:  # most policies have neither: no call per tag then
            quiet = {name: d for name, d in quiet.items() if patterns.first_match(name) is None}
    return quiet


def _selected(
    graph: Graph, digest: str, clauses: tuple[KeepClause, ...], now: datetime
) -> list[str]:
    """Why each protecting clause that selects `digest` keeps it."""
    why: list[str] = []
    updated = graph.updated[digest]
    for clause in clauses:
        if clause.pushed_within is not None and (
            updated is None or now - updated >= clause.pushed_within
        ):
            continue
        tag = None
        if clause.tags is not None:
            tag = next((t for t in graph.tags[digest] if clause.tags.matches(t)), None)
            if tag is None:
                continue
        why.append(reasons.kept_by_clause(clause.describe(), tag))
    return why


def _reasons(
    graph: Graph,
    manifest: ManifestProperties,
    rule: Rule,
    keep_tags: PatternSet,
    now: datetime,
    caller: frozenset[str],
) -> list[str]:
    why: list[str] = []
    repository, digest = graph.attributes, manifest.digest
    if not repository.deletable:
        why.append(reasons.repository_locked(repository.delete_enabled))
    if not manifest.attributes.deletable:
        why.append(reasons.manifest_locked(manifest.attributes.delete_enabled))
    for tag in graph.tags[digest]:
        props = graph.tag_properties.get(tag)
        if props is None or props.digest != digest:
            why.append(reasons.tag_unconfirmed(tag))
        elif not props.attributes.deletable:
            why.append(reasons.tag_locked(tag, props.attributes.delete_enabled))
        for field_name, patterns in (("keepTags", keep_tags), ("lockTags", rule.lock_tags)):
            pattern = patterns.first_match(tag)
            if pattern is not None:
                why.append(reasons.tag_matches(tag, field_name, pattern))
    updated = graph.updated[digest]
    if manifest.created_on is None or updated is None:
        why.append(reasons.MISSING_TIMESTAMP)
    elif now - updated < rule.min_age:
        why.append(reasons.younger_than_min_age(rule.min_age))
    if digest in caller:
        why.append(reasons.CALLER_PROTECTED)
    return why

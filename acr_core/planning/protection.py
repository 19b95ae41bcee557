"""Planning stage 2, protection: which manifests no rule may delete, and why.

Decided per manifest before anything is judged: locks (manifest, any of its tags, the
repository), `keepTags`/`lockTags` matches, younger than `minAge`, missing timestamps, the run's
`protect` set, a tag the tag listing does not confirm (its lock is unknown). A protected referrer
protects its subject, because ACR deletes referrers with their subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from acr_core.models import ManifestProperties
from acr_core.planning import reasons
from acr_core.planning.graph import Graph
from acr_core.planning.policy import Rule


def protection(
    graph: Graph, rule: Rule, now: datetime, caller: frozenset[str]
) -> Mapping[str, str]:
    """Each protected digest and why (its reasons joined with `; `)."""
    protected: dict[str, str] = {}
    repository_locked = not graph.attributes.deletable
    young_after = now - rule.min_age
    for digest, manifest in graph.manifests.items():
        attributes, updated = manifest.attributes, graph.updated[digest]
        if (
            # The common case, decided without building a list of reasons.
            not repository_locked
            and attributes.delete_enabled
            and attributes.write_enabled
            and not graph.tags[digest]
            and updated is not None
            and manifest.created_on is not None
            and updated <= young_after
            and digest not in caller
        ):
            continue
        why = _reasons(graph, manifest, rule, now, caller)
        if why:
            protected[digest] = "; ".join(why)
    for referrer in sorted(graph.subject):
        why_referrer = protected.get(referrer)
        if why_referrer is not None:
            for subject in graph.subject_chain(referrer):
                protected.setdefault(subject, reasons.referrer_kept(referrer, why_referrer))
    return protected


def _reasons(
    graph: Graph, manifest: ManifestProperties, rule: Rule, now: datetime, caller: frozenset[str]
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
        for field_name, patterns in (("keepTags", rule.keep_tags), ("lockTags", rule.lock_tags)):
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

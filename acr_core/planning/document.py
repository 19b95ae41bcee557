"""A loaded policy written out as a version 2 document (JSON-ready data).

`policy_document(load_policy(v1_text))` is the v2 form of a v1 policy (issue 13, semantics 6:
keepTags -> keep `{"tags": [...]}`, keepLatest -> keep `{"newest": N}` plus `delete.tagged`
with `olderThan: "0s"`, untagged.olderThan -> `delete.untagged.olderThan`), which `acr-cleanup
migrate` prints; loading the document again gives a policy that plans the same. Patterns and
durations are written as the policy wrote them (`14d` stays `14d`).
"""

from __future__ import annotations

from typing import Any

from acr_core.planning.patterns import format_duration
from acr_core.planning.policy import Policy, Rule
from acr_core.planning.rules import Delete, KeepClause, OrderBy, PreviousDigests, ReferrerRule


def policy_document(policy: Policy) -> dict[str, Any]:
    """The policy as a v2 JSON document; `safety` is written out in full."""
    document: dict[str, Any] = {"version": 2}
    if policy.description is not None:
        document["description"] = policy.description
    document["rules"] = [_rule(rule) for rule in policy.rules]
    document["safety"] = {
        "maxDeletesPerRepository": policy.safety.max_deletes_per_repository,
        "maxDeleteFraction": policy.safety.max_delete_fraction,
    }
    return document


def _rule(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rule.name}
    if rule.description is not None:
        out["description"] = rule.description
    out["repositories"] = list(rule.repositories.patterns)
    out["minAge"] = format_duration(rule.min_age)
    if rule.keep:
        out["keep"] = [_clause(clause) for clause in rule.keep]
    delete = _delete(rule.delete)
    if delete:
        out["delete"] = delete
    if rule.lock_tags.patterns:
        out["lockTags"] = list(rule.lock_tags.patterns)
    if rule.referrers:
        out["referrers"] = [_referrer(entry) for entry in rule.referrers]
    return out


def _clause(clause: KeepClause | PreviousDigests) -> dict[str, Any]:
    if isinstance(clause, PreviousDigests):
        tags = list(clause.tags.patterns)
        return {"previousDigests": {"tags": tags, "count": clause.count}}
    out: dict[str, Any] = {}
    if clause.tags is not None:
        out["tags"] = list(clause.tags.patterns)
    if clause.pushed_within is not None:
        out["pushedWithin"] = format_duration(clause.pushed_within)
    if clause.newest is not None:
        out["newest"] = clause.newest
    if clause.per is not None:
        out["per"] = clause.per
    if clause.order_by is not OrderBy.TIME:
        out["orderBy"] = clause.order_by.value
    return out


def _delete(delete: Delete) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, older_than in (("tagged", delete.tagged), ("untagged", delete.untagged)):
        if older_than is not None:
            out[name] = {"olderThan": format_duration(older_than)}
    return out


def _referrer(entry: ReferrerRule) -> dict[str, Any]:
    out: dict[str, Any] = {"artifactType": entry.artifact_type}
    if entry.keep_newest is not None:
        out["keepNewest"] = entry.keep_newest
    if entry.older_than is not None:
        out["olderThan"] = format_duration(entry.older_than)
    return out

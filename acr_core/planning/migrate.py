"""`acr-cleanup migrate`: a version 1 policy rewritten in version 2, meaning exactly the same.

The mapping is issue 13's semantics 6, the one the loader itself applies to a v1 rule
(`acr_core.planning.policy`): `keepTags` becomes the keep clause `{"tags": [...]}` (first, as
keep[0]), `keepLatest: N` the clause `{"newest": N}` after it plus `delete.tagged` with
`olderThan: "0s"`, and `untagged.olderThan` becomes `delete.untagged.olderThan`. Everything
else (names, descriptions, patterns, `minAge`, `lockTags`, `safety`, `$schema`) is carried over
as written, in its place, so the diff of the two files is only what changed. The result loads
into the same rule model as the v1 policy, so it plans the same (the reasons name keep clauses
instead of v1's fields).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from acr_core.planning.policy import PolicyError, load_policy

_V1_ONLY = ("keepTags", "keepLatest", "untagged")


def migrate(source: str) -> dict[str, Any]:
    """The v2 form of the v1 policy `source` (JSON text); raises `PolicyError` when `source`
    is not a valid policy, or is already version 2."""
    policy = load_policy(source)
    if policy.version != 1:
        raise PolicyError([f"version: already {policy.version}; there is nothing to migrate"])
    data = json.loads(source.removeprefix("\ufeff"))
    return {
        key: 2 if key == "version" else [_rule(r) for r in value] if key == "rules" else value
        for key, value in data.items()
    }


def migrate_text(source: str) -> str:
    """`migrate` as JSON text a person can read and diff: objects and lists one item a line,
    except those that fit on the line they start on (as examples/ writes them)."""
    return _dumps(migrate(source), 0, 0) + "\n"


_WIDTH = 100


def _dumps(value: Any, indent: int, used: int) -> str:
    """`value` at `indent` spaces, its first line already `used` characters long."""
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(value, dict | list) or used + len(flat) <= _WIDTH or not value:
        return flat
    inner = " " * (indent + 2)
    if isinstance(value, list):
        items = [inner + _dumps(item, indent + 2, len(inner)) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    lines = []
    for key, item in value.items():
        head = f"{inner}{json.dumps(key, ensure_ascii=False)}: "
        lines.append(head + _dumps(item, indent + 2, len(head)))
    return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"


def _rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """One rule: `keep` where the first of keepTags/keepLatest stood, `delete` where the first
    of keepLatest/untagged stood; a part with nothing in it is left out."""
    keep: list[dict[str, Any]] = []
    if rule.get("keepTags"):
        keep.append({"tags": list(rule["keepTags"])})
    delete: dict[str, Any] = {}
    if "keepLatest" in rule:
        keep.append({"newest": rule["keepLatest"]})
        delete["tagged"] = {"olderThan": "0s"}
    if "untagged" in rule:
        delete["untagged"] = {"olderThan": rule["untagged"]["olderThan"]}
    out: dict[str, Any] = {}
    for key, value in rule.items():
        if key not in _V1_ONLY:
            out[key] = value
            continue
        if keep and key in ("keepTags", "keepLatest") and "keep" not in out:
            out["keep"] = keep
        if delete and key in ("keepLatest", "untagged") and "delete" not in out:
            out["delete"] = delete
    return out

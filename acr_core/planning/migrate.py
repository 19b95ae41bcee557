"""`acr-cleanup migrate`: a version 1 policy rewritten in version 2, meaning exactly the same.

The mapping is issue 13's semantics 6, written once in `acr_core.planning.document`
(`policy_document` writes any loaded policy as a v2 document): `keepTags` becomes the keep
clause `{"tags": [...]}` (keep[0]), `keepLatest: N` the clause `{"newest": N}` after it plus
`delete.tagged` with `olderThan: "0s"`, and `untagged.olderThan` becomes
`delete.untagged.olderThan`. Defaults are written out (`minAge`, `safety`, a rule's name), so
the v2 file says everything the v1 file left implicit; `$schema` is carried over. The result
loads into the same rules as the v1 policy, so it plans the same (the reasons name keep clauses
instead of v1's fields).
"""

from __future__ import annotations

import json
from typing import Any

from acr_core.planning.document import policy_document
from acr_core.planning.policy import PolicyError, load_policy


def migrate(source: str) -> dict[str, Any]:
    """The v2 form of the v1 policy `source` (JSON text); raises `PolicyError` when `source`
    is not a valid policy, or is already version 2."""
    policy = load_policy(source)
    if policy.version != 1:
        raise PolicyError([f"version: already {policy.version}; there is nothing to migrate"])
    data = json.loads(source.removeprefix("\ufeff"))
    schema = {"$schema": data["$schema"]} if "$schema" in data else {}
    return {**schema, **policy_document(policy)}


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

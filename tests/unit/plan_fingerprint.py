"""A fingerprint of the plans v1 policies make on many random registries.

Policy version 2 changed the planner under v1 policies, which must plan exactly as before
(issue 13, semantics 6). This module draws registries and v1 policies from a seeded
`random.Random` (not hypothesis, whose draws may change with its version or with the test
module's source), plans them, and hashes every plan: each action (kind, digest, tags, reason,
rule, size, cascades, after, in order), each kept manifest with its reason, and `blocked`.
`RECORDED` is the hash the planner gave before version 2 was written; `python -m
tests.unit.plan_fingerprint [count]` prints the current one.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from datetime import timedelta

from acr_core.models import ChangeableAttributes, RepositorySnapshot
from acr_core.planning.plan import Action, Plan
from acr_core.planning.planner import plan
from acr_core.planning.policy import load_policy
from tests.unit.planner_fixtures import NOW, RepoBuilder, signature_tag

# The pools are written out here, not imported from the property tests: the fingerprint is of
# these exact registries, and must not move when those tests change theirs.
TAG_POOL = ("latest", "stable", "v1", "v1.2.3", "v2.0.0", "dev-1", "dev-2", "pr-7", "b1", "b2")
KEEP_CHOICES = ("latest", "stable", "v*", "regex:pr-[0-9]+", "b?", "regex:v[0-9]+\\..*")
LOCK_CHOICES = ("v*.*.*", "stable")
AGES = (
    None,
    timedelta(minutes=5),
    timedelta(hours=2),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=8),
    timedelta(days=20),
    timedelta(days=40),
)
REPOSITORIES = ("app", "svc/api", "svc/web", "ci/builds")
# sha256 over the first 6,000 registries (seed 0), taken from the planner before version 2.
RECORDED = {
    6000: "9d8857d66b0ff387d3addfb489f7cb8e08470a3dd36e3defa0b741bcdd7da835",
    600: "3652843e0ac65fe61bc519545ea5aa718e1b5e827ba850154dc6351a28f55a33",
}


def _repository(rng: random.Random, name: str, crowded: bool) -> RepositorySnapshot:
    """One random repository, drawn as tests/unit/test_planner_properties.py `worlds` draws."""

    def one_in(n: int) -> bool:
        return rng.randrange(n) == (n - 1 if crowded else 0)

    locked_repo = rng.randrange(13) == 12 and not crowded
    b = RepoBuilder(name, attributes=ChangeableAttributes(write_enabled=not locked_repo))
    keys: list[str] = []
    referrers: set[str] = set()
    free_tags = list(TAG_POOL)
    used_signatures: set[str] = set()
    for i in range(rng.randint(4 if crowded else 1, 14)):
        key = f"m{i}"
        age = None if one_in(16) else rng.choice(AGES[::-1] if crowded else AGES)
        locked = one_in(16)
        tags = [
            free_tags.pop(rng.randrange(len(free_tags)))
            for _ in range(rng.randint(1 if crowded else 0, 2))
            if free_tags and (crowded or rng.random() < 0.5)
        ]
        locked_tags = tuple(t for t in tags if one_in(10))
        kind = rng.choice(["image"] * 4 + ["index"] * 2 + ["referrer", "signature"])
        inspected = not one_in(15) or (crowded and kind == "index")
        if kind == "index":
            pool = [k for k in keys if k not in referrers or rng.random() < 0.3]
            children = rng.sample(pool, min(len(pool), rng.randint(0, 3)))
            b.index(
                key,
                tuple(children),
                *tags,
                age=age or timedelta(days=9),
                locked=locked,
                inspected=inspected,
                references=rng.random() < 0.5,
            )
        elif kind == "referrer" and keys:
            subject = rng.choice([*keys, "gone"])
            b.referrer(key, subject, age=age or timedelta(days=9), locked=locked)
            referrers.add(key)
        elif kind == "signature" and keys:
            tag = signature_tag(b.digest(rng.choice([*keys, "gone"])))
            b.image(key, *([tag] if tag not in used_signatures else []), age=age, locked=locked)
            used_signatures.add(tag)
        else:
            b.image(
                key, *tags, age=age, locked=locked, locked_tags=locked_tags, inspected=inspected
            )
        keys.append(key)
    return b.build()


def _rule(rng: random.Random, index: int, crowded: bool) -> dict[str, object]:
    patterns = rng.choice([["app"], ["svc/*"], ["**"], ["ci/**", "app"], ["regex:svc/.*"]])
    rule: dict[str, object] = {"name": f"r{index}", "repositories": patterns}
    if rng.random() < 0.6:
        rule["keepTags"] = rng.sample(KEEP_CHOICES, rng.randint(0, 2))
    if rng.random() < 0.4:
        rule["lockTags"] = rng.sample(LOCK_CHOICES, rng.randint(0, 1))
    if rng.random() < 0.8:
        rule["minAge"] = rng.choice(["0s", "0s", "1h", "2d"])
    counts = [0, 1, 2, 3] if crowded else [None, 0, 1, 1, 2, 2, 3, 4]
    keep_latest = rng.choice(counts)
    if keep_latest is not None:
        rule["keepLatest"] = keep_latest
    older_than = rng.choice([None, "1d", "1d", "7d", "0s"])
    if older_than is not None:
        rule["untagged"] = {"olderThan": older_than}
    return rule


Drawn = tuple[list[RepositorySnapshot], dict[str, object], dict[str, frozenset[str]]]


def draw(seed: int) -> Drawn:
    """Registry number `seed`: its repositories, a v1 policy, and the caller's protected digests."""
    rng = random.Random(seed)
    crowded = rng.random() < 0.3
    names = rng.sample(REPOSITORIES, rng.randint(1, 3))
    snapshots = [_repository(rng, name, crowded) for name in names]
    rules = [_rule(rng, i, crowded) for i in range(rng.randint(1, 3))]
    safety: dict[str, object] = rng.choice(
        [
            {"maxDeletesPerRepository": None, "maxDeleteFraction": None},
            {},
            {"maxDeletesPerRepository": 3},
        ]
    )
    policy = {"version": 1, "rules": rules, "safety": safety}
    protect = {
        s.name: frozenset(rng.sample([m.digest for m in s.manifests], min(1, len(s.manifests))))
        for s in snapshots
        if rng.random() < 0.3
    }
    return snapshots, policy, protect


def _action(a: Action) -> list[object]:
    return [a.kind.value, a.digest, a.tags, a.reason, a.rule, a.size_in_bytes, a.cascades, a.after]


def render(result: Plan) -> list[object]:
    """Everything a plan says, as JSON-able data in the plan's own order."""
    return [
        [
            r.repository,
            r.rule,
            r.blocked,
            [_action(a) for a in r.actions],
            [[k.digest, k.tags, k.reason, k.rule] for k in r.kept],
        ]
        for r in result.repositories
    ]


def fingerprint(count: int) -> str:
    """sha256 over the plans of registries 0 .. count-1."""
    digest = hashlib.sha256()
    for seed in range(count):
        snapshots, document, protect = draw(seed)
        result = plan(snapshots, load_policy(document), NOW, protect=protect)
        digest.update(json.dumps(render(result)).encode())
    return digest.hexdigest()


if __name__ == "__main__":
    print(fingerprint(int(sys.argv[1]) if len(sys.argv) > 1 else 6000))

"""Which rule governs each repository of a registry, and which rules govern none.

`acr-cleanup validate --registry` shows it: reading the catalog is the only request, so it is
safe to run with an identity that may only list (Catalog Lister on ABAC registries). The
first matching rule governs a repository (docs/policy.md "Which rule governs a repository"),
exactly as `plan` chooses it, since both ask `Policy.rule_for`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from acr_core.planning.lint import PolicyWarning
from acr_core.planning.policy import Policy
from acr_core.run.report import _aligned
from acr_core.run.service import PAGE_SIZE


class CatalogClient(Protocol):
    """The part of `AcrClient` that lists repositories."""

    @property
    def login_server(self) -> str: ...

    def list_repository_names(self, *, results_per_page: int = ...) -> AsyncIterator[str]: ...


async def list_catalog(client: CatalogClient) -> list[str]:
    """Every repository name the registry lists, sorted; raises `AcrError`."""
    names = {name async for name in client.list_repository_names(results_per_page=PAGE_SIZE)}
    return sorted(names)


@dataclass(frozen=True, slots=True)
class Coverage:
    """`governed` pairs each repository with its rule's name (`None`: no rule, never touched);
    `idle` lists the rules that govern none of them, in policy order."""

    registry: str
    governed: tuple[tuple[str, str | None], ...]
    idle: tuple[str, ...]

    @property
    def governs_any(self) -> bool:
        return any(rule is not None for _, rule in self.governed)

    def to_dict(self) -> dict[str, object]:
        return {
            "registry": self.registry,
            "repositories": [{"repository": n, "rule": r} for n, r in self.governed],
            "rulesGoverningNone": list(self.idle),
        }


def coverage_of(policy: Policy, registry: str, names: Iterable[str]) -> Coverage:
    """The rule of each name and the rules left idle."""
    governed = tuple((name, _rule_name(policy, name)) for name in sorted(set(names)))
    used = {rule for _, rule in governed}
    idle = tuple(rule.name for rule in policy.rules if rule.name not in used)
    return Coverage(registry, governed, idle)


def _rule_name(policy: Policy, repository: str) -> str | None:
    rule = policy.rule_for(repository)
    return None if rule is None else rule.name


async def read_coverage(client: CatalogClient, policy: Policy) -> Coverage:
    """List the catalog (the only request) and match each repository to its rule."""
    return coverage_of(policy, client.login_server, await list_catalog(client))


def render_coverage(coverage: Coverage) -> str:
    """A table of repositories and their rules, then the rules that govern none."""
    count = sum(1 for _, rule in coverage.governed if rule is not None)
    lines = [
        f"Registry {coverage.registry}: {len(coverage.governed)} repositories, "
        f"{count} governed by a rule",
    ]
    if coverage.governed:
        rows: list[tuple[str, ...]] = [("REPOSITORY", "RULE")]
        rows += [(name, rule or "- (no rule: never touched)") for name, rule in coverage.governed]
        lines += _aligned(rows, indent="  ")
    if coverage.idle:
        lines.append(f"Rules that govern no repository here: {', '.join(coverage.idle)}")
    else:
        lines.append("Every rule governs at least one repository.")
    return "\n".join(lines) + "\n"


def validation_report(
    path: str, policy: Policy, warnings: Sequence[PolicyWarning], coverage: Coverage | None
) -> dict[str, object]:
    """`validate --output json`: the rules, the warnings, and with `--registry` the coverage
    (docs/cli.md "validate")."""
    report: dict[str, object] = {
        "policy": path,
        "version": policy.version,
        "valid": True,
        "rules": [rule.name for rule in policy.rules],
        "warnings": [{"where": w.where, "message": w.message} for w in warnings],
    }
    if coverage is not None:
        report.update(coverage.to_dict())
    return report

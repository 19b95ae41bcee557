"""The Bicep sizes the fleet from the registry's SKU: each run's share of the one identity's
per-minute limits, from the Flex instance cap and the queue trigger's batch size.

The share is computed by the template's own expressions (modules/function-app.bicep),
evaluated here for a few deployments; they must agree with acr_core's SKU table and never let
the fleet's runs together exceed the identity's limit.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping

import pytest

from acr_core.run.limiter import SKU_LIMITS
from tests.infra.bicep_model import BicepFile, Call, Expr, Member, Ref, Ternary
from tests.infra.conftest import ROOT

Templates = dict[str, BicepFile]
PACE = {
    "CLEANUP_MAX_DELETES_PER_MINUTE": "deletes",
    "CLEANUP_MAX_READS_PER_MINUTE": "reads",
    "CLEANUP_MAX_WRITES_PER_MINUTE": "writes",
}


def evaluate(template: BicepFile, value: object, params: Mapping[str, object]) -> object:
    """The value of the subset of Bicep the pace settings are written in: literals, objects,
    parameters and variables, `max`/`string`, ternaries, and integer arithmetic, comparison,
    member access and indexing (which read as Python)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dict):
        return {k: evaluate(template, v, params) for k, v in value.items()}
    if isinstance(value, Ref):
        if value.name in params:
            return params[value.name]
        return evaluate(template, template.variables[value.name], params)
    if isinstance(value, Ternary):
        chosen = (
            value.when_true if evaluate(template, value.condition, params) else value.when_false
        )
        return evaluate(template, chosen, params)
    if isinstance(value, Call):
        args = [evaluate(template, a, params) for a in value.args]
        functions = {"max": lambda *a: max(a), "string": lambda a: str(a)}
        return functions[value.function](*args)
    if isinstance(value, Member | Expr):
        text = value.path if isinstance(value, Member) else value.text
        return _python(template, ast.parse(text, mode="eval").body, params)
    raise AssertionError(f"cannot evaluate {value!r}")


def _python(template: BicepFile, node: ast.expr, params: Mapping[str, object]) -> object:
    if isinstance(node, ast.Name):
        return evaluate(template, Ref(node.id), params)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Attribute):
        holder = _python(template, node.value, params)
        assert isinstance(holder, dict)
        return holder[node.attr]
    if isinstance(node, ast.Subscript):
        holder = _python(template, node.value, params)
        assert isinstance(holder, dict)
        return holder[_python(template, node.slice, params)]
    a, b = (_python(template, n, params) for n in _operands(node))
    assert isinstance(a, int), node
    assert isinstance(b, int), node
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return a * b
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return a // b  # Bicep's / on integers is integer division
    if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.Gt):
        return a > b
    raise AssertionError(f"unsupported expression {ast.dump(node)}")


def _operands(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.Compare) and len(node.comparators) == 1:
        return [node.left, node.comparators[0]]
    raise AssertionError(f"unsupported expression {ast.dump(node)}")


def pace_settings(templates: Templates, **params: object) -> dict[str, object]:
    module = templates["modules/function-app.bicep"]
    defaults = {"maxDeletesPerMinute": 0, "maxReadsPerMinute": 0, "maxWritesPerMinute": 0}
    settings = evaluate(module, Ref("paceSettings"), {**defaults, **params})
    assert isinstance(settings, dict)
    return settings


def test_the_registrys_own_sku_reaches_the_app(templates: Templates) -> None:
    """The SKU comes from the EXISTING registry resource, through main.bicep, into
    CLEANUP_REGISTRY_SKU."""
    access = templates["modules/registry-access.bicep"]
    assert access.outputs["sku"] == Member("registry.sku.name")
    params = templates["main.bicep"].modules["functionApp"].config["params"]
    assert isinstance(params, dict)
    assert params["registrySku"] == Member("registryAccess.outputs.sku")
    assert params["sweepBatchSize"] == Ref("sweepBatchSize")
    settings = pace_settings(
        templates, registrySku="Premium", maximumInstanceCount=40, sweepBatchSize=1
    )
    assert settings["CLEANUP_REGISTRY_SKU"] == "Premium"


def test_the_templates_limits_are_acr_cores(templates: Templates) -> None:
    """The per-identity table in the Bicep is the one the app paces by (docs/acr-facts.md 4.1)."""
    table = evaluate(templates["modules/function-app.bicep"], Ref("perIdentityLimits"), {})
    assert isinstance(table, dict)
    assert {sku.lower() for sku in table} == set(SKU_LIMITS)
    for sku, limits in table.items():
        published = SKU_LIMITS[sku.lower()]
        assert limits == {
            "deletes": published.deletes,
            "reads": published.reads,
            "writes": published.writes,
        }


@pytest.mark.parametrize("sku", ["Basic", "Standard", "Premium"])
@pytest.mark.parametrize(("instances", "batch"), [(40, 1), (40, 4), (100, 2), (1000, 32)])
def test_the_fleets_runs_together_stay_within_the_identitys_limit(
    templates: Templates, sku: str, instances: int, batch: int
) -> None:
    """Each run gets limit / (instances x batch size), at least one: all the runs the platform
    can start at once together send no more than the identity's limit (when the share is at
    least one a minute)."""
    settings = pace_settings(
        templates, registrySku=sku, maximumInstanceCount=instances, sweepBatchSize=batch
    )
    runs = instances * batch
    published = SKU_LIMITS[sku.lower()]
    for setting, field in PACE.items():
        limit = getattr(published, field)
        per_run = int(str(settings[setting]))
        assert per_run == max(1, limit // runs)
        assert per_run * runs <= max(limit, runs)
    assert settings["AzureFunctionsJobHost__extensions__queues__batchSize"] == str(batch)


def test_a_number_given_wins_over_the_share(templates: Templates) -> None:
    """maxDeletesPerMinute set (support raised the limit, or another job shares the identity)
    is used as given."""
    settings = pace_settings(
        templates,
        registrySku="Standard",
        maximumInstanceCount=40,
        sweepBatchSize=1,
        maxDeletesPerMinute=30,
    )
    assert settings["CLEANUP_MAX_DELETES_PER_MINUTE"] == "30"
    assert settings["CLEANUP_MAX_READS_PER_MINUTE"] == "125"


def test_one_instance_starts_batch_size_runs_at_once() -> None:
    """host.json fetches no new batch while one is being cleaned (newBatchThreshold 0), so an
    instance cleans at most batchSize messages at once: the arithmetic's runs per instance."""
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues["newBatchThreshold"] == 0
    assert queues["batchSize"] == 1

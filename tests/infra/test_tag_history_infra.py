"""The Bicep for the moving-tag history: one table, and a role on that table only."""

from __future__ import annotations

from tests.infra.bicep_model import Member, Ref
from tests.infra.test_templates import (
    STORAGE_TABLE_DATA_CONTRIBUTOR,
    Templates,
    _app_settings,
    _assigned_roles,
    _everything,
    _module,
    _of_type,
    _only,
)

MODULE = "modules/tag-history.bicep"
TABLES = "Microsoft.Storage/storageAccounts/tableServices/tables"


def test_the_table_is_created_in_the_apps_storage_account(templates: Templates) -> None:
    """The module makes one table in the account the storage module made."""
    module = templates[MODULE]
    table = _only(_of_type(module, TABLES), "table")
    assert table.config["name"] == Ref("tableName")
    (account,) = _of_type(module, "Microsoft.Storage/storageAccounts")
    assert account.existing
    _, params = _module(templates, "tagHistory")
    assert params["storageAccountName"] == Member("storage.outputs.storageAccountName")
    assert params["tableName"] == "taghistory"


def test_the_identity_may_use_that_table_and_nothing_else(templates: Templates) -> None:
    """One role, Storage Table Data Contributor, on the table alone, for the app's identity."""
    module = templates[MODULE]
    (symbol, roles), *others = _assigned_roles(module).items()
    assert others == []
    assert roles == {STORAGE_TABLE_DATA_CONTRIBUTOR}
    table = _only(_of_type(module, TABLES), "table")
    assignment = module.resources[symbol]
    assert assignment.config["scope"] == Ref(table.symbol)
    properties = assignment.config["properties"]
    assert isinstance(properties, dict)
    assert properties["principalId"] == Ref("appPrincipalId")
    _, params = _module(templates, "tagHistory")
    assert params["appPrincipalId"] == Member("identity.properties.principalId")


def test_no_other_template_grants_table_access(templates: Templates) -> None:
    """Table roles appear in the history module alone (not on the account)."""
    naming = {
        name
        for name, template in templates.items()
        if STORAGE_TABLE_DATA_CONTRIBUTOR in set(map(str, _everything(template)))
    }
    assert naming == {MODULE}


def test_the_app_is_told_the_tables_url(templates: Templates) -> None:
    """CLEANUP_HISTORY_TABLE_URL is the module's output, so the app waits for its role."""
    assert _app_settings(templates)["CLEANUP_HISTORY_TABLE_URL"] == [Ref("historyTableUrl")]
    _, params = _module(templates, "functionApp")
    assert params["historyTableUrl"] == Member("tagHistory.outputs.tableUrl")

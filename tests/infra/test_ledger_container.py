"""The deletion ledger's container: created immutable for `ledgerRetentionDays`, written by the
app's identity with the one role it needs, scoped to that container only, and named to the app."""

from __future__ import annotations

from tests.infra.bicep_model import Call, Interpolation, Member, Ref
from tests.infra.test_templates import (
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    Templates,
    _app_settings,
    _assigned_roles,
    _module,
    _of_type,
    _only,
)

CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"


def test_the_ledger_container_is_immutable_for_the_retention_parameter(
    templates: Templates,
) -> None:
    """The container has a time-based immutability policy of ledgerRetentionDays (365 by
    default), without append writes, so a written record cannot change."""
    ledger = templates["modules/ledger.bicep"]
    container = _only(_of_type(ledger, CONTAINER), "ledger container")
    assert not container.existing
    assert container.config["properties"] == {"publicAccess": "None"}
    policy = _only(_of_type(ledger, f"{CONTAINER}/immutabilityPolicies"), "immutability policy")
    assert policy.config["parent"] == Ref(container.symbol)
    assert policy.config["properties"] == {
        "immutabilityPeriodSinceCreationInDays": Ref("retentionDays"),
        "allowProtectedAppendWrites": False,
    }
    _, params = _module(templates, "ledger")
    assert params["retentionDays"] == Ref("ledgerRetentionDays")
    assert templates["main.bicep"].params["ledgerRetentionDays"] == 365


def test_the_identity_gets_only_blob_data_contributor_on_the_ledger_container(
    templates: Templates,
) -> None:
    """One assignment: Storage Blob Data Contributor, to the app's identity, scoped to the
    ledger container (not the account), with a name unique to that container and principal."""
    ledger = templates["modules/ledger.bicep"]
    container = _only(_of_type(ledger, CONTAINER), "ledger container").symbol
    assert _assigned_roles(ledger) == {"ledgerWriter": {STORAGE_BLOB_DATA_CONTRIBUTOR}}
    assignment = ledger.resources["ledgerWriter"]
    assert assignment.config["scope"] == Ref(container)
    assert assignment.config["name"] == Call(
        "guid",
        (
            Member(f"{container}.id"),
            Ref("appPrincipalId"),
            Ref("storageBlobDataContributor"),
        ),
    )
    properties = assignment.config["properties"]
    assert isinstance(properties, dict)
    assert properties["principalId"] == Ref("appPrincipalId")
    assert properties["principalType"] == "ServicePrincipal"
    uami = _only(
        _of_type(templates["main.bicep"], "Microsoft.ManagedIdentity/userAssignedIdentities"),
        "UAMI",
    ).symbol
    _, params = _module(templates, "ledger")
    assert params["appPrincipalId"] == Member(f"{uami}.properties.principalId")
    assert params["storageAccountName"] == Member("storage.outputs.storageAccountName")


def test_the_app_is_told_the_ledger_containers_url(templates: Templates) -> None:
    """CLEANUP_LEDGER_URL is the container's URL, from the ledger module's output."""
    assert _app_settings(templates)["CLEANUP_LEDGER_URL"] == [Ref("ledgerUrl")]
    _, params = _module(templates, "functionApp")
    assert params["ledgerUrl"] == Member("ledger.outputs.containerUrl")
    output = templates["modules/ledger.bicep"].outputs["containerUrl"]
    assert isinstance(output, Interpolation)
    assert output.parts[0] == Member("account.properties.primaryEndpoints.blob")

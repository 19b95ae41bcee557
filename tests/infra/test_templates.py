"""The templates' own invariants: wiring between files, least privilege, one identity, Event
Grid delivering only ImagePushed to the function that function_app.py registers, secure defaults.

Nothing here evaluates Bicep; each test reads the expressions the templates are written with
(tests/infra/bicep_model.py) and checks that they say what the product needs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import pytest

from tests.infra.bicep_model import (
    BicepFile,
    Call,
    Declaration,
    Expr,
    Interpolation,
    Loop,
    Member,
    Ref,
    Ternary,
)
from tests.infra.conftest import INFRA, ROOT

Templates = dict[str, BicepFile]

# Built-in role definition ids: docs/acr-facts.md section 6 (registry) and
# docs/functions-facts.md 3.2 (storage, monitoring). They are the same in every tenant.
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
ACR_DELETE = "c2f4ef07-c644-48eb-af81-4b1b4947fb11"
REPOSITORY_CONTRIBUTOR = "2efddaa5-3f1f-4df3-97df-af3f13818f4c"
CATALOG_LISTER = "bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
KNOWN_ROLES = {
    ACR_PULL: "AcrPull",
    ACR_DELETE: "AcrDelete",
    REPOSITORY_CONTRIBUTOR: "Container Registry Repository Contributor",
    CATALOG_LISTER: "Container Registry Repository Catalog Lister",
    STORAGE_BLOB_DATA_OWNER: "Storage Blob Data Owner",
    STORAGE_QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
    STORAGE_BLOB_DATA_CONTRIBUTOR: "Storage Blob Data Contributor",
    MONITORING_METRICS_PUBLISHER: "Monitoring Metrics Publisher",
}
GUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

# Settings Flex Consumption rejects or ignores (docs/functions-facts.md 3.1).
FLEX_FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_TIME_ZONE",
    "TZ",
}

# App settings the code may read: these prefixes are the product's (docs/architecture.md) or
# the identity/telemetry conventions the Bicep provides. Names the platform sets on every app
# (WEBSITE_*, FUNCTIONS_*, AZURE_FUNCTIONS_*) are not the template's to set.
SETTING_RE = re.compile(r"(?:ACR|CLEANUP|AZURE|APPLICATIONINSIGHTS|PYTHON)(?:_[A-Z0-9]+)+")
PERCENT_SETTING_RE = re.compile(r"%([A-Za-z0-9_]+)%")
PLATFORM_PREFIXES = ("WEBSITE_", "FUNCTIONS_", "AZURE_FUNCTIONS_")
PRODUCT_PREFIXES = ("ACR_", "CLEANUP_")


# -- helpers -------------------------------------------------------------------------------------


def _only(declarations: Iterator[Declaration], what: str) -> Declaration:
    found = list(declarations)
    assert len(found) == 1, f"expected exactly one {what}, found {[d.symbol for d in found]}"
    return found[0]


def _of_type(template: BicepFile, type_prefix: str) -> Iterator[Declaration]:
    return (r for r in template.resources.values() if r.type.split("@")[0] == type_prefix)


def _resolve(template: BicepFile, value: object) -> object:
    """Follow a reference to a variable of the same file (repeatedly)."""
    while isinstance(value, Ref) and value.name in template.variables:
        value = template.variables[value.name]
    return value


def _objects(template: BicepFile, value: object) -> list[dict[str, object]]:
    """Every object literal an expression can produce: through variables, union() and both
    branches of a ternary."""
    value = _resolve(template, value)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, Call) and value.function == "union":
        return [obj for arg in value.args for obj in _objects(template, arg)]
    if isinstance(value, Ternary):
        return _objects(template, value.when_true) + _objects(template, value.when_false)
    raise AssertionError(f"{template.path.name}: cannot see the keys of {value!r}")


def _role_ids(template: BicepFile, value: object) -> set[str]:
    """Role ids a roleDefinitionId expression can name, following variables, loops and ternaries."""
    value = _resolve(template, value)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {role for item in value for role in _role_ids(template, item)}
    if isinstance(value, Ternary):
        return _role_ids(template, value.when_true) | _role_ids(template, value.when_false)
    raise AssertionError(f"{template.path.name}: cannot tell which role {value!r} is")


def _assigned_roles(template: BicepFile) -> dict[str, set[str]]:
    """Role assignment symbol -> the role ids it can assign."""
    assigned: dict[str, set[str]] = {}
    for assignment in _of_type(template, "Microsoft.Authorization/roleAssignments"):
        definition = assignment.config["properties"]
        assert isinstance(definition, dict)
        role = definition["roleDefinitionId"]
        assert isinstance(role, Call), f"{assignment.symbol}: roleDefinitionId is {role!r}"
        assert role.function == "subscriptionResourceId"
        assert role.args[0] == "Microsoft.Authorization/roleDefinitions"
        argument = role.args[1]
        if isinstance(assignment.body, Loop) and argument == Ref(assignment.body.variable):
            argument = assignment.body.iterable
        assigned[assignment.symbol] = _role_ids(template, argument)
    return assigned


def _app_settings(templates: Templates) -> dict[str, list[object]]:
    """App setting name -> every value the function app module can give it."""
    module = templates["modules/function-app.bicep"]
    config = _only(_of_type(module, "Microsoft.Web/sites/config"), "sites/config resource")
    assert config.config["name"] == "appsettings"
    settings: dict[str, list[object]] = {}
    for obj in _objects(module, config.config["properties"]):
        for name, value in obj.items():
            settings.setdefault(name, []).append(value)
    return settings


def _walk(value: object) -> Iterator[object]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, Call):
        yield from _walk(value.args)
    elif isinstance(value, Ternary):
        yield from _walk((value.condition, value.when_true, value.when_false))
    elif isinstance(value, Interpolation):
        yield from _walk(value.parts)
    elif isinstance(value, Loop):
        yield from _walk((value.iterable, value.body))


def _everything(template: BicepFile) -> Iterator[object]:
    for declaration in (*template.resources.values(), *template.modules.values()):
        yield from _walk(declaration.condition)
        yield from _walk(declaration.body)
    for group in (template.params, template.variables, template.outputs):
        yield from _walk(list(group.values()))


def _module(templates: Templates, symbol: str) -> tuple[Declaration, dict[str, object]]:
    declaration = templates["main.bicep"].modules[symbol]
    params = declaration.config["params"]
    assert isinstance(params, dict)
    return declaration, params


def _settings_read_by_the_app() -> set[str]:
    """Setting names in the app's source: string literals shaped like one, and %NAME% references
    in trigger arguments."""
    sources = [ROOT / "function_app.py", ROOT / "acr_core" / "app" / "settings.py"]
    names: set[str] = set()
    for path in sources:
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SETTING_RE.fullmatch(node.value):
                    names.add(node.value)
                names.update(PERCENT_SETTING_RE.findall(node.value))
    return {n for n in names if not n.startswith(PLATFORM_PREFIXES)}


def _documented_settings() -> set[str]:
    """Setting names in the first column of docs/architecture.md's settings table."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Function app settings", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, flags=re.M))


def _require_function_app() -> None:
    if not (ROOT / "function_app.py").exists():
        pytest.skip("function_app.py does not exist yet; nothing to compare the Bicep with")


# -- the files fit together ----------------------------------------------------------------------


def test_module_parameters_match_the_modules(templates: Templates) -> None:
    """Every module call passes only parameters the module declares, and all it requires."""
    for template in templates.values():
        for module in template.modules.values():
            target = templates[module.type.removeprefix("./")]
            params = module.config.get("params", {})
            assert isinstance(params, dict)
            unknown = set(params) - set(target.params)
            missing = {n for n, d in target.params.items() if d is None} - set(params)
            assert unknown == set(), f"{module.symbol}: {target.path.name} has no {unknown}"
            assert missing == set(), f"{module.symbol}: {target.path.name} needs {missing}"


def test_every_reference_resolves(templates: Templates) -> None:
    """Every identifier names a parameter, variable, resource, module or loop variable of its file,
    and every `module.outputs.x` an output that module declares."""
    for name, template in templates.items():
        known = (
            set(template.params)
            | set(template.variables)
            | set(template.resources)
            | set(template.modules)
        )
        known |= {v.variable for v in _everything(template) if isinstance(v, Loop)}
        for value in _everything(template):
            if isinstance(value, Ref):
                assert value.name in known, f"{name}: unknown identifier {value.name}"
            if isinstance(value, Member):
                root = re.match(r"[A-Za-z_]\w*(?=\.)", value.path)
                if root is not None:
                    assert root.group() in known, f"{name}: unknown identifier in {value.path}"
                parts = value.path.split(".")
                if len(parts) > 2 and parts[1] == "outputs" and parts[0] in template.modules:
                    target = templates[template.modules[parts[0]].type.removeprefix("./")]
                    assert parts[2] in target.outputs, f"{name}: {value.path} is not declared"


def test_resource_group_scope(templates: Templates) -> None:
    """main.bicep deploys into a resource group, so `az deployment group create` runs it."""
    assert templates["main.bicep"].target_scope == "resourceGroup"


def test_registry_side_is_scoped_to_the_registry_group(templates: Templates) -> None:
    """Role assignments, the system topic and its subscription deploy into the registry's group."""
    main = templates["main.bicep"]
    expected = Call("resourceGroup", (Ref("registryGroup"),))
    for symbol in ("registryAccess", "eventTopic", "eventSubscription"):
        assert main.modules[symbol].config["scope"] == expected, symbol
    assert main.variables["registryGroup"] == Ternary(
        Call("empty", (Ref("registryResourceGroup"),)),
        Member("resourceGroup().name"),
        Ref("registryResourceGroup"),
    )


# -- app settings --------------------------------------------------------------------------------


def test_documented_settings_are_set(templates: Templates) -> None:
    """Every setting in docs/architecture.md's table is set by the Bicep."""
    documented = _documented_settings()
    assert "ACR_LOGIN_SERVER" in documented, "the settings table was not found"
    assert documented - set(_app_settings(templates)) == set()


def test_settings_the_app_reads_are_set(templates: Templates) -> None:
    """Every setting function_app.py or acr_core/app/settings.py reads is set by the Bicep."""
    _require_function_app()
    read = _settings_read_by_the_app()
    assert {"ACR_LOGIN_SERVER", "CLEANUP_SCHEDULE"} <= read, "setting names were not found"
    assert read - set(_app_settings(templates)) == set()


def test_product_settings_in_the_bicep_are_read_by_the_app(templates: Templates) -> None:
    """Every ACR_*/CLEANUP_* setting the Bicep sets is one the app reads (no misspelt names)."""
    _require_function_app()
    product = {n for n in _app_settings(templates) if n.startswith(PRODUCT_PREFIXES)}
    assert product - _settings_read_by_the_app() == set()


def test_no_setting_flex_forbids(templates: Templates) -> None:
    """No setting that Flex Consumption rejects is set, and the runtime is functionAppConfig's."""
    assert set(_app_settings(templates)) & FLEX_FORBIDDEN_SETTINGS == set()
    for template in templates.values():
        for value in _everything(template):
            assert not (isinstance(value, dict) and "linuxFxVersion" in value)


def test_storage_connection_is_identity_based(templates: Templates) -> None:
    """AzureWebJobsStorage is given as service URIs plus the managed identity, never a string."""
    settings = _app_settings(templates)
    assert "AzureWebJobsStorage" not in settings
    assert settings["AzureWebJobsStorage__credential"] == ["managedidentity"]
    assert settings["AzureWebJobsStorage__clientId"] == [Ref("identityClientId")]
    assert settings["AzureWebJobsStorage__blobServiceUri"] == [Ref("storageBlobEndpoint")]
    assert settings["AzureWebJobsStorage__queueServiceUri"] == [Ref("storageQueueEndpoint")]


def test_bindings_use_the_identity_based_connection(
    templates: Templates, registered_functions: dict[str, list[dict[str, object]]]
) -> None:
    """Each storage binding's connection has the `<connection>__*` settings the Bicep provides."""
    settings = set(_app_settings(templates))
    connections = {
        str(binding["connection"])
        for bindings in registered_functions.values()
        for binding in bindings
        if "connection" in binding
    }
    assert connections, "no storage binding found in function_app.py"
    for connection in connections:
        assert f"{connection}__queueServiceUri" in settings
        assert f"{connection}__credential" in settings


def test_binding_expressions_name_settings_the_bicep_sets(
    templates: Templates, registered_functions: dict[str, list[dict[str, object]]]
) -> None:
    """Every %SETTING% in a binding (the timer's schedule) resolves to a setting the Bicep sets."""
    referenced = {
        name
        for bindings in registered_functions.values()
        for binding in bindings
        for value in binding.values()
        if isinstance(value, str)
        for name in PERCENT_SETTING_RE.findall(value)
    }
    assert "CLEANUP_SCHEDULE" in referenced
    assert referenced - set(_app_settings(templates)) == set()


def test_registry_settings_come_from_the_registry(templates: Templates) -> None:
    """ACR_LOGIN_SERVER and ACR_RESOURCE_ID are the existing registry's loginServer and id."""
    settings = _app_settings(templates)
    assert settings["ACR_LOGIN_SERVER"] == [Ref("registryLoginServer")]
    assert settings["ACR_RESOURCE_ID"] == [Ref("registryId")]
    _, params = _module(templates, "functionApp")
    assert params["registryLoginServer"] == Member("registryAccess.outputs.loginServer")
    assert params["registryId"] == Member("registryAccess.outputs.registryId")
    access = templates["modules/registry-access.bicep"]
    registry = _only(_of_type(access, "Microsoft.ContainerRegistry/registries"), "registry")
    assert registry.existing
    assert access.outputs["loginServer"] == Member(f"{registry.symbol}.properties.loginServer")
    assert access.outputs["registryId"] == Member(f"{registry.symbol}.id")


def test_policy_reaches_the_app_from_exactly_one_setting(templates: Templates) -> None:
    """Inline policy JSON is set as CLEANUP_POLICY, else the file path as CLEANUP_POLICY_FILE."""
    module = templates["modules/function-app.bicep"]
    assert module.variables["policySettings"] == Ternary(
        Call("empty", (Ref("cleanupPolicy"),)),
        {"CLEANUP_POLICY_FILE": Ref("cleanupPolicyFile")},
        {"CLEANUP_POLICY": Ref("cleanupPolicy")},
    )


def test_dry_run_is_the_default(templates: Templates) -> None:
    """A deployment that says nothing about dry run deletes nothing."""
    main = templates["main.bicep"]
    assert main.params["cleanupDryRun"] is True
    assert _app_settings(templates)["CLEANUP_DRY_RUN"] == [
        Ternary(Ref("cleanupDryRun"), "true", "false")
    ]


def test_worker_dependencies_are_isolated_when_the_app_needs_cloud_events(
    templates: Templates,
) -> None:
    """If function_app.py uses func.CloudEvent (azure-functions >= 1.25), the app's own library
    version must win over the worker's, which needs PYTHON_ISOLATE_WORKER_DEPENDENCIES=1."""
    _require_function_app()
    tree = ast.parse((ROOT / "function_app.py").read_text())
    uses = any(isinstance(n, ast.Attribute) and n.attr == "CloudEvent" for n in ast.walk(tree))
    if not uses:
        pytest.skip("function_app.py does not use func.CloudEvent")
    assert _app_settings(templates)["PYTHON_ISOLATE_WORKER_DEPENDENCIES"] == ["1"]


# -- one identity, least privilege ---------------------------------------------------------------


def test_the_app_runs_as_the_one_user_assigned_identity(templates: Templates) -> None:
    """The site, its deployment storage, host storage, telemetry and azure-identity all use the
    user-assigned identity main.bicep declares, and nothing else."""
    main = templates["main.bicep"]
    identities = [
        r
        for t in templates.values()
        for r in _of_type(t, "Microsoft.ManagedIdentity/userAssignedIdentities")
    ]
    assert [i.symbol for i in identities] == [
        _only(_of_type(main, "Microsoft.ManagedIdentity/userAssignedIdentities"), "UAMI").symbol
    ]
    uami = identities[0].symbol
    _, params = _module(templates, "functionApp")
    assert params["identityId"] == Member(f"{uami}.id")
    assert params["identityClientId"] == Member(f"{uami}.properties.clientId")

    module = templates["modules/function-app.bicep"]
    site = _only(_of_type(module, "Microsoft.Web/sites"), "site").config
    assert site["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {Interpolation((Ref("identityId"),)): {}},
    }
    properties = site["properties"]
    assert isinstance(properties, dict)
    storage = properties["functionAppConfig"]["deployment"]["storage"]
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": Ref("identityId"),
    }
    settings = _app_settings(templates)
    assert settings["AZURE_CLIENT_ID"] == [Ref("identityClientId")]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == [
        Interpolation(("ClientId=", Ref("identityClientId"), ";Authorization=AAD"))
    ]


def test_roles_go_to_the_identity_the_app_runs_as(templates: Templates) -> None:
    """Every role for the app is assigned to the principal of the identity the app runs as."""
    uami = _only(
        _of_type(templates["main.bicep"], "Microsoft.ManagedIdentity/userAssignedIdentities"),
        "UAMI",
    ).symbol
    principal_params = {
        "monitoring": ("publisherPrincipalId", "modules/monitoring.bicep"),
        "storage": ("appPrincipalId", "modules/storage.bicep"),
        "registryAccess": ("principalId", "modules/registry-access.bicep"),
    }
    for symbol, (param, file) in principal_params.items():
        _, params = _module(templates, symbol)
        assert params[param] == Member(f"{uami}.properties.principalId"), symbol
        template = templates[file]
        assignments = list(_of_type(template, "Microsoft.Authorization/roleAssignments"))
        assert assignments, f"{file} assigns no role"
        for assignment in assignments:
            properties = assignment.config["properties"]
            assert isinstance(properties, dict)
            assert properties["principalId"] == Ref(param), f"{file}: {assignment.symbol}"
            assert properties["principalType"] == "ServicePrincipal"


def test_registry_roles_are_least_privilege_per_mode(templates: Templates) -> None:
    """RBAC mode grants AcrPull + AcrDelete; ABAC mode Repository Contributor + Catalog Lister."""
    access = templates["modules/registry-access.bicep"]
    assert access.variables["builtInRoles"] == Ternary(
        Ref("abacMode"), [Ref("repositoryContributor"), Ref("catalogLister")],
        [Ref("acrPull"), Ref("acrDelete")],
    )  # fmt: skip
    assert _role_ids(access, Ref("builtInRoles")) == {
        ACR_PULL,
        ACR_DELETE,
        REPOSITORY_CONTRIBUTOR,
        CATALOG_LISTER,
    }
    assert _resolve(access, Ref("repositoryContributor")) == REPOSITORY_CONTRIBUTOR
    assert _resolve(access, Ref("catalogLister")) == CATALOG_LISTER
    assert _resolve(access, Ref("acrPull")) == ACR_PULL
    assert _resolve(access, Ref("acrDelete")) == ACR_DELETE
    for assignment in _of_type(access, "Microsoft.Authorization/roleAssignments"):
        assert assignment.config["scope"] == Ref("registry"), assignment.symbol


def test_tag_lock_role_has_only_the_metadata_actions(templates: Templates) -> None:
    """The custom role exists only in RBAC mode with tag locks and grants only metadata
    read/write, assignable in the registry's resource group."""
    access = templates["modules/registry-access.bicep"]
    role = _only(_of_type(access, "Microsoft.Authorization/roleDefinitions"), "custom role")
    assert role.condition == Ref("needsMetadataRole")
    assert access.variables["needsMetadataRole"] == Expr("!abacMode && tagLocksEnabled")
    properties = role.config["properties"]
    assert isinstance(properties, dict)
    assert properties["type"] == "CustomRole"
    assert properties["permissions"] == [
        {
            "actions": [
                "Microsoft.ContainerRegistry/registries/metadata/read",
                "Microsoft.ContainerRegistry/registries/metadata/write",
            ],
            "notActions": [],
            "dataActions": [],
            "notDataActions": [],
        }
    ]
    assert properties["assignableScopes"] == [Member("resourceGroup().id")]
    assert role.config["name"] == Ref("metadataRoleId")
    assignment = access.resources["metadataAssignment"]
    assert assignment.condition == Ref("needsMetadataRole")
    assert assignment.config["scope"] == Ref("registry")
    assert assignment.config["properties"]["roleDefinitionId"] == Call(  # type: ignore[index]
        "subscriptionResourceId", ("Microsoft.Authorization/roleDefinitions", Ref("metadataRoleId"))
    )


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("modules/storage.bicep", {STORAGE_BLOB_DATA_OWNER, STORAGE_QUEUE_DATA_CONTRIBUTOR}),
        ("modules/monitoring.bicep", {MONITORING_METRICS_PUBLISHER}),
        ("modules/dead-letter-access.bicep", {STORAGE_BLOB_DATA_CONTRIBUTOR}),
    ],
)
def test_storage_and_monitoring_roles(templates: Templates, file: str, expected: set[str]) -> None:
    """Storage and monitoring get exactly the data roles the host and Event Grid need."""
    assigned = _assigned_roles(templates[file])
    assert set().union(*assigned.values()) == expected


def test_every_role_id_is_a_known_built_in(templates: Templates) -> None:
    """Every GUID in the templates is one of the built-in roles above (no Owner, no Contributor)."""
    for name, template in templates.items():
        for value in _everything(template):
            if isinstance(value, str) and GUID_RE.fullmatch(value):
                assert value.lower() in KNOWN_ROLES, f"{name}: unknown role id {value}"


def test_host_storage_roles_are_scoped_blob_to_the_account_queue_to_the_two_queues(
    templates: Templates,
) -> None:
    """Blob Data Owner is on the account (the host makes its own containers); the queue role
    only on the sweep queue and its poison queue."""
    storage = templates["modules/storage.bicep"]
    (account,) = _of_type(storage, "Microsoft.Storage/storageAccounts")
    queues = {
        q.symbol: q.config["name"]
        for q in _of_type(storage, "Microsoft.Storage/storageAccounts/queueServices/queues")
    }
    scopes: dict[str, list[object]] = {}
    for symbol, roles in _assigned_roles(storage).items():
        (role,) = roles
        scopes.setdefault(role, []).append(storage.resources[symbol].config["scope"])
    assert scopes[STORAGE_BLOB_DATA_OWNER] == [Ref(account.symbol)]
    queue_scopes = scopes[STORAGE_QUEUE_DATA_CONTRIBUTOR]
    scoped = [queues[s.name] for s in queue_scopes if isinstance(s, Ref) and s.name in queues]
    assert len(scoped) == len(queue_scopes) == 2
    assert Ref("sweepQueueName") in scoped
    assert Interpolation((Ref("sweepQueueName"), "-poison")) in scoped


def test_dead_letter_role_is_scoped_to_its_container(templates: Templates) -> None:
    """The system topic may write only into the dead-letter container."""
    module = templates["modules/dead-letter-access.bicep"]
    container = _only(
        _of_type(module, "Microsoft.Storage/storageAccounts/blobServices/containers"), "container"
    )
    (assignment,) = _of_type(module, "Microsoft.Authorization/roleAssignments")
    assert assignment.config["scope"] == Ref(container.symbol)
    assert container.config["name"] == Ref("containerName")
    _, params = _module(templates, "deadLetterAccess")
    assert params["principalId"] == Member("eventTopic.outputs.principalId")
    assert params["containerName"] == Ref("deadLetterContainerName")


# -- Event Grid ----------------------------------------------------------------------------------


def _subscription(templates: Templates) -> dict[str, object]:
    module = templates["modules/event-subscription.bicep"]
    subscription = _only(
        _of_type(module, "Microsoft.EventGrid/systemTopics/eventSubscriptions"), "subscription"
    )
    properties = subscription.config["properties"]
    assert isinstance(properties, dict)
    return properties


def test_subscription_delivers_to_the_event_grid_function(templates: Templates) -> None:
    """The subscription's destination is <function app id>/functions/<eventFunctionName>."""
    main = templates["main.bicep"]
    _, params = _module(templates, "eventSubscription")
    assert params["functionName"] == Ref("eventFunctionName")
    assert params["functionAppId"] == Member("functionApp.outputs.appId")
    assert main.variables["eventFunctionName"] == "on_image_pushed"
    site = _only(_of_type(templates["modules/function-app.bicep"], "Microsoft.Web/sites"), "site")
    assert templates["modules/function-app.bicep"].outputs["appId"] == Member(f"{site.symbol}.id")
    destination = _subscription(templates)["destination"]
    assert destination == {
        "endpointType": "AzureFunction",
        "properties": {
            "resourceId": Interpolation((Ref("functionAppId"), "/functions/", Ref("functionName"))),
            "maxEventsPerBatch": 1,
            "preferredBatchSizeInKilobytes": 64,
        },
    }


def test_subscribed_function_is_registered_with_an_event_grid_trigger(
    templates: Templates, registered_functions: dict[str, list[dict[str, object]]]
) -> None:
    """function_app.py registers the subscribed function, and its trigger is Event Grid's."""
    name = templates["main.bicep"].variables["eventFunctionName"]
    assert name in registered_functions, sorted(registered_functions)
    triggers = [b["type"] for b in registered_functions[str(name)] if b["direction"] == "IN"]
    assert triggers == ["eventGridTrigger"]


def test_only_image_pushed_is_subscribed(templates: Templates) -> None:
    """The filter includes exactly Microsoft.ContainerRegistry.ImagePushed, and no other ACR event
    type appears anywhere in the templates."""
    module = templates["modules/event-subscription.bicep"]
    event_filter = _subscription(templates)["filter"]
    assert isinstance(event_filter, dict)
    assert _resolve(module, event_filter["includedEventTypes"]) == [
        "Microsoft.ContainerRegistry.ImagePushed"
    ]
    for name, template in templates.items():
        for value in _everything(template):
            if isinstance(value, str) and re.match(r"Microsoft\.ContainerRegistry\.[A-Z]", value):
                assert value in {
                    "Microsoft.ContainerRegistry.ImagePushed",
                    "Microsoft.ContainerRegistry.Registries",  # the system topic's type
                }, f"{name}: {value}"


def test_repository_prefix_filter(templates: Templates) -> None:
    """With prefixes given, only pushes to repositories starting with one of them are delivered;
    without, no advanced filter applies."""
    module = templates["modules/event-subscription.bicep"]
    event_filter = _subscription(templates)["filter"]
    assert isinstance(event_filter, dict)
    assert _resolve(module, event_filter["advancedFilters"]) == Ternary(
        Call("empty", (Ref("repositoryPrefixes"),)),
        [],
        [
            {
                "operatorType": "StringBeginsWith",
                "key": "data.target.repository",
                "values": Call("split", (Ref("repositoryPrefixes"), ",")),
            }
        ],
    )


def test_retry_and_dead_letter_with_the_topic_identity(templates: Templates) -> None:
    """Delivery is retried, then dead-lettered to the blob container with the topic's identity."""
    properties = _subscription(templates)
    assert properties["eventDeliverySchema"] == "EventGridSchema"
    assert properties["retryPolicy"] == {
        "maxDeliveryAttempts": Ref("maxDeliveryAttempts"),
        "eventTimeToLiveInMinutes": Ref("eventTimeToLiveInMinutes"),
    }
    assert "deadLetterDestination" not in properties
    assert properties["deadLetterWithResourceIdentity"] == {
        "identity": {"type": "SystemAssigned"},
        "deadLetterDestination": {
            "endpointType": "StorageBlob",
            "properties": {
                "resourceId": Ref("deadLetterStorageAccountId"),
                "blobContainerName": Ref("deadLetterContainerName"),
            },
        },
    }
    main = templates["main.bicep"]
    declaration, params = _module(templates, "eventSubscription")
    assert params["deadLetterContainerName"] == Ref("deadLetterContainerName")
    assert params["deadLetterStorageAccountId"] == Member("storage.outputs.storageAccountId")
    assert Ref("deadLetterAccess") in declaration.config["dependsOn"]  # type: ignore[operator]
    assert 1 <= main.params["eventMaxDeliveryAttempts"] <= 30  # type: ignore[operator]
    _, storage = _module(templates, "storage")
    assert storage["deadLetterContainerName"] == Ref("deadLetterContainerName")


def test_system_topic_has_an_identity_and_watches_the_registry(templates: Templates) -> None:
    """A created topic is the registry's, with a system identity for dead-lettering."""
    module = templates["modules/event-topic.bicep"]
    created = module.resources["createdTopic"]
    assert created.condition == Expr("!useExisting")
    assert created.config["identity"] == {"type": "SystemAssigned"}
    assert created.config["properties"] == {
        "source": Member("registry.id"),
        "topicType": "Microsoft.ContainerRegistry.Registries",
    }
    assert module.resources["reusedTopic"].existing


def test_subscription_waits_for_the_second_pass(templates: Templates) -> None:
    """The subscription is deployed only when deployEventSubscription is true (false by default)."""
    main = templates["main.bicep"]
    assert main.params["deployEventSubscription"] is False
    assert main.modules["eventSubscription"].condition == Ref("deployEventSubscription")


# -- storage, queue, secure defaults -------------------------------------------------------------


def test_sweep_queue_and_its_poison_queue_exist(
    templates: Templates, registered_functions: dict[str, list[dict[str, object]]]
) -> None:
    """The queue the functions bind to is created, with its `-poison` queue."""
    main = templates["main.bicep"]
    queue = main.variables["sweepQueueName"]
    _, params = _module(templates, "storage")
    assert params["sweepQueueName"] == Ref("sweepQueueName")
    storage = templates["modules/storage.bicep"]
    names = [
        q.config["name"]
        for q in _of_type(storage, "Microsoft.Storage/storageAccounts/queueServices/queues")
    ]
    assert names == [Ref("sweepQueueName"), Interpolation((Ref("sweepQueueName"), "-poison"))]
    bound = {
        b["queueName"]
        for bindings in registered_functions.values()
        for b in bindings
        if "queueName" in b
    }
    assert bound == {queue}


def test_storage_account_is_locked_down(templates: Templates) -> None:
    """No shared keys, no anonymous blobs, HTTPS with TLS 1.2, private containers."""
    storage = templates["modules/storage.bicep"]
    account = _only(_of_type(storage, "Microsoft.Storage/storageAccounts"), "account").config
    properties = account["properties"]
    assert isinstance(properties, dict)
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["defaultToOAuthAuthentication"] is True
    containers = list(
        _of_type(storage, "Microsoft.Storage/storageAccounts/blobServices/containers")
    )
    assert len(containers) == 3  # the package, dead letters, the cleaner's cache
    for container in containers:
        assert container.config["properties"] == {"publicAccess": "None"}


def test_site_secure_defaults(templates: Templates) -> None:
    """HTTPS only, TLS 1.2, FTPS off, basic-auth publishing off, Flex FC1 with Python 3.11."""
    module = templates["modules/function-app.bicep"]
    site = _only(_of_type(module, "Microsoft.Web/sites"), "site").config
    properties = site["properties"]
    assert isinstance(properties, dict)
    assert properties["httpsOnly"] is True
    site_config = properties["siteConfig"]
    assert isinstance(site_config, dict)
    assert site_config["minTlsVersion"] == "1.2"
    assert site_config["ftpsState"] == "Disabled"
    assert properties["functionAppConfig"]["runtime"] == {
        "name": "python",
        "version": "3.11",
    }
    plan = _only(_of_type(module, "Microsoft.Web/serverfarms"), "plan").config
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    policies = {
        p.config["name"]: p.config["properties"]
        for p in _of_type(module, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert policies == {"ftp": {"allow": False}, "scm": {"allow": False}}


def test_monitoring_accepts_only_entra_identities(templates: Templates) -> None:
    """Application Insights and Log Analytics have local (key) authentication disabled."""
    monitoring = templates["modules/monitoring.bicep"]
    insights = _only(_of_type(monitoring, "Microsoft.Insights/components"), "components").config
    assert insights["properties"]["DisableLocalAuth"] is True  # type: ignore[index]
    workspace = _only(
        _of_type(monitoring, "Microsoft.OperationalInsights/workspaces"), "workspace"
    ).config
    assert workspace["properties"]["features"] == {"disableLocalAuth": True}  # type: ignore[index]


@pytest.mark.parametrize(
    "pattern",
    [r"\blistKeys?\(", r"\blistSecrets\(", r"AccountKey=", r"SharedAccessSignature", r"\bsas\w*\("],
)
def test_no_keys_or_connection_strings(pattern: str) -> None:
    """No template fetches a key, builds a key connection string or a SAS."""
    for path in sorted(INFRA.rglob("*.bicep")):
        assert re.search(pattern, path.read_text(), flags=re.I) is None, path.name

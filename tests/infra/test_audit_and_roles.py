"""What the deployment logs, and which roles reach which table (tests/infra/deployment.py).

The role checks take the role assignments as the deployment creates them: a table is reached by
every assignment whose scope is the account, the table service or the table itself, so a role left
on the account, or a loop or condition that misses a table, fails.
"""

from __future__ import annotations

import pytest

from shared import storage
from shared.storage.report_access import ReportAccessTable
from tests.infra.deployment import Deployment, Inputs, Reference, Resource, deploy

pytestmark = pytest.mark.infra

TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
DIAGNOSTICS = "Microsoft.Insights/diagnosticSettings"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
ROLE_DEFINITION = "Microsoft.Authorization/roleDefinitions"
TABLE_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
TABLE_READER = "76199698-9eea-4c19-bc75-cec21354c6b6"
INSERT_ENTITY = "Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action"
# Whether each built-in role the template may assign grants any table data action (from the
# roles' published definitions); a role not listed here fails the check until it is classified.
BUILT_IN_TABLE_ACCESS = {
    TABLE_CONTRIBUTOR: True,
    TABLE_READER: True,
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": False,  # Storage Blob Data Owner
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": False,  # Storage Queue Data Contributor
    "3913510d-42f4-4e42-8a64-420c390055eb": False,  # Monitoring Metrics Publisher
    "4633458b-17de-408a-b874-0445c86b69e6": False,  # Key Vault Secrets User
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": False,  # Key Vault Secrets Officer
}
# Creates, changes and deletes secrets, which `az keyvault secret set` needs on an RBAC vault:
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/security#key-vault-secrets-officer
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
DEPLOYER = "7f3c2b1a-0e9d-4c8b-a765-4321fedcba98"


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return deploy()


def logged_categories(deployment: Deployment, scope_type: str) -> dict[str, bool]:
    """category -> enabled, for the diagnostic settings on the (one) resource of scope_type."""
    target = deployment.one(scope_type)
    settings = [r for r in deployment.of_type(DIAGNOSTICS) if r.scope == target.id]
    assert len(settings) == 1, f"expected one diagnostic setting on {scope_type}, found {len(settings)}"
    properties = settings[0].properties
    # ...sent to the deployment's Log Analytics workspace.
    assert properties["workspaceId"] == deployment.one("Microsoft.OperationalInsights/workspaces").id
    return {log["category"]: log["enabled"] for log in properties["logs"]}


def test_table_reads_writes_and_deletes_are_logged(deployment: Deployment) -> None:
    categories = logged_categories(deployment, "Microsoft.Storage/storageAccounts/tableServices")
    assert categories == {"StorageRead": True, "StorageWrite": True, "StorageDelete": True}


def test_blob_logging_is_unchanged(deployment: Deployment) -> None:
    categories = logged_categories(deployment, "Microsoft.Storage/storageAccounts/blobServices")
    assert categories == {"StorageRead": True, "StorageWrite": True, "StorageDelete": True}


def test_queue_writes_and_deletes_are_logged(deployment: Deployment) -> None:
    categories = logged_categories(deployment, "Microsoft.Storage/storageAccounts/queueServices")
    assert categories == {"StorageWrite": True, "StorageDelete": True}


def test_key_vault_access_is_logged_to_the_workspace(deployment: Deployment) -> None:
    assert logged_categories(deployment, "Microsoft.KeyVault/vaults") == {"AuditEvent": True}


def role_of(assignment: Resource) -> str:
    """The GUID of the role an assignment grants (a built-in or a deployed custom role)."""
    role_id = assignment.properties["roleDefinitionId"]
    assert isinstance(role_id, str), f"{assignment.name}: roleDefinitionId {role_id!r}"
    prefix, _, guid = role_id.rpartition("/")
    assert prefix.endswith("/providers/" + ROLE_DEFINITION), role_id
    return guid


def custom_role(deployment: Deployment, guid: str) -> Resource | None:
    found = [r for r in deployment.of_type(ROLE_DEFINITION) if r.name == guid]
    return found[0] if found else None


def grants_table_data(deployment: Deployment, guid: str) -> bool:
    definition = custom_role(deployment, guid)
    if definition is not None:
        actions = [a for p in definition.properties["permissions"] for a in p["dataActions"]]
        return any("/tableServices/" in action for action in actions)
    assert guid in BUILT_IN_TABLE_ACCESS, f"classify built-in role {guid} in BUILT_IN_TABLE_ACCESS"
    return BUILT_IN_TABLE_ACCESS[guid]


def covers(scope: str, resource: Resource) -> bool:
    return resource.id.lower() == scope.lower() or resource.id.lower().startswith(scope.lower() + "/")


def test_every_table_is_reached_only_by_its_own_roles(deployment: Deployment) -> None:
    tables = deployment.of_type(TABLE)
    reached: dict[str, set[str]] = {t.name.rsplit("/", 1)[-1]: set() for t in tables}
    for assignment in deployment.of_type(ROLE_ASSIGNMENT):
        guid = role_of(assignment)
        if not grants_table_data(deployment, guid):
            continue
        assert assignment.scope is not None
        for table in tables:
            if covers(assignment.scope, table):
                reached[table.name.rsplit("/", 1)[-1]].add(guid)
    assert set(reached) == set(storage.TABLES)
    (append_only,) = deployment.of_type(ROLE_DEFINITION)
    for table_name, roles in reached.items():
        if table_name == ReportAccessTable.NAME:
            assert roles == {append_only.name}, f"{table_name}: {roles}"
        else:
            assert roles == {TABLE_CONTRIBUTOR}, f"{table_name}: {roles}"


def test_no_table_role_is_assigned_above_a_table(deployment: Deployment) -> None:
    table_ids = {t.id for t in deployment.of_type(TABLE)}
    for assignment in deployment.of_type(ROLE_ASSIGNMENT):
        if grants_table_data(deployment, role_of(assignment)):
            assert assignment.scope in table_ids, f"{assignment.name} is scoped to {assignment.scope}"


def test_every_role_goes_to_the_apps_identity(deployment: Deployment) -> None:
    identity = deployment.one("Microsoft.ManagedIdentity/userAssignedIdentities")
    principal = Reference(identity.id, ("properties", "principalId"))
    for assignment in deployment.of_type(ROLE_ASSIGNMENT):
        assert assignment.properties["principalId"] == principal, assignment.name
        assert assignment.properties["principalType"] == "ServicePrincipal", assignment.name


def test_the_other_roles_are_the_ones_the_readme_lists(deployment: Deployment) -> None:
    others = {
        (role_of(a), deployment.get(a.scope or "").type)
        for a in deployment.of_type(ROLE_ASSIGNMENT)
        if not grants_table_data(deployment, role_of(a))
    }
    assert others == {
        ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Microsoft.Storage/storageAccounts"),  # Blob Data Owner
        (
            "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
            "Microsoft.Storage/storageAccounts",
        ),  # Queue Data Contributor
        ("3913510d-42f4-4e42-8a64-420c390055eb", "Microsoft.Insights/components"),  # Metrics Publisher
        ("4633458b-17de-408a-b874-0445c86b69e6", "Microsoft.KeyVault/vaults"),  # Key Vault Secrets User
    }


def test_the_report_access_role_can_insert_rows_and_do_nothing_else(deployment: Deployment) -> None:
    (role,) = deployment.of_type(ROLE_DEFINITION)
    properties = role.properties
    assert properties["type"] == "CustomRole"
    # Insert Entity needs entities/add/action alone; Update, Merge, Delete Entity and the upserts
    # need write, update/action or delete, none of which the role has.
    assert properties["permissions"] == [
        {"actions": [], "notActions": [], "dataActions": [INSERT_ENTITY], "notDataActions": []}
    ]
    # A tenant-unique name: it carries the (globally unique) storage account name.
    account = deployment.one("Microsoft.Storage/storageAccounts")
    assert account.name in properties["roleName"]
    group = deployment.one("Microsoft.Resources/resourceGroups")
    assert properties["assignableScopes"] == [group.id]


def test_by_default_the_deployer_is_not_granted_the_vaults_secrets() -> None:
    deployment = deploy(Inputs(parameters={**Inputs().parameters, "deployerPrincipalId": DEPLOYER}))
    assert deployment.parameters["grantDeployerSecretsOfficer"] is False
    granted = [a for a in deployment.of_type(ROLE_ASSIGNMENT) if a.properties["principalId"] == DEPLOYER]
    assert SECRETS_OFFICER not in {role_of(a) for a in granted}


def test_the_deployer_may_be_granted_the_vaults_secrets_and_nothing_else_more() -> None:
    deployer = {**Inputs().parameters, "deployerPrincipalId": DEPLOYER}
    without = deploy(Inputs(parameters=deployer))
    deployment = deploy(Inputs(parameters={**deployer, "grantDeployerSecretsOfficer": True}))

    granted = [a for a in deployment.of_type(ROLE_ASSIGNMENT) if a not in without.of_type(ROLE_ASSIGNMENT)]

    assert [(role_of(a), a.properties["principalId"]) for a in granted] == [(SECRETS_OFFICER, DEPLOYER)]
    assert granted[0].scope == deployment.one("Microsoft.KeyVault/vaults").id
    # The app's identity keeps exactly its own roles.
    identity = deployment.one("Microsoft.ManagedIdentity/userAssignedIdentities")
    principal = Reference(identity.id, ("properties", "principalId"))
    apps = [a for a in deployment.of_type(ROLE_ASSIGNMENT) if a.properties["principalId"] != DEPLOYER]
    assert apps == deploy().of_type(ROLE_ASSIGNMENT)
    assert all(a.properties["principalId"] == principal for a in apps)


def test_granting_the_vaults_secrets_needs_a_deployer() -> None:
    deployment = deploy(Inputs(parameters={**Inputs().parameters, "grantDeployerSecretsOfficer": True}))
    assert SECRETS_OFFICER not in {role_of(a) for a in deployment.of_type(ROLE_ASSIGNMENT)}

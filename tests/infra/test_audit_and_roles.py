"""What the templates log, and which roles reach which table (checked on the parsed templates).

The role checks evaluate the assignments: every table main.bicep declares gets the set of roles
whose scope covers it (the account, the table service, or that table itself, including loop
elements with their conditions), so a role left on the account or a loop that misses a table fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared import storage
from shared.storage.report_access import ReportAccessTable
from tests.infra.bicep import Resource, Template, function_call, module_output, property_of

pytestmark = pytest.mark.infra

STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
TABLE_SERVICE = "Microsoft.Storage/storageAccounts/tableServices"
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
}


def logged_categories(template: Template, scope_type: str) -> dict[str, Any]:
    """category -> enabled, for the diagnostic settings on the (one) resource of scope_type."""
    settings = [
        r for r in template.of_type(DIAGNOSTICS) if template.resource(r.config["scope"]).type == scope_type
    ]
    assert len(settings) == 1, f"expected one diagnostic setting on {scope_type}, found {len(settings)}"
    properties = settings[0].config["properties"]
    assert properties["workspaceId"] == "logAnalyticsId", properties
    assert "logAnalyticsId" in template.parameters
    return {log["category"]: log["enabled"] for log in properties["logs"]}


def test_table_reads_writes_and_deletes_are_logged() -> None:
    categories = logged_categories(Template("app/storage.bicep"), TABLE_SERVICE)
    assert categories == {"StorageRead": True, "StorageWrite": True, "StorageDelete": True}


def test_blob_logging_is_unchanged() -> None:
    blob_service = "Microsoft.Storage/storageAccounts/blobServices"
    categories = logged_categories(Template("app/storage.bicep"), blob_service)
    assert categories == {"StorageRead": True, "StorageWrite": True, "StorageDelete": True}


def test_key_vault_access_is_logged_to_the_workspace() -> None:
    vault = Template("app/keyvault.bicep")
    assert logged_categories(vault, "Microsoft.KeyVault/vaults") == {"AuditEvent": True}
    # ...and main.bicep wires the module to the Log Analytics workspace of the monitoring module.
    main = Template("main.bicep")
    assert module_output(main.modules["vault"]["config"]["params"]["logAnalyticsId"]) == (
        "monitoring",
        "logAnalyticsId",
    )
    monitoring = Template("app/monitoring.bicep")
    assert property_of(monitoring.raw["outputs"]["logAnalyticsId"]["value"]) == ("logAnalytics", "id")


class RoleModel:
    """The role assignments of app/rbac.bicep with the parameters main.bicep passes it."""

    def __init__(self) -> None:
        self.main = Template("main.bicep")
        self.rbac = Template("app/rbac.bicep")
        passed = self.main.modules["rbac"]["config"]["params"]
        self.params = {name: self.main.value(value) for name, value in passed.items()}

    def param(self, node: Any) -> Any:
        if isinstance(node, str) and node in self.rbac.parameters:
            return self.params[node]
        return self.rbac.value(node)

    def role_of(self, assignment: Resource) -> str:
        """A built-in role's GUID, or `custom:<symbol>` for a role defined in the template."""
        call = function_call(assignment.config["properties"]["roleDefinitionId"])
        assert call, f"{assignment.name}: roleDefinitionId is not a function call"
        assert call[0] == "subscription_resource_id", assignment.name
        assert call[1]["resource_type"] == ROLE_DEFINITION
        name = call[1]["resource_name_1"]
        custom = property_of(name)
        if custom:
            assert custom[1] == "name", assignment.name
            assert self.rbac.resource(custom[0]).type == ROLE_DEFINITION
            return f"custom:{custom[0]}"
        value = self.rbac.value(name)
        assert isinstance(value, str), f"{assignment.name}: unresolved role {name!r}"
        assert len(value) == 36, f"{assignment.name}: {value!r} is not a role definition GUID"
        return value

    def grants_table_data(self, role: str) -> bool:
        if role.startswith("custom:"):
            definition = self.rbac.resource(role.removeprefix("custom:"))
            actions = [
                action
                for permission in definition.config["properties"]["permissions"]
                for action in self.rbac.value(permission["dataActions"])
            ]
            return any("/tableServices/" in action for action in actions)
        assert role in BUILT_IN_TABLE_ACCESS, f"classify built-in role {role} in BUILT_IN_TABLE_ACCESS"
        return BUILT_IN_TABLE_ACCESS[role] is True

    def tables_named_by(self, resource: Resource, index_item: str | None) -> list[str] | None:
        """The tables a table resource stands for (None: not a table)."""
        if resource.type != TABLE:
            return None
        chain = self.rbac.parent_chain(resource)
        assert [r.type for r in chain] == [TABLE, TABLE_SERVICE, STORAGE_ACCOUNT], resource.name
        if resource.loop is None:
            return [self.param(resource.config["name"])]
        detail = resource.loop["loop_type"]["detail"]
        assert resource.config["name"] == detail["item_name"], resource.name
        assert index_item is not None, f"{resource.name} is a collection used outside a loop"
        return [index_item]

    def reach(self) -> dict[str, set[str]]:
        """table name -> the roles with table data actions whose scope covers that table."""
        all_tables: list[str] = self.main.value("tableNames")
        reached: dict[str, set[str]] = {table: set() for table in all_tables}
        for assignment in self.rbac.of_type(ROLE_ASSIGNMENT):
            role = self.role_of(assignment)
            if not self.grants_table_data(role):
                continue
            for item in self.iterations(assignment):
                scope = self.rbac.resource(assignment.config["scope"])
                if scope.type in (STORAGE_ACCOUNT, TABLE_SERVICE):
                    covered = all_tables
                else:
                    source = self.loop_source(assignment, scope, item)
                    covered = self.tables_named_by(scope, source) or []
                for table in covered:
                    reached[table].add(role)
        return reached

    def iterations(self, assignment: Resource) -> list[dict[str, Any] | None]:
        """One entry per deployed copy: None for a plain resource, the loop variables otherwise."""
        if assignment.loop is None:
            return [None]
        detail = assignment.loop["loop_type"]["detail"]
        items = self.param(detail["array_name"])
        copies: list[dict[str, Any] | None] = []
        for index, item in enumerate(items):
            names = {detail["item_name"]: item, detail.get("index_name", ""): index}
            if self.condition_holds(assignment.loop["condition"], names):
                copies.append(names)
        return copies

    def condition_holds(self, condition: Any, names: dict[str, Any]) -> bool:
        if condition is None:
            return True
        operator = condition["operator"]
        assert operator["type"] in ("equals", "not_equals"), f"condition not modelled: {operator['type']}"
        left, right = (
            names.get(operand, self.param(operand)) if isinstance(operand, str) else operand
            for operand in operator["operands"].values()
        )
        wants_equal = operator["type"] == "equals"
        return bool(left == right) is bool(wants_equal)

    def loop_source(self, assignment: Resource, scope: Resource, names: dict[str, Any] | None) -> str | None:
        """For `scope: tables[i]`: the item of the scope's own loop at index i."""
        if scope.loop is None:
            return None
        assert names is not None, f"{assignment.name} uses {scope.name}[...] outside a loop"
        reference = assignment.config["scope"]["operator"]["operands"]
        index = names[reference["operand_2"]]
        items = self.param(scope.loop["loop_type"]["detail"]["array_name"])
        item: str = items[index]
        return item


def test_every_table_is_reached_only_by_its_own_roles() -> None:
    model = RoleModel()
    reached = model.reach()
    assert set(reached) >= set(storage.TABLES)
    for table, roles in reached.items():
        if table == ReportAccessTable.NAME:
            assert roles == {"custom:appendOnlyRole"}, f"{table}: {roles}"
        else:
            assert roles == {TABLE_CONTRIBUTOR}, f"{table}: {roles}"


def test_no_table_role_is_assigned_above_a_table() -> None:
    model = RoleModel()
    for assignment in model.rbac.of_type(ROLE_ASSIGNMENT):
        scope = model.rbac.resource(assignment.config["scope"])
        if model.grants_table_data(model.role_of(assignment)):
            assert scope.type == TABLE, f"{assignment.name} is scoped to {scope.type}"


def test_the_report_access_role_can_insert_rows_and_do_nothing_else() -> None:
    rbac = Template("app/rbac.bicep")
    role = rbac.resources["appendOnlyRole"]
    assert role.type == ROLE_DEFINITION
    properties = role.config["properties"]
    assert properties["type"] == "CustomRole"
    # Insert Entity needs entities/add/action alone; Update, Merge, Delete Entity and the upserts
    # need write, update/action or delete, none of which the role has.
    (permissions,) = properties["permissions"]
    assert rbac.value(permissions["dataActions"]) == [INSERT_ENTITY]
    assert permissions["actions"] == []
    assert permissions.get("notActions", []) == []
    assert permissions.get("notDataActions", []) == []
    # A tenant-unique name: it carries the (globally unique) storage account name.
    assert "${storageName}" in properties["roleName"]

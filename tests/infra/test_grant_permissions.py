"""infra/grant-permissions.sh: valid bash, shellcheck-clean, refuses bad input before calling Azure,
and in each mode makes exactly the Graph calls it should (run against tests/infra/fake_az.py)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.tools import INFRA, az_log, fake_az_environment, tool

pytestmark = pytest.mark.infra

SCRIPT = INFRA / "grant-permissions.sh"
# The bash that runs the script: GRANT_PERMISSIONS_BASH=/bin/bash on macOS runs these tests under
# its bash 3.2, whose set -u differs from bash 5's (see test_the_script_uses_no_arrays).
BASH = os.environ.get("GRANT_PERMISSIONS_BASH", "bash")

O365_APP = "c5393580-f805-4401-95e8-94b7a6ef2fc2"
GRAPH_APP = "00000003-0000-0000-c000-000000000000"
TDP_APP = "8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"
PRINCIPAL = "7d3f0a52-1c4e-4b8a-9e21-5a6b7c8d9e0f"  # the managed identity's service principal
CLIENT_ID = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"  # its application (client) ID
GRAPH_ROLE_IDS = {
    "Mail.ReadBasic.All": "693c5e45-0940-467d-9b8a-1022fb9d42ef",
    "Mail.ReadBasic": "6be147d2-ea4f-4b5a-a3fa-3eab6f3c140a",
    "Mail.Read": "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
    "Mail.ReadWrite": "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
    "ExchangeMessageTrace.Read.All": "9c55aefd-6a5a-4a7c-8a9e-2a0d4b3c1e11",
    "AuditLogsQuery.Read.All": "5e1e9171-754d-478c-812c-f1755a9a4c2d",
    # Illustrative: the script looks every role up by its value.
    "AuditLogsQuery-Exchange.Read.All": "6b0d2622-d34e-4470-935b-b96550e5ca8d",
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
}
ACTIVITY_FEED_READ = "594c1fb6-4f81-4475-ae41-0c394909246c"
O365_SP = "11111111-0000-0000-0000-000000000365"
GRAPH_SP = "22222222-0000-0000-0000-000000000000"
GRAPH = "https://graph.microsoft.com/v1.0"


def app_role(role_id: str, value: str) -> dict[str, Any]:
    return {"id": role_id, "value": value, "allowedMemberTypes": ["Application"]}


def tenant(*, entra_mail: tuple[str, ...] = ()) -> dict[str, Any]:
    """A tenant with the Office 365 Management APIs and Graph service principals, the managed
    identity, no Transport Data Platform service principal, and the given Graph mail roles already
    assigned to the identity."""
    return {
        "identityPrincipalId": PRINCIPAL,
        "servicePrincipals": [
            {
                "id": O365_SP,
                "appId": O365_APP,
                "appRoles": [
                    app_role(ACTIVITY_FEED_READ, "ActivityFeed.Read"),
                    app_role("4807a72c-ad38-4250-94c9-4eabfe26cd55", "ActivityFeed.ReadDlp"),
                ],
            },
            {
                "id": GRAPH_SP,
                "appId": GRAPH_APP,
                "appRoles": [app_role(role_id, value) for value, role_id in GRAPH_ROLE_IDS.items()],
            },
            {"id": PRINCIPAL, "appId": CLIENT_ID, "displayName": "id-mia'prod", "appRoles": []},
        ],
        "assignments": [
            {
                "id": f"existing-{value}",
                "principalId": PRINCIPAL,
                "resourceId": GRAPH_SP,
                "appRoleId": GRAPH_ROLE_IDS[value],
            }
            for value in entra_mail
        ],
    }


@dataclass
class Run:
    completed: subprocess.CompletedProcess[str]
    calls: list[dict[str, Any]]
    state: dict[str, Any]
    pwsh_calls: list[dict[str, Any]]

    def granted(self) -> set[tuple[str, str]]:
        """(resource appId, role value) of every assignment the identity holds at the end."""
        by_id = {sp["id"]: sp for sp in self.state["servicePrincipals"]}
        found = set()
        for assignment in self.state["assignments"]:
            assert assignment["principalId"] == PRINCIPAL
            resource = by_id[assignment["resourceId"]]
            (value,) = [r["value"] for r in resource["appRoles"] if r["id"] == assignment["appRoleId"]]
            found.add((resource["appId"], value))
        return found

    def changes(self) -> list[tuple[str, str]]:
        return [(c["method"], c["url"]) for c in self.calls if c.get("method", "GET") != "GET"]

    def app_ids(self) -> set[str]:
        return {sp["appId"] for sp in self.state["servicePrincipals"]}


def run_script(tmp_path: Path, *args: str, state: dict[str, Any] | None = None, pwsh: bool = False) -> Run:
    env = fake_az_environment(tmp_path, state if state is not None else tenant())
    pwsh_log = tmp_path / "pwsh.jsonl"
    if pwsh:
        # Records its arguments and the script file it was given.
        fake = tmp_path / "bin" / "pwsh"
        fake.write_text(
            "#!/bin/sh\n"
            f'"{tool("python")}" -c \'import json, sys; a = sys.argv[1:]; '
            'f = a[a.index("-File") + 1]; '
            f'open("{pwsh_log}", "a").write(json.dumps({{"argv": a, "script": open(f).read()}}) + "\\n")\' '
            '"$@"\n'
        )
        fake.chmod(0o755)
    completed = subprocess.run(
        [BASH, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    calls = az_log(tmp_path)
    pwsh_calls = [json.loads(line) for line in pwsh_log.read_text().splitlines()] if pwsh_log.exists() else []
    return Run(completed, calls, json.loads(Path(env["FAKE_AZ_STATE"]).read_text()), pwsh_calls)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False)


def test_script_is_valid_bash() -> None:
    completed = subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_script_is_shellcheck_clean() -> None:
    completed = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_help_lists_the_permissions_and_modes() -> None:
    completed = run("--help")
    assert completed.returncode == 0
    for name in (
        "ActivityFeed.Read",
        "Mail.ReadBasic.All",
        "ExchangeMessageTrace.Read.All",
        "--dry-run",
        "--mail-scope",
        "Application Mail.ReadBasic",
        "https://learn.microsoft.com/exchange/permissions-exo/application-rbac",
    ):
        assert name in completed.stdout


@pytest.mark.parametrize(
    "role", ["Mail.ReadWrite", "AuditLogsQuery.Read.All", "Mail.ReadBasic.All ExchangeMessageTrace.Read.All"]
)
def test_a_graph_role_the_code_does_not_use_is_refused(tmp_path: Path, role: str) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, "--graph", role)
    assert result.completed.returncode == 1
    assert f"unknown Graph role {role}" in result.completed.stderr
    assert result.calls == []


def test_without_graph_roles_only_activity_feed_is_granted(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL)
    assert result.completed.returncode == 0, result.completed.stderr
    assert result.granted() == {(O365_APP, "ActivityFeed.Read")}
    assert result.changes() == [("POST", f"{GRAPH}/servicePrincipals/{O365_SP}/appRoleAssignedTo")]


def test_all_graph_grants_exactly_what_the_code_uses(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, "--all-graph")
    assert result.completed.returncode == 0, result.completed.stderr
    assert result.granted() == {
        (O365_APP, "ActivityFeed.Read"),
        (GRAPH_APP, "Mail.ReadBasic.All"),
        (GRAPH_APP, "ExchangeMessageTrace.Read.All"),
        (GRAPH_APP, "AuditLogsQuery-Exchange.Read.All"),
    }
    # Message trace also needs the Transport Data Platform service principal in the tenant.
    assert TDP_APP in result.app_ids()
    # Re-running changes nothing.
    again = run_script(tmp_path, "--principal-id", PRINCIPAL, "--all-graph", state=result.state)
    assert again.completed.returncode == 0, again.completed.stderr
    assert again.changes() == []
    assert again.granted() == result.granted()


def test_identity_name_is_resolved_to_its_principal(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--identity-name", "id-abc", "--resource-group", "rg-mia")
    assert result.completed.returncode == 0, result.completed.stderr
    # The CLI's cloud is checked first, then the identity is looked up.
    assert [call["argv"][:2] for call in result.calls[:2]] == [["cloud", "show"], ["identity", "show"]]
    assert result.granted() == {(O365_APP, "ActivityFeed.Read")}


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, "--all-graph", "--dry-run")
    assert result.completed.returncode == 0, result.completed.stderr
    assert result.changes() == []
    assert result.granted() == set()
    assert "would grant: Mail.ReadBasic.All" in result.completed.stdout
    assert "would create the service principal of 8bd644d1" in result.completed.stderr


def test_rbac_mode_makes_no_entra_mail_grant_and_prints_the_exchange_commands(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        "--principal-id", PRINCIPAL,
        "--all-graph",
        "--mail-scope", "rbac",
        "--scope-group", "Audited Mailboxes",
        "--test-mailbox", "alice@contoso.com",
    )  # fmt: skip
    assert result.completed.returncode == 0, result.completed.stderr
    assert result.granted() == {
        (O365_APP, "ActivityFeed.Read"),
        (GRAPH_APP, "ExchangeMessageTrace.Read.All"),
        (GRAPH_APP, "AuditLogsQuery-Exchange.Read.All"),
    }
    assert "AuditLogsQuery-Exchange.Read.All is tenant-wide" in result.completed.stderr
    bodies = [c["argv"] for c in result.calls if c.get("method") == "POST"]
    assert not any(GRAPH_ROLE_IDS["Mail.ReadBasic.All"] in " ".join(argv) for argv in bodies)
    out = result.completed.stdout
    # The Exchange pointer names the identity by its client ID and its service principal's object ID.
    assert f"$appId = '{CLIENT_ID}'" in out
    assert f"$objectId = '{PRINCIPAL}'" in out
    assert "New-ServicePrincipal -AppId $appId -ObjectId $objectId -DisplayName 'id-mia''prod'" in out
    assert "$group = Get-Group -Identity 'Audited Mailboxes'" in out
    assert "MemberOfGroup -eq '{0}'" in out
    assert "New-ManagementScope -Name $scopeName -RecipientRestrictionFilter $filter" in out
    assert (
        "New-ManagementRoleAssignment -Name $assignmentName -App $objectId "
        "-Role 'Application Mail.ReadBasic' -CustomResourceScope $scopeName"
    ) in out
    assert "Test-ServicePrincipalAuthorization -Identity $objectId -Resource 'alice@contoso.com'" in out
    # Message trace is tenant-wide whatever the scope: said out loud.
    assert "ExchangeMessageTrace.Read.All is tenant-wide" in result.completed.stderr


def test_rbac_mode_with_a_filter_quotes_it_as_powershell_data(tmp_path: Path) -> None:
    hostile = "CustomAttribute1 -eq 'audit'; Remove-Mailbox x"
    result = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--mail-scope", "rbac", "--scope-filter", hostile,
        "--scope-name", "Legal hold mailboxes",
    )  # fmt: skip
    assert result.completed.returncode == 0, result.completed.stderr
    assert "$filter = 'CustomAttribute1 -eq ''audit''; Remove-Mailbox x'" in result.completed.stdout
    assert "$scopeName = 'Legal hold mailboxes'" in result.completed.stdout
    assert "Get-Group" not in result.completed.stdout
    # Without --graph, rbac mode still grants only what collection needs.
    assert result.granted() == {(O365_APP, "ActivityFeed.Read")}


def test_rbac_mode_warns_about_an_existing_entra_mail_grant_and_keeps_it(tmp_path: Path) -> None:
    state = tenant(entra_mail=("Mail.ReadBasic.All", "Mail.Read"))
    result = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--mail-scope", "rbac", "--scope-group", "g", state=state
    )
    assert result.completed.returncode == 2
    for value in ("Mail.ReadBasic.All", "Mail.Read"):
        assert f"holds the Entra permission {value}," in result.completed.stderr
    assert "--remove-entra-mail" in result.completed.stderr
    assert (GRAPH_APP, "Mail.ReadBasic.All") in result.granted()
    assert not any(method == "DELETE" for method, _ in result.changes())


def test_rbac_mode_removes_entra_mail_grants_when_asked(tmp_path: Path) -> None:
    state = tenant(entra_mail=("Mail.ReadBasic.All", "Mail.ReadWrite"))
    dry = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--mail-scope", "rbac", "--scope-group", "g",
        "--remove-entra-mail", "--dry-run", state=state,
    )  # fmt: skip
    assert dry.completed.returncode == 0, dry.completed.stderr
    assert dry.changes() == []
    assert "would remove the Entra permission Mail.ReadBasic.All" in dry.completed.stdout

    result = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--mail-scope", "rbac", "--scope-group", "g",
        "--remove-entra-mail", state=state,
    )  # fmt: skip
    assert result.completed.returncode == 0, result.completed.stderr
    assert result.granted() == {(O365_APP, "ActivityFeed.Read")}
    deleted = sorted(url for method, url in result.changes() if method == "DELETE")
    assert deleted == [
        f"{GRAPH}/servicePrincipals/{PRINCIPAL}/appRoleAssignments/existing-{value}"
        for value in ("Mail.ReadBasic.All", "Mail.ReadWrite")
    ]


def test_run_exchange_hands_the_same_commands_to_pwsh(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--mail-scope", "rbac", "--scope-group", "Audited",
        "--run-exchange", pwsh=True,
    )  # fmt: skip
    assert result.completed.returncode == 0, result.completed.stderr
    (call,) = result.pwsh_calls
    assert call["argv"][:3] == ["-NoLogo", "-NoProfile", "-File"]
    script = call["script"]
    assert script.startswith("$ErrorActionPreference = 'Stop'\n")
    assert "Connect-ExchangeOnline" in script
    assert f"$objectId = '{PRINCIPAL}'" in script
    assert "-Role 'Application Mail.ReadBasic'" in script
    assert "New-ManagementRoleAssignment" not in result.completed.stdout  # run, not printed
    assert list(tmp_path.glob("grant-permissions.*.ps1")) == []  # the temporary script is removed


def test_run_exchange_without_pwsh_stops_before_any_change(tmp_path: Path) -> None:
    result = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--mail-scope", "rbac", "--scope-group", "g", "--run-exchange"
    )
    assert result.completed.returncode == 1
    assert "needs PowerShell (pwsh)" in result.completed.stderr
    assert result.calls == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mail-scope", "rbac"], "needs --scope-group or --scope-filter"),
        (["--mail-scope", "rbac", "--scope-group", "g", "--scope-filter", "f"], "not both"),
        (["--mail-scope", "scoped"], "--mail-scope is tenant or rbac"),
        (["--scope-group", "g"], "need --mail-scope rbac"),
        (["--remove-entra-mail"], "need --mail-scope rbac"),
        (["--mail-scope", "rbac", "--scope-group", "a\nb"], "--scope-group must be one line"),
        (["--mail-scope", "rbac", "--scope-group", "g", "--scope-name", "n" * 65], "longer than 64"),
    ],
)
def test_bad_scope_arguments_are_refused_before_calling_azure(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, *args)
    assert result.completed.returncode == 1
    assert message in result.completed.stderr
    assert result.calls == []


def test_fake_az_runs_with_jmespath() -> None:
    # The fake applies --query the way az does; without jmespath every test above would be moot.
    completed = subprocess.run(
        [tool("python"), "-c", "import jmespath"], capture_output=True, text=True, check=False, env=os.environ
    )
    assert completed.returncode == 0, completed.stderr


def test_help_names_only_roles_that_can_grant_graph_application_permissions() -> None:
    # Granting Microsoft Graph app roles needs a Privileged Role Administrator or Global
    # Administrator; a Cloud Application Administrator or Application Administrator can grant any
    # API's permissions except Graph's app roles:
    # https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent
    help_text = " ".join(run("--help").stdout.split())
    needs = help_text[help_text.index("Needs:") : help_text.index("National clouds")]
    assert needs.startswith(
        "Needs: az CLI signed in (`az login`) as a Privileged Role Administrator or Global Administrator "
    )
    assert (
        "Cloud Application Administrator or Application Administrator can grant any API's "
        "application permissions except Microsoft Graph's, so cannot run this script" in needs
    )
    assert "https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent" in needs


def test_the_script_uses_no_arrays() -> None:
    # bash 3.2 (macOS's /bin/bash) reports "${empty[@]}" as an unbound variable under set -u (fixed
    # in bash 4.4, so the bash running these tests cannot show it). No array, no such expansion.
    text = SCRIPT.read_text()
    for construct in (
        "=(",
        "+=(",
        "[@]",
        "[*]",
        "read -a",
        "read -r -a",
        "declare -a",
        "local -a",
        "mapfile",
        "readarray",
    ):
        assert construct not in text, construct


def failing(*patterns: str) -> dict[str, Any]:
    return {**tenant(), "failing": list(patterns)}


LOOKUP_O365_SP = rf"^GET {GRAPH}/servicePrincipals\?\$filter=appId eq '{O365_APP}'"


@pytest.mark.parametrize(
    ("args", "pattern", "message"),
    [
        ([], "^cloud show$", "could not read the Azure CLI's active cloud"),
        (["--identity-name", "id-abc", "--resource-group", "rg"], "^identity show$",
         "could not read the principal ID of identity id-abc in rg"),
        ([], LOOKUP_O365_SP, f"could not look up the service principal of {O365_APP}"),
        ([], rf"^GET {GRAPH}/servicePrincipals/{O365_SP}\?\$select=appRoles$",
         f"could not read the application roles of service principal {O365_SP}"),
        ([], r"^GET .*/appRoleAssignments$", f"could not read the role assignments of {PRINCIPAL}"),
        ([], r"^POST .*/appRoleAssignedTo$", f"could not grant ActivityFeed.Read ({ACTIVITY_FEED_READ})"),
        (["--all-graph"], rf"^POST {GRAPH}/servicePrincipals$",
         f"could not create the service principal of {TDP_APP}"),
        (["--mail-scope", "rbac", "--scope-group", "g"], rf"^GET {GRAPH}/servicePrincipals/{GRAPH_SP}\?",
         f"could not read the application roles of service principal {GRAPH_SP}"),
        (["--mail-scope", "rbac", "--scope-group", "g"], r"\?\$select=appId$",
         f"could not read the client ID of {PRINCIPAL}"),
        (["--mail-scope", "rbac", "--scope-group", "g", "--remove-entra-mail"], r"^DELETE ",
         "could not remove the Entra permission Mail.ReadBasic.All"),
    ],
)  # fmt: skip
def test_a_failed_az_call_stops_the_script_with_what_failed(
    tmp_path: Path, args: list[str], pattern: str, message: str
) -> None:
    # Most of these calls run inside $(...), where set -e does not reach.
    state = failing(pattern)
    if "--remove-entra-mail" in args:
        state["assignments"] = tenant(entra_mail=("Mail.ReadBasic.All",))["assignments"]
    if "--identity-name" not in args:
        args = ["--principal-id", PRINCIPAL, *args]
    result = run_script(tmp_path, *args, state=state)
    assert result.completed.returncode == 1, result.completed.stdout + result.completed.stderr
    assert f"grant-permissions: {message}" in result.completed.stderr
    assert "Authorization_RequestDenied" in result.completed.stderr  # az's own error is shown too
    # Nothing runs after the failed call: no lookup read as "not found", no change made on its strength.
    assert result.calls[-1].get("failed") is True
    assert "Done." not in result.completed.stdout
    assert "has no application role" not in result.completed.stderr


def test_a_failed_service_principal_lookup_creates_nothing(tmp_path: Path) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, state=failing(LOOKUP_O365_SP))
    assert result.completed.returncode == 1
    assert result.changes() == []
    assert result.state["servicePrincipals"] == tenant()["servicePrincipals"]


@pytest.mark.parametrize(
    ("args", "active", "expected"),
    [
        (["--cloud", "gcchigh"], "AzureCloud", "AzureUSGovernment"),
        (["--cloud", "dod"], "AzureCloud", "AzureUSGovernment"),
        ([], "AzureUSGovernment", "AzureCloud"),
        (["--cloud", "gcc"], "AzureChinaCloud", "AzureCloud"),
    ],
)
def test_a_cli_on_another_cloud_is_refused_before_any_graph_call(
    tmp_path: Path, args: list[str], active: str, expected: str
) -> None:
    # A token of one cloud is not accepted by another; `az cloud set` then `az login` switch the CLI:
    # https://learn.microsoft.com/cli/azure/manage-clouds-azure-cli
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, *args, state={**tenant(), "cloud": active})
    assert result.completed.returncode == 1
    assert f"needs the Azure CLI on {expected}, but it is on {active}" in result.completed.stderr
    assert f"`az cloud set --name {expected}` and `az login`" in result.completed.stderr
    assert [call["argv"][:2] for call in result.calls] == [["cloud", "show"]]


@pytest.mark.parametrize(
    ("cloud", "graph"),
    [("gcchigh", "https://graph.microsoft.us/v1.0"), ("dod", "https://dod-graph.microsoft.us/v1.0")],
)
def test_a_national_cloud_grants_through_its_own_graph_host(tmp_path: Path, cloud: str, graph: str) -> None:
    # Graph hosts by national cloud: https://learn.microsoft.com/graph/deployments. The fake refuses a
    # call whose --resource is not that host: az rest derives the token's audience only from the active
    # cloud's endpoints, which do not include DoD's Graph host
    # (https://learn.microsoft.com/cli/azure/reference-index#az-rest).
    state = {**tenant(), "cloud": "AzureUSGovernment", "graph": graph}
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, "--cloud", cloud, "--all-graph", state=state)
    assert result.completed.returncode == 0, result.completed.stderr
    assert result.granted() == {
        (O365_APP, "ActivityFeed.Read"),
        (GRAPH_APP, "Mail.ReadBasic.All"),
        (GRAPH_APP, "ExchangeMessageTrace.Read.All"),
    }
    rest = [call for call in result.calls if call["argv"][0] == "rest"]
    assert rest
    assert all(call["url"].startswith(graph + "/") for call in rest)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cloud", "china"], "--cloud is commercial, gcc, gcchigh or dod, not china"),
        (["--graph-endpoint", "http://graph.microsoft.com/v1.0"], "--graph-endpoint must be an https URL"),
    ],
)
def test_a_bad_cloud_is_refused_before_calling_azure(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_script(tmp_path, "--principal-id", PRINCIPAL, *args)
    assert result.completed.returncode == 1
    assert message in result.completed.stderr
    assert result.calls == []


@pytest.mark.parametrize("cloud", ["gcchigh", "dod"])
def test_the_audit_log_query_role_is_refused_where_the_api_does_not_exist(tmp_path: Path, cloud: str) -> None:
    result = run_script(
        tmp_path, "--principal-id", PRINCIPAL, "--cloud", cloud, "--graph", "AuditLogsQuery-Exchange.Read.All"
    )
    assert result.completed.returncode == 1
    assert "worldwide only" in result.completed.stderr
    assert result.calls == []

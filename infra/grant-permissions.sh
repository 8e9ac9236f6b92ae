#!/usr/bin/env bash
# Grant the function app's managed identity the application permissions the code uses:
#   - Office 365 Management APIs: ActivityFeed.Read (always: collection);
#   - Microsoft Graph, each only when asked for: Mail.ReadBasic.All (subjects by message lookup) and
#     ExchangeMessageTrace.Read.All (subjects by message trace; the tenant also needs a service
#     principal for Microsoft's "Transport Data Platform" app, created here), and
#     AuditLogsQuery-Exchange.Read.All (backfill from the audit-log query API: the least privilege
#     for Exchange records; worldwide and GCC only, refused for gcchigh and dod, where --all-graph
#     leaves it out).
#   https://learn.microsoft.com/graph/api/security-auditcoreroot-post-auditlogqueries
# Role IDs are looked up at run time by value from the resource's service principal; a missing
# resource service principal is created; assignments that exist are left alone (idempotent).
#
# Which mailboxes message lookup can read (--mail-scope):
#   tenant  Mail.ReadBasic.All granted in Entra ID: every mailbox in the tenant (the default).
#   rbac    Exchange Online RBAC for Applications: the role "Application Mail.ReadBasic" limited to a
#           management scope (members of --scope-group, or a --scope-filter). No Entra mail
#           permission is granted: an Entra grant is tenant-wide and independent of the Exchange
#           assignment, so while one exists the scope limits nothing. The script warns if the
#           identity holds one and removes it with --remove-entra-mail. The Exchange Online
#           commands are printed, or run with --run-exchange (needs pwsh with the
#           ExchangeOnlineManagement module, and an Exchange Administrator to sign in).
#           Message trace is not limited by the scope: leave ExchangeMessageTrace.Read.All out (and
#           set resolveMessageTrace=false) to keep the app within the scope.
#   https://learn.microsoft.com/exchange/permissions-exo/application-rbac
#   https://learn.microsoft.com/graph/auth-limit-mailbox-access
#   https://learn.microsoft.com/powershell/module/exchange/new-managementroleassignment
#   https://learn.microsoft.com/powershell/module/exchange/test-serviceprincipalauthorization
#
# Needs: az CLI signed in (`az login`) as a Privileged Role Administrator or Global Administrator
# of the tenant whose audit log is collected. A Cloud Application Administrator or Application
# Administrator can grant any API's application permissions except Microsoft Graph's, so cannot
# run this script to the end.
#   https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent
#
# National clouds (--cloud, as the app's M365_CLOUD): the Azure CLI must be set to the matching
# cloud and signed in there (`az cloud set --name AzureUSGovernment` then `az login` for gcchigh
# and dod), and Graph is called on that cloud's host; the script checks the CLI's cloud first.
#   commercial, gcc  AzureCloud         https://graph.microsoft.com
#   gcchigh          AzureUSGovernment  https://graph.microsoft.us
#   dod              AzureUSGovernment  https://dod-graph.microsoft.us
#   https://learn.microsoft.com/cli/azure/manage-clouds-azure-cli
#   https://learn.microsoft.com/graph/deployments
#
# Usage:
#   infra/grant-permissions.sh --principal-id <object id of the managed identity> [--graph ROLE]...
#   infra/grant-permissions.sh --identity-name <name> --resource-group <rg> [--graph ROLE]...
#   infra/grant-permissions.sh ... --all-graph      # every Graph role above the cloud has
#   infra/grant-permissions.sh ... --mail-scope rbac --scope-group <group> [--test-mailbox <upn>]
#   infra/grant-permissions.sh ... --mail-scope rbac --scope-filter "CustomAttribute1 -eq 'audit'"
#       [--scope-name NAME] [--run-exchange] [--remove-entra-mail]
#   infra/grant-permissions.sh ... --cloud gcchigh  # commercial (the default), gcc, gcchigh or dod
#   infra/grant-permissions.sh ... --dry-run        # print what would change, change nothing
set -euo pipefail

readonly O365_MANAGEMENT_APP_ID="c5393580-f805-4401-95e8-94b7a6ef2fc2"
readonly GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
readonly MAIL_ROLE="Mail.ReadBasic.All"
readonly TRACE_ROLE="ExchangeMessageTrace.Read.All"
readonly AUDIT_QUERY_ROLE="AuditLogsQuery-Exchange.Read.All"
readonly GRAPH_ROLES_KNOWN="$MAIL_ROLE $TRACE_ROLE $AUDIT_QUERY_ROLE"
# Graph application permissions that reach every mailbox's messages: any one of them makes a
# management scope meaningless.
readonly GRAPH_MAIL_ROLES_TENANT_WIDE="Mail.ReadBasic.All Mail.ReadBasic Mail.Read Mail.ReadWrite"
readonly EXCHANGE_ROLE="Application Mail.ReadBasic"
readonly TRANSPORT_DATA_PLATFORM_APP_ID="8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"

principal_id=""
identity_name=""
resource_group=""
dry_run=0
# Space-separated words, not an array: bash 3.2 (macOS) calls an empty array unbound under set -u.
graph_roles=""
m365_cloud="commercial"
graph_endpoint=""
mail_scope="tenant"
scope_group=""
scope_filter=""
scope_name=""
test_mailbox=""
run_exchange=0
remove_entra_mail=0
all_graph=0
status=0

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

# set -e does not reach into $(...): bash clears it in command substitutions (unless in POSIX mode
# or with inherit_errexit, which bash 3.2 lacks), so a failed az call there would go unnoticed and
# its empty output read as "not found". Every command whose output is captured is checked where it
# runs (`x="$(az ...)" || die ...`), and die inside $(...) ends only that subshell, so each capture
# of a function is checked again by its caller (`|| exit 1`).
#   https://www.gnu.org/software/bash/manual/bash.html#Command-Execution-Environment
die() {
  echo "grant-permissions: $*" >&2
  exit 1
}

warn() {
  echo "grant-permissions: warning: $*" >&2
}

# A role the code uses, refused otherwise (so the word list graph_roles holds only known words).
known_graph_role() {
  [[ "$1" != *[[:space:]]* ]] || die "unknown Graph role $1 (one role per --graph)"
  case " $GRAPH_ROLES_KNOWN " in
    *" $1 "*) ;;
    *) die "unknown Graph role $1 (known: $GRAPH_ROLES_KNOWN)" ;;
  esac
}

while (($# > 0)); do
  case "$1" in
    --principal-id) principal_id="${2:?--principal-id needs a value}"; shift 2 ;;
    --identity-name) identity_name="${2:?--identity-name needs a value}"; shift 2 ;;
    --resource-group) resource_group="${2:?--resource-group needs a value}"; shift 2 ;;
    --graph) known_graph_role "${2:?--graph needs a role value}"; graph_roles="$graph_roles $2"; shift 2 ;;
    --all-graph) graph_roles="$GRAPH_ROLES_KNOWN"; all_graph=1; shift ;;
    --cloud) m365_cloud="${2:?--cloud needs commercial, gcc, gcchigh or dod}"; shift 2 ;;
    --graph-endpoint) graph_endpoint="${2:?--graph-endpoint needs a value}"; shift 2 ;;
    --mail-scope) mail_scope="${2:?--mail-scope needs tenant or rbac}"; shift 2 ;;
    --scope-group) scope_group="${2:?--scope-group needs a group}"; shift 2 ;;
    --scope-filter) scope_filter="${2:?--scope-filter needs a filter}"; shift 2 ;;
    --scope-name) scope_name="${2:?--scope-name needs a value}"; shift 2 ;;
    --test-mailbox) test_mailbox="${2:?--test-mailbox needs a mailbox}"; shift 2 ;;
    --run-exchange) run_exchange=1; shift ;;
    --remove-entra-mail) remove_entra_mail=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

single_line() {
  [[ "$2" != *$'\n'* && "$2" != *$'\r'* ]] || die "$1 must be one line"
}

case "$mail_scope" in
  tenant)
    if [[ -n "$scope_group$scope_filter$scope_name$test_mailbox" ]] || ((run_exchange || remove_entra_mail)); then
      die "--scope-group, --scope-filter, --scope-name, --test-mailbox, --run-exchange and" \
        "--remove-entra-mail need --mail-scope rbac"
    fi
    ;;
  rbac)
    [[ -n "$scope_group" || -n "$scope_filter" ]] || die "--mail-scope rbac needs --scope-group or --scope-filter"
    [[ -z "$scope_group" || -z "$scope_filter" ]] || die "give --scope-group or --scope-filter, not both"
    for pair in "--scope-group:$scope_group" "--scope-filter:$scope_filter" \
      "--scope-name:$scope_name" "--test-mailbox:$test_mailbox"; do
      single_line "${pair%%:*}" "${pair#*:}"
    done
    ((${#scope_name} <= 64)) || die "--scope-name is longer than 64 characters"
    ;;
  *) die "--mail-scope is tenant or rbac, not $mail_scope" ;;
esac

case "$m365_cloud" in
  commercial | gcc) az_cloud="AzureCloud" graph_root="https://graph.microsoft.com" ;;
  gcchigh) az_cloud="AzureUSGovernment" graph_root="https://graph.microsoft.us" ;;
  dod) az_cloud="AzureUSGovernment" graph_root="https://dod-graph.microsoft.us" ;;
  *) die "--cloud is commercial, gcc, gcchigh or dod, not $m365_cloud" ;;
esac
if [[ "$m365_cloud" == "gcchigh" || "$m365_cloud" == "dod" ]]; then
  case " $graph_roles " in
    *" $AUDIT_QUERY_ROLE "*)
      ((all_graph)) || die "$AUDIT_QUERY_ROLE: the Graph audit-log query API is worldwide only," \
        "not in $m365_cloud (backfill there by importing a Sentinel or Purview export: mia import)"
      kept=""
      for role in $graph_roles; do
        [[ "$role" == "$AUDIT_QUERY_ROLE" ]] || kept="$kept $role"
      done
      graph_roles="$kept"
      ;;
  esac
fi
readonly GRAPH="${graph_endpoint:-$graph_root/v1.0}"
[[ "$GRAPH" =~ ^https://[^/]+ ]] || die "--graph-endpoint must be an https URL, not $GRAPH"
readonly GRAPH_RESOURCE="${BASH_REMATCH[0]}"

command -v az >/dev/null || die "the Azure CLI (az) is required"
if ((run_exchange && !dry_run)); then
  command -v pwsh >/dev/null || die "--run-exchange needs PowerShell (pwsh) with ExchangeOnlineManagement"
fi

if [[ -z "$principal_id" && ( -z "$identity_name" || -z "$resource_group" ) ]]; then
  die "give --principal-id, or --identity-name with --resource-group"
fi

# A token of one cloud is not accepted by another: the CLI must be signed in to the cloud of --cloud.
active_cloud="$(az cloud show --query name --output tsv)" ||
  die "could not read the Azure CLI's active cloud (az cloud show failed)"
if [[ "$active_cloud" != "$az_cloud" ]]; then
  die "--cloud $m365_cloud needs the Azure CLI on $az_cloud, but it is on $active_cloud: run" \
    "\`az cloud set --name $az_cloud\` and \`az login\`, then run this again"
fi

if [[ -z "$principal_id" ]]; then
  principal_id="$(az identity show --name "$identity_name" --resource-group "$resource_group" \
    --query principalId --output tsv)" ||
    die "could not read the principal ID of identity $identity_name in $resource_group"
fi
[[ "$principal_id" =~ ^[0-9a-fA-F-]{36}$ ]] || die "not an object ID: $principal_id"

absent() {
  [[ -z "$1" || "$1" == "None" ]]
}

# One Microsoft Graph request. --resource names the token's audience: az rest derives it from --url
# only for the endpoints of the active cloud (`az cloud show --query endpoints`), and DoD's Graph
# host is not among them.
#   https://learn.microsoft.com/cli/azure/reference-index#az-rest
graph_rest() {
  az rest --resource "$GRAPH_RESOURCE" "$@"
}

# The service principal of an application in this tenant, created when the tenant has none yet.
resource_sp_id() {
  local app_id="$1" id
  id="$(graph_rest --method GET \
    --url "$GRAPH/servicePrincipals?\$filter=appId eq '$app_id'&\$select=id" \
    --query 'value[0].id' --output tsv)" ||
    die "could not look up the service principal of $app_id (az's error is above)"
  if absent "$id"; then
    if ((dry_run)); then
      echo "would create the service principal of $app_id" >&2
      echo "missing"
      return
    fi
    echo "creating the service principal of $app_id" >&2
    id="$(graph_rest --method POST --url "$GRAPH/servicePrincipals" \
      --headers "Content-Type=application/json" \
      --body "{\"appId\": \"$app_id\"}" --query id --output tsv)" ||
      die "could not create the service principal of $app_id (az's error is above)"
  fi
  echo "$id"
}

# The id of a resource's application role (by value), empty when it has none.
app_role_id() {
  local sp="$1" value="$2" id
  id="$(graph_rest --method GET --url "$GRAPH/servicePrincipals/$sp?\$select=appRoles" \
    --query "appRoles[?value=='$value' && contains(allowedMemberTypes, 'Application')].id | [0]" \
    --output tsv)" ||
    die "could not read the application roles of service principal $sp (az's error is above)"
  absent "$id" && id=""
  echo "$id"
}

# The id of the identity's assignment of one role of a resource, empty when there is none.
assignment_id() {
  local sp="$1" role_id="$2" id
  id="$(graph_rest --method GET \
    --url "$GRAPH/servicePrincipals/$principal_id/appRoleAssignments" \
    --query "value[?appRoleId=='$role_id' && resourceId=='$sp'].id | [0]" --output tsv)" ||
    die "could not read the role assignments of $principal_id (az's error is above)"
  absent "$id" && id=""
  echo "$id"
}

# Grant one application role (by its value) of a resource to the managed identity.
grant() {
  local app_id="$1" value="$2" sp role_id existing
  sp="$(resource_sp_id "$app_id")" || exit 1
  if [[ "$sp" == "missing" ]]; then
    echo "would grant $value of $app_id to $principal_id"
    return
  fi
  role_id="$(app_role_id "$sp" "$value")" || exit 1
  [[ -n "$role_id" ]] || die "$app_id has no application role $value"
  existing="$(assignment_id "$sp" "$role_id")" || exit 1
  if [[ -n "$existing" ]]; then
    echo "already granted: $value ($role_id)"
    return
  fi
  if ((dry_run)); then
    echo "would grant: $value ($role_id)"
    return
  fi
  graph_rest --method POST --url "$GRAPH/servicePrincipals/$sp/appRoleAssignedTo" \
    --headers "Content-Type=application/json" \
    --body "{\"principalId\": \"$principal_id\", \"resourceId\": \"$sp\", \"appRoleId\": \"$role_id\"}" \
    --output none || die "could not grant $value ($role_id) to $principal_id (az's error is above)"
  echo "granted: $value ($role_id)"
}

# rbac mode: tenant-wide Graph mail permissions the identity holds defeat the scope; report them,
# and remove them when asked to.
check_entra_mail_grants() {
  local sp value role_id existing
  sp="$(resource_sp_id "$GRAPH_APP_ID")" || exit 1
  [[ "$sp" != "missing" ]] || return 0
  for value in $GRAPH_MAIL_ROLES_TENANT_WIDE; do
    role_id="$(app_role_id "$sp" "$value")" || exit 1
    [[ -n "$role_id" ]] || continue
    existing="$(assignment_id "$sp" "$role_id")" || exit 1
    [[ -n "$existing" ]] || continue
    if ((!remove_entra_mail)); then
      warn "the identity holds the Entra permission $value, which reaches every mailbox: the" \
        "management scope limits nothing while it exists. Re-run with --remove-entra-mail to remove it."
      status=2
    elif ((dry_run)); then
      echo "would remove the Entra permission $value ($existing)"
    else
      graph_rest --method DELETE \
        --url "$GRAPH/servicePrincipals/$principal_id/appRoleAssignments/$existing" --output none ||
        die "could not remove the Entra permission $value ($existing) (az's error is above)"
      echo "removed the Entra permission $value ($existing)"
    fi
  done
}

# A PowerShell single-quoted string: its content is taken literally, a quote is doubled.
# The quote is held in a variable: bash 3.2 keeps the backslashes of \' in a ${x//pattern/string}
# replacement, bash 4.3 and later drop them.
ps_quote() {
  local quote="'" value
  value="${1//$quote/$quote$quote}"
  printf "'%s'" "$value"
}

exchange_commands() {
  local app_id="$1" display_name="$2" short="${principal_id:0:8}" scope assignment
  scope="${scope_name:-mia-mailboxes-$short}"
  assignment="mia-$EXCHANGE_ROLE-$short"
  assignment="${assignment// /-}"
  cat <<EOF
\$ErrorActionPreference = 'Stop'
# Exchange Online PowerShell (ExchangeOnlineManagement), as an Exchange Administrator.
Connect-ExchangeOnline
# The Exchange pointer to the managed identity's service principal: AppId is its client ID,
# ObjectId the object ID of its service principal (enterprise application).
\$appId = $(ps_quote "$app_id")
\$objectId = $(ps_quote "$principal_id")
if (-not (Get-ServicePrincipal -Identity \$objectId -ErrorAction SilentlyContinue)) {
  New-ServicePrincipal -AppId \$appId -ObjectId \$objectId -DisplayName $(ps_quote "$display_name")
}
EOF
  if [[ -n "$scope_group" ]]; then
    cat <<EOF
# The scope: the group's direct members (MemberOfGroup takes the group's distinguished name).
\$group = Get-Group -Identity $(ps_quote "$scope_group")
\$filter = "MemberOfGroup -eq '{0}'" -f (\$group.DistinguishedName -replace "'", "''")
EOF
  else
    cat <<EOF
# The scope: the recipients this filter selects.
\$filter = $(ps_quote "$scope_filter")
EOF
  fi
  cat <<EOF
\$scopeName = $(ps_quote "$scope")
if (Get-ManagementScope -Identity \$scopeName -ErrorAction SilentlyContinue) {
  Set-ManagementScope -Identity \$scopeName -RecipientRestrictionFilter \$filter
} else {
  New-ManagementScope -Name \$scopeName -RecipientRestrictionFilter \$filter
}
\$assignmentName = $(ps_quote "$assignment")
if (-not (Get-ManagementRoleAssignment -Identity \$assignmentName -ErrorAction SilentlyContinue)) {
  New-ManagementRoleAssignment -Name \$assignmentName -App \$objectId -Role $(ps_quote "$EXCHANGE_ROLE") -CustomResourceScope \$scopeName
}
EOF
  if [[ -n "$test_mailbox" ]]; then
    echo "Test-ServicePrincipalAuthorization -Identity \$objectId -Resource $(ps_quote "$test_mailbox") | Format-Table"
  else
    echo "Test-ServicePrincipalAuthorization -Identity \$objectId | Format-Table"
  fi
}

scope_with_exchange_rbac() {
  local app_id display_name commands script
  app_id="$(graph_rest --method GET --url "$GRAPH/servicePrincipals/$principal_id?\$select=appId" \
    --query appId --output tsv)" ||
    die "could not read the client ID of $principal_id (az's error is above)"
  display_name="$(graph_rest --method GET --url "$GRAPH/servicePrincipals/$principal_id?\$select=displayName" \
    --query displayName --output tsv)" ||
    die "could not read the display name of $principal_id (az's error is above)"
  [[ "$app_id" =~ ^[0-9a-fA-F-]{36}$ ]] || die "no service principal $principal_id in this tenant"
  commands="$(exchange_commands "$app_id" "$display_name")" || exit 1
  if ((run_exchange && !dry_run)); then
    script="$(mktemp "${TMPDIR:-/tmp}/grant-permissions.XXXXXX.ps1")" ||
      die "could not create a temporary file for the Exchange Online commands"
    # shellcheck disable=SC2064 # expand now: the path is fixed
    trap "rm -f '$script'" EXIT
    printf '%s\n' "$commands" >"$script"
    echo "running the Exchange Online commands with pwsh (sign in as an Exchange Administrator)"
    pwsh -NoLogo -NoProfile -File "$script"
    echo "Exchange Online: $EXCHANGE_ROLE assigned to $principal_id within the management scope"
  else
    echo "Run these in Exchange Online PowerShell (or re-run with --run-exchange):"
    echo
    printf '%s\n' "$commands"
    echo
  fi
  echo "Exchange caches application permissions: a new scope can take 30 minutes to 2 hours to apply."
}

grant "$O365_MANAGEMENT_APP_ID" "ActivityFeed.Read"
for role in $graph_roles; do
  if [[ "$role" == "$MAIL_ROLE" && "$mail_scope" == "rbac" ]]; then
    echo "not granting $MAIL_ROLE in Entra: --mail-scope rbac grants $EXCHANGE_ROLE in Exchange Online"
    continue
  fi
  grant "$GRAPH_APP_ID" "$role"
  if [[ "$role" == "$TRACE_ROLE" ]]; then
    # Graph message trace answers 401 until the tenant has a service principal for Microsoft's
    # "Transport Data Platform" app; it can take hours to propagate.
    # https://learn.microsoft.com/exchange/monitoring/trace-an-email-message/graph-api-message-trace
    resource_sp_id "$TRANSPORT_DATA_PLATFORM_APP_ID" >/dev/null || exit 1
    if [[ "$mail_scope" == "rbac" ]]; then
      warn "$TRACE_ROLE is tenant-wide: message trace returns subjects of any mailbox, outside the scope"
    fi
  fi
  if [[ "$role" == "$AUDIT_QUERY_ROLE" && "$mail_scope" == "rbac" ]]; then
    warn "$AUDIT_QUERY_ROLE is tenant-wide: backfill reads every mailbox's audit records, outside the scope"
  fi
done
if [[ "$mail_scope" == "rbac" ]]; then
  check_entra_mail_grants
  scope_with_exchange_rbac
fi

echo "Done. Tokens the identity already holds are cached for up to 24 hours: new permissions can"
echo "take that long to reach the running app (restarting it does not refresh the identity's token)."
exit "$status"

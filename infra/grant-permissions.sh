#!/usr/bin/env bash
# Grant the function app's managed identity the application permissions collection needs:
#   - Office 365 Management APIs: ActivityFeed.Read (always);
#   - Microsoft Graph: Mail.ReadBasic.All, ExchangeMessageTrace.Read.All, AuditLogsQuery.Read.All
#     (each only when asked for, for the features that use it).
# Role IDs are looked up at run time by value from the resource's service principal; a missing
# resource service principal is created; assignments that exist are left alone (idempotent).
#
# Needs: az CLI signed in (`az login`) as a Privileged Role Administrator, Cloud Application
# Administrator or Global Administrator of the tenant whose audit log is collected.
#
# Usage:
#   infra/grant-permissions.sh --principal-id <object id of the managed identity> [--graph ROLE]...
#   infra/grant-permissions.sh --identity-name <name> --resource-group <rg> [--graph ROLE]...
#   infra/grant-permissions.sh ... --all-graph      # the three Graph roles
#   infra/grant-permissions.sh ... --dry-run        # print what would change, change nothing
set -euo pipefail

readonly O365_MANAGEMENT_APP_ID="c5393580-f805-4401-95e8-94b7a6ef2fc2"
readonly GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
readonly GRAPH_ROLES_KNOWN="Mail.ReadBasic.All ExchangeMessageTrace.Read.All AuditLogsQuery.Read.All"
GRAPH="https://graph.microsoft.com/v1.0"
readonly TRANSPORT_DATA_PLATFORM_APP_ID="8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"

principal_id=""
identity_name=""
resource_group=""
dry_run=0
graph_roles=()

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

die() {
  echo "grant-permissions: $*" >&2
  exit 1
}

while (($# > 0)); do
  case "$1" in
    --principal-id) principal_id="${2:?--principal-id needs a value}"; shift 2 ;;
    --identity-name) identity_name="${2:?--identity-name needs a value}"; shift 2 ;;
    --resource-group) resource_group="${2:?--resource-group needs a value}"; shift 2 ;;
    --graph) graph_roles+=("${2:?--graph needs a role value}"); shift 2 ;;
    --all-graph) read -r -a graph_roles <<<"$GRAPH_ROLES_KNOWN"; shift ;;
    --graph-endpoint) GRAPH="${2:?--graph-endpoint needs a value}"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

for role in "${graph_roles[@]}"; do
  case " $GRAPH_ROLES_KNOWN " in
    *" $role "*) ;;
    *) die "unknown Graph role $role (known: $GRAPH_ROLES_KNOWN)" ;;
  esac
done

command -v az >/dev/null || die "the Azure CLI (az) is required"

if [[ -z "$principal_id" ]]; then
  [[ -n "$identity_name" && -n "$resource_group" ]] ||
    die "give --principal-id, or --identity-name with --resource-group"
  principal_id="$(az identity show --name "$identity_name" --resource-group "$resource_group" \
    --query principalId --output tsv)"
fi
[[ "$principal_id" =~ ^[0-9a-fA-F-]{36}$ ]] || die "not an object ID: $principal_id"

# The service principal of an application in this tenant, created when the tenant has none yet.
resource_sp_id() {
  local app_id="$1" id
  id="$(az rest --method GET \
    --url "$GRAPH/servicePrincipals?\$filter=appId eq '$app_id'&\$select=id" \
    --query 'value[0].id' --output tsv)"
  if [[ -z "$id" || "$id" == "None" ]]; then
    if ((dry_run)); then
      echo "would create the service principal of $app_id" >&2
      echo "missing"
      return
    fi
    echo "creating the service principal of $app_id" >&2
    id="$(az rest --method POST --url "$GRAPH/servicePrincipals" \
      --headers "Content-Type=application/json" \
      --body "{\"appId\": \"$app_id\"}" --query id --output tsv)"
  fi
  echo "$id"
}

# Grant one application role (by its value) of a resource to the managed identity.
grant() {
  local app_id="$1" value="$2" sp role_id existing
  sp="$(resource_sp_id "$app_id")"
  if [[ "$sp" == "missing" ]]; then
    echo "would grant $value of $app_id to $principal_id"
    return
  fi
  role_id="$(az rest --method GET --url "$GRAPH/servicePrincipals/$sp?\$select=appRoles" \
    --query "appRoles[?value=='$value' && contains(allowedMemberTypes, 'Application')].id | [0]" \
    --output tsv)"
  [[ -n "$role_id" && "$role_id" != "None" ]] || die "$app_id has no application role $value"
  existing="$(az rest --method GET \
    --url "$GRAPH/servicePrincipals/$principal_id/appRoleAssignments" \
    --query "value[?appRoleId=='$role_id' && resourceId=='$sp'].id | [0]" --output tsv)"
  if [[ -n "$existing" && "$existing" != "None" ]]; then
    echo "already granted: $value ($role_id)"
    return
  fi
  if ((dry_run)); then
    echo "would grant: $value ($role_id)"
    return
  fi
  az rest --method POST --url "$GRAPH/servicePrincipals/$sp/appRoleAssignedTo" \
    --headers "Content-Type=application/json" \
    --body "{\"principalId\": \"$principal_id\", \"resourceId\": \"$sp\", \"appRoleId\": \"$role_id\"}" \
    --output none
  echo "granted: $value ($role_id)"
}

grant "$O365_MANAGEMENT_APP_ID" "ActivityFeed.Read"
for role in "${graph_roles[@]}"; do
  grant "$GRAPH_APP_ID" "$role"
  if [[ "$role" == "ExchangeMessageTrace.Read.All" ]]; then
    # Graph message trace answers 401 until the tenant has a service principal for Microsoft's
    # "Transport Data Platform" app (reference/api-contracts.md 3.1); it can take hours to propagate.
    resource_sp_id "$TRANSPORT_DATA_PLATFORM_APP_ID" >/dev/null
  fi
done

echo "Done. Tokens the identity already holds are cached for up to 24 hours: new permissions can"
echo "take that long to reach the running app (restarting it does not refresh the identity's token)."

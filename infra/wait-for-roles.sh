#!/usr/bin/env bash
# Waits, after `azd provision`, until this deployment's storage role assignments have taken effect,
# so that `azd deploy` (next in `azd up`) does not fail with 403. Run by azd's postprovision hook
# (azure.yaml); also by hand after `az deployment sub create`.
#
# Why: the Flex Consumption platform uploads the app package to the deployment container with the
# app's managed identity (infra/app/api.bicep), and the identity's Storage Blob Data Owner role is
# created by the same provision. Azure Resource Manager caches role assignments, so a new one can
# take minutes to apply (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting,
# "Role assignment changes are not being detected"); until it has, the upload gets 403. The identity
# cannot be signed in from here, so the deployer's own role on that container (Storage Blob Data
# Reader, created after the identity's: infra/app/rbac.bicep) stands for it: once the deployer can
# list the container, the assignments made before it have had at least as long to apply.
#
# Options (each defaults to the azd environment value named after it, which azd passes to hooks):
#   --deployer ID       object ID given as the template's deployerPrincipalId (AZURE_PRINCIPAL_ID,
#                       which azd sets to whoever runs it)
#   --account NAME      storage account (AZURE_STORAGE_ACCOUNT_NAME)
#   --container NAME    deployment package container (AZURE_STORAGE_DEPLOYMENT_CONTAINER)
#   --attempts N        listings before giving up (ROLE_WAIT_ATTEMPTS, default 60)
#   --interval S        seconds between them (ROLE_WAIT_INTERVAL_SECONDS, default 10)
# Without a deployer principal (so the template granted the deployer nothing) there is nothing to
# wait on: the script says so and succeeds.
# Exit status: 0 the container can be listed, 1 it still cannot after the attempts or az failed
# otherwise, 2 bad input.
set -euo pipefail

say() { printf 'wait-for-roles: %s\n' "$*"; }
die() {
  printf 'wait-for-roles: %s\n' "$*" >&2
  exit "${2:-1}"
}

deployer="${AZURE_PRINCIPAL_ID:-}"
account="${AZURE_STORAGE_ACCOUNT_NAME:-}"
container="${AZURE_STORAGE_DEPLOYMENT_CONTAINER:-}"
attempts="${ROLE_WAIT_ATTEMPTS:-60}"
interval="${ROLE_WAIT_INTERVAL_SECONDS:-10}"

while [ "$#" -gt 0 ]; do
  [ "$#" -ge 2 ] || die "$1 needs a value" 2
  case "$1" in
    --deployer) deployer="$2" ;;
    --account) account="$2" ;;
    --container) container="$2" ;;
    --attempts) attempts="$2" ;;
    --interval) interval="$2" ;;
    *) die "unknown option $1" 2 ;;
  esac
  shift 2
done

case "$attempts" in
  '' | *[!0-9]* | 0) die "--attempts is a whole number of at least 1, not $attempts" 2 ;;
esac
case "$interval" in
  '' | *[!0-9]*) die "--interval is a whole number of seconds, not $interval" 2 ;;
esac
if [ -z "$deployer" ]; then
  say "no deployer principal (--deployer and AZURE_PRINCIPAL_ID are empty), so no role to wait on; skipping"
  exit 0
fi
[ -n "$account" ] || die "no storage account: pass --account or set AZURE_STORAGE_ACCOUNT_NAME (an output of infra/main.bicep)" 2
[ -n "$container" ] || die "no container: pass --container or set AZURE_STORAGE_DEPLOYMENT_CONTAINER (an output of infra/main.bicep)" 2

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT

attempt=1
while :; do
  if az storage blob list --account-name "$account" --container-name "$container" --auth-mode login \
    --num-results 1 --output none 2>"$errors"; then
    say "the storage roles have taken effect (container $container of $account can be listed)"
    exit 0
  fi
  # A refusal for want of a role is what propagation looks like; anything else will not pass by waiting.
  if ! grep -q -e AuthorizationPermissionMismatch -e AuthorizationFailure -e 'required permissions' "$errors"; then
    cat "$errors" >&2
    die "could not list container $container of $account (az failed, see above); waiting would not help"
  fi
  if [ "$attempt" -ge "$attempts" ]; then
    cat "$errors" >&2
    die "the storage roles have not taken effect after $attempts attempts, $((attempts * interval))s in all: \
role assignments can take longer to apply. Wait a few minutes, then run \`azd deploy\` (the resources \
are provisioned), or run this script again with a larger --attempts."
  fi
  say "role assignments not in effect yet (attempt $attempt of $attempts); retrying in ${interval}s"
  attempt=$((attempt + 1))
  sleep "$interval"
done

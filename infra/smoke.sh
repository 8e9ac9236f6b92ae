#!/usr/bin/env bash
# Smoke test of a deployed app, run by azd's postdeploy hook when SMOKE_TEST=true (azure.yaml), or
# by hand. Three checks, all over HTTPS against the live app:
#   1. GET /api/health with the function key answers 200 with a JSON body (retried while the host
#      starts).
#   2. A report request carrying a forged X-MS-CLIENT-PRINCIPAL (base64 JSON naming the required
#      role) is not trusted. The app believes that header only while App Service authentication is
#      on (WEBSITE_AUTH_ENABLED), because the platform then removes it from callers' requests
#      (https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities#access-user-claims-in-app-code).
#      With enableAuth the forged request, which carries no token, gets 401; without it the app
#      ignores the header, so a principal it would refuse as malformed (claims not a list) is served
#      like any function-key call (200) instead of getting 401 invalid_principal.
#   3. With enableAuth, a report request with the function key but no token gets 401
#      (unauthenticatedClientAction Return401,
#      https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad).
# Each report request is recorded in the ReportAccess table, like any other.
#
# Options (each defaults to the azd environment value named after it, which azd passes to hooks):
#   --base-url URL     the app (SERVICE_API_URI)
#   --key KEY          the function key (SMOKE_FUNCTION_KEY); when empty it is read with
#                      `az functionapp keys list` on AZURE_FUNCTION_NAME in AZURE_RESOURCE_GROUP
#   --auth true|false  App Service authentication is on (ENABLE_AUTH, default false)
#   --role ROLE        the app role a report needs (REPORT_REQUIRED_ROLE, default MailAudit.Investigator)
#   --token TOKEN      with --auth true: an Entra ID access token for the report API (SMOKE_TOKEN);
#                      when empty, `az account get-access-token --resource api://AUTH_CLIENT_ID`
#   --mailbox UPN      the mailbox of the report requests (default smoke-test@example.com)
#   --attempts N       health calls before giving up (SMOKE_ATTEMPTS, default 20)
#   --interval S       seconds between them (SMOKE_INTERVAL_SECONDS, default 15)
# Exit status: 0 every check passed, 1 a check failed, 2 bad input or no key/token.
set -euo pipefail

say() { printf 'smoke: %s\n' "$*"; }
fail_usage() {
  printf 'smoke: %s\n' "$*" >&2
  exit 2
}

base_url="${SERVICE_API_URI:-}"
key="${SMOKE_FUNCTION_KEY:-}"
auth="${ENABLE_AUTH:-false}"
role="${REPORT_REQUIRED_ROLE:-MailAudit.Investigator}"
token="${SMOKE_TOKEN:-}"
mailbox="smoke-test@example.com"
attempts="${SMOKE_ATTEMPTS:-20}"
interval="${SMOKE_INTERVAL_SECONDS:-15}"

while [ "$#" -gt 0 ]; do
  [ "$#" -ge 2 ] || fail_usage "$1 needs a value"
  case "$1" in
    --base-url) base_url="$2" ;;
    --key) key="$2" ;;
    --auth) auth="$2" ;;
    --role) role="$2" ;;
    --token) token="$2" ;;
    --mailbox) mailbox="$2" ;;
    --attempts) attempts="$2" ;;
    --interval) interval="$2" ;;
    *) fail_usage "unknown option $1" ;;
  esac
  shift 2
done

[ -n "$base_url" ] || fail_usage "no app URL: pass --base-url or set SERVICE_API_URI (azd env get-value SERVICE_API_URI)"
base_url="${base_url%/}"
case "$auth" in
  true | True | TRUE) auth=true ;;
  false | False | FALSE | "") auth=false ;;
  *) fail_usage "--auth is true or false, not $auth" ;;
esac
case "$attempts" in
  '' | *[!0-9]* | 0) fail_usage "--attempts is a whole number of at least 1, not $attempts" ;;
esac
case "$interval" in
  '' | *[!0-9]*) fail_usage "--interval is a whole number of seconds, not $interval" ;;
esac
[ -n "$role" ] || fail_usage "--role is empty"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

if [ -z "$key" ]; then
  [ -n "${AZURE_FUNCTION_NAME:-}" ] && [ -n "${AZURE_RESOURCE_GROUP:-}" ] ||
    fail_usage "no function key: pass --key, or set AZURE_FUNCTION_NAME and AZURE_RESOURCE_GROUP so it can be read with az"
  # An assignment of its own, so a failed az call stops here with what failed (set -e does not
  # reach a substitution inside another command).
  if ! key="$(az functionapp keys list --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_NAME" \
    --query functionKeys.default --output tsv)"; then
    fail_usage "could not read the function key of $AZURE_FUNCTION_NAME (az functionapp keys list failed; see above)"
  fi
  [ -n "$key" ] || fail_usage "$AZURE_FUNCTION_NAME has no default function key"
fi
if [ "$auth" = true ] && [ -z "$token" ]; then
  [ -n "${AUTH_CLIENT_ID:-}" ] || fail_usage "with authentication on, pass --token or set AUTH_CLIENT_ID so az can get one"
  if ! token="$(az account get-access-token --resource "api://$AUTH_CLIENT_ID" --query accessToken --output tsv)"; then
    fail_usage "could not get a token for api://$AUTH_CLIENT_ID (see above); pass one with --token"
  fi
fi

# Secrets go to curl in header files, never on its command line (visible to other local users).
printf 'x-functions-key: %s\n' "$key" >"$workdir/key.header"
printf 'Authorization: Bearer %s\n' "$token" >"$workdir/token.header"
chmod 600 "$workdir/key.header" "$workdir/token.header"

# call PATH [extra curl arguments...]: prints "<status> <content type>", the body in $workdir/body.
call() {
  local path="$1"
  shift
  curl --silent --show-error --max-time 60 --output "$workdir/body" --write-out '%{http_code} %{content_type}' \
    -H "@$workdir/key.header" "$@" "$base_url$path" || printf '000 none'
}

forged_principal() {
  local claims="$1"
  printf '{"auth_typ":"aad","name_typ":"preferred_username","claims":%s}' "$claims" | base64 | tr -d '\n'
}

failures=0
passed() { say "ok: $*"; }
failed() {
  say "FAIL: $*" >&2
  failures=$((failures + 1))
}

check_health() {
  local attempt=1 answer status type
  while :; do
    if [ "$auth" = true ]; then
      answer="$(call /api/health -H "@$workdir/token.header")"
    else
      answer="$(call /api/health)"
    fi
    status="${answer%% *}"
    type="${answer#* }"
    [ "$status" = 200 ] && break
    if [ "$attempt" -ge "$attempts" ]; then
      failed "/api/health answered $status after $attempts attempts (is the app started? see Application Insights)"
      return 0
    fi
    say "/api/health answered $status (attempt $attempt of $attempts); retrying in ${interval}s"
    attempt=$((attempt + 1))
    sleep "$interval"
  done
  case "$type" in
    application/json*) ;;
    *)
      failed "/api/health answered 200 with content type $type, not application/json"
      return 0
      ;;
  esac
  if [ "$(head -c 1 "$workdir/body")" != "{" ]; then
    failed "/api/health answered 200 but its body is not a JSON object"
    return 0
  fi
  passed "/api/health answered 200 with a JSON object"
}

report_path="/api/reports/$mailbox?format=json"

check_forged_principal() {
  local header status
  if [ "$auth" = true ]; then
    header="$(forged_principal "[{\"typ\":\"preferred_username\",\"val\":\"smoke@example.com\"},{\"typ\":\"roles\",\"val\":\"$role\"}]")"
    status="$(call "$report_path" -H "X-MS-CLIENT-PRINCIPAL: $header")"
    status="${status%% *}"
    if [ "$status" = 401 ]; then
      passed "a forged principal naming $role without a token got 401"
    else
      failed "a forged principal naming $role without a token got $status, not 401: the header was trusted or authentication is off"
    fi
  else
    header="$(forged_principal "{\"typ\":\"roles\",\"val\":\"$role\"}")"
    status="$(call "$report_path" -H "X-MS-CLIENT-PRINCIPAL: $header")"
    status="${status%% *}"
    if [ "$status" = 200 ]; then
      passed "a forged principal header was ignored (authentication off: the function key alone decides)"
    else
      failed "a report request with a forged principal header got $status, not 200: with authentication off the app must ignore that header"
    fi
  fi
}

check_no_token() {
  local status
  status="$(call "$report_path")"
  status="${status%% *}"
  if [ "$status" = 401 ]; then
    passed "a report request without a token got 401"
  else
    failed "a report request without a token got $status, not 401"
  fi
}

say "testing $base_url (authentication $([ "$auth" = true ] && printf on || printf off))"
check_health
check_forged_principal
if [ "$auth" = true ]; then
  check_no_token
fi
if [ "$failures" -gt 0 ]; then
  say "$failures check(s) failed" >&2
  exit 1
fi
say "every check passed"

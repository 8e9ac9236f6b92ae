"""A stand-in for the Azure CLI that the scripts in infra/ call, over a small Graph tenant.

Runs as `az` (tests/infra/test_grant_permissions.py puts a wrapper on PATH). The tenant is a JSON
file (FAKE_AZ_STATE): service principals with their app roles, and app role assignments. Only the
calls the scripts make are answered: `az cloud show` (the active cloud: the tenant's "cloud",
AzureCloud unless set), `az identity show`, and `az rest` on /servicePrincipals,
.../appRoleAssignments and .../appRoleAssignedTo, under the tenant's "graph" root (the worldwide one
unless set) and for a token of that root's audience: `--resource`, or as az derives it without one,
the active cloud's Graph (CLOUD_GRAPH; https://learn.microsoft.com/cli/azure/reference-index#az-rest).
For infra/smoke.sh: `az functionapp keys list` (the tenant's "functionKey") and
`az account get-access-token` (its "accessToken"); for infra/wait-for-roles.sh: `az storage blob
list` (refused while the tenant's "roleDenials" last).
A call matching one of the tenant's "failing" regular expressions (matched against "METHOD URL"
for `az rest`, the first two words otherwise) fails the way az does: an ERROR line, exit
status 1. `--query` is applied with jmespath, as az does (so this runs with .venv-infra's Python,
which has it), and `--output tsv` prints like az: a scalar as is, null as nothing, a list of
scalars tab-separated. Every call is appended to
FAKE_AZ_LOG as one JSON line: argv, and the method and URL for `az rest`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GRAPH = "https://graph.microsoft.com/v1.0"
# endpoints.microsoftGraphResourceId of `az cloud show`, per cloud.
CLOUD_GRAPH = {"AzureCloud": "https://graph.microsoft.com", "AzureUSGovernment": "https://graph.microsoft.us"}


def options(argv: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    index = 0
    while index < len(argv):
        if argv[index].startswith("--") and index + 1 < len(argv):
            found[argv[index][2:]] = argv[index + 1]
            index += 2
        else:
            index += 1
    return found


class Tenant:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text())

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1))

    def sp(self, sp_id: str) -> dict[str, Any]:
        for sp in self.data["servicePrincipals"]:
            if sp["id"] == sp_id:
                return dict(sp)
        raise LookupError(f"Resource '{sp_id}' does not exist")

    def graph(self) -> str:
        return str(self.data.get("graph", GRAPH))

    def cloud(self) -> str:
        return str(self.data.get("cloud", "AzureCloud"))

    def fails(self, call: str) -> bool:
        return any(re.search(pattern, call) for pattern in self.data.get("failing", []))

    def rest(self, method: str, url: str, body: str | None) -> Any:
        graph = self.graph()
        assert url.startswith(graph + "/"), url
        parts = urlsplit(url[len(graph) :])
        path = parts.path.strip("/").split("/")
        query = parse_qs(parts.query)
        if method == "GET" and path == ["servicePrincipals"]:
            (expression,) = query["$filter"]
            match = re.fullmatch(r"appId eq '([0-9a-f-]+)'", expression)
            assert match, expression
            value = [{"id": sp["id"]} for sp in self.data["servicePrincipals"] if sp["appId"] == match[1]]
            return {"value": value}
        if method == "POST" and path == ["servicePrincipals"]:
            created = {"id": str(uuid.uuid4()), "appId": json.loads(body or "{}")["appId"], "appRoles": []}
            self.data["servicePrincipals"].append(created)
            self.save()
            return created
        if method == "GET" and len(path) == 2 and path[0] == "servicePrincipals":
            return self.sp(path[1])
        if len(path) >= 3 and path[0] == "servicePrincipals" and path[2] == "appRoleAssignments":
            principal = path[1]
            if method == "GET" and len(path) == 3:
                return {"value": [a for a in self.data["assignments"] if a["principalId"] == principal]}
            if method == "DELETE" and len(path) == 4:
                before = len(self.data["assignments"])
                self.data["assignments"] = [
                    a
                    for a in self.data["assignments"]
                    if not (a["id"] == path[3] and a["principalId"] == principal)
                ]
                assert len(self.data["assignments"]) == before - 1, f"no assignment {path[3]}"
                self.save()
                return None
        if method == "POST" and len(path) == 3 and path[2] == "appRoleAssignedTo":
            request = json.loads(body or "{}")
            resource = self.sp(path[1])
            assert request["resourceId"] == resource["id"]
            assert any(role["id"] == request["appRoleId"] for role in resource["appRoles"]), request
            created = {"id": str(uuid.uuid4()), **request}
            self.data["assignments"].append(created)
            self.save()
            return created
        raise AssertionError(f"fake az: no answer for {method} {url}")


def blob_list_refusal(tenant: Tenant, opts: dict[str, str]) -> str:
    """What az prints when `az storage blob list --auth-mode login` is refused; empty when it is not."""
    where = tenant.data["deploymentContainer"]
    if opts.get("auth-mode") != "login":
        return "ERROR: key access is disabled on this account (allowSharedKeyAccess false)"
    if (opts.get("account-name"), opts.get("container-name")) != (where["account"], where["container"]):
        return "ERROR: The specified container does not exist.\nErrorCode:ContainerNotFound"
    if tenant.data.get("roleDenials", 0) > 0:
        tenant.data["roleDenials"] -= 1
        tenant.save()
        # The CLI's wording for a 403 from the data plane under --auth-mode login.
        return (
            "ERROR: You do not have the required permissions needed to perform this operation.\n"
            "ErrorCode:AuthorizationPermissionMismatch"
        )
    return ""


def tsv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\t".join("" if item is None else str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def main(argv: list[str]) -> int:
    tenant = Tenant(Path(os.environ["FAKE_AZ_STATE"]))
    opts = options(argv)
    entry: dict[str, Any] = {"argv": argv}
    if argv[:1] == ["rest"]:
        entry.update(method=opts["method"], url=opts["url"])
    call = f"{entry['method']} {entry['url']}" if "url" in entry else " ".join(argv[:2])
    if tenant.fails(call):
        entry["failed"] = True
        with Path(os.environ["FAKE_AZ_LOG"]).open("a") as log:
            log.write(json.dumps(entry) + "\n")
        print("ERROR: Forbidden({'error': {'code': 'Authorization_RequestDenied'}})", file=sys.stderr)
        return 1
    if argv[:2] == ["cloud", "show"]:
        result: Any = {"name": tenant.cloud()}
    elif argv[:2] == ["identity", "show"]:
        result = {"principalId": tenant.data["identityPrincipalId"], "name": opts["name"]}
    elif argv[:3] == ["storage", "blob", "list"]:
        # infra/wait-for-roles.sh: refused for want of a role while the tenant's "roleDenials" last
        # (one used per call), then an empty listing of its "deploymentContainer".
        denied = blob_list_refusal(tenant, opts)
        if denied:
            with Path(os.environ["FAKE_AZ_LOG"]).open("a") as log:
                log.write(json.dumps({**entry, "failed": True}) + "\n")
            print(denied, file=sys.stderr)
            return 1
        result = []
    elif argv[:3] == ["functionapp", "keys", "list"]:
        # infra/smoke.sh: the app's host keys (tenant "functionKey" as the default function key).
        result = {"functionKeys": {"default": tenant.data["functionKey"]}, "masterKey": "not-for-smoke"}
    elif argv[:2] == ["account", "get-access-token"]:
        # infra/smoke.sh with authentication on: a token for the report API (tenant "accessToken").
        result = {"accessToken": tenant.data["accessToken"], "tokenType": "Bearer"}
    elif argv[:1] == ["rest"]:
        audience = opts.get("resource", CLOUD_GRAPH.get(tenant.cloud()))
        if audience != tenant.graph().removesuffix("/v1.0"):
            print(f"ERROR: no token for {opts['url']} (audience {audience})", file=sys.stderr)
            return 1
        try:
            result = tenant.rest(opts["method"], opts["url"], opts.get("body"))
        except LookupError as missing:
            print(f"ERROR: Not Found({missing})", file=sys.stderr)
            return 3
    else:
        print(f"fake az: unsupported command {argv}", file=sys.stderr)
        return 2
    with Path(os.environ["FAKE_AZ_LOG"]).open("a") as log:
        log.write(json.dumps(entry) + "\n")
    if "query" in opts:
        result = importlib.import_module("jmespath").search(opts["query"], result)
    output = opts.get("output", "json")
    if output == "none":
        return 0
    print(tsv(result) if output == "tsv" else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

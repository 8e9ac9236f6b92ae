"""report_http's app-role check (Easy Auth principal) and the ReportAccess record of every request."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

from shared import runtime
from shared.report_access import parse_principal
from shared.storage import REPORT_ACCESS_TABLE, Storage
from tests.integration.helpers import SAMPLE_FROM, SAMPLE_TO

Handler = Callable[[func.HttpRequest], func.HttpResponse]
ROLE = "MailAudit.Investigator"
RANGE = {"from": SAMPLE_FROM, "to": SAMPLE_TO}


def principal_header(roles: list[str], name: str = "ines@contoso.com", **extra: Any) -> str:
    claims = [
        {"typ": "preferred_username", "val": name},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": "oid-123"},
        *({"typ": "roles", "val": role} for role in roles),
    ]
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "preferred_username", **extra}
    return base64.b64encode(json.dumps(document).encode()).decode()


def request(mailbox: str, headers: dict[str, str] | None = None, /, **params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/reports/{mailbox}",
        route_params={"mailbox": mailbox},
        params=params,
        headers=headers or {},
        body=b"",
    )


def access_rows(storage: Storage) -> list[dict[str, Any]]:
    rows = list(storage.tables.get_table_client(REPORT_ACCESS_TABLE).list_entities())
    return sorted(rows, key=lambda row: row["RowKey"])


def error_code(response: func.HttpResponse) -> str:
    return str(json.loads(response.get_body())["error"]["code"])


@pytest.fixture
def role_required(loaded: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    monkeypatch.setenv("REPORT_REQUIRED_ROLE", ROLE)
    runtime.reset()
    return loaded


def test_without_a_required_role_reports_are_served_and_recorded(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", format="json", code="secret-key", **RANGE))

    assert response.status_code == 200
    [row] = access_rows(loaded)
    assert row["Status"] == 200
    assert row["Mailbox"] == "alice@contoso.com"
    assert row["AuthType"] == "function-key"
    assert row["BodySha256"] == hashlib.sha256(response.get_body()).hexdigest()
    assert row["BodyBytes"] == len(response.get_body())
    parameters = json.loads(row["Parameters"])
    assert parameters == {"format": "json", **RANGE}, "the function key must never be recorded"


def test_no_principal_is_refused_401_and_recorded(role_required: Storage, report_http: Handler) -> None:
    response = report_http(request("alice@contoso.com", **RANGE))

    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"
    [row] = access_rows(role_required)
    assert (row["Status"], row["ErrorCode"], row["Principal"]) == (401, "unauthenticated", "")
    assert row["BodySha256"] == hashlib.sha256(response.get_body()).hexdigest()


def test_a_principal_without_the_role_is_refused_403_and_recorded(
    role_required: Storage, report_http: Handler
) -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL": principal_header(["Other.Role"])}
    response = report_http(request("alice@contoso.com", headers, **RANGE))

    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert ROLE in json.loads(response.get_body())["error"]["message"]
    [row] = access_rows(role_required)
    assert (row["Status"], row["Principal"], row["PrincipalId"]) == (403, "ines@contoso.com", "oid-123")
    assert row["Roles"] == "Other.Role"


@pytest.mark.parametrize("header", ["not base64!", base64.b64encode(b"[1, 2]").decode(), "e30="])
def test_a_malformed_principal_is_refused_401(
    role_required: Storage, report_http: Handler, header: str
) -> None:
    response = report_http(request("alice@contoso.com", {"X-MS-CLIENT-PRINCIPAL": header}, **RANGE))

    assert response.status_code == 401
    assert error_code(response) == "invalid_principal"
    assert access_rows(role_required)[0]["Status"] == 401


def test_a_principal_with_the_role_gets_the_report(role_required: Storage, report_http: Handler) -> None:
    headers = {
        "X-MS-CLIENT-PRINCIPAL": principal_header([ROLE, "Another"]),
        "X-Forwarded-For": "203.0.113.7:50123",
    }
    response = report_http(request("alice@contoso.com", headers, view="sessions", **RANGE))

    assert response.status_code == 200
    assert response.get_body()
    [row] = access_rows(role_required)
    assert (row["Status"], row["ErrorCode"], row["Principal"]) == (200, "", "ines@contoso.com")
    assert row["AuthType"] == "aad"
    assert row["Roles"] == f"Another,{ROLE}"
    assert row["ClientIp"] == "203.0.113.7:50123"
    assert json.loads(row["Parameters"]) == {"view": "sessions", **RANGE}
    assert row["BodySha256"] == hashlib.sha256(response.get_body()).hexdigest()


def test_bad_input_from_an_authorized_caller_is_recorded_with_its_error(
    role_required: Storage, report_http: Handler
) -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL": principal_header([ROLE])}
    response = report_http(request("alice@contoso.com", headers, view="nope"))

    assert response.status_code == 400
    [row] = access_rows(role_required)
    assert (row["Status"], row["ErrorCode"]) == (400, error_code(response))


def test_roles_under_the_principal_role_type_count() -> None:
    role_typ = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    document = {"auth_typ": "aad", "role_typ": role_typ, "claims": [{"typ": role_typ, "val": ROLE}]}
    header = base64.b64encode(json.dumps(document).encode()).decode()

    principal = parse_principal({"x-ms-client-principal": header, "X-MS-CLIENT-PRINCIPAL-NAME": "svc"})

    assert principal is not None
    assert principal.roles == (ROLE,)
    assert principal.name == "svc"


def test_an_invalid_required_role_setting_fails_at_start_up() -> None:
    from shared.config import SettingsError, report_settings

    with pytest.raises(SettingsError, match="REPORT_REQUIRED_ROLE"):
        report_settings({"REPORT_REQUIRED_ROLE": "two roles"})
    assert report_settings({"REPORT_REQUIRED_ROLE": f" {ROLE} "}).required_role == ROLE


def test_a_report_whose_access_cannot_be_recorded_is_not_served(
    loaded: Storage, report_http: Handler
) -> None:
    loaded.tables.delete_table(REPORT_ACCESS_TABLE)

    response = report_http(request("alice@contoso.com", **RANGE))

    assert response.status_code == 503
    assert error_code(response) == "access_log_unavailable"

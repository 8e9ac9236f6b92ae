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
from shared.access.principal import parse_principal
from shared.storage import Storage
from tests.helpers import SAMPLE_FROM, SAMPLE_TO

pytestmark = pytest.mark.functions

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
    rows = list(storage.report_access.client.list_entities())
    return sorted(rows, key=lambda row: row["RowKey"])


def error_code(response: func.HttpResponse) -> str:
    return str(json.loads(response.get_body())["error"]["code"])


@pytest.fixture
def role_required(loaded: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """The deployment Bicep makes with enableAuth: App Service authentication on, a role required."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("REPORT_REQUIRED_ROLE", ROLE)
    runtime.reset()
    return loaded


@pytest.fixture
def platform_auth_only(loaded: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    runtime.reset()
    return loaded


@pytest.fixture
def role_without_platform_auth(loaded: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
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
    assert row["ClientIp"] == "203.0.113.7"
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


def test_a_report_whose_access_cannot_be_recorded_is_not_served(
    loaded: Storage, report_http: Handler
) -> None:
    loaded.report_access.client.delete_table()

    response = report_http(request("alice@contoso.com", **RANGE))

    assert response.status_code == 503
    assert error_code(response) == "access_log_unavailable"


# --- who the caller is, with and without App Service authentication ---------------------------

FORGED = {
    "X-MS-CLIENT-PRINCIPAL": principal_header([ROLE], name="ceo@contoso.com"),
    "X-MS-CLIENT-PRINCIPAL-NAME": "ceo@contoso.com",
    "X-MS-CLIENT-PRINCIPAL-ID": "oid-forged",
}


def test_without_platform_auth_principal_headers_are_the_callers_and_not_recorded_as_the_principal(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", FORGED, **RANGE))

    assert response.status_code == 200
    [row] = access_rows(loaded)
    assert (row["Principal"], row["PrincipalId"], row["Roles"]) == ("", "", "")
    assert row["AuthType"] == "function-key"
    assert row["PrincipalHeadersIgnored"] is True


def test_without_platform_auth_a_required_role_refuses_every_report_503(
    role_without_platform_auth: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", FORGED, **RANGE))
    plain = report_http(request("alice@contoso.com", **RANGE))

    for refused in (response, plain):
        assert refused.status_code == 503
        assert error_code(refused) == "auth_not_configured"
        message = json.loads(refused.get_body())["error"]["message"]
        assert "App Service authentication" in message
        assert "REPORT_REQUIRED_ROLE" in message
        assert "RecordId" not in refused.get_body().decode()
    rows = access_rows(role_without_platform_auth)
    assert [(r["Status"], r["ErrorCode"], r["Principal"]) for r in rows] == [
        (503, "auth_not_configured", ""),
        (503, "auth_not_configured", ""),
    ]
    assert [r["PrincipalHeadersIgnored"] for r in rows] == [True, False]


def test_with_platform_auth_and_no_role_the_principal_is_recorded(
    platform_auth_only: Storage, report_http: Handler
) -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL": principal_header(["Other.Role"])}
    response = report_http(request("alice@contoso.com", headers, **RANGE))

    assert response.status_code == 200
    [row] = access_rows(platform_auth_only)
    assert (row["Principal"], row["PrincipalId"], row["AuthType"]) == ("ines@contoso.com", "oid-123", "aad")
    assert row["PrincipalHeadersIgnored"] is False


def test_with_platform_auth_and_no_role_a_request_without_a_principal_is_the_function_key(
    platform_auth_only: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", **RANGE))

    assert response.status_code == 200
    [row] = access_rows(platform_auth_only)
    assert (row["Principal"], row["AuthType"]) == ("", "function-key")


# --- the client address the platform saw --------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # App Service's front end overwrites Client-IP: a caller's X-Forwarded-For entries come first.
        (
            {"CLIENT-IP": "198.51.100.9:61234", "X-Forwarded-For": "6.6.6.6, 198.51.100.9:61234"},
            "198.51.100.9",
        ),
        ({"X-Forwarded-For": "6.6.6.6,7.7.7.7, 203.0.113.7:50123"}, "203.0.113.7"),
        ({"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
        ({"Client-IP": "[2001:db8::1]:443", "X-Forwarded-For": "6.6.6.6"}, "2001:db8::1"),
        ({"X-Forwarded-For": "6.6.6.6, 2001:db8::2"}, "2001:db8::2"),
        ({}, ""),
    ],
)
def test_the_recorded_client_ip_is_the_address_the_platform_saw(
    loaded: Storage, report_http: Handler, headers: dict[str, str], expected: str
) -> None:
    report_http(request("alice@contoso.com", headers, **RANGE))

    [row] = access_rows(loaded)
    assert row["ClientIp"] == expected


@pytest.mark.parametrize("name", ["Code", "CODE"])
def test_the_function_key_is_never_recorded_in_any_casing(
    loaded: Storage, report_http: Handler, name: str
) -> None:
    report_http(request("alice@contoso.com", **{name: "secret-key", **RANGE}))

    [row] = access_rows(loaded)
    assert "secret-key" not in row["Parameters"]
    assert json.loads(row["Parameters"]) == RANGE

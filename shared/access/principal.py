"""Who may read a report, and the record of every report request (in ReportAccess).

In Azure, App Service authentication (Easy Auth) validates the caller's Entra ID token and passes
the principal to the function in the header `X-MS-CLIENT-PRINCIPAL`: base64 JSON with `claims`, a
list of `{"typ", "val"}`. The platform strips that header from incoming requests only while Easy
Auth is on, so the principal headers are believed only when the platform says it is on
(WEBSITE_AUTH_ENABLED); otherwise they are the caller's own text and the caller is recorded as
the function key. A required role without platform authentication refuses every report.

Every request, served or refused, leaves one row: who, when, which mailbox, which parameters
(never the function key), the status, the client address the platform saw, a correlation id, and
the SHA-256 of the body served, so an investigator's access to mail metadata can itself be audited.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.storage.report_access import ReportAccessTable, ReportRequest

log = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal"
# The App Service front end sets Client-IP to the address it saw, overwriting any a caller sent
# (https://github.com/Azure/app-service-linux-docs/blob/HEAD/Things_You_Should_Know/headers.md).
# A proxy appends the address it saw to X-Forwarded-For after the caller's own entries
# (https://developer.mozilla.org/docs/Web/HTTP/Reference/Headers/X-Forwarded-For), so only the
# last entry is not the caller's choice.
PLATFORM_CLIENT_IP_HEADER = "client-ip"
FORWARDED_FOR_HEADER = "x-forwarded-for"
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
NAME_CLAIMS = ("preferred_username", "upn", "name", "appid", "azp")
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
# Query parameters that are credentials, never recorded.
SECRET_PARAMS = frozenset({"code"})
MAX_FIELD = 1024


@dataclass(frozen=True)
class Principal:
    name: str
    object_id: str
    auth_type: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


class PrincipalError(ValueError):
    """The principal header is present but not what Easy Auth sends."""


def _claims(document: Mapping[str, Any], types: tuple[str, ...]) -> list[str]:
    wanted = {t.lower() for t in types}
    values = []
    for claim in document.get("claims") or []:
        if isinstance(claim, Mapping) and str(claim.get("typ", "")).lower() in wanted:
            values.append(str(claim.get("val", "")))
    return values


def parse_principal(headers: Mapping[str, str]) -> Principal | None:
    """The Easy Auth principal of the request, None when there is none; PrincipalError if malformed."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw = lowered.get(PRINCIPAL_HEADER, "").strip()
    if not raw:
        return None
    try:
        document = orjson.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL is not base64 JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("claims"), list):
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL has no claims")
    role_types = (*ROLE_CLAIMS, str(document.get("role_typ", "")))
    name_types = (str(document.get("name_typ", "")), *NAME_CLAIMS)
    names = [n for t in name_types if t for n in _claims(document, (t,)) if n]
    object_ids = _claims(document, OBJECT_ID_CLAIMS)
    return Principal(
        name=(names[0] if names else lowered.get("x-ms-client-principal-name", ""))[:MAX_FIELD],
        object_id=(object_ids[0] if object_ids else lowered.get("x-ms-client-principal-id", ""))[:MAX_FIELD],
        auth_type=str(document.get("auth_typ", ""))[:MAX_FIELD],
        roles=tuple(sorted({r for r in _claims(document, role_types) if r})),
    )


def principal_headers_sent(headers: Mapping[str, str]) -> bool:
    """Did the request carry any X-MS-CLIENT-PRINCIPAL* header (forged, when Easy Auth is off)?"""
    return any(k.lower().startswith(PRINCIPAL_HEADER) for k in headers)


def authorize(
    headers: Mapping[str, str], required_role: str, platform_auth: bool
) -> tuple[Principal | None, Refusal | None]:
    """The caller, and why they are refused (None when allowed). Fails closed when a role is required.

    Without platform authentication the principal headers are ignored: anyone can send them."""
    if not platform_auth:
        if required_role:
            return None, Refusal(
                503,
                "auth_not_configured",
                "REPORT_REQUIRED_ROLE is set but App Service authentication is off, so no caller can "
                "be verified: turn on App Service authentication or unset REPORT_REQUIRED_ROLE",
            )
        return None, None
    try:
        principal = parse_principal(headers)
    except PrincipalError as problem:
        return None, Refusal(401, "invalid_principal", str(problem))
    if not required_role:
        return principal, None
    if principal is None:
        return None, Refusal(
            401, "unauthenticated", "sign in with Entra ID: this endpoint requires an authenticated caller"
        )
    if required_role not in principal.roles:
        return principal, Refusal(
            403, "forbidden", f"the caller's token does not carry the app role {required_role!r}"
        )
    return principal, None


def _without_port(value: str) -> str:
    """`203.0.113.7:50123` -> `203.0.113.7`, `[2001:db8::1]:443` -> `2001:db8::1`; an address
    without a port as it is; anything else unchanged (recorded as data, never dropped)."""
    candidates = [value]
    if value.startswith("[") and "]" in value:
        candidates.append(value[1 : value.index("]")])
    elif value.count(":") == 1:
        candidates.append(value.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return value


def client_ip(headers: Mapping[str, str]) -> str:
    """The caller's address as the platform saw it, port stripped: Client-IP, else the last
    X-Forwarded-For entry (the one the nearest proxy appended), never an earlier one."""
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get(PLATFORM_CLIENT_IP_HEADER, "").strip()
    if not value:
        value = lowered.get(FORWARDED_FOR_HEADER, "").split(",")[-1].strip()
    return _without_port(value)[:MAX_FIELD]


def record(
    table: ReportAccessTable,
    *,
    principal: Principal | None,
    mailbox: str,
    params: Mapping[str, str],
    status: int,
    error_code: str,
    body: str | bytes,
    client_ip: str = "",
    correlation_id: str = "",
    principal_headers_ignored: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write one ReportAccess row (never reused); returns the entity written. The SHA-256 is of the
    bytes served: a text body's UTF-8, a workbook's own bytes."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    kept = {k: v for k, v in sorted(params.items()) if k.lower() not in SECRET_PARAMS}
    request = ReportRequest(
        requested_at=now or datetime.now(UTC),
        principal=principal.name if principal else "",
        principal_id=principal.object_id if principal else "",
        auth_type=principal.auth_type if principal else "function-key",
        roles=",".join(principal.roles)[:MAX_FIELD] if principal else "",
        mailbox=mailbox[:MAX_FIELD],
        parameters=orjson.dumps(kept).decode()[: 16 * MAX_FIELD],
        status=status,
        error_code=error_code,
        body_sha256=hashlib.sha256(data).hexdigest(),
        body_bytes=len(data),
        client_ip=client_ip[:MAX_FIELD],
        correlation_id=correlation_id[:MAX_FIELD],
        # X-MS-CLIENT-PRINCIPAL* headers arrived without platform authentication: not believed.
        principal_headers_ignored=principal_headers_ignored,
    )
    return table.append(request)

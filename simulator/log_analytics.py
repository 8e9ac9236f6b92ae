"""The Log Analytics query API over the simulated tenant's history, as Sentinel's `OfficeActivity`.

`POST /v1/workspaces/{workspaceId}/query` with `{"query": ..., "timespan": "start/end"}` and a
bearer token for `https://api.loganalytics.io` answers `{"tables": [{"name": "PrimaryResult",
"columns": [...], "rows": [...]}]}` (https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format).
The rows are the tenant's MailItemsAccessed records, its history older than the Management API's
window included, flattened as the table does
(https://learn.microsoft.com/azure/azure-monitor/reference/tables/officeactivity), using the column
names shared/parse/office_activity.py reads back; `dynamic` values are JSON text, as the API writes
them. Only the KQL our client sends is understood (shared/clients/log_analytics.py: one time
window of MailItemsAccessed); anything else is refused with a 400 `BadArgumentError`.

A result over `log_analytics_max_rows` (500,000 on the service,
https://learn.microsoft.com/azure/azure-monitor/service-limits#log-analytics-workspaces) is cut there
and answered 200 with a `PartialError` naming E_QUERY_RESULT_SET_TOO_LARGE, as the service does
with a non-fatal error; requests over the per-client budget (200 per 30 s on the service) answer 429
with Retry-After.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jwt

from shared.parse.office_activity import NESTED_COLUMNS, RENAMED_COLUMNS
from simulator.config import SimulatorConfig
from simulator.entra import LOG_ANALYTICS_RESOURCE, Entra
from simulator.faults import Stats
from simulator.graph import RollingWindow
from simulator.tenant import Tenant
from simulator.web import Reply, Request, json_reply

TRUNCATION_MESSAGE = (
    "Query result set has exceeded the internal record count limit {limit} "
    "(E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)"
)
# The KQL the simulator understands: our client's window query, whitespace aside.
_WINDOW_QUERY = re.compile(
    r"^\s*OfficeActivity\s*"
    r"\|\s*where\s+TimeGenerated\s*>=\s*datetime\((?P<start>[^)]+)\)\s+and\s+"
    r"TimeGenerated\s*<\s*datetime\((?P<end>[^)]+)\)\s*"
    r'\|\s*where\s+Operation\s*==\s*"MailItemsAccessed"\s*'
    r"\|\s*order\s+by\s+TimeGenerated\s+asc\s*,\s*OfficeId\s+asc\s*$"
)
_DYNAMIC = frozenset({"OperationProperties", "AppAccessContext"})
# Column, type: the table's columns the simulated rows fill, in the table reference's types.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("TenantId", "string"),
    ("SourceSystem", "string"),
    ("TimeGenerated", "datetime"),
    ("RecordType", "string"),
    ("Operation", "string"),
    ("OrganizationId", "string"),
    ("UserType", "string"),
    ("UserKey", "string"),
    ("OfficeWorkload", "string"),
    ("ResultStatus", "string"),
    ("UserId", "string"),
    ("ClientIP", "string"),
    ("ExternalAccess", "bool"),
    ("Logon_Type", "string"),
    ("InternalLogonType", "int"),
    ("MailboxGuid", "string"),
    ("MailboxOwnerUPN", "string"),
    ("ClientInfoString", "string"),
    ("Client_IPAddress", "string"),
    ("OriginatingServer", "string"),
    ("Folders", "string"),
    ("Item", "string"),
    ("OperationProperties", "dynamic"),
    ("AppId", "string"),
    ("ClientAppId", "string"),
    ("SessionId", "string"),
    ("AppAccessContext", "dynamic"),
    ("OfficeId", "string"),
    ("OfficeTenantId", "string"),
    ("Type", "string"),
)
_FIELD_OF = {column: RENAMED_COLUMNS.get(column, column) for column, _ in COLUMNS}
_LOGON_TYPES = {0: "Owner", 1: "Admin", 2: "Delegated"}
_USER_TYPES = {0: "Regular", 1: "Reserved", 2: "Admin", 3: "DcAdmin", 4: "System", 5: "Application"}
_RECORD_TYPES = {2: "ExchangeItem", 3: "ExchangeItemGroup", 50: "ExchangeItemAggregated"}


def la_error(status: int, code: str, message: str, inner: Mapping[str, Any] | None = None) -> Reply:
    """A OneAPI error object, as the query API answers a fatal error."""
    error: dict[str, Any] = {"message": message, "code": code}
    if inner:
        error["innererror"] = dict(inner)
    return json_reply(status, {"error": error})


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def _time_generated(creation_time: str) -> datetime:
    return datetime.fromisoformat(creation_time).replace(tzinfo=UTC)


def _cell(column: str, kind: str, record: Mapping[str, Any], tenant_id: str) -> object:
    if column in ("TenantId", "OfficeTenantId"):
        return tenant_id if column == "TenantId" else record.get("OrganizationId", "")
    if column == "SourceSystem":
        return "OfficeActivityManager"
    if column == "Type":
        return "OfficeActivity"
    if column == "OfficeWorkload":
        return record.get("Workload", "")
    value = record.get(_FIELD_OF[column])
    if column == "TimeGenerated":
        return _time_generated(str(value)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if column == "RecordType" and isinstance(value, int):
        return _RECORD_TYPES.get(value, str(value))
    if column == "UserType" and isinstance(value, int):
        return _USER_TYPES.get(value, str(value))
    if column == "Logon_Type" and isinstance(value, int):
        return _LOGON_TYPES.get(value, str(value))
    if column in NESTED_COLUMNS:
        return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if value is None:
        return "" if kind == "string" else None
    return value


def office_activity_rows(records: Iterable[Mapping[str, Any]], tenant_id: str) -> list[list[object]]:
    """The records as OfficeActivity rows in COLUMNS order (OperationCount has no column)."""
    return [[_cell(column, kind, record, tenant_id) for column, kind in COLUMNS] for record in records]


class LogAnalytics:
    def __init__(
        self,
        *,
        config: SimulatorConfig,
        tenant: Tenant,
        entra: Entra,
        stats: Stats,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._tenant = tenant
        self._entra = entra
        self._stats = stats
        self._workspace = config.log_analytics_workspace_id.lower()
        self._budget = RollingWindow(
            config.log_analytics_requests_per_window, config.log_analytics_window_s, monotonic
        )
        self._records = sorted(
            # The workspace keeps what the tenant logged before the Management API's window too:
            # that history is why a team keeps OfficeActivity for months.
            (
                record
                for record in (*tenant.history, *tenant.records)
                if record.get("Operation") == "MailItemsAccessed"
            ),
            key=lambda record: (_time_generated(str(record["CreationTime"])), str(record["Id"])),
        )

    def handle(self, request: Request, workspace: str, rest: Sequence[str]) -> Reply:
        """An HTTP request to /v1/workspaces/{workspace}/{rest}."""
        self._stats.add("log_analytics_requests")
        self._stats.route("log_analytics_query")
        if list(rest) != ["query"]:
            return la_error(404, "PathNotFoundError", f"The requested path does not exist: {request.path}")
        if request.method != "POST":
            return la_error(405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not allowed.")
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        if workspace.lower() != self._workspace:
            return la_error(404, "WorkspaceNotFoundError", f"The workspace could not be found: {workspace}")
        retry_after = self._budget.admit(request.client_host)
        if retry_after is not None:
            self._stats.error("ThrottledError")
            reply = la_error(429, "ThrottledError", "Too many requests: the query rate limit was exceeded.")
            reply.headers["Retry-After"] = str(retry_after)
            return reply
        return self._query(request)

    def _authenticate(self, request: Request) -> Reply | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        claims = (
            self._entra.validate(token, LOG_ANALYTICS_RESOURCE)
            if scheme.lower() == "bearer" and token
            else None
        )
        if claims is not None and str(claims.get("tid", "")).lower() == self._tenant.tenant_id.lower():
            return None
        self._stats.error("InvalidTokenError")
        reply = la_error(
            401,
            "InvalidTokenError",
            _token_problem(token, self._tenant.tenant_id) if token else "Missing token.",
        )
        reply.headers["WWW-Authenticate"] = (
            'Bearer authorization_uri="https://login.microsoftonline.com/common"'
        )
        return reply

    def _query(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return la_error(400, "BadArgumentError", "The request body is not valid JSON.")
        query = body.get("query") if isinstance(body, dict) else None
        match = _WINDOW_QUERY.match(query) if isinstance(query, str) else None
        start, end = (_moment(match["start"]), _moment(match["end"])) if match else (None, None)
        if match is None or start is None or end is None:
            self._stats.error("BadArgumentError")
            return la_error(
                400,
                "BadArgumentError",
                "The request had some invalid properties",
                {
                    "code": "SemanticError",
                    "message": "A semantic error occurred: the simulator answers only mia's OfficeActivity "
                    "window query (shared/clients/log_analytics.py).",
                },
            )
        span = _timespan(body.get("timespan"))
        if isinstance(span, str):
            return la_error(400, "BadArgumentError", span)
        if span is not None:
            start, end = max(start, span[0]), min(end, span[1])
        selected = [
            record for record in self._records if start <= _time_generated(str(record["CreationTime"])) < end
        ]
        limit = self._config.log_analytics_max_rows
        served = selected[:limit]
        self._stats.add("log_analytics_queries")
        self._stats.add("log_analytics_rows", len(served))
        payload: dict[str, Any] = {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [{"name": column, "type": kind} for column, kind in COLUMNS],
                    "rows": office_activity_rows(served, self._tenant.tenant_id),
                }
            ]
        }
        if len(selected) > limit:
            self._stats.error("PartialError")
            payload["error"] = _partial_error(limit)
        return json_reply(200, payload)


def _timespan(value: object) -> tuple[datetime, datetime] | str | None:
    """The `timespan` of the request body: `start/end` in ISO 8601 (a duration is not used by us)."""
    if value is None:
        return None
    first, slash, second = str(value).partition("/")
    start, end = _moment(first), _moment(second)
    if not slash or start is None or end is None:
        return f"The timespan '{value}' is not a valid ISO 8601 interval of two UTC instants."
    return start, end


def _partial_error(limit: int) -> dict[str, Any]:
    return {
        "code": "PartialError",
        "message": "There were some errors when processing your query.",
        "details": [
            {
                "code": "EngineError",
                "message": "Something went wrong processing your query on the server.",
                "innererror": {
                    "code": "-2133196797",
                    "message": TRUNCATION_MESSAGE.format(limit=limit),
                    "severity": 2,
                    "severityName": "Error",
                },
            }
        ],
    }


def _token_problem(token: str, tenant_id: str) -> str:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "Token is not a well-formed JWT."
    if str(claims.get("aud", "")).rstrip("/") != LOG_ANALYTICS_RESOURCE:
        return f"The token audience is not valid: expected {LOG_ANALYTICS_RESOURCE}."
    if float(claims.get("exp", 0)) <= time.time():
        return "The token has expired."
    if str(claims.get("tid", "")).lower() != tenant_id.lower():
        return "The token's tenant is not the workspace's."
    return "The token's signature is not valid."

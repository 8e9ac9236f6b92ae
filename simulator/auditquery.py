"""The Microsoft Graph audit-log query API (`/{v1.0|beta}/security/auditLog/queries`) over the
tenant's whole audit log: its history (older than the Management API's 7 days) and every record
collection can see (docs/mailitemsaccessed.md#graph-audit-log-query; published shapes in
`simulator/fixtures/graph_audit_query_published.json`).

- `POST queries` -> 201 auditLogQuery, `status: notStarted`; it is `running` after
  `audit_query_start_s` and `succeeded` (or, for the first `audit_query_failures` queries,
  `failed`) `audit_query_run_s` later. A query matches records with filterStartDateTime <=
  CreationTime < filterEndDateTime, `recordTypeFilters` (camelCase, any case), `operationFilters`
  and `userPrincipalNameFilters`, which match the user who performed the action (the record's
  UserId), not the mailbox: "The UPN of the user who performed the action"
  (https://learn.microsoft.com/en-us/graph/api/security-auditcoreroot-post-auditlogqueries?view=graph-rest-1.0).
- More than `audit_query_record_limit` matches: the query still succeeds, returns the oldest
  `limit` records and says `isRecordCountLimitExceeded: true` (the v1.0 resource's note).
- 429 TooManyRequests with Retry-After when `audit_query_concurrency` queries are queued or
  running, and for the first `audit_query_throttle_burst` creates.
- `GET queries/{id}/records` pages with `$top` and a signed `$skiptoken` in `@odata.nextLink`;
  before the query succeeded it answers 400 (a guess: undocumented). Records carry PascalCase
  `auditLogRecordType` (observed) and the classic record as the `auditData` object.
- Needs a Graph token with AuditLogsQuery-Exchange.Read.All or AuditLogsQuery.Read.All (403
  otherwise); with `audit_query_v1_missing` v1.0 answers 404 UnknownError (observed on tenants
  where beta worked).

Served MailItemsAccessed record ids (pages sent whole) are kept for the ground truth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from simulator.config import SimulatorConfig
from simulator.entra import GRAPH_RESOURCE, Entra
from simulator.faults import Stats
from simulator.feed import parse_time
from simulator.records import Record
from simulator.tenant import Tenant
from simulator.web import Reply, Request, json_reply

AUDIT_ROLES = frozenset({"AuditLogsQuery.Read.All", "AuditLogsQuery-Exchange.Read.All"})
VERSIONS = ("v1.0", "beta")
MAX_TOP = 1000
RECORD_TYPES = {2: "ExchangeItem", 3: "ExchangeItemGroup", 50: "ExchangeItemAggregated"}
USER_TYPES = {0: "regular", 1: "reserved", 2: "admin", 3: "dcAdmin", 4: "system", 5: "application"}
RECORD_ODATA = "#microsoft.graph.security.auditLogRecord"
AUDIT_DATA_ODATA = "#microsoft.graph.security.exchangeMailboxAuditRecord"
LIST_FILTERS = (
    "recordTypeFilters",
    "operationFilters",
    "userPrincipalNameFilters",
    "ipAddressFilters",
    "objectIdFilters",
    "administrativeUnitIdFilters",
)


def graph_stamp(value: str) -> str:
    """A classic CreationTime (no zone) as a Graph DateTimeOffset."""
    return value if value.endswith("Z") else f"{value}Z"


def audit_log_record(record: Record) -> dict[str, Any]:
    """The auditLogRecord Graph returns for one classic record."""
    return {
        "@odata.type": RECORD_ODATA,
        "id": record["Id"],
        "createdDateTime": graph_stamp(str(record["CreationTime"])),
        "auditLogRecordType": RECORD_TYPES.get(int(record["RecordType"]), "ExchangeItem"),
        "operation": record["Operation"],
        "organizationId": record["OrganizationId"],
        "userType": USER_TYPES.get(int(record.get("UserType", 0)), "regular"),
        "userId": record["UserId"],
        "service": record.get("Workload", "Exchange"),
        "objectId": record.get("MailboxGuid", ""),
        "userPrincipalName": record["UserId"],
        "clientIp": record.get("ClientIPAddress", ""),
        "administrativeUnits": [],
        "auditData": {"@odata.type": AUDIT_DATA_ODATA, **record},
    }


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    record_types: frozenset[str]  # lower case; empty: any
    operations: frozenset[str]
    users: frozenset[str]

    def matches(self, record: Record) -> bool:
        moment = parse_time(str(record["CreationTime"]))
        if moment is None or not self.start <= moment < self.end:
            return False
        kind = RECORD_TYPES.get(int(record["RecordType"]), "").lower()
        return (
            (not self.record_types or kind in self.record_types)
            and (not self.operations or str(record["Operation"]).lower() in self.operations)
            and (not self.users or str(record["UserId"]).lower() in self.users)
        )


@dataclass
class Query:
    id: str
    body: dict[str, Any]
    created: float
    fails: bool
    records: list[Record]
    matched: int
    limit: int
    served: set[str] = field(default_factory=set)

    def status(self, now: float, config: SimulatorConfig) -> str:
        elapsed = now - self.created
        if elapsed < config.audit_query_start_s:
            return "notStarted"
        if elapsed < config.audit_query_start_s + config.audit_query_run_s:
            return "running"
        return "failed" if self.fails else "succeeded"

    def as_json(self, now: float, config: SimulatorConfig) -> dict[str, Any]:
        done = self.status(now, config) == "succeeded"
        return {
            "@odata.type": "#microsoft.graph.security.auditLogQuery",
            **{name: [] for name in LIST_FILTERS},
            **{k: v for k, v in self.body.items() if k != "@odata.type"},
            "id": self.id,
            "status": self.status(now, config),
            "recordCountLimit": self.limit,
            "approximateReturnedRecordCount": self.matched if done else 0,
            "isRecordCountLimitExceeded": done and self.matched > self.limit,
        }


def _strings(body: Mapping[str, Any], name: str) -> frozenset[str] | str:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return f"Invalid value for property '{name}': a collection of strings is expected."
    return frozenset(item.lower() for item in value)


def parse_filters(body: Mapping[str, Any]) -> Filters | str:
    """The filters of a create request, or why it is a bad request."""
    bounds = []
    for name in ("filterStartDateTime", "filterEndDateTime"):
        raw = body.get(name)
        moment = parse_time(raw) if isinstance(raw, str) else None
        if moment is None:
            return f"Invalid value for property '{name}': a DateTimeOffset is required."
        bounds.append(moment)
    if bounds[1] <= bounds[0]:
        return "filterEndDateTime must be after filterStartDateTime."
    lists = [
        _strings(body, name) for name in ("recordTypeFilters", "operationFilters", "userPrincipalNameFilters")
    ]
    for value in lists:
        if isinstance(value, str):
            return value
    types, operations, users = (value for value in lists if not isinstance(value, str))
    return Filters(bounds[0], bounds[1], types, operations, users)


class SkipTokens:
    """Signed $skiptoken values: the query id and the offset."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        ).decode()

    def encode(self, query_id: str, offset: int) -> str:
        payload = json.dumps([query_id, offset]).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._mac(payload)

    def decode(self, token: str, query_id: str) -> int | None:
        body, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        signed_id, offset = json.loads(payload)
        return int(offset) if signed_id == query_id else None


class AuditQueries:
    """The service; `handle` answers /{version}/security/auditLog/queries[/{id}[/records]]."""

    def __init__(
        self,
        *,
        config: SimulatorConfig,
        tenant: Tenant,
        entra: Entra,
        stats: Stats,
        base_url: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._tenant = tenant
        self._entra = entra
        self._stats = stats
        self._base_url = base_url
        self._monotonic = monotonic
        self._log = sorted((*tenant.history, *tenant.records), key=lambda r: (r["CreationTime"], r["Id"]))
        self._queries: dict[str, Query] = {}
        self._creates = 0
        self._tokens = SkipTokens()
        self._lock = threading.Lock()

    # -- ground truth -------------------------------------------------------------------------

    def served(self) -> list[str]:
        """Distinct MailItemsAccessed record ids sent in whole records pages."""
        with self._lock:
            ids = set().union(*(query.served for query in self._queries.values()))
        return sorted(ids)

    def history_ids(self) -> list[str]:
        return sorted(r["Id"] for r in self._tenant.history if r["Operation"] == "MailItemsAccessed")

    def matching_ids(self, start: datetime, end: datetime) -> list[str]:
        """The MailItemsAccessed record ids a query for [start, end) would return (no limit)."""
        wanted = Filters(start, end, frozenset(), frozenset({"mailitemsaccessed"}), frozenset())
        return sorted(r["Id"] for r in self._log if wanted.matches(r))

    # -- routing ------------------------------------------------------------------------------

    def handle(self, request: Request, version: str, rest: Sequence[str]) -> Reply:
        self._stats.add("audit_query_requests")
        if version == "v1.0" and self._config.audit_query_v1_missing:
            return self._error(404, "UnknownError", "")
        refused = self._authorize(request)
        if refused is not None:
            return refused
        if not rest:
            if request.method == "POST":
                return self._create(request)
            if request.method == "GET":
                return self._list()
        elif len(rest) == 1 and request.method == "GET":
            return self._get(rest[0])
        elif len(rest) == 2 and rest[1].lower() == "records" and request.method == "GET":
            return self._records(request, rest[0], version)
        return self._error(405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not allowed.")

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        self._stats.error(code)
        return json_reply(status, {"error": {"code": code, "message": message}}, headers)

    def _authorize(self, request: Request) -> Reply | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        claims = self._entra.validate(token, GRAPH_RESOURCE) if scheme.lower() == "bearer" and token else None
        if claims is None or str(claims.get("tid", "")).lower() != self._tenant.tenant_id.lower():
            return self._error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if not AUDIT_ROLES & set(claims.get("roles", [])):
            return self._error(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        return None

    # -- operations ---------------------------------------------------------------------------

    def _create(self, request: Request) -> Reply:
        self._stats.route("audit_query_create")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return self._error(400, "BadRequest", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._error(400, "BadRequest", "The request body must be an auditLogQuery object.")
        filters = parse_filters(body)
        if isinstance(filters, str):
            return self._error(400, "BadRequest", filters)
        now = self._monotonic()
        config = self._config
        with self._lock:
            self._creates += 1
            if self._creates <= config.audit_query_throttle_burst:
                self._stats.fault("audit_query_throttle_burst")
                return self._error(429, "TooManyRequests", "Too many requests.", {"Retry-After": "1"})
            active = [q for q in self._queries.values() if q.status(now, config) in ("notStarted", "running")]
            if len(active) >= config.audit_query_concurrency:
                finish = (
                    min(q.created for q in active) + config.audit_query_start_s + config.audit_query_run_s
                )
                wait = max(1, math.ceil(finish - now))
                self._stats.fault("audit_query_concurrency")
                return self._error(
                    429,
                    "TooManyRequests",
                    "Too many queued or running audit log queries.",
                    {"Retry-After": str(wait)},
                )
            matched = [record for record in self._log if filters.matches(record)]
            limit = config.audit_query_record_limit
            query = Query(
                id=_query_id(len(self._queries), self._tenant.tenant_id),
                body={k: v for k, v in body.items() if k != "status"},
                created=now,
                fails=len(self._queries) < config.audit_query_failures,
                records=matched[:limit],
                matched=len(matched),
                limit=limit,
            )
            self._queries[query.id] = query
        return json_reply(201, query.as_json(now, config))

    def _list(self) -> Reply:
        self._stats.route("audit_query_list")
        now = self._monotonic()
        with self._lock:
            values = [q.as_json(now, self._config) for q in self._queries.values()]
        return json_reply(200, {"value": values})

    def _find(self, query_id: str) -> Query | None:
        with self._lock:
            return self._queries.get(query_id)

    def _get(self, query_id: str) -> Reply:
        self._stats.route("audit_query_get")
        query = self._find(query_id)
        if query is None:
            return self._error(404, "NotFound", f"No audit log query with id '{query_id}'.")
        return json_reply(200, query.as_json(self._monotonic(), self._config))

    def _records(self, request: Request, query_id: str, version: str) -> Reply:
        self._stats.route("audit_query_records")
        query = self._find(query_id)
        if query is None:
            return self._error(404, "NotFound", f"No audit log query with id '{query_id}'.")
        status = query.status(self._monotonic(), self._config)
        if status != "succeeded":
            return self._error(
                400, "BadRequest", f"The audit log query is {status}; records are not available."
            )
        top = _top(request.param("$top"), self._config.audit_query_page_size)
        if top is None:
            return self._error(400, "BadRequest", f"$top must be an integer 1..{MAX_TOP}.")
        offset = 0
        token = request.param("$skiptoken")
        if token is not None:
            decoded = self._tokens.decode(token, query_id)
            if decoded is None:
                return self._error(400, "BadRequest", "Invalid $skiptoken.")
            offset = decoded
        page = query.records[offset : offset + top]
        payload: dict[str, Any] = {
            "@odata.context": (
                f"{self._base_url}/{version}/$metadata#security/auditLog/queries('{query_id}')/records"
            ),
            "value": [audit_log_record(record) for record in page],
        }
        if offset + top < len(query.records):
            skip = quote(self._tokens.encode(query_id, offset + top), safe="")
            payload["@odata.nextLink"] = (
                f"{self._base_url}/{version}/security/auditLog/queries/{query_id}/records?$top={top}&$skiptoken={skip}"
            )
        ids = {r["Id"] for r in page if r["Operation"] == "MailItemsAccessed"}
        reply = json_reply(200, payload)
        reply.on_sent = lambda: self._mark_served(query, ids)
        return reply

    def _mark_served(self, query: Query, ids: set[str]) -> None:
        with self._lock:
            query.served.update(ids)
        self._stats.add("audit_query_pages_served")


def _top(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 1 <= value <= MAX_TOP else None


def _query_id(index: int, tenant_id: str) -> str:
    digest = hashlib.sha256(f"auditquery|{tenant_id}|{index}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

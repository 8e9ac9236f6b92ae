"""Client of the Microsoft Graph audit-log query API (`/security/auditLog/queries`), for backfill.

- Create a query (201 auditLogQuery), poll it (`GET queries/{id}`; the docs' sample wraps the
  object in `value`, clients read it at the top level: both are read), page its records following
  `@odata.nextLink` verbatim (docs/mailitemsaccessed.md#graph-audit-log-query).
- v1.0 first; a 404, or a 400 "Resource not found for the segment", switches to beta, where some
  tenants answer while v1.0 does not (docs/mailitemsaccessed.md#graph-audit-log-query).
- `failed` and `cancelled` are terminal (a gap other tools have: they poll until `succeeded`);
  `isRecordCountLimitExceeded` is authoritative: a query can succeed truncated
  (https://learn.microsoft.com/en-us/graph/api/resources/security-auditlogquery?view=graph-rest-1.0).
- A records page is kept as the bytes received; one that is not a whole JSON object with a
  `value` array is fetched again (a transfer cut short).
- Retries, 429 Retry-After, the host guard for nextLinks and the deadline are the transport's.
  Queries share their own throttling scope: a 429 for too many queries pauses only them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
import requests

from shared.clients.auth import TokenProvider
from shared.clients.errors import PermanentError, TransientError
from shared.clients.http_session import session_for
from shared.clients.transport import RetryPolicy, Transport
from shared.model.times import iso_z
from shared.settings import GraphSettings

VERSIONS = ("v1.0", "beta")
PAGE_SIZE = 1000  # $top: undocumented, practitioners use 200-1000
OPERATION = "MailItemsAccessed"
# MailItemsAccessed is an ExchangeItemAggregated record (RecordType 50); older Sync records were
# ExchangeItem (RecordType 2), so both types are asked for (docs/mailitemsaccessed.md).
RECORD_TYPES = ("exchangeItemAggregated", "exchangeItem")
RUNNING = frozenset({"notStarted", "running"})
FAILED = frozenset({"failed", "cancelled"})


@dataclass(frozen=True)
class QueryStatus:
    id: str
    status: str
    limit_exceeded: bool = False
    approximate_records: int | None = None

    @property
    def running(self) -> bool:
        """Not done yet; an unknown status (unknownFutureValue) is waited on too."""
        return self.status not in FAILED and self.status != "succeeded"


@dataclass(frozen=True)
class RecordsPage:
    data: bytes  # exactly as received
    records: int
    mailboxes: tuple[str, ...]  # MailboxOwnerUPN of each record's auditData ("" when absent)
    next_link: str | None


def _object(response: requests.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise TransientError(response.status_code, "bad_json", "the answer is not JSON") from None
    if not isinstance(body, dict):
        raise TransientError(response.status_code, "bad_json", "the answer is not a JSON object")
    return body


def _status(body: dict[str, Any]) -> QueryStatus:
    inner = body.get("value")
    if "status" not in body and isinstance(inner, dict):
        body = inner
    elif "status" not in body and isinstance(inner, list) and inner and isinstance(inner[0], dict):
        body = inner[0]
    count = body.get("approximateReturnedRecordCount")
    return QueryStatus(
        id=str(body.get("id") or ""),
        status=str(body.get("status") or "unknownFutureValue"),
        limit_exceeded=body.get("isRecordCountLimitExceeded") is True,
        approximate_records=count if isinstance(count, int) else None,
    )


def _page(response: requests.Response) -> RecordsPage:
    body = _object(response)
    values = body.get("value")
    if not isinstance(values, list):
        raise TransientError(response.status_code, "bad_page", "a records page without a 'value' array")
    link = body.get("@odata.nextLink")
    return RecordsPage(
        data=response.content,
        records=len(values),
        mailboxes=tuple(_mailbox(value) for value in values),
        next_link=str(link) if isinstance(link, str) and link else None,
    )


def _mailbox(value: object) -> str:
    audit = value.get("auditData") if isinstance(value, dict) else None
    owner = audit.get("MailboxOwnerUPN") if isinstance(audit, dict) else None
    return owner.lower() if isinstance(owner, str) else ""


def _missing_version(problem: PermanentError) -> bool:
    return problem.status == 404 or (
        problem.status == 400 and "resource not found" in problem.message.lower()
    )


class AuditQueryClient:
    def __init__(
        self,
        settings: GraphSettings,
        tokens: TokenProvider,
        version: str = VERSIONS[0],
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._base = settings.base.rstrip("/")
        self.version = version
        self._page_size = page_size
        self._transport = Transport(
            settings.base,
            settings.scope,
            tokens,
            RetryPolicy(
                settings.request_timeout_seconds, settings.max_attempts, settings.max_backoff_seconds
            ),
            session_for(settings.auth.ca_bundle),
            api="graph",
            throttling_scope=f"audit log queries of {settings.auth.tenant_id}",
        )

    def _queries(self, *parts: str, version: str | None = None) -> str:
        root = f"{self._base}/{version or self.version}/security/auditLog/queries"
        return "/".join((root, *(quote(part, safe="") for part in parts)))

    def create(self, start: datetime, end: datetime, name: str, deadline: float | None = None) -> QueryStatus:
        """A query for MailItemsAccessed records with start <= time < end. No user filter: it would
        match the acting user, not the mailbox (userPrincipalNameFilters, "the user who performed
        the action": https://learn.microsoft.com/en-us/graph/api/security-auditcoreroot-post-auditlogqueries?view=graph-rest-1.0),
        and miss delegates, admins and apps reading the mailbox."""
        body = orjson.dumps(
            {
                "@odata.type": "#microsoft.graph.security.auditLogQuery",
                "displayName": name,
                "filterStartDateTime": iso_z(start),
                "filterEndDateTime": iso_z(end),
                "recordTypeFilters": list(RECORD_TYPES),
                "operationFilters": [OPERATION],
            }
        )
        try:
            return _status(self._transport.request("POST", self._queries(), _object, body, deadline))
        except PermanentError as problem:
            if self.version != VERSIONS[0] or not _missing_version(problem):
                raise
        self.version = VERSIONS[1]
        return _status(self._transport.request("POST", self._queries(), _object, body, deadline))

    def status(self, query_id: str, version: str = "", deadline: float | None = None) -> QueryStatus:
        """The query's state, asked of the API version that created it."""
        url = self._queries(query_id, version=version or None)
        status = _status(self._transport.request("GET", url, _object, deadline=deadline))
        if status.id:
            return status
        return QueryStatus(query_id, status.status, status.limit_exceeded, status.approximate_records)

    def records_url(self, query_id: str, version: str = "") -> str:
        return f"{self._queries(query_id, 'records', version=version or None)}?$top={self._page_size}"

    def page(self, url: str, deadline: float | None = None) -> RecordsPage:
        return self._transport.request("GET", url, _page, deadline=deadline)

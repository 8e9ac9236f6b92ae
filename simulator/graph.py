"""The Microsoft Graph endpoints our subject resolver calls.

- `GET /v1.0/users/{upn}/messages?$filter=internetMessageId eq '...'` (Mail.ReadBasic.All,
  docs/mailitemsaccessed.md#microsoft-graph-message-lookup): the filter is matched exactly after
  ordinary URL decoding, so an unencoded '+' arrives as a space and matches nothing; a message may
  have two copies; purged messages are gone. Per mailbox at most 4 lookups execute at once and
  10,000 per 10 minutes are admitted (docs/mailitemsaccessed.md#outlook-throttling), else 429
  ApplicationThrottled with Retry-After.
- `POST /v1.0/$batch` (docs/mailitemsaccessed.md#json-batching): at most 20 items with unique ids,
  executed at most 4 at a time, each throttled like a direct request; the responses come back in a
  seeded shuffled order.
- `GET /v1.0/admin/exchange/tracing/messageTraces` (ExchangeMessageTrace.Read.All,
  docs/mailitemsaccessed.md#graph-message-trace): `and`-joined `eq` / `ge` / `le` clauses, the 10-day /
  90-day / end <= now rules, `$top` 1..5000 with `@odata.nextLink` paging, 100 requests per rolling
  5 minutes per tenant, and a "missing service principal" 401 mode.

Errors are `{"error": {"code", "message"}}`. Guesses, not documented: the wording of most messages
(beyond ErrorAccessDenied, ErrorInvalidUser, ApplicationThrottled), the codes for bad trace requests
(BadRequest), trace throttling (TooManyRequests) and a missing service principal (Unauthorized),
405 for a wrong method, 400 for a mail lookup without the internetMessageId filter (the simulator
does not list mailboxes), and message trace rows: one per message per mailbox (Sent Items and Drafts
included, recipient = the mailbox), status `delivered`, newest first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import jwt

from simulator.clock import Clock
from simulator.config import SimulatorConfig
from simulator.entra import GRAPH_RESOURCE, Entra
from simulator.faults import FaultInjector, Stats
from simulator.records import MessageMeta
from simulator.tenant import Tenant
from simulator.web import Reply, Request, json_reply

MAIL_ROLES = frozenset({"Mail.ReadBasic.All", "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"})
TRACE_ROLE = "ExchangeMessageTrace.Read.All"
TRANSPORT_DATA_PLATFORM = "8bd644d1-64a1-4d4b-ae52-2e0cbf64e373"
BATCH_LIMIT = 20
BATCH_CONCURRENCY = 4
MAILBOX_CONCURRENCY = 4
DEFAULT_MESSAGE_PAGE = 10
MAX_MESSAGE_PAGE = 1000
DEFAULT_TRACE_PAGE = 1000
MAX_TRACE_PAGE = 5000
TRACE_MAX_WINDOW = timedelta(days=10)
TRACE_RETENTION = timedelta(days=90)
TRACE_DEFAULT_WINDOW = timedelta(hours=48)
CLOCK_SKEW = timedelta(minutes=5)
DELETED_ITEMS = "\\Deleted Items"
ODATA_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
ACCESS_DENIED = "Access is denied. Check credentials and try again."
MESSAGE_FIELDS = (
    "id",
    "receivedDateTime",
    "sentDateTime",
    "subject",
    "internetMessageId",
    "parentFolderId",
    "sender",
    "from",
)
_FIELD_NAMES = {name.lower(): name for name in MESSAGE_FIELDS}
_IMID_FILTER = re.compile(r"internetMessageId\s+eq\s+'((?:[^']|'')*)'", re.IGNORECASE)
_TRACE_CLAUSE = re.compile(
    r"""\s*(?:
        (?P<time>receivedDateTime)\s+(?P<op>ge|le)\s+
        (?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?Z)
      | (?P<field>messageId|recipientAddress|senderAddress)\s+eq\s+'(?P<value>(?:[^']|'')*)'
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_TRACE_AND = re.compile(r"and\s+", re.IGNORECASE)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


def graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("|".join(parts).encode("utf-8")).digest()


def _rest_id(*parts: str) -> str:
    """An opaque Graph REST id in the AAMkAG... shape, stable for its inputs."""
    return "AAMkAG" + base64.urlsafe_b64encode(_digest(*parts) + _digest("id", *parts)[:18]).decode()


def _odata_string(value: str) -> str:
    return value.replace("''", "'")


def _query_string(params: Sequence[tuple[str, str]]) -> str:
    return urlencode(params, quote_via=quote, safe="$'")


# -- throttling ---------------------------------------------------------------------------------


class RollingWindow:
    """At most `limit` admissions per key in any `window_s` seconds (monotonic clock)."""

    def __init__(self, limit: int, window_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._monotonic = monotonic
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> int | None:
        """None when admitted, else the Retry-After: seconds until the oldest admission leaves."""
        now = self._monotonic()
        with self._lock:
            times = self._admitted.setdefault(key, deque())
            while times and times[0] <= now - self._window_s:
                times.popleft()
            if len(times) >= self._limit:
                return max(1, math.ceil(times[0] + self._window_s - now))
            times.append(now)
            return None


class Concurrency:
    """Per-key slots: `acquire` fails when `limit` are already held."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        with self._lock:
            if self._held.get(key, 0) >= self._limit:
                return False
            self._held[key] = self._held.get(key, 0) + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._held[key] -= 1


# -- message lookup -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageQuery:
    internet_message_id: str
    top: int
    skip: int
    select: tuple[str, ...]  # empty: every modelled property


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | str:
    """The parameter's value, or an error message."""
    raw = request.param(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        return f"Invalid value '{raw}' for {name} query option found."
    if not low <= value <= high:
        return f"The value of {name} query option is out of range. It should be between {low} and {high}."
    return value


def _select(raw: str | None) -> tuple[str, ...] | str:
    if raw is None or not raw.strip():
        return ()
    names = []
    for part in raw.split(","):
        name = _FIELD_NAMES.get(part.strip().lower())
        if name is None:
            return f"Could not find a property named '{part.strip()}' on type 'microsoft.graph.message'."
        names.append(name)
    return tuple(dict.fromkeys(names))


def message_query(request: Request) -> MessageQuery | str:
    """The lookup a request asks for, or why it is a bad request."""
    raw = request.param("$filter")
    if raw is None:
        return "The simulator only answers $filter=internetMessageId eq '<id>' on /users/{id}/messages."
    match = _IMID_FILTER.fullmatch(raw.strip())
    if match is None:
        return f"Invalid filter clause: {raw}"
    top = _int_param(request, "$top", DEFAULT_MESSAGE_PAGE, 1, MAX_MESSAGE_PAGE)
    if isinstance(top, str):
        return top
    skip = _int_param(request, "$skip", 0, 0, 1_000_000)
    if isinstance(skip, str):
        return skip
    select = _select(request.param("$select"))
    if isinstance(select, str):
        return select
    return MessageQuery(_odata_string(match.group(1)), top, skip, select)


def message_json(upn: str, meta: MessageMeta, copy: int) -> dict[str, Any]:
    """The message resource; copy 1 is where the audit saw it, copy 2 sits in Deleted Items."""
    sent = meta.received - timedelta(seconds=2 + _digest(meta.internet_message_id)[0] % 50)
    folder = meta.folder_path if copy == 1 else DELETED_ITEMS
    address = {"emailAddress": {"name": meta.sender_name or meta.sender, "address": meta.sender}}
    return {
        "id": _rest_id(upn, meta.internet_message_id, str(copy)),
        "receivedDateTime": graph_time(meta.received),
        "sentDateTime": graph_time(sent),
        "subject": meta.subject,
        "internetMessageId": meta.internet_message_id,
        "parentFolderId": _rest_id(upn, "folder", folder),
        "sender": address,
        "from": address,
    }


# -- message trace ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceQuery:
    start: datetime
    end: datetime
    equals: Mapping[str, str]  # messageId / recipientAddress / senderAddress -> value
    top: int
    offset: int


@dataclass(frozen=True)
class TraceRow:
    received: datetime
    sender: str
    recipient: str
    message_id: str
    body: Mapping[str, Any]

    def matches(self, query: TraceQuery) -> bool:
        if not query.start <= self.received <= query.end:
            return False
        wanted = query.equals
        return (
            wanted.get("messageId", self.message_id) == self.message_id
            and wanted.get("recipientAddress", self.recipient).lower() == self.recipient
            and wanted.get("senderAddress", self.sender).lower() == self.sender
        )


def trace_rows(tenant: Tenant) -> tuple[TraceRow, ...]:
    """One row per recipient; purged messages stay in the trace, the fallback
    (docs/mailitemsaccessed.md#graph-message-trace)."""
    rows = []
    for mailbox, messages in tenant.messages.items():
        for meta in messages.values():
            digest = _digest("trace", mailbox, meta.internet_message_id)
            body = {
                "id": _uuid(digest),
                "senderAddress": meta.sender,
                "recipientAddress": mailbox,
                "messageId": meta.internet_message_id,
                "receivedDateTime": graph_time(meta.received),
                "subject": meta.subject,
                "size": meta.size,
                "fromIP": f"40.107.{digest[0]}.{digest[1] % 250 + 1}",
                "toIP": None,
                "status": "delivered",
            }
            rows.append(TraceRow(meta.received, meta.sender.lower(), mailbox, meta.internet_message_id, body))
    rows.sort(key=lambda row: (-row.received.timestamp(), row.recipient, row.message_id))
    return tuple(rows)


def _uuid(digest: bytes) -> str:
    value = digest[:16].hex()
    return f"{value[:8]}-{value[8:12]}-4{value[13:16]}-a{value[17:20]}-{value[20:32]}"


def _parse_stamp(stamp: str) -> datetime | None:
    whole, _, fraction = stamp.rstrip("Zz").partition(".")
    try:
        moment = datetime.strptime(whole.upper(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment + timedelta(microseconds=int((fraction or "0").ljust(6, "0")[:6]))


def trace_filter(raw: str) -> tuple[dict[str, datetime], dict[str, str]] | str:
    """(bounds by 'ge'/'le', equality clauses), or why the filter is not supported."""
    bounds: dict[str, datetime] = {}
    equals: dict[str, str] = {}
    position = 0
    while True:
        match = _TRACE_CLAUSE.match(raw, position)
        if match is None:
            return f"Invalid filter clause: unsupported expression at position {position} in '{raw}'."
        if match.group("time"):
            op = match.group("op").lower()
            moment = _parse_stamp(match.group("stamp"))
            if moment is None or op in bounds:
                return f"Invalid filter clause: bad or repeated receivedDateTime {op} in '{raw}'."
            bounds[op] = moment
        else:
            name = next(
                n
                for n in ("messageId", "recipientAddress", "senderAddress")
                if n.lower() == match.group("field").lower()
            )
            if name in equals:
                return f"Invalid filter clause: {name} appears twice in '{raw}'."
            equals[name] = _odata_string(match.group("value"))
        position = match.end()
        if position == len(raw):
            return bounds, equals
        joint = _TRACE_AND.match(raw, position)
        if joint is None:
            return f"Invalid filter clause: expected 'and' at position {position} in '{raw}'."
        position = joint.end()


def trace_window(bounds: Mapping[str, datetime], now: datetime) -> tuple[datetime, datetime] | str:
    """The [start, end] interval after the documented rules, or the rule broken
    (docs/mailitemsaccessed.md#graph-message-trace)."""
    if not bounds:
        return now - TRACE_DEFAULT_WINDOW, now
    if len(bounds) == 1:
        return "Both receivedDateTime ge and receivedDateTime le are required when filtering on time."
    start, end = bounds["ge"], bounds["le"]
    if end < start:
        return "The start date (receivedDateTime ge) must be before the end date (receivedDateTime le)."
    if end - start > TRACE_MAX_WINDOW:
        return "The time range between start and end date cannot exceed 10 days."
    if start < now - TRACE_RETENTION - CLOCK_SKEW:
        return "The start date cannot be older than 90 days."
    if end > now + CLOCK_SKEW:
        return "The end date cannot be in the future."
    return start, end


class SkipTokens:
    """Opaque, tamper-evident $skiptoken values: offset and the resolved window of the first page."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        ).decode()

    def encode(self, offset: int, start: datetime, end: datetime, raw_filter: str) -> str:
        payload = json.dumps([offset, start.isoformat(), end.isoformat(), raw_filter]).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._mac(payload)

    def decode(self, token: str, raw_filter: str) -> tuple[int, datetime, datetime] | None:
        body, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        offset, start, end, signed_filter = json.loads(payload)
        if signed_filter != raw_filter:
            return None
        return int(offset), datetime.fromisoformat(start), datetime.fromisoformat(end)


# -- the service --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    id: str
    method: str
    url: str
    headers: Mapping[str, str]
    depends_on: tuple[str, ...]


class Graph:
    def __init__(
        self,
        *,
        config: SimulatorConfig,
        tenant: Tenant,
        entra: Entra,
        clock: Clock,
        faults: FaultInjector,
        stats: Stats,
        base_url: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._tenant = tenant
        self._entra = entra
        self._clock = clock
        self._faults = faults
        self._stats = stats
        self._base_url = base_url
        self._sleep = sleep
        self._denied = frozenset(m.lower() for m in config.graph_denied_mailboxes)
        self._budget = RollingWindow(config.graph_requests_per_window, config.graph_window_s)
        self._slots = Concurrency(MAILBOX_CONCURRENCY)
        self._trace_budget = RollingWindow(config.trace_requests_per_window, config.trace_window_s)
        self._trace_rows = trace_rows(tenant)
        self._skip_tokens = SkipTokens()
        self._shuffle = random.Random(f"graph-batch/{config.seed}")
        self._shuffle_lock = threading.Lock()

    @property
    def root(self) -> str:
        return f"{self._base_url}/v1.0"

    # -- pipeline -----------------------------------------------------------------------------

    def handle(self, request: Request, parts: Sequence[str]) -> Reply:
        """An HTTP request to /v1.0/{parts}."""
        self._stats.add("graph_requests")
        route = _route(parts)
        self._stats.route(route or "graph_not_found")
        if route is None:
            return self._error(400, "BadRequest", f"Resource not found for the segment '{_segment(parts)}'.")
        claims = self._authenticate(request)
        if isinstance(claims, Reply):
            return claims
        if route == "graph_batch":
            return self._batch(request, claims)
        return self._execute(route, request, parts, claims)

    def _authenticate(self, request: Request) -> dict[str, Any] | Reply:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        claims = self._entra.validate(token, GRAPH_RESOURCE) if scheme.lower() == "bearer" and token else None
        if claims is not None and str(claims.get("tid", "")).lower() == self._tenant.tenant_id.lower():
            return claims
        message = _token_problem(token, self._tenant.tenant_id) if token else "Access token is empty."
        challenge = (
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'
        )
        return self._error(401, "InvalidAuthenticationToken", message, {"WWW-Authenticate": challenge})

    def _execute(
        self, route: str, request: Request, parts: Sequence[str], claims: Mapping[str, Any]
    ) -> Reply:
        if request.method != "GET":
            return self._error(405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not allowed.")
        if route == "graph_messages":
            return self._messages(request, parts[1], claims)
        return self._traces(request, claims)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
        self._stats.error(code)
        reply = graph_error(status, code, message, headers)
        reply.content_type = ODATA_JSON
        return reply

    # -- messages -----------------------------------------------------------------------------

    def _messages(self, request: Request, user: str, claims: Mapping[str, Any]) -> Reply:
        self._stats.add("graph_message_lookups")
        mailbox = user.lower()
        if not MAIL_ROLES & set(claims.get("roles", [])):
            return self._error(403, "ErrorAccessDenied", ACCESS_DENIED)
        messages = self._tenant.messages.get(mailbox)
        if messages is None:
            if mailbox == self._tenant.story.admin.lower():  # a user without an Exchange mailbox
                return self._error(
                    404,
                    "MailboxNotEnabledForRESTAPI",
                    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
                )
            return self._error(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        if mailbox in self._denied:  # outside the app's RBAC scope (docs/mailitemsaccessed.md#permission)
            return self._error(403, "ErrorAccessDenied", ACCESS_DENIED)
        query = message_query(request)
        if isinstance(query, str):
            return self._error(400, "BadRequest", query)
        throttled = self._throttle_mailbox(mailbox)
        if throttled is not None:
            return throttled
        try:
            if self._config.graph_latency_s > 0:
                self._sleep(self._config.graph_latency_s)
            return self._message_page(request, user, messages.get(query.internet_message_id), query)
        finally:
            self._slots.release(mailbox)

    def _throttle_mailbox(self, mailbox: str) -> Reply | None:
        """Per (app, mailbox) limits (docs/mailitemsaccessed.md#outlook-throttling); on None the caller
        holds a concurrency slot."""
        retry_after = self._budget.admit(mailbox)
        if retry_after is not None:
            self._stats.fault("graph_budget")
            return self._throttled("Application is over its MailboxRequestRate limit.", retry_after)
        if self._faults.graph_throttle():
            self._stats.fault("graph_throttle")
            return self._throttled("Application is over its MailboxConcurrency limit.")
        if not self._slots.acquire(mailbox):
            self._stats.fault("graph_concurrency")
            return self._throttled("Application is over its MailboxConcurrency limit.")
        return None

    def _throttled(self, message: str, retry_after: int | None = None) -> Reply:
        seconds = self._config.graph_retry_after_s if retry_after is None else retry_after
        return self._error(429, "ApplicationThrottled", message, {"Retry-After": str(seconds)})

    def _message_page(
        self, request: Request, user: str, meta: MessageMeta | None, query: MessageQuery
    ) -> Reply:
        hits = (
            []
            if meta is None or meta.purged
            else [message_json(user.lower(), meta, n) for n in range(1, meta.copies + 1)]
        )
        page = hits[query.skip : query.skip + query.top]
        if query.select:
            page = [{k: v for k, v in hit.items() if k == "id" or k in query.select} for hit in page]
        context = f"{self.root}/$metadata#users('{quote(user, safe='')}')/messages"
        body: dict[str, Any] = {
            "@odata.context": context + (f"({','.join(query.select)})" if query.select else "")
        }
        body["value"] = page
        if query.skip + query.top < len(hits):
            params = [(k, v[0]) for k, v in request.query.items() if k.lower() != "$skip" and v]
            params.append(("$skip", str(query.skip + query.top)))
            body["@odata.nextLink"] = (
                f"{self.root}/users/{quote(user, safe='@')}/messages?{_query_string(params)}"
            )
        reply = json_reply(200, body)
        reply.content_type = ODATA_JSON
        return reply

    # -- $batch -------------------------------------------------------------------------------

    def _batch(self, request: Request, claims: Mapping[str, Any]) -> Reply:
        if request.method != "POST":
            return self._error(405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not allowed.")
        items = batch_items(request.body)
        if isinstance(items, str):
            return self._error(400, "BadRequest", items)
        self._stats.add("graph_batches")
        self._stats.add("graph_batch_items", len(items))
        if self._faults.config.graph_batch_stall_s > 0:  # opt-in: a service slower than any timeout
            self._stats.fault("graph_batch_stall")
            self._sleep(self._faults.config.graph_batch_stall_s)
        if self._faults.graph_batch_error():  # opt-in: the whole batch fails, as a gateway might
            self._stats.fault("graph_batch_error")
            return self._error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        if any(item.depends_on for item in items):
            responses = self._run_in_order(items, request, claims)
        else:
            with ThreadPoolExecutor(BATCH_CONCURRENCY, thread_name_prefix="graph-batch") as pool:
                responses = list(pool.map(lambda item: self._item(item, request, claims), items))
        with self._shuffle_lock:
            # "In any order" (docs/mailitemsaccessed.md#json-batching): clients match responses by id.
            self._shuffle.shuffle(responses)
        return json_reply(200, {"responses": responses})

    def _run_in_order(
        self, items: Sequence[BatchItem], request: Request, claims: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        for item in items:
            failed = [d for d in item.depends_on if not 200 <= done[d]["status"] < 300]
            if failed:
                message = f"Failed dependency: request '{failed[0]}' did not succeed."
                done[item.id] = _item_response(item.id, graph_error(424, "FailedDependency", message))
            else:
                done[item.id] = self._item(item, request, claims)
        return list(done.values())

    def _item(self, item: BatchItem, batch: Request, claims: Mapping[str, Any]) -> dict[str, Any]:
        target = _item_target(item.url)
        if isinstance(target, str):
            return _item_response(item.id, self._error(400, "BadRequest", target))
        parts, query = target
        route = _route(parts)
        if route is None or route == "graph_batch":
            reply = self._error(400, "BadRequest", f"Resource not found for the segment '{_segment(parts)}'.")
        else:
            headers = {**batch.headers, **{k.lower(): v for k, v in item.headers.items()}}
            inner = Request(
                item.method.upper(), "/" + "/".join(parts), query, headers, b"", batch.client_host
            )
            reply = self._execute(route, inner, parts, claims)
        return _item_response(item.id, reply)

    # -- message trace ------------------------------------------------------------------------

    def _traces(self, request: Request, claims: Mapping[str, Any]) -> Reply:
        self._stats.add("trace_requests")
        if self._faults.config.trace_stall_s > 0:  # opt-in: a service slower than any timeout
            self._stats.fault("trace_stall")
            self._sleep(self._faults.config.trace_stall_s)
        if self._config.trace_missing_service_principal:  # docs/mailitemsaccessed.md#graph-message-trace
            return self._error(
                401,
                "Unauthorized",
                "Service principal-less Authentication failed: the service principal for App ID "
                f"{TRANSPORT_DATA_PLATFORM} was not found. Create a service principal for this app in your "
                "tenant; provisioning may take several hours to complete.",
            )
        roles = [str(role) for role in claims.get("roles", [])]
        if TRACE_ROLE not in roles:
            return self._error(
                403,
                "Forbidden",
                f"Missing role permissions on the request. API requires one of '{TRACE_ROLE}'. Roles on the "
                f"request '{','.join(roles)}'.",
            )
        retry_after = self._trace_budget.admit("tenant")
        if retry_after is not None:
            self._stats.fault("trace_throttle")
            return self._error(
                429,
                "TooManyRequests",
                "Too many requests: message trace allows 100 requests per 5 minutes per tenant.",
                {"Retry-After": str(retry_after)},
            )
        query = self._trace_query(request)
        if isinstance(query, str):
            return self._error(400, "BadRequest", query)
        return self._trace_page(request, query)

    def _trace_query(self, request: Request) -> TraceQuery | str:
        raw = request.param("$filter") or ""
        parsed = trace_filter(raw) if raw.strip() else ({}, {})
        if isinstance(parsed, str):
            return parsed
        bounds, equals = parsed
        top = _int_param(request, "$top", DEFAULT_TRACE_PAGE, 1, MAX_TRACE_PAGE)
        if isinstance(top, str):
            return top
        token = request.param("$skiptoken")
        if token is not None:
            position = self._skip_tokens.decode(token, raw)
            if position is None:
                return "Invalid $skiptoken: it does not belong to this query."
            offset, start, end = position
            return TraceQuery(start, end, equals, top, offset)
        window = trace_window(bounds, self._clock.now().replace(microsecond=0))
        if isinstance(window, str):
            return window
        return TraceQuery(window[0], window[1], equals, top, 0)

    def _trace_page(self, request: Request, query: TraceQuery) -> Reply:
        found = [row for row in self._trace_rows if row.matches(query)]
        page = found[query.offset : query.offset + query.top]
        body: dict[str, Any] = {
            "@odata.context": f"{self.root}/$metadata#admin/exchange/tracing/messageTraces",
            "value": [dict(row.body) for row in page],
        }
        following = query.offset + len(page)
        if following < len(found):
            raw = request.param("$filter") or ""
            params = [("$filter", raw)] if raw else []
            token = self._skip_tokens.encode(following, query.start, query.end, raw)
            params += [("$top", str(query.top)), ("$skiptoken", token)]
            body["@odata.nextLink"] = (
                f"{self.root}/admin/exchange/tracing/messageTraces?{_query_string(params)}"
            )
        reply = json_reply(200, body)
        reply.content_type = ODATA_JSON
        return reply


def _token_problem(token: str, tenant_id: str) -> str:
    """Why a bearer token was refused, worded like Graph's 401s."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "IDX14100: JWT is not well formed, there are no dots (.)."
    if claims.get("aud") != GRAPH_RESOURCE:
        return "Access token validation failure. Invalid audience."
    if float(claims.get("exp", 0)) <= time.time():
        return "Lifetime validation failed, the token is expired."
    if str(claims.get("tid", "")).lower() != tenant_id.lower():
        return "Access token validation failure. Invalid tenant."
    return "Access token validation failure. Invalid signature."


def _route(parts: Sequence[str]) -> str | None:
    if list(parts) == ["$batch"]:
        return "graph_batch"
    if len(parts) == 3 and parts[0].lower() == "users" and parts[2].lower() == "messages" and parts[1]:
        return "graph_messages"
    if [p.lower() for p in parts] == ["admin", "exchange", "tracing", "messagetraces"]:
        return "message_traces"
    return None


def _segment(parts: Sequence[str]) -> str:
    return parts[-1] if parts else ""


def batch_items(body: bytes) -> list[BatchItem] | str:
    """The batch's requests (docs/mailitemsaccessed.md#json-batching), or why the payload is refused."""
    try:
        document = json.loads(body)
    except ValueError:
        return (
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is "
            "of valid JSON format."
        )
    steps = document.get("requests") if isinstance(document, dict) else None
    if not isinstance(steps, list) or not steps:
        return "Invalid batch payload format: 'requests' must be a non-empty array."
    if len(steps) > BATCH_LIMIT:
        return f"Number of batch request steps exceeds the maximum of {BATCH_LIMIT}."
    items: list[BatchItem] = []
    for index, step in enumerate(steps):
        item = _batch_item(index, step, {i.id for i in items})
        if isinstance(item, str):
            return item
        items.append(item)
    return items


def _batch_item(index: int, step: object, earlier: set[str]) -> BatchItem | str:
    if not isinstance(step, dict):
        return f"Invalid batch payload format: request {index} is not an object."
    for name in ("id", "method", "url"):
        if not isinstance(step.get(name), str) or not step[name].strip():
            return f"Invalid batch payload format: request {index} lacks the required property '{name}'."
    if step["id"] in earlier:
        return f"Batch request contains duplicate request id '{step['id']}'."
    headers = step.get("headers") or {}
    depends = step.get("dependsOn") or []
    if not isinstance(headers, dict) or not isinstance(depends, list):
        return f"Invalid batch payload format: request {index} has malformed headers or dependsOn."
    unknown = [d for d in depends if d not in earlier]
    if unknown:
        return (
            f"Request '{step['id']}' depends on '{unknown[0]}', which is not an earlier request of the batch."
        )
    return BatchItem(
        step["id"], step["method"], step["url"], {str(k): str(v) for k, v in headers.items()}, tuple(depends)
    )


def _item_target(url: str) -> tuple[list[str], dict[str, list[str]]] | str:
    """A batch item's path segments and query; its url must be relative to the version root."""
    parts = urlsplit(url)
    segments = [s for s in unquote(parts.path).split("/") if s]
    if parts.scheme or parts.netloc or segments[:1] in (["v1.0"], ["beta"]):
        return f"Invalid request URL '{url}': batch request URLs must be relative to the version root."
    return segments, parse_qs(parts.query, keep_blank_values=True)


def _item_response(item_id: str, reply: Reply) -> dict[str, Any]:
    headers = {"Content-Type": ODATA_JSON, **reply.headers}
    return {
        "id": item_id,
        "status": reply.status,
        "headers": headers,
        "body": json.loads(reply.body) if reply.body else None,
    }

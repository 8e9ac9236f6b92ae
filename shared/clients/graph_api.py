"""Microsoft Graph client for subject resolution (docs/mailitemsaccessed.md#microsoft-graph-message-lookup).

- Message lookup: `GET /users/{id}/messages?$filter=internetMessageId eq '<id>'`, sent in JSON
  `$batch` requests of up to 20 (docs/mailitemsaccessed.md#json-batching). The id is URL-encoded
  whole, angle brackets included: an unencoded `+` silently matches nothing
  (microsoftgraph/microsoft-graph-docs#4101).
- Outlook runs at most 4 requests per mailbox at once (docs/mailitemsaccessed.md#outlook-throttling):
  a batch holds up to 4 slots of each mailbox it names, so concurrent batches in this process never
  exceed that.
- Message trace: `GET /admin/exchange/tracing/messageTraces` with a `messageId` filter and a
  receivedDateTime window (docs/mailitemsaccessed.md#graph-message-trace); at most 100 requests per
  5 minutes per tenant, kept by a process-wide limiter and by the service's Retry-After.
- Retries, Retry-After, the caller's deadline (a `time.monotonic()` instant that bounds every
  request, retry and wait of a call), the host guard for `@odata.nextLink` and the back-pressure
  shared by all threads are the transport's (shared/clients/transport.py). Message trace is
  throttled apart from the rest of Graph (its own 100 per 5 minutes), so its 429s pause only it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
import requests

from shared.clients.auth import TokenProvider
from shared.clients.errors import DeadlineReached, TransientError
from shared.clients.http_session import session_for
from shared.clients.transport import RateLimiter, RetryPolicy, Transport, parse_retry_after
from shared.model.times import iso_z
from shared.settings import GraphSettings

MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
SELECT = "id,subject,from,sender,receivedDateTime,internetMessageId,parentFolderId"
MAX_TRACE_PAGE = 5000  # the largest $top of message traces (docs/mailitemsaccessed.md#graph-message-trace)
DEFAULT_RETRY_AFTER = 2.0  # the wait of a throttled batch the service gave no Retry-After
POOL_SIZE = 16


class TraceBudgetSpent(TransientError):
    """The tenant's message-trace budget has no slot within the time the caller can wait."""


@dataclass(frozen=True)
class MessageQuery:
    """One message lookup in a batch; `key` is the batch item id."""

    key: str
    mailbox: str
    internet_message_id: str


@dataclass(frozen=True)
class ItemReply:
    status: int
    body: Any
    retry_after: float | None = None

    @property
    def error_code(self) -> str:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code") or "") if isinstance(error, dict) else ""


def odata_string(value: str) -> str:
    """An OData string literal: quoted, a quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def message_lookup_url(mailbox: str, internet_message_id: str) -> str:
    """The relative URL of one lookup, every reserved character of the id percent-encoded."""
    filter_text = f"internetMessageId eq {odata_string(internet_message_id)}"
    return (
        f"/users/{quote(mailbox, safe='@')}/messages"
        f"?$filter={quote(filter_text, safe='')}&$select={SELECT}&$top=10"
    )


class MailboxSlots:
    """At most `limit` requests in flight per mailbox across this process's threads. A batch takes
    all its slots at once (no thread holds some while waiting for others, so no deadlock)."""

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self._limit = limit
        self._busy: Counter[str] = Counter()
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, needs: Mapping[str, int], timeout: float | None = None) -> Iterator[None]:
        """Hold the slots; DeadlineReached when they are not free within `timeout` seconds."""
        wanted = {mailbox: min(self._limit, count) for mailbox, count in needs.items()}
        with self._changed:
            free = self._changed.wait_for(
                lambda: all(self._busy[m] + n <= self._limit for m, n in wanted.items()),
                None if timeout is None else max(0.0, timeout),
            )
            if not free:
                raise DeadlineReached(0, "deadline", "no mailbox slot came free before the deadline")
            self._busy.update(wanted)
        try:
            yield
        finally:
            with self._changed:
                self._busy.subtract(wanted)
                self._changed.notify_all()


_PROCESS_SLOTS = MailboxSlots()
_TRACE_LIMITERS: dict[str, RateLimiter] = {}
_TRACE_LIMITERS_LOCK = threading.Lock()


def trace_limiter(settings: GraphSettings) -> RateLimiter:
    """The process-wide message-trace budget of one tenant (100 requests per 5 minutes)."""
    key = f"{settings.auth.tenant_id}|{settings.base}"
    with _TRACE_LIMITERS_LOCK:
        limiter = _TRACE_LIMITERS.get(key)
        if limiter is None:
            limiter = RateLimiter(settings.trace_requests_per_window, settings.trace_window_seconds)
            _TRACE_LIMITERS[key] = limiter
        return limiter


def _json(response: requests.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise TransientError(response.status_code, "bad_json", "the answer is not JSON") from None


def item_reply(raw: Mapping[str, Any]) -> ItemReply:
    """One entry of a `$batch` answer's `responses`."""
    headers = raw.get("headers")
    if not isinstance(headers, dict):
        headers = {}
    retry_after = None
    for name, value in headers.items():
        if str(name).lower() == "retry-after":
            retry_after = parse_retry_after(str(value))
    status = raw.get("status")
    return ItemReply(int(status) if isinstance(status, int) else 0, raw.get("body"), retry_after)


class GraphClient:
    def __init__(
        self, settings: GraphSettings, tokens: TokenProvider, slots: MailboxSlots | None = None
    ) -> None:
        self.settings = settings
        session = session_for(settings.auth.ca_bundle, pool_size=POOL_SIZE)
        policy = RetryPolicy(
            settings.request_timeout_seconds, settings.max_attempts, settings.max_backoff_seconds
        )
        self._lookups = Transport(settings.base, settings.scope, tokens, policy, session, api="graph")
        # Message trace has its own budget (100 requests per 5 minutes per tenant): its 429s are no
        # reason to hold back message lookups (https://learn.microsoft.com/en-us/graph/throttling-limits).
        trace_scope = f"message trace of {settings.auth.tenant_id}"
        self._traces = Transport(
            settings.base, settings.scope, tokens, policy, session, api="graph", throttling_scope=trace_scope
        )
        self._slots = slots or _PROCESS_SLOTS
        self.trace_limiter = trace_limiter(settings)

    def request(self, method: str, url: str, body: bytes | None = None, deadline: float | None = None) -> Any:
        """One call (a message lookup, a `$batch`), its JSON answer; all of it, retries and waits
        included, before `deadline` (a `time.monotonic()` instant) when one is given."""
        return self._lookups.request(method, url, _json, body, deadline)

    # -- operations -------------------------------------------------------------------------

    def batch(self, lookups: Sequence[MessageQuery], deadline: float | None = None) -> dict[str, ItemReply]:
        """One `$batch` of up to 20 lookups, done before `deadline` or DeadlineReached; the replies
        by item key (any order on the wire)."""
        if not 1 <= len(lookups) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} lookups, not {len(lookups)}")
        requests_ = [
            {
                "id": item.key,
                "method": "GET",
                "url": message_lookup_url(item.mailbox, item.internet_message_id),
            }
            for item in lookups
        ]
        payload = orjson.dumps({"requests": requests_})
        needs = Counter(item.mailbox.lower() for item in lookups)
        with self._slots.hold(needs, self._lookups.seconds_left(deadline)):
            answer = self.request("POST", f"{self.settings.base}/v1.0/$batch", payload, deadline)
        replies: dict[str, ItemReply] = {}
        for raw in answer.get("responses", []) if isinstance(answer, dict) else []:
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                replies[raw["id"]] = item_reply(raw)
        return replies

    def message_trace_pages(
        self,
        start: datetime,
        end: datetime,
        message_id: str | None = None,
        wait_limit: Callable[[], float] | None = None,
        deadline: float | None = None,
    ) -> Iterator[tuple[list[dict[str, Any]], bool]]:
        """Pages of trace rows received in [start, end] (one row per recipient), of one message
        or of the whole tenant, each as (rows, more pages follow). Each page takes a slot of the
        tenant's trace budget, waiting at most `wait_limit()` seconds for it, and is read before
        `deadline` (or DeadlineReached)."""
        filter_text = f"receivedDateTime ge {iso_z(start)} and receivedDateTime le {iso_z(end)}"
        if message_id is not None:
            filter_text = f"messageId eq {odata_string(message_id)} and {filter_text}"
        top = 100 if message_id is not None else MAX_TRACE_PAGE
        url: str | None = (
            f"{self.settings.base}/v1.0/admin/exchange/tracing/messageTraces"
            f"?$filter={quote(filter_text, safe='')}&$top={top}"
        )
        while url is not None:
            limits = (wait_limit() if wait_limit else None, self._traces.seconds_left(deadline))
            waits = [wait for wait in limits if wait is not None]
            if not self.trace_limiter.acquire(timeout=max(0.0, min(waits)) if waits else None):
                raise TraceBudgetSpent(0, "trace_budget", "no message-trace request left in this window")
            page = self._traces.request("GET", url, _json, deadline=deadline)
            values = page.get("value") if isinstance(page, dict) else None
            link = page.get("@odata.nextLink") if isinstance(page, dict) else None
            url = str(link) if link else None
            yield [row for row in values or [] if isinstance(row, dict)], url is not None

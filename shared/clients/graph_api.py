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
- 5xx and network failures are retried with backoff here; throttling (429) is handed to the caller
  with its Retry-After, because only the caller knows how long it may wait.
- A caller's deadline (a `time.monotonic()` instant) bounds everything a call does: each request's
  timeout is the time left (at most `request_timeout_seconds`), no retry or backoff sleep runs past
  it, and a request with less than MIN_REQUEST_SECONDS left is not started (`DeadlineReached`).
- The bearer token only goes to the configured Graph host; `@odata.nextLink` is checked before use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from shared.clients.activity_api import RateLimiter, error_of, parse_retry_after, retry_after_seconds
from shared.clients.auth import AuthFailed, TokenProvider, TokenUnavailable
from shared.clients.http_session import session_for
from shared.model.times import iso_z
from shared.settings import GraphSettings

log = logging.getLogger(__name__)

MAX_BATCH = 20
MAILBOX_CONCURRENCY = 4
SELECT = "id,subject,from,sender,receivedDateTime,internetMessageId,parentFolderId"
MAX_TRACE_PAGE = 5000  # the largest $top of message traces (docs/mailitemsaccessed.md#graph-message-trace)
DEFAULT_RETRY_AFTER = 2.0
MIN_REQUEST_SECONDS = 1.0  # with less time left before a deadline, a request is not started


class GraphError(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code or status}: {message}")
        self.status = status
        self.code = code
        self.message = message


class GraphTransient(GraphError):
    """A server error or a network failure that outlived the retries."""


class GraphThrottled(GraphError):
    def __init__(self, status: int, code: str, message: str, retry_after: float) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class GraphAuthError(GraphError):
    """The token is refused or lacks the permission: the fix is consent or configuration."""


class DeadlineReached(GraphError):
    """The caller's deadline came before the call could finish: nothing failed, what is left is
    for a later run (not a Graph error, so never counted as one)."""


def time_left(deadline: float | None) -> float | None:
    """Seconds until `deadline` (a `time.monotonic()` instant), None without one."""
    return None if deadline is None else deadline - time.monotonic()


class TraceBudgetSpent(GraphError):
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


def _classify(response: requests.Response) -> GraphError:
    code, message = error_of(response)
    status = response.status_code
    if status == 429:
        return GraphThrottled(status, code, message, retry_after_seconds(response) or DEFAULT_RETRY_AFTER)
    if status >= 500 or status == 408:
        return GraphTransient(status, code, message)
    if status in (401, 403):
        return GraphAuthError(status, code, message)
    return GraphError(status, code, message)


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
        self,
        settings: GraphSettings,
        tokens: TokenProvider,
        session: requests.Session | None = None,
        slots: MailboxSlots | None = None,
    ) -> None:
        self.settings = settings
        self._tokens = tokens
        self._host = urlsplit(settings.base).netloc.lower()
        self._session = session or session_for(settings.auth.ca_bundle)
        self._session.mount("https://", HTTPAdapter(pool_connections=2, pool_maxsize=16))
        self._slots = slots or _PROCESS_SLOTS
        self.trace_limiter = trace_limiter(settings)

    # -- transport --------------------------------------------------------------------------

    def _timeout(self, deadline: float | None) -> float:
        """The timeout of a request about to start: the time left, at most the configured one."""
        left = time_left(deadline)
        if left is not None and left < MIN_REQUEST_SECONDS:
            raise DeadlineReached(0, "deadline", "too little time left to send the request")
        configured = float(self.settings.request_timeout_seconds)
        return configured if left is None else min(configured, left)

    def _call(self, method: str, url: str, body: bytes | None, deadline: float | None) -> requests.Response:
        try:
            token = self._tokens.token(self.settings.scope)
        except AuthFailed as problem:
            raise GraphAuthError(0, "token", str(problem)) from None
        except TokenUnavailable as problem:  # transient: retried, never a permission problem
            raise GraphTransient(0, "token_unavailable", str(problem)) from None
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeout = self._timeout(deadline)  # after the token: getting it took some of the time
        try:
            return self._session.request(method, url, data=body, headers=headers, timeout=timeout)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as problem:
            raise GraphTransient(0, "network", type(problem).__name__) from None

    def _send(self, method: str, url: str, body: bytes | None, deadline: float | None) -> Any:
        if urlsplit(url).netloc.lower() != self._host or not url.startswith("https://"):
            raise GraphError(0, "foreign_host", "refusing to send the Graph token to another host")
        response = self._call(method, url, body, deadline)
        if response.status_code == 401:  # expired in flight or revoked: one fresh token
            self._tokens.invalidate()
            response = self._call(method, url, body, deadline)
        if response.status_code >= 400:
            raise _classify(response)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise GraphTransient(response.status_code, "bad_json", "the answer is not JSON") from None

    def request(self, method: str, url: str, body: bytes | None = None, deadline: float | None = None) -> Any:
        """One call, with 5xx and network failures retried (exponential backoff with jitter), all
        of it before `deadline` (a `time.monotonic()` instant) when one is given."""
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            return self._send(method, url, body, deadline)

        stop: stop_base = stop_after_attempt(self.settings.max_attempts)
        left = time_left(deadline)
        if left is not None:  # no backoff sleep that would leave too little time for the request
            stop = stop | stop_before_delay(max(0.0, left - MIN_REQUEST_SECONDS))
        retrying = Retrying(
            retry=retry_if_exception_type(GraphTransient),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.settings.max_backoff_seconds),
            stop=stop,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except GraphTransient as problem:
            if deadline is not None and attempts < self.settings.max_attempts:
                # The deadline, not the attempts, ran out: the caller defers instead of failing.
                reason = f"stopped at the deadline after {attempts} attempt(s): {problem}"
                raise DeadlineReached(problem.status, "deadline", reason) from None
            raise

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
        with self._slots.hold(Counter(item.mailbox.lower() for item in lookups), time_left(deadline)):
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
            limits = (wait_limit() if wait_limit else None, time_left(deadline))
            waits = [wait for wait in limits if wait is not None]
            if not self.trace_limiter.acquire(timeout=max(0.0, min(waits)) if waits else None):
                raise TraceBudgetSpent(0, "trace_budget", "no message-trace request left in this window")
            try:
                page = self.request("GET", url, deadline=deadline)
            except GraphThrottled as problem:
                self.trace_limiter.hold_off(problem.retry_after)
                raise
            values = page.get("value") if isinstance(page, dict) else None
            link = page.get("@odata.nextLink") if isinstance(page, dict) else None
            url = str(link) if link else None
            yield [row for row in values or [] if isinstance(row, dict)], url is not None

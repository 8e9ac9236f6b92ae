"""Client of the Office 365 Management Activity API (docs/mailitemsaccessed.md#management-activity-api).

- `PublisherIdentifier` on every call, including followed NextPageUri links and content URIs,
  or the calls share a common throttling pool (docs/mailitemsaccessed.md#publisheridentifier).
- The bearer token only ever goes to the configured API host: NextPageUri and contentUri values
  come from the service and are checked before use.
- Decisions are made on `error.code`, not on the status: throttling (`AF429`) arrives as HTTP 403
  as well as 429 (docs/mailitemsaccessed.md#api-throttling).
- Transient failures (throttling, 5xx/AF5xxxx, timeouts, truncated bodies) are retried with
  exponential backoff and jitter, honouring `Retry-After` when present.
- A client-side limiter keeps the tenant below its request budget (2,000/min baseline).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from shared.clients.auth import TokenProvider, TokenUnavailable
from shared.clients.http_session import session_for
from shared.settings import CollectionSettings

log = logging.getLogger(__name__)

MAX_PAGES = 1000  # a listing that pages further than this is a service fault, not data
GONE_CODES = {"AF20050": "content does not exist", "AF20051": "content expired", "AF20052": "bad content id"}
AUTH_CODES = {"AF10001", "AF20010", "AF20011", "AF20012", "AF20013"}
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


Validator = Callable[[requests.Response], None]


def _log_retry(state: RetryCallState) -> None:
    problem = state.outcome.exception() if state.outcome else None
    log.warning("retrying after %s (attempt %d)", problem, state.attempt_number)


class ApiError(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code or status}: {message}")
        self.status = status
        self.code = code
        self.message = message


class TransientError(ApiError):
    """Worth retrying: throttling, server errors, timeouts, truncated bodies."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class ContentGone(ApiError):
    """The content blob is expired or unknown: skip it and count the loss."""


class ApiAuthError(ApiError):
    """The token is refused or lacks the permission; the fix is in configuration, not a retry."""


class NoSubscription(ApiError):
    """AF20022/AF20023: the content type has no enabled subscription."""


@dataclass(frozen=True)
class ContentItem:
    content_type: str
    content_id: str
    content_uri: str
    content_created: datetime
    content_expiration: datetime | None


class RateLimiter:
    """At most `budget` requests in any `window_s` seconds (a sliding window; thread-safe). Short
    runs go at full speed; a long run settles at the budget."""

    def __init__(
        self, budget: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._budget = budget
        self._window = window_s
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait for a slot and take it; False (nothing taken) when that would take over `timeout` s."""
        give_up = None if timeout is None else self._clock() + timeout
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self._window:
                    self._sent.popleft()
                if now < self._paused_until:
                    wait_for = self._paused_until - now
                elif len(self._sent) < self._budget:
                    self._sent.append(now)
                    return True
                else:
                    wait_for = self._sent[0] + self._window - now
            if give_up is not None and now + wait_for > give_up:
                return False
            time.sleep(wait_for)

    def hold_off(self, seconds: float) -> None:
        """The server said to wait (429 Retry-After): no slot until `seconds` from now."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


def api_time(moment: datetime) -> str:
    """The API's time format: UTC, no zone suffix (docs/mailitemsaccessed.md#listing-content)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_api_time(value: str) -> datetime:
    text = value.strip().rstrip("Z")
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def retry_after_seconds(response: requests.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After", ""))


def parse_retry_after(header: str) -> float | None:
    """A Retry-After value: delay-seconds or an HTTP date; None when absent or unreadable."""
    value = header.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def error_of(response: requests.Response) -> tuple[str, str]:
    """(error.code, error.message) of an error body, `{"error": {...}}` or `{"Message": ...}`."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return "", response.text[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code") or ""), str(error.get("message") or "")
        if "Message" in body:
            return "", str(body["Message"])
    return "", response.text[:200]


def classify(response: requests.Response) -> ApiError:
    code, message = error_of(response)
    status = response.status_code
    if code == "AF429" or code.startswith("AF5") or (not code and status in TRANSIENT_STATUSES):
        return TransientError(status, code, message, retry_after_seconds(response))
    if code in GONE_CODES:
        return ContentGone(status, code, message or GONE_CODES[code])
    if code in ("AF20022", "AF20023"):
        return NoSubscription(status, code, message)
    if code in AUTH_CODES or status == 401:
        return ApiAuthError(status, code, message)
    return ApiError(status, code, message)


class ActivityClient:
    def __init__(
        self,
        settings: CollectionSettings,
        tokens: TokenProvider,
        session: requests.Session | None = None,
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._host = urlsplit(settings.management_base).netloc.lower()
        self._root = f"{settings.management_base}/api/v1.0/{settings.auth.tenant_id}/activity/feed"
        self._session = session or session_for(settings.auth.ca_bundle)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, settings.concurrency * 2))
        self._session.mount("https://", adapter)
        self._limiter = RateLimiter(settings.requests_per_minute)

    # -- transport --------------------------------------------------------------------------

    def _with_publisher(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.netloc.lower() != self._host:
            # Never send the bearer token anywhere but the configured API host.
            raise ApiError(0, "foreign_host", f"refusing to follow a link to {parts.scheme}://{parts.netloc}")
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        if not any(k.lower() == "publisheridentifier" for k, _ in query):
            query.append(("PublisherIdentifier", self._settings.publisher_id))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _wait(self, state: RetryCallState) -> float:
        problem = state.outcome.exception() if state.outcome else None
        backoff = wait_exponential_jitter(multiplier=0.5, max=self._settings.max_backoff_seconds)(state)
        if isinstance(problem, TransientError) and problem.retry_after is not None:
            return min(problem.retry_after, float(self._settings.max_backoff_seconds))
        return float(backoff)

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(TransientError),
            wait=self._wait,
            stop=stop_after_attempt(self._settings.max_attempts),
            reraise=True,
            before_sleep=lambda s: log.warning(
                "retrying after %s (attempt %d)",
                s.outcome.exception() if s.outcome else "?",
                s.attempt_number,
            ),
        )

    def _send(self, method: str, url: str, validate: Validator | None) -> requests.Response:
        response = self._call(method, url)
        if response.status_code == 401:
            # A token that expired in flight or was revoked: one fresh token, then it is an error.
            self._tokens.invalidate()
            response = self._call(method, url)
        if response.status_code >= 400:
            raise classify(response)
        if validate is not None:
            validate(response)
        return response

    def _call(self, method: str, url: str) -> requests.Response:
        self._limiter.acquire()
        try:
            token = self._tokens.token(self._settings.management_scope)
        except TokenUnavailable as problem:  # a network blip at the token endpoint: retried
            raise TransientError(0, "token_unavailable", str(problem)) from None
        headers = {"Authorization": f"Bearer {token}"}
        try:
            return self._session.request(
                method, url, headers=headers, timeout=self._settings.request_timeout_seconds
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as problem:
            raise TransientError(0, "network", type(problem).__name__) from None

    def request(self, method: str, url: str, validate: Validator | None = None) -> requests.Response:
        target = self._with_publisher(url)
        return self._retrying()(self._send, method, target, validate)

    def _url(self, operation: str, **params: str) -> str:
        query = urlencode({**params, "PublisherIdentifier": self._settings.publisher_id})
        return f"{self._root}/{operation}?{query}"

    # -- operations -------------------------------------------------------------------------

    def list_subscriptions(self) -> list[dict[str, Any]]:
        body = orjson.loads(self.request("GET", self._url("subscriptions/list")).content)
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    def start_subscription(self, content_type: str) -> None:
        try:
            self.request("POST", self._url("subscriptions/start", contentType=content_type))
        except ApiError as problem:
            if problem.code != "AF20024":  # already enabled (undocumented): success
                raise

    def ensure_subscription(self, content_type: str) -> bool:
        """Start the subscription unless it is enabled; True when it was started now."""
        for subscription in self.list_subscriptions():
            if subscription.get("contentType") == content_type and subscription.get("status") == "enabled":
                return False
        self.start_subscription(content_type)
        return True

    def list_content(self, content_type: str, start: datetime, end: datetime) -> Iterator[ContentItem]:
        """Every content item with start <= contentCreated < end, following NextPageUri."""
        url: str | None = self._url(
            "subscriptions/content",
            contentType=content_type,
            startTime=api_time(start),
            endTime=api_time(end),
        )
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise ApiError(0, "too_many_pages", f"listing {content_type} paged past {MAX_PAGES} pages")
            response = self.request("GET", url)
            body = orjson.loads(response.content)
            for raw in body if isinstance(body, list) else []:
                yield _content_item(raw, content_type)
            # The docs' prose once said NextPageUrl; requests' headers are case-insensitive.
            url = response.headers.get("NextPageUri") or response.headers.get("NextPageUrl") or None

    def fetch_content(self, item: ContentItem) -> Content:
        """The content blob's bytes exactly as served, with its record count once they are known
        to be a whole JSON array.

        A body that does not parse is fetched again: a transfer cut short differs from one
        attempt to the next, while identical bytes (the same SHA-256) twice are what the service
        holds. Those come back `unparseable`, to be kept as evidence rather than retried for the
        7 days the API keeps them."""
        unreadable: set[str] = set()
        found: list[Content] = []

        def whole_json_array(response: requests.Response) -> None:
            data = response.content
            records, problem = _json_array(data)
            if not problem:
                found.append(Content(data, records))
                return
            digest = hashlib.sha256(data).hexdigest()
            if digest in unreadable:
                found.append(Content(data, 0, problem))
                return
            unreadable.add(digest)
            raise TransientError(response.status_code, "truncated", f"blob is not whole JSON ({problem})")

        self.request("GET", item.content_uri, validate=whole_json_array)
        return found[-1]


@dataclass(frozen=True)
class Content:
    """One content blob as served: its bytes, its record count, and why it is not a JSON array
    ("" when it is one; its records are then unknown and `records` is 0)."""

    data: bytes
    records: int
    unparseable: str = ""


def _json_array(data: bytes) -> tuple[int, str]:
    """(records, "") for a JSON array, else (0, why not)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as problem:
        # What the readers fall back to (shared/parse/readers.py): lone surrogates, bytes that are not
        # UTF-8 and integers beyond 64 bits are read, the text repaired. Only what neither reads
        # is unparseable.
        try:
            body = json.loads(data.decode("utf-8-sig", "surrogateescape"))
        except (ValueError, RecursionError):
            return 0, f"invalid JSON: {problem}"
    if not isinstance(body, list):
        return 0, "valid JSON but not an array"
    return len(body), ""


def _content_item(raw: object, content_type: str) -> ContentItem:
    if not isinstance(raw, dict) or not raw.get("contentId") or not raw.get("contentUri"):
        raise ApiError(
            200, "bad_listing", f"content listing entry without contentId/contentUri: {raw!r:.200}"
        )
    expiration = raw.get("contentExpiration")
    return ContentItem(
        content_type=str(raw.get("contentType") or content_type),
        content_id=str(raw["contentId"]),
        content_uri=str(raw["contentUri"]),
        content_created=parse_api_time(str(raw.get("contentCreated") or "")),
        content_expiration=parse_api_time(str(expiration)) if expiration else None,
    )

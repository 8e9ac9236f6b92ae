"""Client of the Office 365 Management Activity API (docs/mailitemsaccessed.md#management-activity-api).

- `PublisherIdentifier` on every call, including followed NextPageUri links and content URIs,
  or the calls share a common throttling pool (docs/mailitemsaccessed.md#publisheridentifier).
- Decisions are made on `error.code`, not on the status: throttling (`AF429`) arrives as HTTP 403
  as well as 429 (docs/mailitemsaccessed.md#api-throttling).
- A client-side limiter keeps the tenant below its request budget (2,000/min baseline).
- Everything else (the token, the host guard, retries, Retry-After, back-pressure) is the shared
  transport's (shared/clients/transport.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import requests

from shared.clients.auth import TokenProvider
from shared.clients.errors import ApiAuthError, ApiError, PermanentError, Throttled, TransientError
from shared.clients.http_session import session_for
from shared.clients.transport import ErrorReply, RateLimiter, RetryPolicy, Transport, classify_status
from shared.model.times import as_utc
from shared.settings import CollectionSettings

MAX_PAGES = 1000  # a listing that pages further than this is a service fault, not data
GONE_CODES = {"AF20050": "content does not exist", "AF20051": "content expired", "AF20052": "bad content id"}
NO_SUBSCRIPTION_CODES = {"AF20022", "AF20023"}
AUTH_CODES = {"AF10001", "AF20010", "AF20011", "AF20012", "AF20013"}
ALREADY_ENABLED = "AF20024"  # starting an enabled subscription (undocumented): success

T = TypeVar("T")


class ContentGone(PermanentError):
    """The content blob is expired or unknown: skip it and count the loss."""


class NoSubscription(PermanentError):
    """AF20022/AF20023: the content type has no enabled subscription."""


@dataclass(frozen=True)
class ContentItem:
    content_type: str
    content_id: str
    content_uri: str
    content_created: datetime
    content_expiration: datetime | None


def api_time(moment: datetime) -> str:
    """The API's time format: UTC, no zone suffix (docs/mailitemsaccessed.md#listing-content)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_api_time(value: str) -> datetime:
    text = value.strip().rstrip("Z")
    moment = datetime.fromisoformat(text)
    return as_utc(moment)


def classify(reply: ErrorReply) -> ApiError:
    """The hierarchy by `error.code`; by the status only when the answer names no code."""
    status, code, message = reply.status, reply.code, reply.message
    if code == "AF429":
        return Throttled(status, code, message, reply.retry_after)
    if code.startswith("AF5"):
        return TransientError(status, code, message, reply.retry_after)
    if not code:
        return classify_status(reply)
    if code in GONE_CODES:
        return ContentGone(status, code, message or GONE_CODES[code])
    if code in NO_SUBSCRIPTION_CODES:
        return NoSubscription(status, code, message)
    if code in AUTH_CODES:
        return ApiAuthError(status, code, message)
    # A code this client does not know decides nothing: the status does (a 5xx stays transient).
    return classify_status(reply)


def _json(response: requests.Response) -> Any:
    return orjson.loads(response.content)


def _ignore_body(response: requests.Response) -> None:
    return None


def _page(response: requests.Response) -> tuple[Any, str | None]:
    """A listing page's body and its NextPageUri (the docs' prose once said NextPageUrl;
    requests' headers are case-insensitive)."""
    link = response.headers.get("NextPageUri") or response.headers.get("NextPageUrl") or None
    return orjson.loads(response.content), link


class ActivityClient:
    def __init__(self, settings: CollectionSettings, tokens: TokenProvider) -> None:
        self._settings = settings
        self._root = f"{settings.management_base}/api/v1.0/{settings.auth.tenant_id}/activity/feed"
        self._transport = Transport(
            settings.management_base,
            settings.management_scope,
            tokens,
            RetryPolicy(
                settings.request_timeout_seconds, settings.max_attempts, settings.max_backoff_seconds
            ),
            session_for(settings.auth.ca_bundle, pool_size=max(10, settings.concurrency * 2)),
            api="management",
            classify=classify,
            pacing=RateLimiter(settings.requests_per_minute),
        )

    def _with_publisher(self, url: str) -> str:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        if not any(k.lower() == "publisheridentifier" for k, _ in query):
            query.append(("PublisherIdentifier", self._settings.publisher_id))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def request(self, method: str, url: str, read: Callable[[requests.Response], T]) -> T:
        """One call through the transport, the PublisherIdentifier added when the URL lacks it."""
        return self._transport.request(method, self._with_publisher(url), read)

    def _url(self, operation: str, **params: str) -> str:
        query = urlencode({**params, "PublisherIdentifier": self._settings.publisher_id})
        return f"{self._root}/{operation}?{query}"

    # -- operations -------------------------------------------------------------------------

    def list_subscriptions(self) -> list[dict[str, Any]]:
        body = self.request("GET", self._url("subscriptions/list"), _json)
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []

    def start_subscription(self, content_type: str) -> None:
        try:
            self.request("POST", self._url("subscriptions/start", contentType=content_type), _ignore_body)
        except PermanentError as problem:
            if problem.code != ALREADY_ENABLED:
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
                raise PermanentError(
                    0, "too_many_pages", f"listing {content_type} paged past {MAX_PAGES} pages"
                )
            body, url = self.request("GET", url, _page)
            for raw in body if isinstance(body, list) else []:
                yield _content_item(raw, content_type)

    def fetch_content(self, item: ContentItem) -> Content:
        """The content blob's bytes exactly as served, with its record count once they are known
        to be a whole JSON array.

        A body that does not parse is fetched again: a transfer cut short differs from one
        attempt to the next, while identical bytes (the same SHA-256) twice are what the service
        holds. Those come back `unparseable`, to be kept as evidence rather than retried for the
        7 days the API keeps them."""
        unreadable: set[str] = set()

        def whole_json_array(response: requests.Response) -> Content:
            data = response.content
            records, problem = _json_array(data)
            if not problem:
                return Content(data, records)
            digest = hashlib.sha256(data).hexdigest()
            if digest in unreadable:
                return Content(data, 0, problem)
            unreadable.add(digest)
            raise TransientError(response.status_code, "truncated", f"blob is not whole JSON ({problem})")

        return self.request("GET", item.content_uri, whole_json_array)


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
        raise PermanentError(
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

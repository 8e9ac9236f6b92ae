"""The Office 365 Management Activity API for one tenant (docs/mailitemsaccessed.md#management-activity-api).

Every call needs a bearer token from this tenant's Entra (401 `{"Message": ...}` otherwise,
`AF10001` without ActivityFeed.Read, `AF20013`/`AF20010` for a bad or foreign tenant in the URL).
Errors are `{"error": {"code": "AFxxxxx", "message": ...}}`. HTTP statuses per code are not
documented; argument errors are 400 (as observed), AF20050 is 404, AF10001 is 401, AF20010 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from simulator.clock import Clock
from simulator.config import SimulatorConfig
from simulator.entra import ROLE, Entra
from simulator.faults import FaultInjector, Stats
from simulator.tenant import Blob, Tenant
from simulator.web import Reply, Request, json_reply

CONTENT_TYPES = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
NO_PUBLISHER = "00000000-0000-0000-0000-000000000000"
DENIED = {"Message": "Authorization has been denied for this request."}
MAX_WINDOW = timedelta(hours=24)
MAX_LOOKBACK = timedelta(days=7)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?Z?$")
_CONTENT_ID = re.compile(r"^[0-9A-Za-z_.\-]+(\$[0-9A-Za-z_.\-]+)+$")

# operation path -> the HTTP method it answers (plus audit/{contentId}, GET)
ROUTES = {
    ("subscriptions", "start"): "POST",
    ("subscriptions", "stop"): "POST",
    ("subscriptions", "list"): "GET",
    ("subscriptions", "content"): "GET",
    ("subscriptions", "notifications"): "GET",
}


def af_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


def api_time(moment: datetime) -> str:
    """contentCreated / contentExpiration style: milliseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str) -> datetime | None:
    """YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS (UTC), tolerating fractions and a Z."""
    match = _TIME.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


# -- content blobs and ground truth -------------------------------------------------------------


class ContentStore:
    """The tenant's blobs as the service holds them now: visibility, expiry, what was served."""

    def __init__(self, tenant: Tenant, clock: Clock, late_delay_s: float, lookback_grace: timedelta) -> None:
        self.tenant = tenant
        self._clock = clock
        self._late_delay_s = late_delay_s
        self._grace = lookback_grace
        self._by_id = {blob.content_id: blob for blob in tenant.blobs}
        self._lock = threading.Lock()
        self._released = False
        self._served: set[str] = set()
        self._replaced: dict[str, bytes] = {}

    def release_late(self) -> None:
        with self._lock:
            self._released = True

    def late_visible(self) -> bool:
        with self._lock:
            released = self._released
        return released or self._clock.elapsed() >= self._late_delay_s

    def visible(self, blob: Blob) -> bool:
        return blob.created <= self._clock.now() and (not blob.late or self.late_visible())

    def listable(self, content_type: str, start: datetime, end: datetime) -> list[Blob]:
        late_ok = self.late_visible()
        now = self._clock.now()
        return [
            blob
            for blob in self.tenant.blobs
            if blob.content_type == content_type
            and start <= blob.created < end
            and blob.created <= now
            and (late_ok or not blob.late)
        ]

    def get(self, content_id: str) -> Blob | None:
        blob = self._by_id.get(content_id)
        return blob if blob is not None and self.visible(blob) else None

    def replace_body(self, content_id: str, body: bytes) -> None:
        """Serve `body` for this content from now on (opt-in fault: a blob the service holds
        damaged). Its records then never count as served."""
        if content_id not in self._by_id:
            raise KeyError(f"no content {content_id!r} in the simulated tenant")
        with self._lock:
            self._replaced[content_id] = body

    def body_of(self, blob: Blob) -> tuple[bytes, bool]:
        """The bytes served for a blob and whether they are its own."""
        with self._lock:
            replaced = self._replaced.get(blob.content_id)
        return (blob.body, True) if replaced is None else (replaced, False)

    def expired(self, blob: Blob) -> bool:
        return blob.expiration <= self._clock.now()

    def mark_served(self, blob: Blob) -> None:
        with self._lock:
            self._served.update(blob.mia_ids)

    def ground_truth(self) -> dict[str, list[str]]:
        now = self._clock.now()
        oldest = now - MAX_LOOKBACK - self._grace
        available: set[str] = set()
        in_expired: set[str] = set()
        for blob in self.tenant.blobs:
            if blob.expiration <= now:
                in_expired.update(blob.mia_ids)
            elif oldest <= blob.created <= now:
                available.update(blob.mia_ids)
        with self._lock:
            served = sorted(self._served)
        return {
            "served": served,
            "available": sorted(available),
            "expired_lost": sorted(in_expired - available),
        }


# -- paging tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageCursor:
    content_type: str
    start: str
    end: str
    after_created_us: int  # position: after this (contentCreated, contentId)
    after_id: str
    allow_empty: bool  # an injected empty page is never followed by another


class PageTokens:
    """Opaque, tamper-evident nextPage values."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._secret, payload, hashlib.sha256).digest()[:12]
        ).decode()

    def encode(self, cursor: PageCursor) -> str:
        payload = json.dumps(
            [
                cursor.content_type,
                cursor.start,
                cursor.end,
                cursor.after_created_us,
                cursor.after_id,
                cursor.allow_empty,
            ],
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._mac(payload)

    def decode(self, token: str) -> PageCursor | None:
        body, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None
        if not mac or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        content_type, start, end, after_us, after_id, allow_empty = json.loads(payload)
        return PageCursor(content_type, start, end, after_us, after_id, allow_empty)


def _position(blob: Blob) -> tuple[int, str]:
    return int(blob.created.timestamp() * 1_000_000), blob.content_id


# -- the API ------------------------------------------------------------------------------------


@dataclass
class Subscription:
    content_type: str
    status: str  # enabled | disabled
    started_at: float

    def as_json(self) -> dict[str, Any]:
        return {"contentType": self.content_type, "status": self.status, "webhook": None}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    raw_start: str
    raw_end: str


class ActivityFeed:
    def __init__(
        self,
        *,
        config: SimulatorConfig,
        store: ContentStore,
        entra: Entra,
        clock: Clock,
        faults: FaultInjector,
        stats: Stats,
        base_url: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._store = store
        self._entra = entra
        self._clock = clock
        self._faults = faults
        self._stats = stats
        self._base_url = base_url
        self._sleep = sleep
        self._tokens = PageTokens()
        self._subscriptions: dict[str, Subscription] = {}
        self._lock = threading.Lock()

    @property
    def tenant_id(self) -> str:
        return self._store.tenant.tenant_id

    def root(self, tenant: str | None = None) -> str:
        return f"{self._base_url}/api/v1.0/{tenant or self.tenant_id}/activity/feed"

    # -- pipeline -----------------------------------------------------------------------------

    def handle(self, request: Request, tenant: str, operation: list[str]) -> Reply:
        route, method = self._route(operation)
        if route is None:
            self._stats.route("not_found")
            return json_reply(
                404,
                {"Message": f"No HTTP resource was found that matches the request URI '{request.path}'."},
            )
        self._count(request, route)
        if request.method != method:
            return json_reply(
                405, {"Message": f"The requested resource does not support http method '{request.method}'."}
            )
        if self._faults.config.latency_s > 0:
            self._sleep(self._faults.config.latency_s)
        refused = self._authorize(request, tenant)
        if refused is not None:
            return refused
        stalled = self._stall()
        reply = self._inject(request, route) or self._answer(route, request, tenant, operation)
        if stalled:
            reply.check_peer = True
            reply.on_peer_gone = lambda: self._stats.fault("client_gone_after_stall")
        return reply

    def _count(self, request: Request, route: str) -> None:
        self._stats.route(route)
        self._stats.add("api_requests")
        if not request.param("PublisherIdentifier"):
            self._stats.add("requests_without_publisher_identifier")

    def _answer(self, route: str, request: Request, tenant: str, operation: list[str]) -> Reply:
        if route == "audit":
            return self._get_blob("/".join(operation[1:]))
        return self._dispatch(route, request, tenant)

    @staticmethod
    def _route(operation: list[str]) -> tuple[str | None, str]:
        if len(operation) >= 2 and operation[0] == "audit":
            return "audit", "GET"
        if len(operation) == 2 and (operation[0], operation[1]) in ROUTES:
            return "/".join(operation), ROUTES[(operation[0], operation[1])]
        return None, ""

    def _authorize(self, request: Request, tenant: str) -> Reply | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = self._entra.validate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if claims is None:
            self._stats.add("requests_with_bad_token")
            return json_reply(401, DENIED, {"WWW-Authenticate": 'Bearer realm="manage.office.com"'})
        if not _GUID.match(tenant):
            return self._error(
                400, "AF20013", f"The tenant ID passed in the URL ({tenant}) is not a valid GUID."
            )
        if tenant.lower() != str(claims.get("tid", "")).lower():
            return self._error(
                403,
                "AF20010",
                f"The tenant ID passed in the URL ({tenant}) does not match the tenant ID passed in the "
                f"access token ({claims.get('tid')}).",
            )
        permissions = [*claims.get("roles", []), *str(claims.get("scp", "")).split()]
        if ROLE not in permissions:
            return self._error(
                401,
                "AF10001",
                f"The permission set ({' '.join(permissions)}) sent in the request did not include the "
                f"expected permission {ROLE}.",
            )
        return None

    def _stall(self) -> bool:
        if not self._faults.stall():
            return False
        self._stats.fault("stall")
        self._sleep(self._faults.config.stall_s)
        return True

    def _inject(self, request: Request, route: str) -> Reply | None:
        fault = self._faults.request_error()
        if fault is None:
            return None
        self._stats.fault(fault)
        publisher = request.param("PublisherIdentifier") or NO_PUBLISHER
        method = "GetBlob" if route == "audit" else request.method
        throttled = f"Too many requests. Method={method}, PublisherId={publisher}"
        if fault == "throttle_403":
            return af_error(403, "AF429", throttled)
        if fault == "throttle_429":
            return af_error(429, "AF429", throttled, {"Retry-After": "1"})
        if fault == "server_error_500":
            return af_error(500, "AF50000", "An internal error occurred. Retry the request.")
        return Reply(503, b"Service Unavailable", content_type="text/plain; charset=utf-8")

    def _error(self, status: int, code: str, message: str) -> Reply:
        self._stats.error(code)
        return af_error(status, code, message)

    def _dispatch(self, route: str, request: Request, tenant: str) -> Reply:
        if route == "subscriptions/list":
            with self._lock:
                return json_reply(200, [s.as_json() for s in self._subscriptions.values()])
        content_type = request.param("contentType")
        if not content_type:
            return self._error(400, "AF20001", "Missing parameter: contentType.")
        if content_type not in CONTENT_TYPES:
            return self._error(400, "AF20020", "The specified content type is not valid.")
        if route == "subscriptions/start":
            return self._start(content_type, request)
        if route == "subscriptions/stop":
            return self._stop(content_type)
        problem = self._subscription_problem(content_type)
        if problem is not None:
            return problem
        window = self._window(request)
        if isinstance(window, Reply):
            return window
        if route == "subscriptions/notifications":
            return json_reply(200, [])  # no webhooks, so no notification attempts
        return self._list_content(request, tenant, content_type, window)

    # -- subscriptions ------------------------------------------------------------------------

    def _start(self, content_type: str, request: Request) -> Reply:
        if request.body.strip():
            try:
                webhook = json.loads(request.body).get("webhook")
            except (ValueError, AttributeError):
                return self._error(400, "AF20002", "Invalid parameter type: body. Expected type: json")
            if webhook:
                return self._error(
                    400,
                    "AF20021",
                    f"The webhook endpoint {{{webhook.get('address')}) could not be validated. "
                    "The simulator does not deliver webhook notifications.",
                )
        now = time.monotonic()
        with self._lock:
            existing = self._subscriptions.get(content_type)
            if existing is not None and existing.status == "enabled":
                return self._error(400, "AF20024", "The subscription is already enabled. No property change.")
            cooldown = self._config.start_cooldown_s
            if existing is not None and cooldown > 0 and now - existing.started_at < cooldown:
                publisher = request.param("PublisherIdentifier") or NO_PUBLISHER
                return self._error(403, "AF429", f"Too many requests. Method=POST, PublisherId={publisher}")
            subscription = Subscription(content_type, self._status_for(content_type), now)
            self._subscriptions[content_type] = subscription
            return json_reply(200, subscription.as_json())

    def _status_for(self, content_type: str) -> str:
        return "disabled" if content_type in self._config.admin_disabled else "enabled"

    def _stop(self, content_type: str) -> Reply:
        with self._lock:
            subscription = self._subscriptions.get(content_type)
            if subscription is None:
                return self._error(400, "AF20022", "No subscription found for the specified content type.")
            subscription.status = "disabled"
        return Reply(200, b"", content_type=None)

    def _subscription_problem(self, content_type: str) -> Reply | None:
        with self._lock:
            subscription = self._subscriptions.get(content_type)
        if subscription is None:
            return self._error(400, "AF20022", "No subscription found for the specified content type.")
        if subscription.status != "enabled" or content_type in self._config.admin_disabled:
            return self._error(400, "AF20023", "The subscription was disabled by a tenant admin.")
        return None

    # -- listing ------------------------------------------------------------------------------

    def _window(self, request: Request) -> Window | Reply:
        raw_start, raw_end = request.param("startTime") or "", request.param("endTime") or ""
        now = self._clock.now().replace(microsecond=0)
        if not raw_start and not raw_end:
            implied = now - MAX_WINDOW
            return Window(
                implied, now, implied.strftime("%Y-%m-%dT%H:%M:%S"), now.strftime("%Y-%m-%dT%H:%M:%S")
            )
        rule = (
            "Start time and end time must both be specified (or both omitted) and must be less than or equal "
            "to 24 hours apart, with the start time no more than 7 days in the past."
        )
        if not raw_start or not raw_end:
            return self._error(400, "AF20030", rule)
        start, end = parse_time(raw_start), parse_time(raw_end)
        if start is None or end is None:
            name = "startTime" if start is None else "endTime"
            return self._error(400, "AF20002", f"Invalid parameter type: {name}. Expected type: datetime")
        if end <= start:
            return self._error(400, "AF20055", f"{rule} The start time must be before the end time.")
        span = end - start
        if span > MAX_WINDOW:
            return self._error(400, "AF20030", rule)
        if span == MAX_WINDOW and self._config.reject_exact_24h:
            return self._error(400, "AF20055", rule)
        if start < self._clock.now() - MAX_LOOKBACK - timedelta(seconds=self._config.lookback_grace_s):
            return self._error(400, "AF20030", rule)
        return Window(start, end, raw_start, raw_end)

    def _list_content(self, request: Request, tenant: str, content_type: str, window: Window) -> Reply:
        self._stats.add("listing_pages")
        cursor = None
        if request.has_param("nextPage"):
            token = request.param("nextPage") or ""
            cursor = self._tokens.decode(token)
            if cursor is None or (cursor.content_type, cursor.start, cursor.end) != (
                content_type,
                window.start.isoformat(),
                window.end.isoformat(),
            ):
                return self._error(400, "AF20031", f"Invalid nextPage Input: {token}.")
        blobs = self._store.listable(content_type, window.start, window.end)
        if cursor is not None:
            after = (cursor.after_created_us, cursor.after_id)
            blobs = [blob for blob in blobs if _position(blob) > after]
        here = (cursor.after_created_us, cursor.after_id) if cursor else (0, "")
        if (cursor is None or cursor.allow_empty) and self._faults.empty_page():
            self._stats.fault("empty_page")
            return self._page([], request, tenant, content_type, window, here, allow_empty=False)
        page, rest = blobs[: self._config.page_size], blobs[self._config.page_size :]
        following = _position(page[-1]) if rest else None
        return self._page(page, request, tenant, content_type, window, following, allow_empty=True)

    def _page(
        self,
        page: list[Blob],
        request: Request,
        tenant: str,
        content_type: str,
        window: Window,
        following: tuple[int, str] | None,
        *,
        allow_empty: bool,
    ) -> Reply:
        root = self.root(tenant)
        items = [
            {
                "contentType": blob.content_type,
                "contentId": blob.content_id,
                "contentUri": f"{root}/audit/{blob.content_id}",
                "contentCreated": api_time(blob.created),
                "contentExpiration": api_time(blob.expiration),
            }
            for blob in page
        ]
        headers = {}
        if following is not None:
            cursor = PageCursor(
                content_type,
                window.start.isoformat(),
                window.end.isoformat(),
                following[0],
                following[1],
                allow_empty,
            )
            params = [
                ("contentType", content_type),
                ("startTime", window.raw_start),
                ("endTime", window.raw_end),
            ]
            publisher = request.param("PublisherIdentifier")
            if publisher:
                params.append(("PublisherIdentifier", publisher))
            params.append(("nextPage", self._tokens.encode(cursor)))
            headers["NextPageUri"] = f"{root}/subscriptions/content?{urlencode(params, safe=':')}"
        return json_reply(200, items, headers)

    # -- blobs --------------------------------------------------------------------------------

    def _get_blob(self, content_id: str) -> Reply:
        self._stats.add("blob_gets")
        blob = self._store.get(content_id)
        if blob is None:
            if not _CONTENT_ID.match(content_id):
                return self._error(400, "AF20052", f"Content ID {content_id} in the URL is invalid.")
            return self._error(404, "AF20050", f"The specified content ({content_id}) does not exist.")
        if self._store.expired(blob):
            return self._error(
                400,
                "AF20051",
                f"Content requested with the key {content_id} has already expired. Content older than 7 days "
                "cannot be retrieved.",
            )
        body, own = self._store.body_of(blob)
        cut = self._faults.truncate_at(len(body))
        if cut is not None:
            self._stats.fault("truncated_blob")
            return Reply(200, body[:cut])
        if not own:
            self._stats.fault("replaced_blob")
            return Reply(200, body)
        return Reply(200, body, on_sent=lambda: self._served(blob))

    def _served(self, blob: Blob) -> None:
        self._store.mark_served(blob)
        self._stats.add("blobs_served")
        self._stats.add("blob_bytes_served", len(blob.body))

"""One HTTP transport for every Microsoft API we call (Management Activity API, Microsoft Graph).

- The bearer token of a TokenProvider for one scope; on 401 the token is dropped and the request
  sent once more with a fresh one (a token that expired in flight or was revoked).
- The token goes only to the origin (scheme, host and port) of the configured base: a link the
  service hands out (NextPageUri, contentUri, @odata.nextLink) to any other origin is refused with
  a PermanentError, never followed with the token.
- Transient failures are retried with exponential backoff and jitter, or after the service's
  Retry-After (seconds or an HTTP date), up to `max_attempts` and never past the caller's deadline
  (a `time.monotonic()` instant): a wait or a request that would end after it is not started, and
  the call fails with DeadlineReached.
- Back-pressure is shared by every thread of the process: a Retry-After on a throttling answer (429,
  or a 503 with Retry-After) pauses every request to that API until it ends, as Microsoft asks of
  clients (https://learn.microsoft.com/en-us/graph/throttling#best-practices-to-handle-throttling).
- Errors are classified into shared/clients/errors.py by the client's classifier; their text never
  holds the token, and a network failure is named by its type alone (requests' own message holds
  the URL, and Graph URLs hold the mailbox's UPN).
- Each retry is logged at DEBUG and counted in a RetryTally (shared/clients/retries.py, one per
  process by default) per API host and reason; giving up after the last attempt is the WARNING.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urlsplit

import orjson
import requests

from shared.clients.auth import TokenProvider
from shared.clients.errors import (
    ApiAuthError,
    ApiError,
    DeadlineReached,
    PermanentError,
    Throttled,
    TransientError,
)
from shared.clients.retries import PROCESS_RETRIES, RetryTally
from shared.telemetry import record_api_response

log = logging.getLogger(__name__)

MIN_REQUEST_SECONDS = 1.0  # with less time left before a deadline, a request is not started
MAX_ERROR_TEXT = 200  # of an error body that is not JSON
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
DEFAULT_PORTS = {"https": 443, "http": 80}

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]
Origin = tuple[str, str, int]


@dataclass(frozen=True)
class ErrorReply:
    """What an error answer says: its status, the service's error code and message (the token taken
    out), and its Retry-After in seconds."""

    status: int
    code: str
    message: str
    retry_after: float | None = None


Classifier = Callable[[ErrorReply], ApiError]


@dataclass(frozen=True)
class RetryPolicy:
    request_timeout_s: float
    max_attempts: int
    max_backoff_s: float


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


def _code_and_message(text: str) -> tuple[str, str]:
    """(error.code, error.message) of an error body, `{"error": {...}}` or `{"Message": ...}`."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "", text[:MAX_ERROR_TEXT]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("code") or ""), str(error.get("message") or "")
        if "Message" in body:
            return "", str(body["Message"])
    return "", text[:MAX_ERROR_TEXT]


def error_reply(response: requests.Response, secret: str = "") -> ErrorReply:
    """The error an answer carries, with `secret` (the bearer token) removed from its text before
    anything is cut: a service echoing the request must not put the token into a log."""
    text = response.text
    if secret:
        text = text.replace(secret, "[token]")
    code, message = _code_and_message(text)
    retry_after = parse_retry_after(response.headers.get("Retry-After", ""))
    return ErrorReply(response.status_code, code, message, retry_after)


def classify_status(reply: ErrorReply) -> ApiError:
    """The hierarchy by HTTP status, for APIs whose error codes do not change the decision."""
    status, code, message, retry_after = reply.status, reply.code, reply.message, reply.retry_after
    if status == 429 or (status == 503 and retry_after is not None):
        return Throttled(status, code, message, retry_after)
    if status == 408 or status >= 500:
        return TransientError(status, code, message, retry_after)
    if status in (401, 403):
        return ApiAuthError(status, code, message)
    return PermanentError(status, code, message)


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of a URL; None when it has none, or user info to smuggle a host in."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, port or DEFAULT_PORTS.get(scheme, 0)


class RateLimiter:
    """At most `budget` requests in any `window_s` seconds (a sliding window; thread-safe). Short
    runs go at full speed; a long run settles at the budget."""

    def __init__(
        self, budget: int, window_s: float = 60.0, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self._budget = budget
        self._window = window_s
        self._sent: deque[float] = deque()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait for a slot and take it; False (nothing taken) when that would take over `timeout` s."""
        give_up = None if timeout is None else self._clock() + timeout
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self._window:
                    self._sent.popleft()
                if len(self._sent) < self._budget:
                    self._sent.append(now)
                    return True
                wait_for = self._sent[0] + self._window - now
            if give_up is not None and now + wait_for > give_up:
                return False
            self._sleep(wait_for)


class Pauses:
    """Until when each API is paused because its service said to wait (thread-safe): one pause per
    API host, seen by every thread and every transport of the process that uses it."""

    def __init__(self) -> None:
        self._until: dict[tuple[Origin, str], float] = {}
        self._lock = threading.Lock()

    def extend(self, key: tuple[Origin, str], until: float) -> None:
        with self._lock:
            self._until[key] = max(self._until.get(key, until), until)

    def until(self, key: tuple[Origin, str]) -> float:
        with self._lock:
            return self._until.get(key, float("-inf"))


PROCESS_PAUSES = Pauses()


class Transport:
    """Calls to one API: `base`'s origin, with tokens for `scope`.

    `classify` turns an error answer into the hierarchy; `pacing`, when given, is a client-side
    request budget every request (retries included) takes a slot of. Requests with the same origin
    and `throttling_scope` share one pause: an API throttled apart from the rest of its host (Graph
    message trace) names its own. Every request sent is counted under `api` (mia.api.requests,
    and mia.api.throttled for a 429)."""

    def __init__(
        self,
        base: str,
        scope: str,
        tokens: TokenProvider,
        policy: RetryPolicy,
        session: requests.Session,
        *,
        api: str,
        classify: Classifier = classify_status,
        pacing: RateLimiter | None = None,
        throttling_scope: str = "",
        pauses: Pauses = PROCESS_PAUSES,
        retries: RetryTally = PROCESS_RETRIES,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        origin = origin_of(base)
        if origin is None:
            raise ValueError("an API base needs a scheme and a host")
        self._origin = origin
        self._api = api
        self._scope = scope
        self._tokens = tokens
        self._policy = policy
        self._session = session
        self._classify = classify
        self._pacing = pacing
        self._pause_key = (origin, throttling_scope)
        self._pauses = pauses
        self._retries = retries
        self._host = f"{origin[1]}:{origin[2]}"
        self._clock = clock
        self._sleep = sleep

    def seconds_left(self, deadline: float | None) -> float | None:
        """Seconds until `deadline` on this transport's clock, None without one."""
        return None if deadline is None else deadline - self._clock()

    def request(
        self,
        method: str,
        url: str,
        read: Callable[[requests.Response], T],
        body: bytes | None = None,
        deadline: float | None = None,
    ) -> T:
        """One call, retried while it fails transiently; `read` turns a successful answer into the
        result and may raise TransientError to have it fetched again (a body cut short)."""
        self._refuse_foreign(url)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, url, read, body, deadline)
            except DeadlineReached:
                raise
            except TransientError as problem:
                self._pause_if_throttled(problem)
                reason = problem.code or str(problem.status)
                if attempt >= self._policy.max_attempts:
                    self._retries.gave_up(self._host, reason)
                    log.warning("giving up on %s after %d attempts: %s", self._host, attempt, problem)
                    raise
                wait = self._backoff(problem, attempt)
                self._ensure_time_for(wait, deadline, f"after {attempt} attempt(s): {problem}")
                self._retries.retried(self._host, reason)
                log.debug("retrying after %s (attempt %d)", problem, attempt)
                self._sleep(wait)

    def _refuse_foreign(self, url: str) -> None:
        origin = origin_of(url)
        if origin != self._origin:
            shown = f"{origin[0]}://{origin[1]}:{origin[2]}" if origin else "an unreadable host"
            raise PermanentError(0, "foreign_host", f"refusing to send the token to {shown}")

    def _attempt(
        self,
        method: str,
        url: str,
        read: Callable[[requests.Response], T],
        body: bytes | None,
        deadline: float | None,
    ) -> T:
        self._wait_out_pause(deadline)
        response, token = self._send(method, url, body, deadline)
        if response.status_code == 401:
            self._tokens.invalidate()
            response, token = self._send(method, url, body, deadline)
        if response.status_code >= 400:
            raise self._classify(error_reply(response, token))
        return read(response)

    def _send(
        self, method: str, url: str, body: bytes | None, deadline: float | None
    ) -> tuple[requests.Response, str]:
        self._take_pacing_slot(deadline)
        token = self._tokens.token(self._scope)  # AuthFailed and TokenUnavailable are ApiErrors
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        timeout = self._timeout(deadline)  # after the token: getting it took some of the time
        try:
            response = self._session.request(method, url, data=body, headers=headers, timeout=timeout)
        except NETWORK_ERRORS as problem:
            record_api_response(self._api, None)
            raise TransientError(0, "network", type(problem).__name__) from None
        record_api_response(self._api, response.status_code)
        return response, token

    def _timeout(self, deadline: float | None) -> float:
        """The timeout of a request about to start: the time left, at most the configured one."""
        left = self.seconds_left(deadline)
        if left is not None and left < MIN_REQUEST_SECONDS:
            raise DeadlineReached(0, "deadline", "too little time left to send the request")
        configured = float(self._policy.request_timeout_s)
        return configured if left is None else min(configured, left)

    def _take_pacing_slot(self, deadline: float | None) -> None:
        if self._pacing is None:
            return
        left = self.seconds_left(deadline)
        if not self._pacing.acquire(None if left is None else max(0.0, left - MIN_REQUEST_SECONDS)):
            raise DeadlineReached(0, "deadline", "no request slot of the budget before the deadline")

    def _wait_out_pause(self, deadline: float | None) -> None:
        """Wait while the API is paused (another thread's 429 may pause it again meanwhile)."""
        while (remaining := self._pauses.until(self._pause_key) - self._clock()) > 0:
            self._ensure_time_for(remaining, deadline, "the service asked to pause")
            self._sleep(remaining)

    def _pause_if_throttled(self, problem: TransientError) -> None:
        if isinstance(problem, Throttled) and problem.retry_after is not None:
            self._pauses.extend(self._pause_key, self._clock() + problem.retry_after)

    def _backoff(self, problem: TransientError, attempt: int) -> float:
        """The service's Retry-After, else 0.5 s doubled per attempt plus up to 1 s of jitter."""
        if problem.retry_after is not None:
            return problem.retry_after
        exponential: float = 0.5 * 2.0 ** min(attempt - 1, 30)
        return min(exponential + random.uniform(0, 1), self._policy.max_backoff_s)

    def _ensure_time_for(self, wait: float, deadline: float | None, why: str) -> None:
        """DeadlineReached unless a request can still be sent after waiting `wait` seconds."""
        left = self.seconds_left(deadline)
        if left is not None and wait + MIN_REQUEST_SECONDS > left:
            raise DeadlineReached(0, "deadline", f"stopped at the deadline, {why}")

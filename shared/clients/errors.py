"""The errors of every Microsoft API call: one hierarchy for the Management Activity API, Microsoft
Graph and the token endpoints, so that callers decide on the class, never on the text.

- `TransientError`: worth trying again, later or at once (the network, a timeout, a 5xx, throttling,
  the token endpoint unreachable, the caller's deadline); `retry_after` is the service's wait.
- `PermanentError`: trying again does not help (a refused request, a refused token, a resource that
  does not exist); the fix is in the request or the configuration.

The API-specific kinds live with their clients (ContentGone and NoSubscription in activity_api,
TraceBudgetSpent in graph_api), AuthFailed and TokenUnavailable with the token providers (auth).
Messages hold the service's error code and message, never a token or a URL.
"""

from __future__ import annotations


class ApiError(RuntimeError):
    """A call that did not succeed: the HTTP status (0 when there was no answer), the service's
    error code ("" when it gave none, or ours: "network", "deadline", ...) and what it said."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code or status}: {message}")
        self.status = status
        self.code = code
        self.message = message


class TransientError(ApiError):
    """Worth retrying: network failures, timeouts, 5xx, throttling, a truncated body, the token
    endpoint down. `retry_after` is the wait the service asked for, when it named one."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class Throttled(TransientError):
    """The service asked us to slow down: HTTP 429, the Management API's AF429 (also sent as 403),
    or a 503 with Retry-After."""


class DeadlineReached(TransientError):
    """The caller's deadline came before the call could finish: nothing failed, what is left is for
    a later run (so never counted as an API failure)."""


class PermanentError(ApiError):
    """Not worth retrying: 400, 404 and the other 4xx, a link to another host, a malformed answer."""


class ApiAuthError(PermanentError):
    """The token is refused (401 even with a fresh one), lacks the permission (403), or could not be
    had at all (AuthFailed): the fix is consent or configuration, not a retry."""

"""Log Analytics (Microsoft Sentinel) `OfficeActivity` rows of one time window, as evidence.

Through azure-monitor-query's `LogsQueryClient`: it takes `endpoint=` (the simulator in tests),
`audience=` (tokens stay for https://api.loganalytics.io wherever the endpoint is), azure-core's
`connection_verify=` (our CA bundle) and retries 429 and 5xx with Retry-After itself. The response
bytes are taken as received with azure-core's `raw_response_hook`, so what is stored as evidence is
the service's answer, not a re-serialisation of the SDK's objects; the stored page reads through
the `sentinel-json` reader like an exported query result.

A result over the service's row limit is cut and answered 200 with a partial error
(E_QUERY_RESULT_SET_TOO_LARGE, https://learn.microsoft.com/azure/azure-monitor/logs/api/errors):
such a window is split in two and each half queried, until every page is whole. A field the table
has no column for (OperationCount) stays empty in the events: nothing is guessed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline import PipelineResponse
from azure.monitor.query import LogsQueryClient, LogsQueryPartialResult

from shared.clients.auth import TokenProvider
from shared.clients.errors import PermanentError, TransientError
from shared.model.times import as_utc
from shared.telemetry import record_api_response

log = logging.getLogger(__name__)

PUBLIC_ENDPOINT = "https://api.loganalytics.io"
AUDIENCE = "https://api.loganalytics.io"
SCOPE = f"{AUDIENCE}/.default"
# The smallest window split further when the service says a result was cut: a second holding more
# rows than the limit cannot be paged by time, and is reported rather than cut silently.
MIN_WINDOW = timedelta(seconds=1)
_TRUNCATED = "E_QUERY_RESULT_SET_TOO_LARGE"
_KQL_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class LogAnalyticsError(PermanentError):
    """The query API refused or failed the query; the message names what it said."""


@dataclass(frozen=True)
class WindowPage:
    """One whole query result: the evidence blob and where it came from."""

    workspace: str
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC
    query: str  # the KQL text sent
    body: bytes  # the response exactly as received (a Log Analytics `{"tables": ...}` document)
    rows: int


def window_query(start: datetime, end: datetime) -> str:
    """The KQL of one window of MailItemsAccessed rows. Only times reach the text, formatted here."""
    return (
        "OfficeActivity\n"
        f"| where TimeGenerated >= datetime({as_utc(start).strftime(_KQL_TIME)}) "
        f"and TimeGenerated < datetime({as_utc(end).strftime(_KQL_TIME)})\n"
        '| where Operation == "MailItemsAccessed"\n'
        "| order by TimeGenerated asc, OfficeId asc"
    )


class ProviderCredential:
    """An azure-core TokenCredential over one of our token providers (MSAL or managed identity),
    which cache and refresh tokens themselves. The expiry given is 5 minutes, which azure-core's
    bearer policy already counts as due, so it asks the provider (its cache) for every request
    rather than holding a token the provider has since replaced."""

    def __init__(self, provider: TokenProvider, lifetime_s: int = 300) -> None:
        self._provider = provider
        self._lifetime_s = lifetime_s

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._provider.token(scopes[0]), int(time.time()) + self._lifetime_s)


class LogAnalyticsClient:
    """Queries one workspace's OfficeActivity table window by window (see the module docstring)."""

    def __init__(
        self,
        credential: TokenCredential,
        endpoint: str = PUBLIC_ENDPOINT,
        ca_bundle: str | None = None,
        min_window: timedelta = MIN_WINDOW,
        retry_total: int = 5,
        audience: str = AUDIENCE,
    ) -> None:
        options: dict[str, Any] = {"retry_total": retry_total}
        if ca_bundle:
            options["connection_verify"] = ca_bundle
        self._client = LogsQueryClient(credential, endpoint=endpoint, audience=audience, **options)
        self._min_window = min_window

    def close(self) -> None:
        self._client.close()

    def query_window(self, workspace: str, start: datetime, end: datetime) -> Iterator[WindowPage]:
        """Every MailItemsAccessed row with start <= TimeGenerated < end, as whole pages in time
        order: one page, or more when the service cut a window at its row limit. Raises
        LogAnalyticsError (refused, or a second over the limit) or TransientError."""
        start, end = as_utc(start), as_utc(end)
        if end <= start:
            raise ValueError(f"the window must end after it starts: {start} .. {end}")
        pending = [(start, end)]
        while pending:
            low, high = pending.pop()
            page = self._query(workspace, low, high)
            if page is not None:
                yield page
                continue
            if high - low <= self._min_window:
                raise LogAnalyticsError(
                    200, _TRUNCATED, f"more rows than the result limit within {low} .. {high}: cannot page"
                )
            middle = low + (high - low) / 2
            log.info("log analytics: %s .. %s was cut at the row limit; querying it in two halves", low, high)
            pending.extend([(middle, high), (low, middle)])  # the earlier half next

    def _query(self, workspace: str, start: datetime, end: datetime) -> WindowPage | None:
        """One whole page, or None when the service cut the result at its row limit."""
        query = window_query(start, end)
        received: list[bytes] = []

        def keep_body(response: PipelineResponse[Any, Any]) -> None:
            received[:] = [response.http_response.body()]  # the last attempt's, after retries
            record_api_response("log_analytics", response.http_response.status_code)

        try:
            result = self._client.query_workspace(
                workspace, query, timespan=(start, end), raw_response_hook=keep_body
            )
        except HttpResponseError as problem:
            status = problem.status_code or 0
            error = TransientError if status == 429 or status >= 500 else LogAnalyticsError
            raise error(status, _code(problem), _first_line(problem.message)) from None
        except (ServiceRequestError, ServiceResponseError) as problem:
            record_api_response("log_analytics", None)
            raise TransientError(
                0, "unreachable", f"Log Analytics unreachable: {type(problem).__name__}"
            ) from None
        if isinstance(result, LogsQueryPartialResult):
            partial = result.partial_error
            details = str(getattr(partial, "details", "")) + str(getattr(partial, "message", ""))
            if _TRUNCATED in details:
                return None
            raise LogAnalyticsError(200, str(getattr(partial, "code", "PartialError")), details[:300])
        rows = sum(len(table.rows) for table in result.tables)
        return WindowPage(workspace, start, end, query, received[-1] if received else b"", rows)


def _code(problem: HttpResponseError) -> str:
    error = getattr(problem, "error", None)
    return str(getattr(error, "code", "") or problem.reason or "error")


def _first_line(message: str | None) -> str:
    return (message or "").splitlines()[0][:300] if message else ""

"""Configuration of the tenant simulator: what the tenant holds and which faults it injects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FaultConfig:
    """Faults and quirks, all switchable; request-level faults are drawn from a seeded RNG.

    Request-level (per Management Activity API request, probabilities 0..1):
    `throttle_403` AF429 as HTTP 403 without Retry-After (what the docs show), `throttle_429`
    HTTP 429 AF429 with `Retry-After: 1`, `server_error` 500 AF50000 or a bare 503, `stall`
    (sleep `stall_s` before answering), `truncated_blob` (a blob GET answers 200 with its body cut
    short), `empty_page_rate` (a listing page comes back empty but still carries a NextPageUri),
    and `latency_s` added to every API call. `graph_throttle`: a Microsoft Graph message lookup
    (direct or a $batch item) answers 429 ApplicationThrottled with
    `Retry-After: SimulatorConfig.graph_retry_after_s`. `graph_batch_error`: a whole Graph `$batch`
    answers 503 ServiceUnavailable; `graph_batch_stall_s` / `trace_stall_s`: every `$batch` /
    message-trace request answers only after this many seconds (all three off by default: for
    clients that must honour a deadline).

    Data-level (shape of the generated tenant): `expired_blobs` blobs already past their
    contentExpiration, `late_blobs` blobs announced late (contentCreated in the recent past, listable
    only after `SimulatorConfig.late_delay_s`), and `duplicate_rate`, the share of records that the
    pipeline stored twice (again in a later blob). These are properties of real tenants rather than
    failures, so every preset keeps them; set them to 0 for a pristine tenant.
    """

    throttle_403: float = 0.0
    throttle_429: float = 0.0
    server_error: float = 0.0
    stall: float = 0.0
    stall_s: float = 3.0
    truncated_blob: float = 0.0
    empty_page_rate: float = 0.0
    latency_s: float = 0.0
    graph_throttle: float = 0.0
    graph_batch_error: float = 0.0
    graph_batch_stall_s: float = 0.0
    trace_stall_s: float = 0.0
    expired_blobs: int = 2
    late_blobs: int = 3
    duplicate_rate: float = 0.02

    def __post_init__(self) -> None:
        rates = {
            "throttle_403": self.throttle_403,
            "throttle_429": self.throttle_429,
            "server_error": self.server_error,
            "stall": self.stall,
            "truncated_blob": self.truncated_blob,
            "empty_page_rate": self.empty_page_rate,
            "duplicate_rate": self.duplicate_rate,
            "graph_throttle": self.graph_throttle,
            "graph_batch_error": self.graph_batch_error,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be a probability in [0, 1], got {rate}")
        if self.throttle_403 + self.throttle_429 + self.server_error > 1.0:
            raise ValueError("FaultConfig: throttle_403 + throttle_429 + server_error must not exceed 1")
        durations = (self.stall_s, self.latency_s, self.graph_batch_stall_s, self.trace_stall_s)
        if min(durations) < 0 or min(self.expired_blobs, self.late_blobs) < 0:
            raise ValueError("FaultConfig: durations and counts must not be negative")

    @classmethod
    def none(cls) -> FaultConfig:
        """No request faults, no empty pages, no latency (data-level quirks stay, see class doc)."""
        return cls()

    @classmethod
    def moderate(cls) -> FaultConfig:
        """A few percent of each request fault; stalls are rare."""
        return cls(
            throttle_403=0.02,
            throttle_429=0.02,
            server_error=0.02,
            stall=0.003,
            truncated_blob=0.02,
            empty_page_rate=0.05,
            graph_throttle=0.05,
            expired_blobs=2,
            late_blobs=3,
            duplicate_rate=0.03,
        )

    @classmethod
    def all(cls) -> FaultConfig:
        """Every fault on at higher rates; a collector that retries (~8 attempts) still completes."""
        return cls(
            throttle_403=0.04,
            throttle_429=0.04,
            server_error=0.04,
            stall=0.01,
            truncated_blob=0.05,
            empty_page_rate=0.2,
            graph_throttle=0.1,
            expired_blobs=3,
            late_blobs=5,
            duplicate_rate=0.06,
        )


@dataclass(frozen=True)
class SimulatorConfig:
    """A simulated tenant. Everything generated is deterministic for a given `seed` and `now`."""

    seed: int = 7
    mailboxes: int = 30
    days: int = 5
    faults: FaultConfig = field(default_factory=FaultConfig)
    port: int = 0
    page_size: int = 20
    late_delay_s: float = 20.0
    token_lifetime_s: int = 3599
    #: The simulated "current time" at start (UTC, aware); None means the real clock. The simulated
    #: clock then advances in real time. Tokens always use the real clock (MSAL signs with it).
    now: datetime | None = None
    #: Slack on the "start no more than 7 days back" rule, for client/server clock skew.
    lookback_grace_s: float = 300.0
    #: Also reject windows of exactly 24 h (AF20055), as observed on some subscriptions.
    reject_exact_24h: bool = False
    #: Content types whose subscription a tenant admin disabled: listing answers AF20023.
    admin_disabled: tuple[str, ...] = ()
    #: After a successful start, further starts within this many seconds answer AF429 (0 = off).
    start_cooldown_s: float = 0.0
    #: Largest content blob, in records.
    max_blob_records: int = 300
    #: Seconds an idle keep-alive connection is kept open.
    idle_timeout_s: float = 30.0
    #: Microsoft Graph roles granted to the app (None: Mail.ReadBasic.All and
    #: ExchangeMessageTrace.Read.All); withhold one to test 403s.
    graph_roles: tuple[str, ...] | None = None
    #: Mailboxes outside the app's Exchange RBAC scope: Graph mail answers 403 ErrorAccessDenied.
    graph_denied_mailboxes: tuple[str, ...] = ()
    #: Seconds each Graph message lookup holds one of its mailbox's 4 concurrency slots.
    graph_latency_s: float = 0.0
    #: Retry-After of a Graph 429 for concurrency or an injected `FaultConfig.graph_throttle`.
    graph_retry_after_s: int = 1
    #: Graph requests per mailbox per window: 10,000 per 10 minutes
    #: (docs/mailitemsaccessed.md#outlook-throttling).
    graph_requests_per_window: int = 10_000
    graph_window_s: float = 600.0
    #: Message trace requests per tenant per rolling window: 100 per 5 minutes
    #: (docs/mailitemsaccessed.md#graph-message-trace).
    trace_requests_per_window: int = 100
    trace_window_s: float = 300.0
    #: The tenant lacks the Transport Data Platform service principal: message trace answers 401.
    trace_missing_service_principal: bool = False
    #: The app's credential (its client secret or certificate) has expired: the token endpoint
    #: refuses every token with 401 invalid_client, AADSTS7000222.
    credential_expired: bool = False
    #: Days of audit history before the Management API's `days` (audit-log query API only).
    history_days: int = 0
    #: The Graph audit-log query API (`/security/auditLog/queries`): seconds a query stays
    #: notStarted, then running; the records one query returns before isRecordCountLimitExceeded;
    #: queued or running queries per tenant before a create answers 429; records per page.
    audit_query_start_s: float = 0.05
    audit_query_run_s: float = 0.1
    audit_query_record_limit: int = 1_000_000
    audit_query_concurrency: int = 50
    audit_query_page_size: int = 150
    #: Faults of that API: the first N queries created end `failed`; the first N creates answer
    #: 429 with Retry-After (a burst, as rapid submissions get); v1.0 answers 404 (beta works).
    audit_query_failures: int = 0
    audit_query_throttle_burst: int = 0
    audit_query_v1_missing: bool = False
    #: The Log Analytics workspace (its Workspace ID, a GUID) whose OfficeActivity table holds the
    #: tenant's history; queries to any other answer 404 WorkspaceNotFoundError.
    log_analytics_workspace_id: str = "5d2c8a1e-6f3b-4c7d-9e0a-1b2c3d4e5f60"
    #: Rows in one query result before it is cut with a PartialError (500,000 on the service).
    log_analytics_max_rows: int = 500_000
    #: Query requests per client per rolling window before 429 (200 per 30 s on the service).
    log_analytics_requests_per_window: int = 200
    log_analytics_window_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 7:
            raise ValueError("SimulatorConfig.days must be 1..7 (the API lists at most 7 days back)")
        if self.mailboxes < 1:
            raise ValueError("SimulatorConfig.mailboxes must be at least 1")
        if self.page_size < 1 or self.max_blob_records < 1:
            raise ValueError("SimulatorConfig.page_size and max_blob_records must be at least 1")
        if self.token_lifetime_s < 1 or self.late_delay_s < 0:
            raise ValueError("SimulatorConfig.token_lifetime_s must be >= 1 and late_delay_s >= 0")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("SimulatorConfig.now must be timezone-aware (UTC)")
        if self.graph_latency_s < 0 or self.graph_retry_after_s < 1:
            raise ValueError("SimulatorConfig.graph_latency_s must be >= 0 and graph_retry_after_s >= 1")
        if min(self.graph_requests_per_window, self.trace_requests_per_window) < 1:
            raise ValueError("SimulatorConfig: graph/trace requests per window must be at least 1")
        if min(self.log_analytics_max_rows, self.log_analytics_requests_per_window) < 1:
            raise ValueError("SimulatorConfig: log_analytics_max_rows and requests per window must be >= 1")
        if min(self.graph_window_s, self.trace_window_s) <= 0:
            raise ValueError("SimulatorConfig: graph_window_s and trace_window_s must be positive")
        if not 0 <= self.history_days <= 365:
            raise ValueError("SimulatorConfig.history_days must be 0..365")
        if min(self.audit_query_record_limit, self.audit_query_concurrency, self.audit_query_page_size) < 1:
            raise ValueError("SimulatorConfig: audit query limits and page size must be at least 1")
        if min(self.audit_query_start_s, self.audit_query_run_s) < 0:
            raise ValueError("SimulatorConfig: audit query durations must not be negative")

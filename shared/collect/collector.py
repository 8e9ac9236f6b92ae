"""Continuous collection: Management Activity API content -> raw blobs + pointer messages.

The checkpoint means "every content blob created before this instant that the API listed has been
stored durably". Each run lists from the checkpoint minus an overlap (late content is announced
with a contentCreated in windows already collected: docs/mailitemsaccessed.md#late-and-duplicate-content),
skips content IDs already stored, stores new blobs and their pointers, and only then moves the
checkpoint to the end of the window. A run killed at any point loses nothing: stored-but-unmarked
blobs are stored again idempotently and processing is idempotent. A backlog older than the API's
7 days is recorded as a gap.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from shared.alerts import outbox, rules
from shared.clients.activity_api import ActivityClient, Content, ContentGone, ContentItem
from shared.clients.auth import AuthFailed, token_provider
from shared.clients.errors import ApiAuthError
from shared.model.progress import SILENT, Progress
from shared.model.times import iso_z
from shared.settings import AlertSettings, CollectionSettings, SettingsError
from shared.storage import Storage, raw_store
from shared.storage.collection_state import CollectionStateTable
from shared.telemetry import current_carrier, record_collection, span

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
# Start a little inside the 7-day edge: a call delayed by retries or clock skew must not cross it
# (Elastic's collector uses 167h55m; docs/mailitemsaccessed.md#listing-content).
RETENTION_MARGIN = timedelta(minutes=15)
SEEN_KEEP = timedelta(days=8)
MAX_PARSE_ERROR = 200


@dataclass
class CollectResult:
    content_type: str
    windows: int = 0
    listed: int = 0
    already_stored: int = 0
    stored: int = 0
    records: int = 0
    gone: list[str] = field(default_factory=list)
    unparseable: list[str] = field(default_factory=list)
    gap: tuple[str, str] | None = None
    checkpoint: str = ""
    caught_up: bool = False
    subscription_started: bool = False

    def fetched(self) -> dict[str, int]:
        """Listed content blobs by outcome (the telemetry contract's `mia.content.fetched`)."""
        return {
            "stored": self.stored - len(self.unparseable),
            "already_stored": self.already_stored,
            "unparseable": len(self.unparseable),
            "gone": len(self.gone),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "windows": self.windows,
            "listed": self.listed,
            "already_stored": self.already_stored,
            "stored": self.stored,
            "records": self.records,
            "gone": len(self.gone),
            "unparseable": len(self.unparseable),
            "gap": list(self.gap) if self.gap else None,
            "checkpoint": self.checkpoint,
            "caught_up": self.caught_up,
            "subscription_started": self.subscription_started,
        }


@dataclass(frozen=True)
class Stored:
    """The blob is stored and its pointer queued."""

    records: int
    label: ClassVar[str] = "stored"


@dataclass(frozen=True)
class Unparseable:
    """Stored as served, the same bytes twice but not a JSON array (recorded and alerted)."""

    label: ClassVar[str] = "unparseable"


@dataclass(frozen=True)
class Gone:
    """Listed but no longer retrievable (expired, unknown): lost for good, recorded and alerted."""

    code: str

    @property
    def label(self) -> str:
        return f"gone:{self.code}"


@dataclass(frozen=True)
class Late:
    """Not fetched: the time budget was spent, so the next run fetches it."""


Fetched = Stored | Unparseable | Gone
Outcome = Fetched | Late


class CollectionState:
    """Checkpoint, stored content IDs and recorded gaps of one content type."""

    def __init__(self, table: CollectionStateTable, content_type: str) -> None:
        self._table = table
        self._type = content_type

    def checkpoint(self) -> datetime | None:
        return self._table.checkpoint(self._type)

    def save_checkpoint(self, moment: datetime, now: datetime) -> None:
        self._table.save_checkpoint(self._type, moment, now)

    def stored_ids(self, start: datetime, end: datetime) -> set[str]:
        """Content IDs already stored with start <= contentCreated < end (one range query)."""
        return self._table.stored_ids(self._type, start, end)

    def mark_stored(self, items: Iterable[tuple[ContentItem, Fetched]]) -> None:
        self._table.mark_stored(self._type, ((item, outcome.label) for item, outcome in items))

    def forget_older_than(self, moment: datetime) -> int:
        """Drop stored-ID entries the API can no longer list (their content has expired)."""
        return self._table.forget_stored_before(self._type, moment)

    def record_gap(self, start: datetime, end: datetime, reason: str, now: datetime) -> None:
        self._table.record_gap(self._type, start, end, reason, now)

    def record_loss(self, item: ContentItem, code: str, now: datetime) -> None:
        """Content listed but no longer retrievable (AF20050/AF20051): data lost for good."""
        self._table.record_loss(self._type, item, code, now)

    def record_unparseable(
        self, item: ContentItem, blob: str, digest: str, error: str, now: datetime
    ) -> None:
        """Content served whole but not a JSON array: stored as evidence, its records unknown."""
        self._table.record_unparseable(self._type, item, blob, digest, error[:MAX_PARSE_ERROR], now)

    def gaps(self) -> list[dict[str, Any]]:
        return self._table.recorded("gap", self._type)

    def losses(self) -> list[dict[str, Any]]:
        return self._table.recorded("loss", self._type)

    def unparseable(self) -> list[dict[str, Any]]:
        return self._table.recorded("unparseable", self._type)


def store_content(storage: Storage, item: ContentItem, content: Content) -> tuple[str, str]:
    """Store one content blob as raw evidence and queue its pointer; returns (blob name, sha256).

    A blob that is not a JSON array is stored and queued all the same, marked `parseable=false`:
    processing keeps the records it can read and counts the rest as malformed."""
    name = raw_store.api_blob_name(item.content_type, item.content_id, item.content_created)
    metadata = {
        "format": "management-api",
        "contentId": item.content_id,
        "contentCreated": iso_z(item.content_created),
    }
    if content.unparseable:
        metadata["parseable"] = "false"
        metadata["parseError"] = content.unparseable[:MAX_PARSE_ERROR]
    else:
        metadata["recordCount"] = str(content.records)
    data = content.data
    try:
        digest, _ = raw_store.store_raw(storage.blobs, name, data, metadata)
    except raw_store.IntegrityError:
        # The service served other bytes under a content ID already stored: keep both as evidence.
        name = name.replace(".json.gz", f".{raw_store.sha256_hex(data)[:16]}.json.gz")
        digest, _ = raw_store.store_raw(storage.blobs, name, data, metadata)
    trace = current_carrier()  # the content.store span: enrich_trace continues its trace
    pointer = raw_store.RawPointer(
        blob=name,
        sha256=digest,
        format="management-api",
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )
    raw_store.enqueue_pointer(raw_store.content_queue(storage.queues), pointer)
    return name, digest


class Collector:
    def __init__(
        self,
        storage: Storage,
        client: ActivityClient,
        settings: CollectionSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        alert_settings: AlertSettings | None = None,
        progress: Progress = SILENT,
    ) -> None:
        self._storage = storage
        self._progress = progress
        self._alerts = alert_settings or AlertSettings()
        self._client = client
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._state = CollectionState(storage.collection_state, settings.content_type)

    def run(self) -> CollectResult:
        """Collect until caught up with now or the time budget is spent; then check for lag and
        deliver pending alerts, whatever happened. Token and permission errors raise
        collection.auth_failed, then propagate. One `fetch_audit` span; the run's counts are
        recorded as metrics whatever its outcome."""
        result = CollectResult(self._settings.content_type)
        outcome = "failed"
        with span("fetch_audit", {"content_type": result.content_type}) as run_span:
            try:
                self._run(result)
                outcome = "success" if result.caught_up else "partial"
                return result
            except ApiAuthError as problem:  # AuthFailed included: the token itself was refused
                self._auth_failed(problem)
                raise
            finally:
                lag = self._check_lag()
                run_span.set_attribute("outcome", outcome)
                record_collection(outcome, result.content_type, result.fetched(), result.records, lag)
                outbox.deliver_quietly(self._storage, self._alerts, self._clock)

    def _raise(
        self,
        alert_type: str,
        details: dict[str, Any],
        triggered_at: datetime | None = None,
        subject: str | None = None,
    ) -> None:
        now = self._clock()
        details = {"contentType": self._settings.content_type, **details}
        alert = rules.make_alert(
            alert_type,
            tenant=self._alerts.tenant or self._settings.auth.tenant_id,
            triggered_at=triggered_at or now,
            detected_at=now,
            details=details,
            subject=subject,
        )
        outbox.raise_alert(self._storage, alert, now)

    def _auth_failed(self, problem: ApiAuthError) -> None:
        if isinstance(problem, AuthFailed):
            message = str(problem)  # AuthFailed says what to fix and carries no secret
        else:
            fix = (
                "the Management Activity API refused the token: grant the collecting identity the "
                "application permission ActivityFeed.Read of Office 365 Management APIs with admin "
                "consent, and check TENANT_ID and PUBLISHER_ID"
            )
            message = f"{problem} ({fix})"
        log.error("collection cannot authenticate: %s", message)
        self._raise(rules.COLLECTION_AUTH_FAILED, {"error": type(problem).__name__, "message": message})

    def _check_lag(self) -> float | None:
        """Raise collection.lagging when the checkpoint is too old; the lag in seconds (None
        before a first checkpoint, or when it cannot be read)."""
        try:
            checkpoint = self._state.checkpoint()
            now = self._clock()
            if checkpoint is None:
                return None
            lag = now - checkpoint
            if lag <= timedelta(hours=self._alerts.lag_hours):
                return lag.total_seconds()
            self._raise(
                rules.COLLECTION_LAGGING,
                {
                    "checkpoint": iso_z(checkpoint),
                    "lagHours": round(lag.total_seconds() / 3600, 1),
                    "thresholdHours": self._alerts.lag_hours,
                    "message": (
                        f"{self._settings.content_type} is collected only up to {iso_z(checkpoint)}, "
                        f"{lag.total_seconds() / 3600:.1f} hours behind; content older than 7 days is "
                        "lost for good (check fetch_audit's log, the API quota and the time budget)"
                    ),
                },
            )
            return lag.total_seconds()
        except Exception:  # the check must never hide the run's own outcome
            log.exception("collection lag check failed")
            return None

    def _run(self, result: CollectResult) -> None:
        deadline = self._monotonic() + self._settings.time_budget_seconds
        content_type = self._settings.content_type
        result.subscription_started = self._client.ensure_subscription(content_type)
        now = self._clock()
        checkpoint = self._state.checkpoint() or now - timedelta(hours=self._settings.initial_lookback_hours)
        earliest = now - RETENTION + RETENTION_MARGIN
        if checkpoint < earliest:
            result.gap = (iso_z(checkpoint), iso_z(earliest))
            self._state.record_gap(checkpoint, earliest, "backlog older than the API's 7 days", now)
            self._raise(
                rules.COLLECTION_GAP,
                {
                    "from": result.gap[0],
                    "to": result.gap[1],
                    "reason": "backlog older than the API's 7 days",
                    "message": f"audit content created {result.gap[0]} .. {result.gap[1]} can no "
                    "longer be listed by the Management Activity API and is lost",
                },
                subject=f"gap|{content_type}|{result.gap[0]}|{result.gap[1]}",  # one alert per gap
            )
            log.error("collection gap: content created %s .. %s can no longer be listed", *result.gap)
            checkpoint = earliest
        start = max(checkpoint - timedelta(minutes=self._settings.overlap_minutes), earliest)
        window = timedelta(hours=self._settings.window_hours)
        while start < now:
            if self._monotonic() >= deadline:
                log.warning("time budget spent; resuming from %s next run", iso_z(checkpoint))
                break
            end = min(start + window, now)
            if not self._collect_window(start, end, deadline, result):
                break
            result.windows += 1
            if end > checkpoint:
                checkpoint = end
                self._state.save_checkpoint(checkpoint, now)
            start = end
        else:
            result.caught_up = True
        result.checkpoint = iso_z(checkpoint)
        self._state.forget_older_than(now - SEEN_KEEP)

    def _collect_window(self, start: datetime, end: datetime, deadline: float, result: CollectResult) -> bool:
        """Store every new blob of one window; False if the time budget ran out first.

        Whatever became durable is remembered even when a fetch fails, which is then re-raised
        so the window is not checkpointed. One `collect.window` span."""
        with span("collect.window", {"content_type": self._settings.content_type}):
            return self._collect_window_traced(start, end, deadline, result)

    def _collect_window_traced(
        self, start: datetime, end: datetime, deadline: float, result: CollectResult
    ) -> bool:
        items = list(self._client.list_content(self._settings.content_type, start, end))
        result.listed += len(items)
        stored = self._state.stored_ids(start, end)
        new = list({item.content_id: item for item in items if item.content_id not in stored}.values())
        result.already_stored += len(items) - len(new)
        self._progress.expect(len(new))
        done: list[tuple[ContentItem, Fetched]] = []
        complete = True
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self._settings.concurrency) as pool:
            # Each fetch runs in a copy of this context: its content.store span is this window's child.
            futures = {
                pool.submit(contextvars.copy_context().run, self._fetch_and_store, item, deadline): item
                for item in new
            }
            for future in as_completed(futures):
                item = futures[future]
                self._progress.advance()
                try:
                    outcome = future.result()
                except Exception as problem:  # re-raised below, once the durable part is recorded
                    failure = failure or problem
                    continue
                match outcome:
                    case Late():
                        complete = False
                        continue
                    case Stored(records=records):
                        result.stored += 1
                        result.records += records
                    case Unparseable():
                        result.stored += 1
                        result.unparseable.append(item.content_id)
                    case Gone(code=code):
                        result.gone.append(item.content_id)
                        self._lost(item, code)
                done.append((item, outcome))
        self._state.mark_stored(done)
        if failure is not None:
            raise failure
        return complete

    def _fetch_and_store(self, item: ContentItem, deadline: float) -> Outcome:
        if self._monotonic() >= deadline:
            return Late()
        with span("content.store", {"content_type": item.content_type}) as store_span:
            outcome = self._fetch_and_store_traced(item)
            store_span.set_attribute("outcome", outcome.label.partition(":")[0])
            return outcome

    def _fetch_and_store_traced(self, item: ContentItem) -> Fetched:
        try:
            content = self._client.fetch_content(item)
        except ContentGone as problem:
            log.error("content %s lost: %s", item.content_id, problem)
            return Gone(problem.code)
        name, digest = store_content(self._storage, item, content)
        if content.unparseable:
            self._unparseable(item, content, name, digest)
            return Unparseable()
        return Stored(content.records)

    def _lost(self, item: ContentItem, code: str) -> None:
        """Content listed but no longer retrievable: recorded, and one alert per lost blob."""
        self._state.record_loss(item, code, self._clock())
        self._raise(
            rules.COLLECTION_GAP,
            {
                "contentId": item.content_id,
                "contentCreated": iso_z(item.content_created),
                "reason": code,
                "message": f"content {item.content_id} was listed but could not be "
                "fetched (expired or missing) and is lost",
            },
            # One alert per lost blob, the same id however often it is seen.
            triggered_at=item.content_created,
            subject=f"loss|{item.content_type}|{item.content_id}",
        )

    def _unparseable(self, item: ContentItem, content: Content, name: str, digest: str) -> None:
        """A blob served whole (the same bytes twice) that is not a JSON array: stored as it is,
        recorded and alerted, and the checkpoint moves past it."""
        log.error("content %s is not a JSON array, stored as served: %s", item.content_id,
                  content.unparseable)  # fmt: skip
        self._state.record_unparseable(item, name, digest, content.unparseable, self._clock())
        self._raise(
            rules.COLLECTION_UNPARSEABLE,
            {
                "contentId": item.content_id,
                "contentCreated": iso_z(item.content_created),
                "blob": name,
                "sha256": digest,
                "error": content.unparseable[:MAX_PARSE_ERROR],
                "message": f"content {item.content_id} was served whole (the same bytes twice) but is "
                "not a valid JSON array; it is stored byte for byte as evidence and processing keeps "
                "the records it can read, counting the rest as malformed",
            },
            triggered_at=item.content_created,
            subject=f"unparseable|{item.content_type}|{item.content_id}|{digest}",
        )


def report_misconfiguration(
    storage: Storage, alert_settings: AlertSettings, problem: SettingsError, now: datetime | None = None
) -> bool:
    """Raise collection.misconfigured for a collection setting that does not validate (once a day
    per problem) and try to deliver it at once; True when newly raised. The SettingsError names
    the setting and what to fix, never a secret's value."""
    moment = now or datetime.now(UTC)
    error = str(problem)
    alert = rules.make_alert(
        rules.COLLECTION_MISCONFIGURED,
        tenant=alert_settings.tenant,
        triggered_at=moment,
        detected_at=moment,
        details={
            "error": error,
            "message": f"audit collection cannot run: {error}; fix the function app setting, and the "
            "next fetch_audit tick collects from the checkpoint (nothing is lost within 7 days)",
        },
        subject=error,
    )
    log.error("collection is misconfigured: %s", error)
    raised = outbox.raise_alert(storage, alert, moment)
    outbox.deliver_quietly(storage, alert_settings)
    return raised


def collect(
    storage: Storage,
    settings: CollectionSettings,
    alert_settings: AlertSettings | None = None,
    progress: Progress = SILENT,
) -> CollectResult:
    """One collection run with real credentials: what fetch_audit and `mia collect` do; `progress`
    counts the new content blobs fetched."""

    client = ActivityClient(settings, token_provider(settings.auth))
    collector = Collector(storage, client, settings, alert_settings=alert_settings, progress=progress)
    result = collector.run()
    log.info("collection: %s", result.as_dict())
    return result

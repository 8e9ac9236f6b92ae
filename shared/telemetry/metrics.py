"""The instruments of the meter `mia` and one recording function per result object that already
counts what they measure. Names, units and attributes are the telemetry contract
(docs/architecture.md#telemetry); Application Insights shows them in `customMetrics`, the attributes
in `customDimensions`. No attribute carries a UPN, a subject, an IP or an id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import metrics

METER_NAME = "mia"

_meter = metrics.get_meter(METER_NAME)
# Created once against the global meter: the API's proxies forward to the provider configured
# later (or stay no-ops when none is).
_runs = _meter.create_counter("mia.collection.runs", unit="{run}", description="collection runs by outcome")
_lag = _meter.create_gauge(
    "mia.collection.lag", unit="s", description="now minus the checkpoint at the end of a run"
)
_fetched = _meter.create_counter(
    "mia.content.fetched", unit="{blob}", description="listed content blobs by outcome"
)
_collected = _meter.create_counter(
    "mia.records.collected", unit="{record}", description="records in the content blobs stored"
)
_processed = _meter.create_counter(
    "mia.records.processed", unit="{record}", description="records of processed blobs by outcome"
)
_queue_depth = _meter.create_gauge("mia.queue.depth", unit="{message}", description="approximate depth")
_lookups = _meter.create_counter(
    "mia.subjects.lookups", unit="{message}", description="message ids answered, by source"
)
_requests = _meter.create_counter(
    "mia.api.requests", unit="{request}", description="HTTP requests to Microsoft APIs"
)
_throttled = _meter.create_counter(
    "mia.api.throttled", unit="{response}", description="HTTP 429 answers of Microsoft APIs"
)
_mailboxes_throttled = _meter.create_counter(
    "mia.mailboxes.throttled", unit="{mailbox}", description="mailboxes found throttled (alerts raised)"
)
_detections = _meter.create_counter("mia.detections", unit="{detection}", description="detections by type")
_alerts = _meter.create_counter("mia.alerts", unit="{alert}", description="alerts raised, delivered, failed")

MAILBOX_THROTTLED = "mailbox.throttled"  # the alert type whose detections count a throttled mailbox


def record_collection(
    outcome: str,
    content_type: str,
    fetched: Mapping[str, int],
    records: int,
    lag_seconds: float | None,
) -> None:
    """One collection run: `outcome` success / failed / partial, content blobs by outcome
    (stored, already_stored, unparseable, gone), the records stored and the lag at its end."""
    _runs.add(1, {"outcome": outcome})
    for fetched_outcome, count in fetched.items():
        if count:
            _fetched.add(count, {"outcome": fetched_outcome})
    if records:
        _collected.add(records, {"content_type": content_type})
    if lag_seconds is not None:
        _lag.set(max(0.0, lag_seconds), {"content_type": content_type})


def record_processed(outcomes: Mapping[str, int]) -> None:
    """The records of one processed blob by outcome (inserted, duplicate, conflict, malformed,
    other_operation)."""
    for outcome, count in outcomes.items():
        if count:
            _processed.add(count, {"outcome": outcome})


def record_detections(alert_types: Iterable[str]) -> None:
    """Detections a processed blob raised (newly: a retry raises none), one per alert."""
    for alert_type in alert_types:
        _detections.add(1, {"type": alert_type})
        if alert_type == MAILBOX_THROTTLED:
            _mailboxes_throttled.add(1)


def record_alert(alert_type: str, stage: str) -> None:
    """An alert raised (new in the outbox), delivered or failed (a delivery attempt refused)."""
    _alerts.add(1, {"type": alert_type, "stage": stage})


def record_queue_depth(queue: str, depth: int | None) -> None:
    """A queue's approximate depth (None: the service did not say)."""
    if depth is not None:
        _queue_depth.set(depth, {"queue": queue})


def record_subject_lookups(outcomes: Mapping[str, int]) -> None:
    """Message ids a subject-lookups run answered, by where the answer came from (graph, trace,
    cached, unresolved, deferred, ...) or `error` (ids dropped after failing too often)."""
    for outcome, count in outcomes.items():
        if count:
            _lookups.add(count, {"outcome": outcome})


def status_class(status: int | None) -> str:
    """`2xx` .. `5xx` of an HTTP status, `error` when no answer came (a network failure)."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def record_api_response(api: str, status: int | None) -> None:
    """One HTTP request to a Microsoft API (`management`, `graph`, `token`, `log_analytics`) and
    its answer's status (None: no answer)."""
    _requests.add(1, {"api": api, "status_class": status_class(status)})
    if status == 429:
        _throttled.add(1, {"api": api})

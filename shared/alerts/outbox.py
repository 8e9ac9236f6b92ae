"""The alert outbox and its delivery to the webhook, at least once.

Rows live in one partition per state (shared/storage/alert_outbox.py), so the minute-by-minute scan
for due alerts reads pending ones only, never the delivered history:

- `pending`, RowKey = alert id: raised, not yet delivered (State, Attempts, NextAttemptAt, LastError);
- `delivered`, RowKey = alert id: delivered, kept `ALERT_RETENTION_DAYS` (DeliveredAt), then removed
  in bounded batches at most once an hour;
- `meta`: the latest delivery (for health) and when delivered rows were last purged;
- `alert`: rows of earlier versions (both states in one partition), moved to the above a batch at a
  time by each delivery pass.

Raising an alert inserts its pending row keyed by the alert's deterministic id; an existing
pending or delivered row (or one not yet moved from `alert`) means the alert was already raised,
and nothing changes. Delivery takes due pending rows (a bounded query), claims each one (an
ETag-conditional update that also pushes NextAttemptAt past the attempt, so two deliverers rarely
send the same alert twice, and a crashed one leaves it due again soon), POSTs it, and moves it to
`delivered`, or counts the failure and backs off exponentially, 1 minute doubling up to 1 hour, with
no limit on attempts: a receiver that is down for hours gets every alert once it is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from shared.alerts import rules, webhook
from shared.alerts.rules import Alert
from shared.model import times
from shared.model.times import utcnow
from shared.settings import AlertSettings
from shared.storage import Storage
from shared.storage.alert_outbox import (
    BATCH,
    DELIVERED_PARTITION,
    LEGACY_PARTITION,
    PENDING_PARTITION,
    AlertOutboxTable,
    OutboxRow,
)
from shared.telemetry import record_alert

log = logging.getLogger(__name__)

CLAIM = timedelta(minutes=2)  # an attempt in progress is not retried by another deliverer before this
MAX_ERROR = 300
PURGE_EVERY = timedelta(hours=1)
PURGE_LIMIT = 5_000  # delivered rows removed per purge; the next purge takes the rest
MIGRATE_LIMIT = BATCH  # earlier rows moved per delivery pass
PENDING_COUNT_LIMIT = 1_000  # health counts pending rows up to this

Clock = Callable[[], datetime]


def raise_alert(storage: Storage, alert: Alert, now: datetime | None = None) -> bool:
    """Record the alert for delivery; False (and no change) if its id was already raised."""
    moment = now or utcnow()
    table = storage.alert_outbox
    inserted = table.insert_pending(
        alert.id, alert.type, alert.mailbox or "", alert.detected_at, alert.payload(), due_at=moment
    )
    if not inserted:
        return False
    # Checked after the insert: a delivery that moves this id to `delivered` meanwhile has then
    # either made the insert fail or is seen here, so a delivered alert is never raised again.
    if table.holds(DELIVERED_PARTITION, alert.id) or table.holds(LEGACY_PARTITION, alert.id):
        table.remove(PENDING_PARTITION, alert.id)
        return False
    log.warning("alert raised: %s %s", alert.type, alert.id)
    record_alert(alert.type, "raised")
    return True


def raise_or_refresh(storage: Storage, alert: Alert, now: datetime | None = None) -> bool:
    """Raise the alert, or, when its id was raised already and is still pending, replace its
    payload with this newer one (a detection that grew); True only when newly raised. A delivered
    alert is not sent again: the receiver has the first account, `mia detect` the latest."""
    if raise_alert(storage, alert, now):
        return True
    storage.alert_outbox.refresh_pending(alert.id, alert.payload())
    return False


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: bool = False  # no webhook configured

    def as_dict(self) -> dict[str, Any]:
        return {"delivered": len(self.delivered), "failed": len(self.failed), "skipped": self.skipped}


def _due(table: AlertOutboxTable, now: datetime, limit: int) -> list[OutboxRow]:
    """At most `limit` due pending rows, oldest detection first among them."""
    return sorted(table.due(now, limit), key=lambda row: (row.detected_at, row.alert_id))


def _mark_delivered(table: AlertOutboxTable, row: OutboxRow, now: datetime) -> None:
    """Move a pending row to `delivered` (written first: a crash in between leaves a copy in each,
    and the next pass delivers it again rather than losing it), and note the latest delivery."""
    delivered = table.put_delivered(row, now)
    table.remove(PENDING_PARTITION, row.alert_id)
    table.note_last_delivery(delivered)


def deliver_pending(
    storage: Storage,
    settings: AlertSettings,
    clock: Clock = utcnow,
    limit: int = 200,
) -> DeliveryResult:
    """Deliver up to `limit` due pending alerts once; failures are rescheduled with backoff. Also
    moves rows of earlier versions and, at most hourly, removes delivered rows past retention."""
    result = DeliveryResult()
    table = storage.alert_outbox
    migrate_legacy(table)
    if not settings.webhook_url:
        result.skipped = True
        return result
    for row in _due(table, clock(), limit):
        attempts = row.attempts + 1
        claimed = table.update_attempt(row, clock() + CLAIM, attempts=attempts)
        if claimed is None:
            continue
        alert = rules.from_payload(row.payload)
        body = rules.render(alert, settings.webhook_format)
        headers = rules.request_headers(body, settings.webhook_secret)
        try:
            webhook.post(settings.webhook_url, body, headers, settings.timeout_seconds)
        except webhook.DeliveryError as problem:
            error = str(problem)[:MAX_ERROR]
            retry_at = clock() + rules.backoff(attempts)
            table.update_attempt(claimed, retry_at, last_error=error)
            log.warning("alert %s not delivered (attempt %d): %s; next at %s", row.alert_id, attempts,
                        error, times.iso_z(retry_at))  # fmt: skip
            result.failed.append(row.alert_id)
            record_alert(alert.type, "failed")
            continue
        _mark_delivered(table, claimed, clock())
        result.delivered.append(row.alert_id)
        record_alert(alert.type, "delivered")
    purge_delivered(table, settings.retention_days, clock())
    return result


def deliver_quietly(storage: Storage, settings: AlertSettings, clock: Clock = utcnow) -> DeliveryResult:
    """Delivery as a side step of collection or processing: its failures never fail the caller
    (the alerts stay in the outbox for the next run or the deliver_alerts timer)."""
    try:
        return deliver_pending(storage, settings, clock)
    except AzureError:
        log.exception("alert delivery could not read or update the outbox")
        return DeliveryResult()


# --- housekeeping -------------------------------------------------------------------------------


def purge_delivered(table: AlertOutboxTable, retention_days: int, now: datetime, force: bool = False) -> int:
    """Remove delivered rows older than the retention, at most PURGE_LIMIT of them, and at most
    once per PURGE_EVERY unless forced; returns how many were removed."""
    last = table.last_purge()
    if not force and last and last > times.iso_z(now - PURGE_EVERY):
        return 0
    table.note_purge(now)
    old = table.delivered_before(now - timedelta(days=retention_days), PURGE_LIMIT)
    removed = table.delete_delivered(old)
    if removed:
        log.info("removed %d delivered alerts older than %d days", removed, retention_days)
    return removed


def migrate_legacy(table: AlertOutboxTable, limit: int = MIGRATE_LIMIT) -> int:
    """Move up to `limit` rows of the one-partition layout to `pending` or `delivered`."""
    moved = 0
    newest: OutboxRow | None = None
    for row in table.rows(LEGACY_PARTITION, limit):
        target = DELIVERED_PARTITION if row.delivered else PENDING_PARTITION
        table.put_in(target, row)  # written first: never lost
        table.remove(LEGACY_PARTITION, row.alert_id)
        moved += 1
        if row.delivered and (newest is None or row.delivered_at > newest.delivered_at):
            newest = row
    if newest is not None:
        _note_last_delivered(table, newest)
    return moved


def _note_last_delivered(table: AlertOutboxTable, row: OutboxRow) -> None:
    """Keep the health marker at the newest delivery seen among moved rows."""
    current = table.last_delivery()
    if row.delivered_at > (current.delivered_at if current is not None else ""):
        table.note_last_delivery(row)


# --- reading --------------------------------------------------------------------------------------


def rows(storage: Storage) -> list[dict[str, Any]]:
    """Every alert row, pending and delivered (tests, the demo)."""
    table = storage.alert_outbox
    return [
        dict(row.entity)
        for partition in (LEGACY_PARTITION, PENDING_PARTITION, DELIVERED_PARTITION)
        for row in table.rows(partition)
    ]


def summary(storage: Storage) -> dict[str, Any]:
    """Pending count (up to PENDING_COUNT_LIMIT) and the latest delivery, for health; bounded
    reads only, whatever the delivered history holds."""
    table = storage.alert_outbox
    pending = table.count(PENDING_PARTITION, PENDING_COUNT_LIMIT)
    marker = table.last_delivery()
    last = None
    if marker is not None:
        last = {"id": marker.alert_id, "type": marker.alert_type, "deliveredAt": marker.delivered_at}
    return {"pending": pending, "lastDelivered": last}

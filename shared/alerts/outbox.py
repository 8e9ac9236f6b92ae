"""The alert outbox (table AlertOutbox) and its delivery to the webhook, at least once.

Rows live in one partition per state, so the minute-by-minute scan for due alerts reads pending
ones only, never the delivered history:

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

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.alerts import rules, webhook
from shared.alerts.rules import Alert
from shared.model import times
from shared.settings import AlertSettings
from shared.storage import ALERT_TABLE, Storage

log = logging.getLogger(__name__)

PENDING_PARTITION = "pending"
DELIVERED_PARTITION = "delivered"
META_PARTITION = "meta"
LEGACY_PARTITION = "alert"  # before pending and delivered rows were apart
PENDING = "Pending"
DELIVERED = "Delivered"
CLAIM = timedelta(minutes=2)  # an attempt in progress is not retried by another deliverer before this
MAX_ERROR = 300
BATCH = 100  # an entity-group transaction's limit
PURGE_EVERY = timedelta(hours=1)
PURGE_LIMIT = 5_000  # delivered rows removed per purge; the next purge takes the rest
MIGRATE_LIMIT = BATCH  # earlier rows moved per delivery pass
PENDING_COUNT_LIMIT = 1_000  # health counts pending rows up to this

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return times.iso_z(moment)


def table(storage: Storage) -> TableClient:
    return storage.tables.get_table_client(ALERT_TABLE)


def _exists(client: TableClient, partition: str, row_key: str) -> bool:
    try:
        client.get_entity(partition, row_key, select=["RowKey"])
    except ResourceNotFoundError:
        return False
    return True


def _delete(client: TableClient, partition: str, row_key: str) -> None:
    with contextlib.suppress(ResourceNotFoundError):  # already gone: what was wanted
        client.delete_entity(partition, row_key)


def raise_alert(storage: Storage, alert: Alert, now: datetime | None = None) -> bool:
    """Record the alert for delivery; False (and no change) if its id was already raised."""
    moment = now or utcnow()
    client = table(storage)
    entity = {
        "PartitionKey": PENDING_PARTITION,
        "RowKey": alert.id,
        "Type": alert.type,
        "Mailbox": alert.mailbox or "",
        "DetectedAt": times.iso_z(alert.detected_at),
        "Payload": json.dumps(alert.payload(), ensure_ascii=False),
        "State": PENDING,
        "Attempts": 0,
        "NextAttemptAt": _iso(moment),
        "LastError": "",
        "DeliveredAt": "",
    }
    try:
        client.create_entity(entity)
    except ResourceExistsError:
        return False
    # Checked after the insert: a delivery that moves this id to `delivered` meanwhile has then
    # either made the insert fail or is seen here, so a delivered alert is never raised again.
    if _exists(client, DELIVERED_PARTITION, alert.id) or _exists(client, LEGACY_PARTITION, alert.id):
        _delete(client, PENDING_PARTITION, alert.id)
        return False
    log.warning("alert raised: %s %s", alert.type, alert.id)
    return True


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: bool = False  # no webhook configured

    def as_dict(self) -> dict[str, Any]:
        return {"delivered": len(self.delivered), "failed": len(self.failed), "skipped": self.skipped}


def _due(client: TableClient, now: datetime, limit: int) -> list[dict[str, Any]]:
    """At most `limit` due pending rows, oldest detection first among them."""
    query = "PartitionKey eq @pk and NextAttemptAt le @now"
    parameters = {"pk": PENDING_PARTITION, "now": _iso(now)}
    found = client.query_entities(query, parameters=parameters, results_per_page=min(limit, 1000))
    rows = [{**row, "etag": row.metadata["etag"]} for row in islice(found, limit)]
    return sorted(rows, key=lambda row: (row["DetectedAt"], row["RowKey"]))


def _update(client: TableClient, entity: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any] | None:
    """Merge `changes` if the row is unchanged since read; the updated row, or None if another
    deliverer got there first (or the row is gone)."""
    patch = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], **changes}
    try:
        meta = client.update_entity(
            patch, mode=UpdateMode.MERGE, etag=entity["etag"], match_condition=MatchConditions.IfNotModified
        )
    except ResourceNotFoundError:
        return None
    except HttpResponseError as problem:
        if problem.status_code == 412:
            return None
        raise
    return {**entity, **changes, "etag": meta["etag"]}


def _mark_delivered(client: TableClient, row: dict[str, Any], now: datetime) -> None:
    """Move a pending row to `delivered` (written first: a crash in between leaves a copy in each,
    and the next pass delivers it again rather than losing it), and note the latest delivery."""
    delivered_at = _iso(now)
    moved = {k: v for k, v in row.items() if k != "etag"}
    moved.update(PartitionKey=DELIVERED_PARTITION, State=DELIVERED, DeliveredAt=delivered_at, LastError="")
    client.upsert_entity(moved)
    _delete(client, PENDING_PARTITION, row["RowKey"])
    marker = {"PartitionKey": META_PARTITION, "RowKey": "lastDelivered", "Id": row["RowKey"]}
    client.upsert_entity({**marker, "Type": row.get("Type", ""), "DeliveredAt": delivered_at})


def deliver_pending(
    storage: Storage,
    settings: AlertSettings,
    clock: Clock = utcnow,
    limit: int = 200,
) -> DeliveryResult:
    """Deliver up to `limit` due pending alerts once; failures are rescheduled with backoff. Also
    moves rows of earlier versions and, at most hourly, removes delivered rows past retention."""
    result = DeliveryResult()
    client = table(storage)
    migrate_legacy(client)
    if not settings.webhook_url:
        result.skipped = True
        return result
    for row in _due(client, clock(), limit):
        attempts = int(row.get("Attempts", 0)) + 1
        claimed = _update(client, row, {"NextAttemptAt": _iso(clock() + CLAIM), "Attempts": attempts})
        if claimed is None:
            continue
        alert = rules.from_payload(json.loads(row["Payload"]))
        body = rules.render(alert, settings.webhook_format)
        headers = rules.request_headers(body, settings.webhook_secret)
        try:
            webhook.post(settings.webhook_url, body, headers, settings.timeout_seconds)
        except webhook.DeliveryError as problem:
            error = str(problem)[:MAX_ERROR]
            retry_at = clock() + rules.backoff(attempts)
            _update(client, claimed, {"NextAttemptAt": _iso(retry_at), "LastError": error})
            log.warning("alert %s not delivered (attempt %d): %s; next at %s", row["RowKey"], attempts,
                        error, _iso(retry_at))  # fmt: skip
            result.failed.append(row["RowKey"])
            continue
        _mark_delivered(client, claimed, clock())
        result.delivered.append(row["RowKey"])
    purge_delivered(client, settings.retention_days, clock())
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


def _delete_batches(client: TableClient, partition: str, row_keys: Iterator[str]) -> int:
    removed = 0
    while batch := list(islice(row_keys, BATCH)):
        client.submit_transaction([("delete", {"PartitionKey": partition, "RowKey": key}) for key in batch])
        removed += len(batch)
    return removed


def purge_delivered(client: TableClient, retention_days: int, now: datetime, force: bool = False) -> int:
    """Remove delivered rows older than the retention, at most PURGE_LIMIT of them, and at most
    once per PURGE_EVERY unless forced; returns how many were removed."""
    try:
        last = client.get_entity(META_PARTITION, "purge").get("LastRunAt", "")
    except ResourceNotFoundError:
        last = ""
    if not force and last and last > _iso(now - PURGE_EVERY):
        return 0
    client.upsert_entity({"PartitionKey": META_PARTITION, "RowKey": "purge", "LastRunAt": _iso(now)})
    cutoff = _iso(now - timedelta(days=retention_days))
    old = client.query_entities(
        "PartitionKey eq @pk and DeliveredAt lt @cutoff",
        parameters={"pk": DELIVERED_PARTITION, "cutoff": cutoff},
        select=["RowKey"],
        results_per_page=BATCH,
    )
    removed = _delete_batches(
        client, DELIVERED_PARTITION, (row["RowKey"] for row in islice(old, PURGE_LIMIT))
    )
    if removed:
        log.info("removed %d delivered alerts older than %d days", removed, retention_days)
    return removed


def migrate_legacy(client: TableClient, limit: int = MIGRATE_LIMIT) -> int:
    """Move up to `limit` rows of the one-partition layout to `pending` or `delivered`."""
    moved = 0
    newest: dict[str, Any] | None = None
    rows = client.query_entities(
        "PartitionKey eq @pk", parameters={"pk": LEGACY_PARTITION}, results_per_page=limit
    )
    for row in islice(rows, limit):
        target = DELIVERED_PARTITION if row.get("State") == DELIVERED else PENDING_PARTITION
        client.upsert_entity({**row, "PartitionKey": target})  # written first: never lost
        _delete(client, LEGACY_PARTITION, row["RowKey"])
        moved += 1
        if target == DELIVERED_PARTITION and (newest is None or row["DeliveredAt"] > newest["DeliveredAt"]):
            newest = dict(row)
    if newest is not None:
        _note_last_delivered(client, newest)
    return moved


def _note_last_delivered(client: TableClient, row: dict[str, Any]) -> None:
    """Keep the health marker at the newest delivery seen among moved rows."""
    try:
        current = client.get_entity(META_PARTITION, "lastDelivered").get("DeliveredAt", "")
    except ResourceNotFoundError:
        current = ""
    if row["DeliveredAt"] > current:
        marker = {"PartitionKey": META_PARTITION, "RowKey": "lastDelivered", "Id": row["RowKey"]}
        client.upsert_entity({**marker, "Type": row.get("Type", ""), "DeliveredAt": row["DeliveredAt"]})


# --- reading --------------------------------------------------------------------------------------


def _partition(client: TableClient, partition: str) -> Iterator[dict[str, Any]]:
    for row in client.query_entities("PartitionKey eq @pk", parameters={"pk": partition}):
        yield dict(row)


def rows(storage: Storage) -> list[dict[str, Any]]:
    """Every alert row, pending and delivered (tests, the demo)."""
    client = table(storage)
    return [
        row
        for partition in (LEGACY_PARTITION, PENDING_PARTITION, DELIVERED_PARTITION)
        for row in _partition(client, partition)
    ]


def summary(storage: Storage) -> dict[str, Any]:
    """Pending count (up to PENDING_COUNT_LIMIT) and the latest delivery, for health; bounded
    reads only, whatever the delivered history holds."""
    client = table(storage)
    pending_rows = client.query_entities(
        "PartitionKey eq @pk", parameters={"pk": PENDING_PARTITION}, select=["RowKey"], results_per_page=1000
    )
    pending = sum(1 for _ in islice(pending_rows, PENDING_COUNT_LIMIT))
    try:
        marker = client.get_entity(META_PARTITION, "lastDelivered")
    except ResourceNotFoundError:
        last = None
    else:
        last = {"id": marker["Id"], "type": marker.get("Type"), "deliveredAt": marker["DeliveredAt"]}
    return {"pending": pending, "lastDelivered": last}

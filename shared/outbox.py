"""The alert outbox (table AlertOutbox) and its delivery to the webhook, at least once.

Raising an alert inserts a row keyed by the alert's deterministic id; an existing row means the
alert was already raised in its window, and the insert is a no-op. Delivery takes the rows that
are Pending and due, claims each one (an ETag-conditional update that also pushes NextAttemptAt
past the attempt, so two deliverers rarely send the same alert twice, and a crashed one leaves it
due again soon), POSTs it, and marks it Delivered, or counts the failure and backs off
exponentially, 1 minute doubling up to 1 hour, with no limit on attempts: a receiver that is down
for hours gets every alert once it is back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.data.tables import TableClient, UpdateMode

from shared import alerts, webhook
from shared.alerts import Alert
from shared.config import AlertSettings
from shared.storage import ALERT_TABLE, Storage

log = logging.getLogger(__name__)

PARTITION = "alert"
PENDING = "Pending"
DELIVERED = "Delivered"
CLAIM = timedelta(minutes=2)  # an attempt in progress is not retried by another deliverer before this
MAX_ERROR = 300

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return alerts.iso_z(moment)


def table(storage: Storage) -> TableClient:
    return storage.tables.get_table_client(ALERT_TABLE)


def raise_alert(storage: Storage, alert: Alert, now: datetime | None = None) -> bool:
    """Record the alert for delivery; False (and no change) if its id was already raised."""
    moment = now or utcnow()
    entity = {
        "PartitionKey": PARTITION,
        "RowKey": alert.id,
        "Type": alert.type,
        "Mailbox": alert.mailbox or "",
        "DetectedAt": alerts.iso_z(alert.detected_at),
        "Payload": json.dumps(alert.payload(), ensure_ascii=False),
        "State": PENDING,
        "Attempts": 0,
        "NextAttemptAt": _iso(moment),
        "LastError": "",
        "DeliveredAt": "",
    }
    try:
        table(storage).create_entity(entity)
    except ResourceExistsError:
        return False
    log.warning("alert raised: %s %s %s", alert.type, alert.mailbox or "-", alert.id)
    return True


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: bool = False  # no webhook configured

    def as_dict(self) -> dict[str, Any]:
        return {"delivered": len(self.delivered), "failed": len(self.failed), "skipped": self.skipped}


def _due(client: TableClient, now: datetime) -> list[dict[str, Any]]:
    query = "PartitionKey eq @pk and State eq @state and NextAttemptAt le @now"
    parameters = {"pk": PARTITION, "state": PENDING, "now": _iso(now)}
    rows = [
        {**row, "etag": row.metadata["etag"]} for row in client.query_entities(query, parameters=parameters)
    ]
    return sorted(rows, key=lambda row: (row["DetectedAt"], row["RowKey"]))


def _update(client: TableClient, entity: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any] | None:
    """Merge `changes` if the row is unchanged since read; the updated row, or None if another
    deliverer got there first."""
    patch = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], **changes}
    try:
        meta = client.update_entity(
            patch, mode=UpdateMode.MERGE, etag=entity["etag"], match_condition=MatchConditions.IfNotModified
        )
    except HttpResponseError as problem:
        if problem.status_code == 412:
            return None
        raise
    return {**entity, **changes, "etag": meta["etag"]}


def deliver_pending(
    storage: Storage,
    settings: AlertSettings,
    clock: Clock = utcnow,
    limit: int = 200,
) -> DeliveryResult:
    """Deliver every due Pending alert once; failures are rescheduled with backoff."""
    result = DeliveryResult()
    if not settings.webhook_url:
        result.skipped = True
        return result
    client = table(storage)
    for row in _due(client, clock())[:limit]:
        attempts = int(row.get("Attempts", 0)) + 1
        claimed = _update(client, row, {"NextAttemptAt": _iso(clock() + CLAIM), "Attempts": attempts})
        if claimed is None:
            continue
        alert = alerts.from_payload(json.loads(row["Payload"]))
        body = alerts.render(alert, settings.webhook_format)
        headers = alerts.request_headers(body, settings.webhook_secret)
        try:
            webhook.post(settings.webhook_url, body, headers, settings.timeout_seconds)
        except webhook.DeliveryError as problem:
            error = str(problem)[:MAX_ERROR]
            retry_at = clock() + alerts.backoff(attempts)
            _update(client, claimed, {"NextAttemptAt": _iso(retry_at), "LastError": error})
            log.warning("alert %s not delivered (attempt %d): %s; next at %s", row["RowKey"], attempts,
                        error, _iso(retry_at))  # fmt: skip
            result.failed.append(row["RowKey"])
            continue
        _update(client, claimed, {"State": DELIVERED, "DeliveredAt": _iso(clock()), "LastError": ""})
        result.delivered.append(row["RowKey"])
    return result


def deliver_quietly(storage: Storage, settings: AlertSettings, clock: Clock = utcnow) -> DeliveryResult:
    """Delivery as a side step of collection or processing: its failures never fail the caller
    (the alerts stay in the outbox for the next run or the deliver_alerts timer)."""
    try:
        return deliver_pending(storage, settings, clock)
    except AzureError:
        log.exception("alert delivery could not read or update the outbox")
        return DeliveryResult()


def rows(storage: Storage) -> list[dict[str, Any]]:
    """Every outbox row (tests, the demo)."""
    query = "PartitionKey eq @pk"
    return [dict(row) for row in table(storage).query_entities(query, parameters={"pk": PARTITION})]


def summary(storage: Storage) -> dict[str, Any]:
    """Pending count, the latest delivery, and the types raised (for health)."""
    pending = 0
    last: dict[str, Any] | None = None
    select = ["RowKey", "Type", "State", "DeliveredAt", "Attempts", "LastError", "Mailbox"]
    for row in table(storage).query_entities(
        "PartitionKey eq @pk", parameters={"pk": PARTITION}, select=select
    ):
        if row.get("State") == PENDING:
            pending += 1
        elif row.get("DeliveredAt") and (last is None or row["DeliveredAt"] > last["deliveredAt"]):
            last = {"id": row["RowKey"], "type": row.get("Type"), "deliveredAt": row["DeliveredAt"]}
    return {"pending": pending, "lastDelivered": last}

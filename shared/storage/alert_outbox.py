"""The AlertOutbox table: one row per raised alert, in the partition of its delivery state.

Partitions (RowKey = the alert's id): `pending` and `delivered`; `alert`, rows of the earlier
one-partition layout, both states together; `meta`, RowKeys `lastDelivered` (the latest delivery)
and `purge` (when delivered rows were last removed). Times are ISO 8601 text to the second with Z,
so they compare as text. The delivery rules (claims, backoff, retention) are shared/alerts/outbox.py's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.model.times import iso_z
from shared.storage.base import Table

PENDING_PARTITION = "pending"
DELIVERED_PARTITION = "delivered"
META_PARTITION = "meta"
LEGACY_PARTITION = "alert"  # before pending and delivered rows were apart
PENDING = "Pending"
DELIVERED = "Delivered"
_LAST_DELIVERED = "lastDelivered"
_PURGE = "purge"
BATCH = 100  # an entity-group transaction's limit


@dataclass(frozen=True)
class OutboxRow:
    """One stored alert row: its properties as stored, and the ETag it was read with."""

    entity: Mapping[str, Any]
    etag: str = ""

    @property
    def alert_id(self) -> str:
        return str(self.entity["RowKey"])

    @property
    def alert_type(self) -> str:
        return str(self.entity.get("Type", ""))

    @property
    def payload(self) -> Any:
        return json.loads(self.entity["Payload"])

    @property
    def attempts(self) -> int:
        return int(self.entity.get("Attempts", 0))

    @property
    def detected_at(self) -> str:
        return str(self.entity["DetectedAt"])

    @property
    def delivered_at(self) -> str:
        return str(self.entity["DeliveredAt"])

    @property
    def delivered(self) -> bool:
        return self.entity.get("State") == DELIVERED


@dataclass(frozen=True)
class LastDelivery:
    alert_id: str
    alert_type: str | None
    delivered_at: str


class AlertOutboxTable(Table):
    NAME = "AlertOutbox"

    # --- one alert ----------------------------------------------------------------------------------

    def insert_pending(
        self,
        alert_id: str,
        alert_type: str,
        mailbox: str,
        detected_at: datetime,
        payload: Mapping[str, Any],
        due_at: datetime,
    ) -> bool:
        """A pending row for the alert, due at `due_at`; False (and no change) if one exists."""
        entity = {
            "PartitionKey": PENDING_PARTITION,
            "RowKey": alert_id,
            "Type": alert_type,
            "Mailbox": mailbox,
            "DetectedAt": iso_z(detected_at),
            "Payload": json.dumps(payload, ensure_ascii=False),
            "State": PENDING,
            "Attempts": 0,
            "NextAttemptAt": iso_z(due_at),
            "LastError": "",
            "DeliveredAt": "",
        }
        try:
            self.client.create_entity(entity)
        except ResourceExistsError:
            return False
        return True

    def refresh_pending(self, alert_id: str, payload: Mapping[str, Any]) -> bool:
        """Replace a pending row's payload (its delivery state untouched); False if none is pending."""
        patch = {
            "PartitionKey": PENDING_PARTITION,
            "RowKey": alert_id,
            "Payload": json.dumps(payload, ensure_ascii=False),
        }
        try:
            self.client.update_entity(patch, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            return False
        return True

    def holds(self, partition: str, alert_id: str) -> bool:
        try:
            self.client.get_entity(partition, alert_id, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    def remove(self, partition: str, alert_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # already gone: what was wanted
            self.client.delete_entity(partition, alert_id)

    def update_attempt(
        self,
        row: OutboxRow,
        next_attempt_at: datetime,
        attempts: int | None = None,
        last_error: str | None = None,
    ) -> OutboxRow | None:
        """Set when the row is next due (and its attempts or last error) if it is unchanged since
        read; the updated row, or None if it changed meanwhile or is gone."""
        changes: dict[str, Any] = {"NextAttemptAt": iso_z(next_attempt_at)}
        if attempts is not None:
            changes["Attempts"] = attempts
        if last_error is not None:
            changes["LastError"] = last_error
        patch = {"PartitionKey": row.entity["PartitionKey"], "RowKey": row.entity["RowKey"], **changes}
        try:
            meta = self.client.update_entity(
                patch, mode=UpdateMode.MERGE, etag=row.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceNotFoundError:
            return None
        except HttpResponseError as problem:
            if problem.status_code == 412:
                return None
            raise
        return OutboxRow({**row.entity, **changes}, str(meta["etag"]))

    def put_delivered(self, row: OutboxRow, delivered_at: datetime) -> OutboxRow:
        """Write the row, as delivered, to `delivered` (the pending row stays until removed)."""
        moved = dict(row.entity)
        moved.update(
            PartitionKey=DELIVERED_PARTITION, State=DELIVERED, DeliveredAt=iso_z(delivered_at), LastError=""
        )
        self.client.upsert_entity(moved)
        return OutboxRow(moved)

    def put_in(self, partition: str, row: OutboxRow) -> None:
        """Write the row, unchanged otherwise, to `partition`."""
        self.client.upsert_entity({**row.entity, "PartitionKey": partition})

    # --- reading ------------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> list[OutboxRow]:
        """At most `limit` pending rows due at `now`, in no particular order."""
        query = "PartitionKey eq @pk and NextAttemptAt le @now"
        parameters = {"pk": PENDING_PARTITION, "now": iso_z(now)}
        found = self.client.query_entities(query, parameters=parameters, results_per_page=min(limit, 1000))
        return [OutboxRow(dict(row), str(row.metadata["etag"])) for row in islice(found, limit)]

    def rows(self, partition: str, limit: int | None = None) -> Iterator[OutboxRow]:
        """The rows of one partition (at most `limit` of them)."""
        query, parameters = "PartitionKey eq @pk", {"pk": partition}
        if limit is None:
            found = self.client.query_entities(query, parameters=parameters)
        else:
            found = self.client.query_entities(query, parameters=parameters, results_per_page=limit)
        for row in islice(found, limit):
            yield OutboxRow(dict(row))

    def count(self, partition: str, limit: int) -> int:
        """The rows of one partition, counted up to `limit`; reads RowKeys only."""
        found = self.client.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"], results_per_page=1000
        )
        return sum(1 for _ in islice(found, limit))

    # --- delivered history ----------------------------------------------------------------------------

    def last_delivery(self) -> LastDelivery | None:
        try:
            marker = self.client.get_entity(META_PARTITION, _LAST_DELIVERED)
        except ResourceNotFoundError:
            return None
        return LastDelivery(marker["Id"], marker.get("Type"), marker["DeliveredAt"])

    def note_last_delivery(self, row: OutboxRow) -> None:
        """Make a delivered row the one `last_delivery` names."""
        marker = {"PartitionKey": META_PARTITION, "RowKey": _LAST_DELIVERED, "Id": row.alert_id}
        self.client.upsert_entity({**marker, "Type": row.alert_type, "DeliveredAt": row.delivered_at})

    def last_purge(self) -> str:
        """When delivered rows were last purged, "" for never."""
        try:
            return str(self.client.get_entity(META_PARTITION, _PURGE).get("LastRunAt", ""))
        except ResourceNotFoundError:
            return ""

    def note_purge(self, now: datetime) -> None:
        self.client.upsert_entity({"PartitionKey": META_PARTITION, "RowKey": _PURGE, "LastRunAt": iso_z(now)})

    def delivered_before(self, cutoff: datetime, limit: int) -> Iterator[str]:
        """Ids of up to `limit` alerts delivered before `cutoff`."""
        old = self.client.query_entities(
            "PartitionKey eq @pk and DeliveredAt lt @cutoff",
            parameters={"pk": DELIVERED_PARTITION, "cutoff": iso_z(cutoff)},
            select=["RowKey"],
            results_per_page=BATCH,
        )
        return (row["RowKey"] for row in islice(old, limit))

    def delete_delivered(self, alert_ids: Iterable[str]) -> int:
        """Remove delivered rows, BATCH to a transaction; returns how many."""
        ids = iter(alert_ids)
        removed = 0
        while batch := list(islice(ids, BATCH)):
            operations = [("delete", {"PartitionKey": DELIVERED_PARTITION, "RowKey": key}) for key in batch]
            self.client.submit_transaction(operations)
            removed += len(batch)
        return removed

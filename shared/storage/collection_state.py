"""The CollectionState table: per content type, the collection checkpoint, the content IDs already
stored, and the gaps, losses and unparseable blobs recorded.

Partitions: `checkpoint` (RowKey = the content type), `seen|<type>`, `loss|<type>` and
`unparseable|<type>` (RowKey = `<contentCreated time key>_<content id>`), `gap|<type>` (RowKey =
`<from time key>_<to time key>`). Times are stored as ISO 8601 text to the second with Z.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.model import keys
from shared.model.times import iso_z, parse_iso_z
from shared.storage import tables
from shared.storage.base import Table

CHECKPOINT_PARTITION = "checkpoint"
# What is recorded of content that did not simply become rows.
Recorded = Literal["gap", "loss", "unparseable"]


class ListedContent(Protocol):
    """A content blob as the Management Activity API lists it (what is stored of it here)."""

    @property
    def content_id(self) -> str: ...

    @property
    def content_created(self) -> datetime: ...

    @property
    def content_expiration(self) -> datetime | None: ...


@dataclass(frozen=True)
class Checkpoint:
    """A content type's checkpoint row as stored ("" where a property is absent)."""

    content_type: str
    checkpoint: str
    last_success_at: str


def _seen_key(item: ListedContent) -> str:
    return f"{keys.time_key(item.content_created)}_{keys.encode_key(item.content_id)}"


def _partition(kind: Recorded | Literal["seen"], content_type: str) -> str:
    return f"{kind}|{content_type}"


class CollectionStateTable(Table):
    NAME = "CollectionState"

    # --- the checkpoint ---------------------------------------------------------------------------

    def checkpoint(self, content_type: str) -> datetime | None:
        try:
            entity = self.client.get_entity(CHECKPOINT_PARTITION, content_type)
        except ResourceNotFoundError:
            return None
        return parse_iso_z(entity["Checkpoint"])

    def save_checkpoint(self, content_type: str, moment: datetime, now: datetime) -> None:
        entity = {
            "PartitionKey": CHECKPOINT_PARTITION,
            "RowKey": content_type,
            "Checkpoint": iso_z(moment),
            "LastSuccessAt": iso_z(now),
        }
        self.client.upsert_entity(entity, mode=UpdateMode.MERGE)

    def checkpoints(self) -> list[Checkpoint]:
        """Every content type's checkpoint row."""
        rows = self.client.query_entities("PartitionKey eq @pk", parameters={"pk": CHECKPOINT_PARTITION})
        return [
            Checkpoint(row["RowKey"], row.get("Checkpoint", ""), row.get("LastSuccessAt", "")) for row in rows
        ]

    # --- content IDs already stored ---------------------------------------------------------------

    def stored_ids(self, content_type: str, start: datetime, end: datetime) -> set[str]:
        """Content IDs marked stored with start <= contentCreated < end (one range query)."""
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        parameters = {
            "pk": _partition("seen", content_type),
            "lo": keys.time_key(start),
            "hi": keys.time_key(end),
        }
        rows = self.client.query_entities(query, parameters=parameters, select=["ContentId"])
        return {row["ContentId"] for row in rows}

    def mark_stored(self, content_type: str, items: Iterable[tuple[ListedContent, str]]) -> None:
        """Mark content stored, each with the outcome of fetching it."""
        entities = [
            {
                "PartitionKey": _partition("seen", content_type),
                "RowKey": _seen_key(item),
                "ContentId": item.content_id,
                "ContentCreated": iso_z(item.content_created),
                "ContentExpiration": iso_z(item.content_expiration) if item.content_expiration else "",
                "Outcome": outcome,
            }
            for item, outcome in items
        ]
        tables.upsert_entities(self.client, entities)

    def forget_stored_before(self, content_type: str, moment: datetime) -> int:
        """Remove the marks of content created before `moment`; returns how many."""
        partition = _partition("seen", content_type)
        old = list(
            self.client.query_entities(
                "PartitionKey eq @pk and RowKey lt @hi",
                parameters={"pk": partition, "hi": keys.time_key(moment)},
                select=["RowKey"],
            )
        )
        for batch_start in range(0, len(old), tables.MAX_BATCH):
            batch = old[batch_start : batch_start + tables.MAX_BATCH]
            self.client.submit_transaction(
                [("delete", {"PartitionKey": partition, "RowKey": row["RowKey"]}) for row in batch]
            )
        return len(old)

    # --- what was recorded ------------------------------------------------------------------------

    def record_gap(
        self, content_type: str, start: datetime, end: datetime, reason: str, now: datetime
    ) -> None:
        self.client.upsert_entity(
            {
                "PartitionKey": _partition("gap", content_type),
                "RowKey": f"{keys.time_key(start)}_{keys.time_key(end)}",
                "From": iso_z(start),
                "To": iso_z(end),
                "Reason": reason,
                "DetectedAt": iso_z(now),
            }
        )

    def record_loss(self, content_type: str, item: ListedContent, code: str, now: datetime) -> None:
        self.client.upsert_entity(
            {
                "PartitionKey": _partition("loss", content_type),
                "RowKey": _seen_key(item),
                "ContentId": item.content_id,
                "ContentCreated": iso_z(item.content_created),
                "Code": code,
                "DetectedAt": iso_z(now),
            }
        )

    def record_unparseable(
        self, content_type: str, item: ListedContent, blob: str, digest: str, error: str, now: datetime
    ) -> None:
        self.client.upsert_entity(
            {
                "PartitionKey": _partition("unparseable", content_type),
                "RowKey": _seen_key(item),
                "ContentId": item.content_id,
                "ContentCreated": iso_z(item.content_created),
                "Blob": blob,
                "Sha256": digest,
                "Error": error,
                "DetectedAt": iso_z(now),
            }
        )

    def recorded(self, kind: Recorded, content_type: str) -> list[dict[str, Any]]:
        """The rows of one kind recorded for a content type, in RowKey order."""
        parameters = {"pk": _partition(kind, content_type)}
        return [dict(row) for row in self.client.query_entities("PartitionKey eq @pk", parameters=parameters)]

    def count_recorded(self, kind: Recorded, content_type: str) -> int:
        rows = self.client.query_entities(
            "PartitionKey eq @pk", parameters={"pk": _partition(kind, content_type)}, select=["RowKey"]
        )
        return sum(1 for _ in rows)

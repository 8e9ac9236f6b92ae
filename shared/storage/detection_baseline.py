"""The DetectionBaseline table: what the detection rules know, so a record is judged against the
records before it whichever blob brought them (docs/architecture.md#detectionbaseline).

PartitionKey = the mailbox (lower-case) for its contexts and detections, `~tenant` for mass-access
windows and their detections. RowKeys: `ctx|<dimension>|<value>` (`Name`, `Value`, `Days`: JSON, per
UTC day the first and last second the value was seen), `det|<day>|<key>` (a detection as it grows:
JSON `Draft`, hashed `Records` and `Messages`), `win|<kind>|<value>|<window start>` (`Mailboxes`:
JSON mailbox -> first read, hashed `Records`), all encoded. Every write merges with what is stored
(ETag-conditional, retried); the merges (shared/detect/engine.py) are unions and min/max, so a
redelivered blob, or two blobs at once, change nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode

from shared.model.keys import encode_key
from shared.storage.base import Table
from shared.storage.tables import read_rows

TENANT_PARTITION = "~tenant"
_ATTEMPTS = 8
BATCH = 100  # an entity-group transaction's limit


def mailbox_partition(mailbox: str) -> str:
    return encode_key(mailbox.lower())


def sighting_key(name: str, value: str) -> str:
    return encode_key(f"ctx|{name}|{value}")


def draft_key(alert_key: str) -> str:
    return encode_key(f"det|{alert_key}")


def window_key(kind: str, value: str, start: str) -> str:
    return encode_key(f"win|{kind}|{value}|{start}")


class DetectionBaselineTable(Table):
    NAME = "DetectionBaseline"

    def partition(self, mailbox: str) -> Iterator[TableEntity]:
        """Every row of one mailbox: its contexts and its detections (with `metadata["etag"]`)."""
        yield from self.client.query_entities(
            "PartitionKey eq @pk", parameters={"pk": mailbox_partition(mailbox)}
        )

    def get(self, partition: str, row: str) -> TableEntity | None:
        try:
            return self.client.get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def read(self, partition: str, rows: Iterable[str]) -> dict[str, TableEntity]:
        """The stored rows of these keys of one partition, by RowKey (with `metadata["etag"]`),
        absent ones left out: a few keys to a query rather than one request per row."""
        return read_rows(self.client, partition, rows)

    def write_batch(self, partition: str, rows: list[tuple[str, dict[str, Any], str | None]]) -> list[str]:
        """Write rows of one partition in transactions of BATCH: each row created (etag None) or
        updated only if unchanged since it was read with that etag. Returns the RowKeys of the
        transactions that failed (a row of theirs was changed or created meanwhile; none of them
        was written): the caller reads those rows again and merges."""
        failed: list[str] = []
        for start in range(0, len(rows), BATCH):
            operations: list[Any] = []
            for row, entity, etag in rows[start : start + BATCH]:
                full = {"PartitionKey": partition, "RowKey": row, **entity}
                if etag is None:
                    operations.append(("create", full))
                else:
                    condition = {
                        "mode": UpdateMode.MERGE,
                        "etag": etag,
                        "match_condition": MatchConditions.IfNotModified,
                    }
                    operations.append(("update", full, condition))
            try:
                self.client.submit_transaction(operations)
            except TableTransactionError:
                failed.extend(row for row, _, _ in rows[start : start + BATCH])
        return failed

    def merge(
        self,
        partition: str,
        row: str,
        fresh: dict[str, Any],
        merged: Callable[[Mapping[str, Any] | None], dict[str, Any]],
    ) -> None:
        """Create the row, or merge into the stored one if it is unchanged since read; retried."""
        for _ in range(_ATTEMPTS):
            try:
                stored = self.client.get_entity(partition, row)
            except ResourceNotFoundError:
                try:
                    self.client.create_entity({"PartitionKey": partition, "RowKey": row, **fresh})
                    return
                except ResourceExistsError:
                    continue
            patch = {"PartitionKey": partition, "RowKey": row, **merged(stored)}
            try:
                self.client.update_entity(
                    patch,
                    mode=UpdateMode.MERGE,
                    etag=stored.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceNotFoundError:
                continue
            except HttpResponseError as problem:
                if problem.status_code != 412:
                    raise
        raise RuntimeError(f"{self.NAME}: {row} kept changing; not merged after {_ATTEMPTS} attempts")

    def drafts(self) -> Iterator[Mapping[str, Any]]:
        """Every stored detection, of every partition (`mia detect` from storage)."""
        yield from self.client.query_entities(
            "RowKey ge @lo and RowKey lt @hi", parameters={"lo": "det|", "hi": "det}"}
        )

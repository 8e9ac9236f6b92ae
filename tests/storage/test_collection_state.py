"""CollectionStateTable: its partitions, keys and stored entities, against a real Azurite."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.storage import Storage
from shared.storage.collection_state import Checkpoint
from tests.helpers import full_scan

pytestmark = pytest.mark.integration

EXCHANGE, SHAREPOINT = "Audit.Exchange", "Audit.SharePoint"
NOW = datetime(2026, 11, 18, 12, 0, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Listed:
    """What the API lists of a content blob (shared.clients' ContentItem has these and more)."""

    content_id: str
    content_created: datetime
    content_expiration: datetime | None = None


def test_the_checkpoint_row_is_keyed_by_content_type_and_merged_over(storage: Storage) -> None:
    table = storage.collection_state
    assert table.checkpoint(EXCHANGE) is None
    table.client.upsert_entity({"PartitionKey": "checkpoint", "RowKey": EXCHANGE, "Note": "kept"})
    berlin = timezone(timedelta(hours=1))

    table.save_checkpoint(EXCHANGE, datetime(2026, 11, 18, 11, 0, tzinfo=berlin), NOW)

    assert full_scan(table) == [
        {
            "PartitionKey": "checkpoint",
            "RowKey": EXCHANGE,
            "Note": "kept",  # a merge: what else the row holds stays
            "Checkpoint": "2026-11-18T10:00:00Z",
            "LastSuccessAt": "2026-11-18T12:00:05Z",
        }
    ]
    assert table.checkpoint(EXCHANGE) == datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    assert table.checkpoint(SHAREPOINT) is None
    table.save_checkpoint(SHAREPOINT, NOW, NOW)
    assert sorted(table.checkpoints(), key=lambda c: c.content_type) == [
        Checkpoint(EXCHANGE, "2026-11-18T10:00:00Z", "2026-11-18T12:00:05Z"),
        Checkpoint(SHAREPOINT, "2026-11-18T12:00:05Z", "2026-11-18T12:00:05Z"),
    ]


def test_stored_content_is_keyed_by_creation_time_and_encoded_id_per_content_type(storage: Storage) -> None:
    table = storage.collection_state
    expires = NOW + timedelta(days=7)
    first = Listed("2026/11#18?a", NOW - timedelta(hours=2), expires)
    second = Listed("b", NOW - timedelta(hours=1))

    table.mark_stored(EXCHANGE, [(first, "stored"), (second, "gone:AF20051")])
    table.mark_stored(SHAREPOINT, [(second, "stored")])

    rows = {(row["PartitionKey"], row["RowKey"]): row for row in full_scan(table)}
    assert rows[("seen|Audit.Exchange", "20261118T100005_2026%2F11%2318%3Fa")] == {
        "PartitionKey": "seen|Audit.Exchange",
        "RowKey": "20261118T100005_2026%2F11%2318%3Fa",
        "ContentId": "2026/11#18?a",
        "ContentCreated": "2026-11-18T10:00:05Z",
        "ContentExpiration": "2026-11-25T12:00:05Z",
        "Outcome": "stored",
    }
    assert rows[("seen|Audit.Exchange", "20261118T110005_b")]["ContentExpiration"] == ""
    assert rows[("seen|Audit.Exchange", "20261118T110005_b")]["Outcome"] == "gone:AF20051"
    assert ("seen|Audit.SharePoint", "20261118T110005_b") in rows


def test_stored_ids_include_the_start_and_exclude_the_end(storage: Storage) -> None:
    table = storage.collection_state
    at = [NOW + timedelta(seconds=s) for s in (-1, 0, 59, 60)]
    table.mark_stored(EXCHANGE, [(Listed(f"c{n}", moment), "stored") for n, moment in enumerate(at)])
    table.mark_stored(SHAREPOINT, [(Listed("other", NOW), "stored")])

    assert table.stored_ids(EXCHANGE, NOW, NOW + timedelta(seconds=60)) == {"c1", "c2"}


def test_forget_stored_before_removes_only_older_marks_in_transactions_past_one_batch(
    storage: Storage,
) -> None:
    table = storage.collection_state
    old = [(Listed(f"old{n:03d}", NOW - timedelta(days=9, seconds=n)), "stored") for n in range(130)]
    table.mark_stored(EXCHANGE, [*old, (Listed("recent", NOW), "stored")])
    table.mark_stored(SHAREPOINT, [(Listed("other", NOW - timedelta(days=9)), "stored")])

    assert table.forget_stored_before(EXCHANGE, NOW - timedelta(days=8)) == 130

    left = {(row["PartitionKey"], row["ContentId"]) for row in full_scan(table)}
    assert left == {("seen|Audit.Exchange", "recent"), ("seen|Audit.SharePoint", "other")}


def test_gaps_losses_and_unparseable_blobs_have_their_own_partitions_and_keys(storage: Storage) -> None:
    table = storage.collection_state
    item = Listed("c/1", NOW - timedelta(hours=3))
    start, end = NOW - timedelta(days=9), NOW - timedelta(days=7)

    table.record_gap(EXCHANGE, start, end, "backlog older than the API's 7 days", NOW)
    table.record_loss(EXCHANGE, item, "AF20051", NOW)
    table.record_unparseable(EXCHANGE, item, "Audit.Exchange/x.json.gz", "d" * 64, "not JSON", NOW)

    assert table.recorded("gap", EXCHANGE) == [
        {
            "PartitionKey": "gap|Audit.Exchange",
            "RowKey": "20261109T120005_20261111T120005",
            "From": "2026-11-09T12:00:05Z",
            "To": "2026-11-11T12:00:05Z",
            "Reason": "backlog older than the API's 7 days",
            "DetectedAt": "2026-11-18T12:00:05Z",
        }
    ]
    assert table.recorded("loss", EXCHANGE) == [
        {
            "PartitionKey": "loss|Audit.Exchange",
            "RowKey": "20261118T090005_c%2F1",
            "ContentId": "c/1",
            "ContentCreated": "2026-11-18T09:00:05Z",
            "Code": "AF20051",
            "DetectedAt": "2026-11-18T12:00:05Z",
        }
    ]
    assert table.recorded("unparseable", EXCHANGE) == [
        {
            "PartitionKey": "unparseable|Audit.Exchange",
            "RowKey": "20261118T090005_c%2F1",
            "ContentId": "c/1",
            "ContentCreated": "2026-11-18T09:00:05Z",
            "Blob": "Audit.Exchange/x.json.gz",
            "Sha256": "d" * 64,
            "Error": "not JSON",
            "DetectedAt": "2026-11-18T12:00:05Z",
        }
    ]
    table.record_gap(EXCHANGE, start, end, "recorded again", NOW)  # the same gap: one row
    assert [table.count_recorded(kind, EXCHANGE) for kind in ("gap", "loss", "unparseable")] == [1, 1, 1]
    assert table.count_recorded("gap", SHAREPOINT) == 0

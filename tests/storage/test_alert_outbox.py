"""AlertOutboxTable: its partitions, keys, stored entities and conditional updates, against a real
Azurite. The delivery rules on top are tested in tests/alerts/test_outbox.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.storage import Storage
from shared.storage.alert_outbox import (
    DELIVERED_PARTITION,
    LEGACY_PARTITION,
    PENDING_PARTITION,
    AlertOutboxTable,
    LastDelivery,
    OutboxRow,
)
from tests.helpers import full_scan

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 18, 12, 0, 5, tzinfo=UTC)
PAYLOAD = {"id": "a1", "type": "mailbox.throttled", "subject": "Zoë"}


def _insert(table: AlertOutboxTable, alert_id: str = "a1", due_at: datetime = NOW) -> bool:
    return table.insert_pending(
        alert_id, "mailbox.throttled", "alice@contoso.com", NOW - timedelta(minutes=5), PAYLOAD, due_at
    )


def test_a_raised_alert_is_one_pending_row_keyed_by_its_id_and_inserted_once(storage: Storage) -> None:
    table = storage.alert_outbox

    assert _insert(table)
    assert not _insert(table, due_at=NOW + timedelta(hours=1))  # already there: nothing changes

    assert full_scan(table) == [
        {
            "PartitionKey": "pending",
            "RowKey": "a1",
            "Type": "mailbox.throttled",
            "Mailbox": "alice@contoso.com",
            "DetectedAt": "2026-11-18T11:55:05Z",
            "Payload": '{"id": "a1", "type": "mailbox.throttled", "subject": "Zoë"}',
            "State": "Pending",
            "Attempts": 0,
            "NextAttemptAt": "2026-11-18T12:00:05Z",
            "LastError": "",
            "DeliveredAt": "",
        }
    ]
    assert table.holds(PENDING_PARTITION, "a1")
    assert not table.holds(DELIVERED_PARTITION, "a1")
    table.remove(PENDING_PARTITION, "a1")
    table.remove(PENDING_PARTITION, "a1")  # already gone: no error
    assert full_scan(table) == []


def test_due_reads_pending_rows_due_by_now_at_most_limit_with_their_etag(storage: Storage) -> None:
    table = storage.alert_outbox
    for n in range(5):
        _insert(table, f"due{n}", NOW - timedelta(minutes=n))
    _insert(table, "later", NOW + timedelta(seconds=1))

    due = table.due(NOW, limit=3)

    assert len(due) == 3
    assert {row.alert_id for row in due} < {f"due{n}" for n in range(5)}
    assert all(row.etag for row in due)
    assert {row.alert_id for row in table.due(NOW, limit=10)} == {f"due{n}" for n in range(5)}
    [row, *_] = due
    assert (row.alert_type, row.payload, row.attempts, row.delivered) == (
        "mailbox.throttled",
        PAYLOAD,
        0,
        False,
    )


def test_update_attempt_applies_only_to_the_row_as_it_was_read(storage: Storage) -> None:
    table = storage.alert_outbox
    _insert(table)
    [read] = table.due(NOW, limit=1)

    claimed = table.update_attempt(read, NOW + timedelta(minutes=2), attempts=1)
    assert claimed is not None
    assert table.update_attempt(read, NOW + timedelta(hours=1), attempts=9) is None  # stale ETag
    failed = table.update_attempt(claimed, NOW + timedelta(minutes=4), last_error="HTTP 503")
    assert failed is not None

    [stored] = full_scan(table)
    assert (stored["Attempts"], stored["NextAttemptAt"], stored["LastError"]) == (
        1,
        "2026-11-18T12:04:05Z",
        "HTTP 503",
    )
    assert failed.entity == stored
    table.remove(PENDING_PARTITION, "a1")
    assert table.update_attempt(failed, NOW) is None  # gone


def test_a_delivered_row_moves_whole_and_becomes_the_last_delivery(storage: Storage) -> None:
    table = storage.alert_outbox
    _insert(table)
    [row] = table.due(NOW, limit=1)
    assert table.last_delivery() is None

    delivered = table.put_delivered(row, NOW + timedelta(seconds=10))
    table.note_last_delivery(delivered)

    rows = {(r["PartitionKey"], r["RowKey"]): r for r in full_scan(table)}
    moved = rows[("delivered", "a1")]
    assert moved == {
        **rows[("pending", "a1")],
        "PartitionKey": "delivered",
        "State": "Delivered",
        "DeliveredAt": "2026-11-18T12:00:15Z",
    }
    assert rows[("meta", "lastDelivered")] == {
        "PartitionKey": "meta",
        "RowKey": "lastDelivered",
        "Id": "a1",
        "Type": "mailbox.throttled",
        "DeliveredAt": "2026-11-18T12:00:15Z",
    }
    assert table.last_delivery() == LastDelivery("a1", "mailbox.throttled", "2026-11-18T12:00:15Z")
    assert table.count(PENDING_PARTITION, limit=10) == 1  # the pending copy stays until removed


def test_the_purge_marker_and_delivered_rows_before_a_cutoff_removed_past_one_batch(storage: Storage) -> None:
    table = storage.alert_outbox
    assert table.last_purge() == ""
    table.note_purge(NOW)
    assert table.last_purge() == "2026-11-18T12:00:05Z"
    for n in range(130):
        table.put_delivered(OutboxRow({"RowKey": f"old{n:03d}", "Payload": "{}"}), NOW - timedelta(days=31))
    table.put_delivered(OutboxRow({"RowKey": "recent", "Payload": "{}"}), NOW)

    old = list(table.delivered_before(NOW - timedelta(days=30), limit=120))
    assert len(old) == 120
    assert table.delete_delivered(old) == 120
    assert table.delete_delivered(table.delivered_before(NOW - timedelta(days=30), limit=500)) == 10

    assert [row.alert_id for row in table.rows(DELIVERED_PARTITION)] == ["recent"]


def test_rows_of_the_earlier_layout_are_read_in_bounded_pages_and_moved_unchanged(storage: Storage) -> None:
    table = storage.alert_outbox
    for n in range(4):
        legacy = {"PartitionKey": "alert", "RowKey": f"l{n}", "State": "Delivered", "DeliveredAt": f"t{n}"}
        table.client.create_entity({**legacy, "Extra": n})

    [first, second] = table.rows(LEGACY_PARTITION, limit=2)
    table.put_in(DELIVERED_PARTITION, first)

    assert (first.alert_id, second.alert_id, first.delivered, first.delivered_at) == ("l0", "l1", True, "t0")
    assert len(list(table.rows(LEGACY_PARTITION))) == 4
    [moved] = [row for row in full_scan(table) if row["PartitionKey"] == "delivered"]
    assert moved == {
        "PartitionKey": "delivered",
        "RowKey": "l0",
        "State": "Delivered",
        "DeliveredAt": "t0",
        "Extra": 0,
    }
    assert table.count(LEGACY_PARTITION, limit=3) == 3

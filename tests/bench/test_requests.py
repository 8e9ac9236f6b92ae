"""bench/requests.py: what the counting transport counts, against a real Azurite."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from azure.data.tables import TableTransactionError

from bench.requests import RequestTally, content_blobs, counted_storage
from shared.storage import RAW_CONTAINER, Storage

pytestmark = pytest.mark.integration

TABLE = "MessageIndex"


def rows(*keys: str) -> list[dict[str, str]]:
    return [{"PartitionKey": "p", "RowKey": key, "Subject": key} for key in keys]


def test_a_transaction_is_one_request_and_counts_each_entity_it_wrote(azurite: str, storage: Storage) -> None:
    tally = RequestTally()
    table = counted_storage(azurite, tally).message_index.client
    table.submit_transaction([("create", row) for row in rows("a", "b", "c")])
    table.upsert_entity(rows("d")[0])
    assert tally.breakdown() == {"table": {TABLE: {"POST $batch": 1, "PATCH": 1}}}
    assert tally.entities_written == {TABLE: 4}


def test_a_transaction_that_fails_writes_none_of_its_entities(azurite: str, storage: Storage) -> None:
    storage.message_index.client.create_entity(rows("b")[0])
    tally = RequestTally()
    table = counted_storage(azurite, tally).message_index.client
    with pytest.raises(TableTransactionError):
        table.submit_transaction([("create", row) for row in rows("a", "b")])
    assert tally.by_service() == {"table": 1}
    assert tally.entities_written == {}
    assert tally.entity_writes_failed == {TABLE: 2}


def test_reads_are_counted_by_service_and_a_downloaded_raw_blob_is_a_blob_read(
    azurite: str, storage: Storage
) -> None:
    storage.blobs.get_blob_client(RAW_CONTAINER, "x.json").upload_blob(b"[]")
    tally = RequestTally()
    counted = counted_storage(azurite, tally)
    assert counted.blobs.get_blob_client(RAW_CONTAINER, "x.json").download_blob().readall() == b"[]"
    assert list(counted.message_index.client.list_entities()) == []
    assert tally.by_service() == {"blob": 1, "table": 1}
    assert tally.blobs_read() == 1
    assert tally.entities_written == {}


def test_content_blobs_cover_consecutive_windows() -> None:
    first, second = (orjson.loads(blob) for blob in content_blobs(blobs=2, records=50))
    assert len(first) == len(second) == 50
    last_of_first = max(datetime.fromisoformat(record["CreationTime"]) for record in first)
    first_of_second = min(datetime.fromisoformat(record["CreationTime"]) for record in second)
    assert last_of_first < first_of_second
    assert {record["Operation"] for record in first} >= {"MailItemsAccessed"}

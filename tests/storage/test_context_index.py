"""ContextIndex against a real Azurite: its counts equal what the access rows say, whatever the
delivery (redelivery, a record in two blobs, a conflicting copy, a crash before the index)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.ingest import pipeline
from shared.model.event import AccessEvent
from shared.model.scope import ALL, IP, NETWORK, SESSION, Tallies, Tally, context_keys, key_text, scope_rows
from shared.storage import Storage, raw_store
from shared.storage.context_index import SHARDS, ContextIndexTable, blob_tag, context_tag
from shared.storage.tables import requests_to_write
from tests.records_factory import (
    MID_1,
    MID_2,
    event,
    folder,
    folder_item,
    mail_items_accessed,
    operation_properties,
)

pytestmark = pytest.mark.integration

ATTACKER_IP = "198.51.100.23"
START = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def record(number: int, *, day: int = 0, mailbox: str = "alice@contoso.com", **fields: Any) -> dict[str, Any]:
    moment = START + timedelta(days=day, minutes=number)
    values: dict[str, Any] = {
        "Id": f"00000000-0000-4000-8000-{number:012d}",
        "CreationTime": moment.strftime("%Y-%m-%dT%H:%M:%S"),
        "MailboxOwnerUPN": mailbox,
        "UserId": mailbox,
        "SessionId": f"session-{number % 3}",
    }
    values.update(fields)
    return mail_items_accessed(**values)


def process(storage: Storage, name: str, records: list[dict[str, Any]]) -> None:
    """Store `records` as one raw blob and process its pointer, as enrich_trace does."""
    imported = pipeline.import_bytes(storage, json.dumps(records).encode(), name)
    pointer = raw_store.RawPointer(blob=imported.blob, sha256=imported.sha256, format=imported.format)
    pipeline.process_pointer(storage, pointer.encode())


def index_totals(storage: Storage) -> dict[tuple[str, str, str], Tally]:
    """Every ContextIndex row merged per (context, day, mailbox)."""
    totals: dict[tuple[str, str, str], Tally] = {}
    for entity in storage.context_index.client.list_entities():
        mailbox, tally = ContextIndexTable.from_entity(entity)
        totals.setdefault((entity["Context"], entity["Day"], mailbox), Tally()).merge(tally)
    return totals


def access_row_totals(storage: Storage) -> dict[tuple[str, str, str], Tally]:
    """The same, computed from the MailboxAccess rows themselves: what the index must say."""
    tallies = Tallies()
    table = storage.mailbox_access
    tallies.add_all(table.from_entity(entity) for entity in table.rows_in(None, None, None))
    return {(key_text(kind, value), day.isoformat(), mailbox): tally
            for (kind, value, day, mailbox), tally in tallies.by_key.items()}  # fmt: skip


def assert_index_matches_rows(storage: Storage) -> None:
    assert index_totals(storage) == access_row_totals(storage)


def test_an_address_touching_many_mailboxes_over_many_days_is_answered_per_mailbox(storage: Storage) -> None:
    mailboxes = [f"user{n:02d}@contoso.com" for n in range(8)]
    records = [
        record(n * 10 + d, day=d, mailbox=mailbox, ClientIPAddress=ATTACKER_IP)
        for n, mailbox in enumerate(mailboxes)
        for d in range(0, 9, 2)
    ]
    records.append(record(999, day=3, mailbox="bob@contoso.com", ClientIPAddress="203.0.113.10"))
    process(storage, "many.json", records)

    assert_index_matches_rows(storage)
    rows = scope_rows(storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 1), date(2026, 11, 30)))
    assert [row["Mailbox"] for row in rows] == mailboxes  # five records each, then by name
    assert {row["Records"] for row in rows} == {5}
    assert rows[0]["FirstAccess"] == "2026-11-01T08:00:00Z"
    assert rows[0]["LastAccess"] == "2026-11-09T08:08:00Z"
    assert rows[0]["Messages"] == 10  # two messages a record, summed
    assert rows[0]["Sessions"] == 3
    # The day range is the RowKey range: days 3 to 5 hold each mailbox's record of day 5 (the 4th) only.
    narrow = scope_rows(storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 4), date(2026, 11, 6)))
    assert {row["Records"] for row in narrow} == {1}
    assert len(narrow) == 8
    network = scope_rows(
        storage.context_index.tallies(NETWORK, "198.51.100.0/24", date(2026, 11, 1), date(2026, 11, 30))
    )
    assert network == rows


def test_redelivery_of_the_same_blob_counts_nothing_twice(storage: Storage) -> None:
    records = [record(n, ClientIPAddress=ATTACKER_IP) for n in range(5)]
    process(storage, "blob.json", records)
    process(storage, "blob.json", records)

    assert_index_matches_rows(storage)
    [row] = scope_rows(storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 1), date(2026, 11, 1)))
    assert row["Records"] == 5


def test_a_record_in_two_blobs_is_counted_once_from_the_blob_stored_first(storage: Storage) -> None:
    shared_record = record(2, ClientIPAddress=ATTACKER_IP)
    process(storage, "first.json", [record(1, ClientIPAddress=ATTACKER_IP), shared_record])
    process(storage, "second.json", [shared_record, record(3, ClientIPAddress=ATTACKER_IP)])

    assert_index_matches_rows(storage)
    [row] = scope_rows(storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 1), date(2026, 11, 1)))
    assert row["Records"] == 3


def test_a_conflicting_copy_adds_nothing_the_stored_row_does_not_say(storage: Storage) -> None:
    process(storage, "first.json", [record(1, ClientIPAddress=ATTACKER_IP)])
    # The same record Id and time from another source, saying another address and a Sync.
    other = record(1, ClientIPAddress="192.0.2.77", OperationProperties=operation_properties("Sync"))
    process(storage, "second.json", [other])

    assert_index_matches_rows(storage)
    assert list(storage.context_index.tallies(IP, "192.0.2.77", date(2026, 11, 1), date(2026, 11, 1))) == []
    assert len(list(storage.record_conflicts.client.list_entities())) == 1


def test_a_copy_repeated_within_one_blob_is_one_record(storage: Storage) -> None:
    first = record(1, ClientIPAddress=ATTACKER_IP)
    contradicting = record(1, ClientIPAddress="192.0.2.77")
    process(storage, "blob.json", [first, first, contradicting])

    assert_index_matches_rows(storage)
    [row] = scope_rows(storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 1), date(2026, 11, 1)))
    assert row["Records"] == 1


def test_a_retry_after_a_crash_between_the_rows_and_the_index_repairs_it(storage: Storage) -> None:
    records = [
        record(n, day=n % 2, mailbox=f"user{n % 2}@contoso.com", ClientIPAddress=ATTACKER_IP)
        for n in range(8)
    ]
    process(storage, "blob.json", records)
    index = storage.context_index.client
    written = list(index.list_entities())
    # The crash: the access rows are stored, the index has only some of its rows (or none).
    for entity in written[::2]:
        index.delete_entity(entity["PartitionKey"], entity["RowKey"])
    assert index_totals(storage) != access_row_totals(storage)

    process(storage, "blob.json", records)  # the queue's retry

    assert_index_matches_rows(storage)
    assert len(list(index.list_entities())) == len(written)


def test_each_source_blob_owns_its_own_rows(storage: Storage) -> None:
    process(storage, "first.json", [record(1, ClientIPAddress=ATTACKER_IP)])
    process(storage, "second.json", [record(2, ClientIPAddress=ATTACKER_IP)])
    rows = [
        row
        for row in storage.context_index.client.list_entities()
        if row["Context"] == key_text(IP, ATTACKER_IP)
    ]
    blobs = {row["SourceBlob"] for row in rows}
    assert len(blobs) == 2
    assert {row["RowKey"].split("_")[-1].split("~")[0] for row in rows} == {blob_tag(blob) for blob in blobs}
    assert {row["RowKey"].split("_")[0] for row in rows} == {context_tag(IP, ATTACKER_IP)}


def test_days_across_month_ends_are_read_from_each_months_partition(storage: Storage) -> None:
    late_october = [record(n, day=-1, ClientIPAddress=ATTACKER_IP) for n in range(3)]
    november = [record(10 + n, day=n, ClientIPAddress=ATTACKER_IP) for n in range(4)]
    process(storage, "blob.json", late_october + november)
    december = [record(20, day=30, ClientIPAddress=ATTACKER_IP)]  # 2026-12-01
    process(storage, "later.json", december)

    assert_index_matches_rows(storage)
    tallies = storage.context_index.tallies
    [everything] = scope_rows(tallies(IP, ATTACKER_IP, date(2026, 10, 31), date(2026, 12, 1)))
    assert everything["Records"] == 8
    [autumn] = scope_rows(tallies(IP, ATTACKER_IP, date(2026, 10, 31), date(2026, 11, 2)))
    assert autumn["Records"] == 5
    assert {row["PartitionKey"][2:] for row in storage.context_index.client.list_entities()} == {
        "202610",
        "202611",
        "202612",
    }


def test_rows_of_the_layout_before_are_read_and_a_blob_processed_again_since_counts_once(
    storage: Storage,
) -> None:
    records = [record(n, ClientIPAddress=ATTACKER_IP) for n in range(4)]
    process(storage, "old.json", records)
    index = storage.context_index.client
    written = list(index.list_entities())
    for entity in written:  # as the layout before wrote them: one partition per context
        legacy = dict(entity)
        kind, value = str(entity["Context"]).split(":", 1)
        legacy["PartitionKey"] = ContextIndexTable.legacy_partition_key(kind, value)
        legacy["RowKey"] = str(entity["RowKey"]).split("_", 1)[1]
        del legacy["Context"]
        index.upsert_entity(legacy)
        index.delete_entity(entity["PartitionKey"], entity["RowKey"])

    [before] = scope_rows(
        storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 1), date(2026, 11, 1))
    )
    process(storage, "old.json", records)  # a redelivery after the upgrade writes the new layout
    [after] = scope_rows(storage.context_index.tallies(IP, ATTACKER_IP, date(2026, 11, 1), date(2026, 11, 1)))

    assert before["Records"] == after["Records"] == 4
    assert len(list(index.list_entities())) == 2 * len(written)


def test_a_read_of_unbounded_days_is_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="bounded days"):
        list(storage.context_index.tallies(IP, ATTACKER_IP, date.min, date(2026, 11, 1)))


def test_sets_too_large_for_one_entity_continue_in_further_parts() -> None:
    tally = Tally()
    sessions = {f"{n:08d}-" + "s" * 60 for n in range(8000)}  # about 560,000 characters
    tally.sessions = sessions
    tally.records = 8000
    entities = ContextIndexTable.to_entities(
        (SESSION, "x", date(2026, 11, 1), "alice@contoso.com"), tally, "b"
    )
    assert len(entities) == 2
    merged = Tally()
    for entity in entities:
        merged.merge(ContextIndexTable.from_entity(entity)[1])
    assert merged.sessions == sessions
    assert merged.records == 8000


def test_index_writes_take_one_transaction_per_shard_and_month_not_one_request_per_context() -> None:
    # The costly case for an index kept by context: each record its own session and address.
    events = [
        pipeline_event(
            n,
            mailbox=f"user{n % 20}@contoso.com",
            ip=f"203.0.{n // 250}.{n % 250}",
            app=n % 3,
            session=f"s-{n}",
        )
        for n in range(1000)
    ]
    tallies = Tallies()
    tallies.add_all(events)
    entities = [e for key, t in tallies.by_key.items() for e in ContextIndexTable.to_entities(key, t, "blob")]
    partitions = {entity["PartitionKey"] for entity in entities}
    contexts = {entity["Context"] for entity in entities}
    # 1,000 addresses and sessions, 4 networks, 3 apps, 20 actors and `all:`; one day. One
    # partition per context took one request per context: 2,028.
    assert len(contexts) == 2028
    assert len(partitions) <= 16  # a partition per shard of the 20 mailboxes, all of one month
    assert requests_to_write(entities) == sum(
        -(-sum(1 for e in entities if e["PartitionKey"] == p) // 100) for p in partitions
    )
    assert requests_to_write(entities) < 50


def test_the_rows_of_a_common_context_are_spread_over_the_shards_by_mailbox() -> None:
    events = [pipeline_event(n, mailbox=f"user{n}@contoso.com", ip=ATTACKER_IP, app=0) for n in range(128)]
    tallies = Tallies()
    tallies.add_all(events)
    entities = [e for key, t in tallies.by_key.items() for e in ContextIndexTable.to_entities(key, t, "blob")]
    for context in (key_text(IP, ATTACKER_IP), key_text(ALL, "")):
        partitions = {e["PartitionKey"] for e in entities if e["Context"] == context}
        assert partitions == {f"{shard}~202611" for shard in SHARDS}  # these 128 mailboxes meet all 16


def pipeline_event(
    number: int, *, mailbox: str, ip: str, app: int, session: str | None = None
) -> AccessEvent:
    return event(
        Id=f"00000000-0000-4000-8000-{number:012d}",
        MailboxOwnerUPN=mailbox,
        UserId=mailbox,
        ClientIPAddress=ip,
        ClientAppId=f"00000000-0000-0000-0000-00000000000{app}",
        SessionId=session or f"session-{number % 3}",
        Folders=[folder("\\Inbox", folder_item(MID_1), folder_item(MID_2))],
    )


def test_every_event_is_indexed_under_all_and_the_contexts_it_names() -> None:
    kinds = [kind for kind, _ in context_keys(event(ClientIPAddress="::ffff:203.0.113.9"))]
    assert kinds == [IP, NETWORK, "session", "actor", ALL]  # no AppId in the default record
    assert (IP, "203.0.113.9") in context_keys(event(ClientIPAddress="::ffff:203.0.113.9"))

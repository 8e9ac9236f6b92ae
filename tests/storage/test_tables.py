"""Table keys, entity conversion, batched upserts and range queries, against a real Azurite."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import unquote

import pytest
from azure.data.tables import EdmType, EntityProperty

from shared.model import keys
from shared.model.event import AccessEvent, MessageRef
from shared.storage import Storage, tables
from shared.storage.tables import AccessTable, ActorAccessTable, MailboxAccessTable
from tests.helpers import SpyTable, full_scan, make_event

pytestmark = pytest.mark.integration

FORBIDDEN_IN_KEYS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")

KEY_VALUES = [
    "alice@contoso.com",
    "a/b",
    "a\\b",
    "a#b",
    "a?b",
    "100%",
    "%2F",  # must not collide with "/"
    "%252F",
    "a%2Fb",
    "tab\there",
    "nul\x00byte",
    "del\x7f",
    "c1\x85control",
    "line\r\nbreak",
    "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
    "o'brien@contoso.com",
    "日本語@contoso.com",
    "emoji 😀",
    "x" * 399,
    "x" * 400,
    "x" * 401,
    "x" * 5000,
    "x" * 4999 + "y",
    "/" * 200,
    "/" * 201,
]


def test_encode_key_is_reversible_and_free_of_forbidden_characters_for_short_values() -> None:
    for value in KEY_VALUES:
        key = keys.encode_key(value)
        assert not FORBIDDEN_IN_KEYS.search(key), value
        assert len(key) <= keys.MAX_KEY_CHARS, value
        hashed = len(key) == 165 and key[100] == "~"
        assert unquote(key) == value or hashed, value
        assert hashed == (len(value) > 400 or value in ("/" * 200, "/" * 201)), value


def test_encode_key_gives_distinct_keys_for_distinct_values() -> None:
    encoded = [keys.encode_key(value) for value in KEY_VALUES]

    assert len(set(encoded)) == len(KEY_VALUES)


def test_encode_key_hashes_very_long_values_to_a_bounded_key_that_still_tells_them_apart() -> None:
    long_a, long_b = "x" * 5000, "x" * 4999 + "y"
    key_a, key_b = keys.encode_key(long_a), keys.encode_key(long_b)

    assert key_a != key_b
    assert len(key_a) == len(key_b) == 100 + 1 + 64
    assert key_a == "x" * 100 + "~" + hashlib.sha256(long_a.encode()).hexdigest()
    assert keys.encode_key(long_a) == key_a  # deterministic


@pytest.mark.parametrize("value", KEY_VALUES, ids=range(len(KEY_VALUES)))
def test_encoded_keys_are_accepted_by_azurite_as_partition_and_row_keys(storage: Storage, value: str) -> None:
    table = storage.mailbox_access.client
    key = keys.encode_key(value)

    table.upsert_entity({"PartitionKey": key, "RowKey": key, "Original": value[:1000]})

    assert table.get_entity(key, key)["Original"] == value[:1000]


@pytest.mark.parametrize("subject", KEY_VALUES[1:16], ids=range(15))
def test_query_events_finds_rows_stored_under_any_partition_value(storage: Storage, subject: str) -> None:
    table = storage.actor_access
    event = make_event(user=subject, record_id="r/1#?")
    other = make_event(user="someone@contoso.com", record_id="other")
    tables.upsert_entities(table.client, [table.to_entity(event), table.to_entity(other)])

    found = list(table.query_events(subject, event.timestamp, event.timestamp + timedelta(seconds=1)))

    assert found == [(table.row_key(event), event)]


ROUND_TRIP_EVENTS = [
    make_event(),
    make_event(operation_count=None, items=()),
    make_event(
        record_id="unicode",
        folders=("Inbox", "Boîte de réception", "受信トレイ"),
        folder_ids=("f1", "f2", "f3"),
        items=(
            MessageRef("<a@x>", "Inbox", "Contrat de confidentialité \u2013 signé", 5000),
            MessageRef("<b@x>", "受信トレイ", "顧客リスト 2026", None),
            MessageRef("<c@x>", "Inbox", "🎉 Party 😀 \u202eRTL\u202c", 1),
            MessageRef("<d@x>", "Inbox", "", None),
            MessageRef("<a@x>", "Boîte de réception", '=HYPERLINK("http://evil.example/x","Invoice")', 2),
        ),
    ),
    make_event(
        record_id="sync",
        access="Sync",
        throttled=True,
        external_access=True,
        operation_count=0,
        user="NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
        logon_type="Unknown(42)",
        client_ip="2001:db8::5",
        client_info="",
        items=(),
    ),
]


@pytest.mark.parametrize("event", ROUND_TRIP_EVENTS, ids=["plain", "no-count", "unicode", "sync"])
def test_entities_round_trip_through_azurite_unchanged(storage: Storage, event) -> None:
    table = storage.mailbox_access
    entity = table.to_entity(event)

    tables.upsert_entities(table.client, [entity])
    stored = table.client.get_entity(entity["PartitionKey"], entity["RowKey"])

    assert table.from_entity(dict(stored)) == event
    assert ("OperationCount" in stored) == (event.operation_count is not None)
    assert stored["ContentSha256"] == event.content_sha256()
    assert stored["OverflowRows"] == 0


def _many_items(count: int, subject: str) -> tuple[MessageRef, ...]:
    return tuple(
        MessageRef(
            f"<{n:08d}.a1b2c3d4@PH0PR11MB0000.namprd11.prod.outlook.com>", "Inbox", subject, 100_000 + n
        )
        for n in range(count)
    )


def _stored_events(table: AccessTable, subject: str) -> list[AccessEvent]:
    start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    return [event for _, event in table.query_events(subject, start, end)]


@pytest.mark.parametrize(
    ("count", "subject"),
    [(12_000, "Quarterly numbers"), (4_000, "😀" * 60), (3_000, "顧客リスト" * 20), (30_000, "Payroll")],
    ids=["ascii", "astral", "cjk", "bulk-graph-read"],
)
def test_a_record_over_the_entity_budget_is_stored_whole_across_overflow_rows(
    storage: Storage, count: int, subject: str
) -> None:
    """A Bind record can list thousands of messages (bulk reading through Graph): every one is kept,
    in the row and its overflow rows, and the query gives the whole record back."""
    event = make_event(record_id="huge", items=_many_items(count, subject))
    entities = MailboxAccessTable.to_entities(event)
    assert len(entities) > 1
    assert all(tables.entity_bytes(entity) <= tables.MAX_ENTITY_BYTES for entity in entities)

    tables.store_events(storage, [event])

    [back] = _stored_events(storage.mailbox_access, event.mailbox)
    assert back == event
    assert len(back.items) == count
    assert [a.record_id for a in _stored_events(storage.actor_access, event.user)] == ["huge"]
    main = [row for row in full_scan(storage.mailbox_access) if not MailboxAccessTable.is_overflow_row(row)]
    assert len(main) == 1  # the overflow rows are not access rows of the mailbox


def test_a_row_whose_overflow_rows_are_missing_is_an_error_not_a_shorter_list(storage: Storage) -> None:
    event = make_event(record_id="huge", items=_many_items(12_000, "Quarterly numbers"))
    *overflow, row = MailboxAccessTable.to_entities(event)
    tables.upsert_entities(storage.mailbox_access.client, [*overflow[:-1], row])

    with pytest.raises(tables.IncompleteRow):
        _stored_events(storage.mailbox_access, event.mailbox)


def test_sizes_and_counts_past_int32_are_stored_as_int64(storage: Storage) -> None:
    event = make_event(
        record_id="big",
        operation_count=3_000_000_000,
        items=(MessageRef("<a@x>", "Inbox", "Hi", 3_000_000_000),),
    )
    tables.store_events(storage, [event])

    [back] = _stored_events(storage.mailbox_access, event.mailbox)
    assert back.operation_count == 3_000_000_000
    assert back.items[0].size_in_bytes == 3_000_000_000


def test_a_copy_lacking_only_a_field_its_source_has_no_room_for_is_a_duplicate_not_a_conflict(
    storage: Storage,
) -> None:
    collected = make_event(record_id="r-sparse", operation_count=3, source_blob="Audit.Exchange/a.json.gz")
    from_sentinel = replace(collected, operation_count=None, source_blob="import/sentinel.csv")

    assert tables.store_events(storage, [collected]).inserted == 1
    again = tables.store_events(storage, [from_sentinel])

    assert (again.inserted, again.duplicates, again.conflicts) == (0, 1, 0)
    [kept] = _stored_events(storage.mailbox_access, collected.mailbox)
    assert kept == collected  # not flagged
    assert not full_scan(storage.record_conflicts)
    rewritten = replace(from_sentinel, client_ip="192.0.2.99")
    assert tables.store_events(storage, [rewritten]).conflicts == 1  # saying less and else is a conflict


def test_the_first_copy_of_a_record_wins_and_a_different_copy_is_recorded_as_a_conflict(
    storage: Storage,
) -> None:
    first = make_event(
        record_id="r1", source_blob="Audit.Exchange/a.json.gz", source_sha256="a" * 64, source_index=3
    )
    same = replace(first, source_blob="import/b.gz", source_sha256="b" * 64, source_index=9)
    rewritten = replace(
        first, client_ip="192.0.2.99", source_blob="import/c.gz", source_sha256="c" * 64, source_index=0
    )

    assert tables.store_events(storage, [first]).inserted == 1
    again = tables.store_events(storage, [same])
    assert (again.inserted, again.duplicates, again.conflicts) == (0, 1, 0)
    later = tables.store_events(storage, [rewritten])
    assert (later.inserted, later.duplicates, later.conflicts) == (0, 0, 1)
    tables.store_events(storage, [rewritten])  # seen again: recorded once

    [kept] = _stored_events(storage.mailbox_access, first.mailbox)
    assert kept == replace(first, conflict=True)  # content and provenance of the first copy
    [by_actor] = _stored_events(storage.actor_access, first.user)
    assert by_actor.conflict
    assert by_actor.client_ip == first.client_ip
    [conflict] = full_scan(storage.record_conflicts)
    assert conflict["RecordId"] == "r1"
    assert conflict["FirstSourceBlob"] == "Audit.Exchange/a.json.gz"
    assert conflict["FirstContentSha256"] == first.content_sha256()
    assert conflict["SourceBlob"] == "import/c.gz"
    assert conflict["ContentSha256"] == rewritten.content_sha256()


def test_upsert_entities_splits_one_partition_into_transactions_of_at_most_100(storage: Storage) -> None:
    spy = SpyTable(storage.mailbox_access.client)
    start = datetime(2026, 11, 18, tzinfo=UTC)
    events = [make_event(timestamp=start + timedelta(seconds=n), record_id=f"r{n:03d}") for n in range(250)]

    written = tables.upsert_entities(spy.client, [MailboxAccessTable.to_entity(e) for e in events])

    assert written == 250
    assert [len(batch) for batch in spy.transactions] == [100, 100, 50]
    assert spy.single_upserts == 0
    rows = full_scan(storage.mailbox_access)
    assert [row["RecordId"] for row in rows] == [f"r{n:03d}" for n in range(250)]


def test_upsert_entities_writes_a_partition_of_one_with_a_plain_upsert_and_the_rest_in_transactions(
    storage: Storage,
) -> None:
    spy = SpyTable(storage.actor_access.client)
    start = datetime(2026, 11, 18, tzinfo=UTC)
    sizes = {"alice@contoso.com": 130, "bob@contoso.com": 7, "mallory@evil.example": 1}
    entities = []
    for who, size in sizes.items():
        for n in range(size):
            event = make_event(user=who, timestamp=start + timedelta(minutes=n), record_id=f"{who}-{n}")
            entities.append(ActorAccessTable.to_entity(event))
    entities.reverse()  # interleaving and order must not matter

    assert tables.upsert_entities(spy.client, entities) == 138

    assert sorted(len(batch) for batch in spy.transactions) == [7, 30, 100]
    assert spy.single_upserts == 1  # mallory's one row: no transaction envelope for one entity
    for batch in spy.transactions:
        assert len({entity["PartitionKey"] for entity in batch}) == 1
    rows = full_scan(storage.actor_access)
    counts = {who: sum(1 for row in rows if row["PartitionKey"] == who) for who in sizes}
    assert counts == sizes


def test_upsert_entities_writes_a_record_repeated_in_one_batch_once(storage: Storage) -> None:
    event = make_event()

    written = tables.upsert_entities(storage.mailbox_access.client, [MailboxAccessTable.to_entity(event)] * 3)

    assert written == 1
    assert len(full_scan(storage.mailbox_access)) == 1


T0 = datetime(2026, 11, 18, 10, 0, 0, tzinfo=UTC)


def _store_timeline(storage: Storage) -> list[AccessEvent]:
    offsets = [0, 1, 59, 60, 3600, 3601, 7200]
    events = [make_event(timestamp=T0 + timedelta(seconds=s), record_id=f"t{s:05d}") for s in offsets]
    # Two records in one second sort by record Id; another mailbox in the same time range.
    events += [make_event(timestamp=T0 + timedelta(seconds=60), record_id="t00060-b")]
    events += [make_event(mailbox="bob@contoso.com", timestamp=T0 + timedelta(seconds=s)) for s in offsets]
    scrambled = events[::2] + events[1::2]
    tables.upsert_entities(
        storage.mailbox_access.client, [storage.mailbox_access.to_entity(e) for e in scrambled]
    )
    return events


def _ids(found) -> list[str]:
    return [event.record_id for _, event in found]


def test_query_events_includes_start_excludes_end_and_returns_rowkey_order(storage: Storage) -> None:
    _store_timeline(storage)
    table = storage.mailbox_access

    found = list(table.query_events("alice@contoso.com", T0 + timedelta(seconds=1), T0 + timedelta(hours=1)))

    assert _ids(found) == ["t00001", "t00059", "t00060", "t00060-b"]
    assert [key for key, _ in found] == sorted(key for key, _ in found)
    assert all(event.mailbox == "alice@contoso.com" for _, event in found)


def test_query_events_after_continues_strictly_after_the_given_row_key(storage: Storage) -> None:
    _store_timeline(storage)
    table = storage.mailbox_access
    end = T0 + timedelta(days=1)
    everything = list(table.query_events("alice@contoso.com", T0, end))
    assert len(everything) == 8

    after = everything[3][0]
    rest = list(table.query_events("alice@contoso.com", T0, end, after=after))

    assert rest == everything[4:]


def test_query_events_pages_through_the_service_in_small_pages_without_loss(storage: Storage) -> None:
    _store_timeline(storage)
    table = storage.mailbox_access
    end = T0 + timedelta(days=1)

    small = list(table.query_events("alice@contoso.com", T0, end, page_size=3))

    assert small == list(table.query_events("alice@contoso.com", T0, end))
    assert len(small) == 8


@pytest.mark.parametrize(
    "subject",
    [
        "a' or PartitionKey ne 'x",
        "alice@contoso.com' or PartitionKey ne 'x",
        "' or 1 eq 1 or ''='",
        "x' or RowKey ge '0",
        "alice@contoso.com') or (PartitionKey ne '",
        "alice@contoso.com%27%20or%20true",
    ],
)
def test_filter_injection_as_subject_returns_no_rows_of_other_partitions(
    storage: Storage, subject: str
) -> None:
    _store_timeline(storage)
    table = storage.mailbox_access

    found = list(table.query_events(subject, datetime(2015, 1, 1, tzinfo=UTC), T0 + timedelta(days=1)))

    assert found == []


def test_a_partition_named_like_an_injection_is_matched_literally(storage: Storage) -> None:
    _store_timeline(storage)
    table = storage.mailbox_access
    weird = "a' or PartitionKey ne 'x"
    event = make_event(mailbox=weird, record_id="weird", timestamp=T0)
    tables.upsert_entities(table.client, [table.to_entity(event)])

    found = list(table.query_events(weird, T0, T0 + timedelta(days=1)))

    assert _ids(found) == ["weird"]


def test_store_events_puts_each_event_in_both_tables_keyed_by_mailbox_and_by_user(storage: Storage) -> None:
    events = [
        make_event(record_id="1", user="bob@contoso.com"),
        make_event(record_id="2", user=""),
        make_event(record_id="3", mailbox="dave@contoso.com", user="admin@contoso.com"),
    ]
    assert tables.store_events(storage, events).events == 3

    by_mailbox = {(r["PartitionKey"], r["RecordId"]) for r in full_scan(storage.mailbox_access)}
    by_actor = {(r["PartitionKey"], r["RecordId"]) for r in full_scan(storage.actor_access)}
    assert by_mailbox == {("alice@contoso.com", "1"), ("alice@contoso.com", "2"), ("dave@contoso.com", "3")}
    assert by_actor == {("bob@contoso.com", "1"), (tables.UNKNOWN_ACTOR, "2"), ("admin@contoso.com", "3")}


def test_an_oversized_string_field_is_stored_whole(storage: Storage) -> None:
    huge_client = "Client=WebServices;" + "X" * 40_000
    event = make_event(client_info=huge_client, folders=tuple(f"Folder {n:05d}" for n in range(3_000)))
    tables.store_events(storage, [event])
    [stored] = full_scan(storage.mailbox_access)
    assert "ClientInfo" not in stored  # too long for its own property: in the payload instead
    [back] = _stored_events(storage.mailbox_access, event.mailbox)
    assert back == event


def test_row_keys_of_years_before_1000_keep_the_time_order() -> None:
    early = keys.time_key(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC))
    later = keys.time_key(datetime(1000, 1, 1, tzinfo=UTC))
    assert early == "09991231T235959"
    assert early < later


def test_count_rows_counts_one_partition_after_one_time_through_another_to_the_second(
    storage: Storage,
) -> None:
    table = storage.mailbox_access
    end = T0 + timedelta(hours=24)
    offsets = {"at-start": 0, "just-after-start": 1, "inside": 3600, "at-end": 86_400, "after-end": 86_401}
    events = [make_event(timestamp=T0 + timedelta(seconds=s), record_id=name) for name, s in offsets.items()]
    events.append(make_event(mailbox="bob@contoso.com", timestamp=T0 + timedelta(hours=1), record_id="bob"))
    tables.store_events(storage, events)

    assert table.count_rows("alice@contoso.com", after=T0, through=end) == 3
    assert table.count_rows("bob@contoso.com", after=T0, through=end) == 1
    assert table.count_rows("carol@contoso.com", after=T0, through=end) == 0


def test_rows_in_gives_access_rows_in_range_of_one_partition_or_all_never_overflow_rows(
    storage: Storage,
) -> None:
    table = storage.mailbox_access
    huge = make_event(record_id="huge", timestamp=T0, items=_many_items(12_000, "Payroll"))
    later = make_event(record_id="later", timestamp=T0 + timedelta(hours=1))
    bobs = make_event(record_id="bobs", mailbox="bob@contoso.com", timestamp=T0)
    tables.store_events(storage, [huge, later, bobs])
    assert any(table.is_overflow_row(row) for row in full_scan(table))

    def ids(subject: str | None, start: datetime | None, end: datetime | None) -> list[str]:
        return sorted(row["RecordId"] for row in table.rows_in(subject, start, end))

    assert ids(None, None, None) == ["bobs", "huge", "later"]
    assert ids("alice@contoso.com", None, None) == ["huge", "later"]
    assert ids("alice@contoso.com", T0 + timedelta(seconds=1), None) == ["later"]
    assert ids(None, None, T0 + timedelta(hours=1)) == ["bobs", "huge"]
    assert sorted(table.record_ids()) == ["bobs", "huge", "later"]
    assert sorted(storage.actor_access.record_ids()) == ["bobs", "huge", "later"]


def test_a_conflict_row_is_keyed_by_the_access_row_and_the_new_copys_hash_and_names_both_sources(
    storage: Storage,
) -> None:
    first = make_event(record_id="r/1", source_blob="a.json.gz", source_sha256="a" * 64, source_index=3)
    rewritten = replace(
        first, client_ip="192.0.2.99", source_blob="c.gz", source_sha256="c" * 64, source_index=0
    )
    other = make_event(record_id="r2", mailbox="bob@contoso.com")
    tables.store_events(storage, [first, other])
    detected = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    tables.store_events(storage, [rewritten, replace(other, client_ip="192.0.2.1")], detected)

    row_key = MailboxAccessTable.row_key(first)
    conflicts = storage.record_conflicts
    [alices, _] = sorted(full_scan(conflicts), key=lambda row: row["Mailbox"])
    assert alices == {
        "PartitionKey": "alice@contoso.com",
        "RowKey": f"{row_key}|{rewritten.content_sha256()[:32]}",
        "AccessRowKey": "20261118T021400_r%2F1",
        "RecordId": "r/1",
        "Mailbox": "alice@contoso.com",
        "EventTime": "2026-11-18T02:14:00Z",
        "FirstContentSha256": first.content_sha256(),
        "FirstSourceBlob": "a.json.gz",
        "FirstSourceSha256": "a" * 64,
        "FirstSourceIndex": EntityProperty(3, EdmType.INT64),
        "ContentSha256": rewritten.content_sha256(),
        "SourceBlob": "c.gz",
        "SourceSha256": "c" * 64,
        "SourceIndex": EntityProperty(0, EdmType.INT64),
        "DetectedAt": "2026-11-20T08:00:00Z",
    }
    [listed] = conflicts.listed("alice@contoso.com", first.timestamp, first.timestamp + timedelta(seconds=1))
    assert listed == {name: tables.plain(alices[name]) for name in conflicts.LISTED}
    assert conflicts.listed("alice@contoso.com", first.timestamp + timedelta(seconds=1), None) == []
    assert len(conflicts.listed(None, None, None)) == 2
    assert conflicts.detection_times(limit=5) == ["2026-11-20T08:00:00Z"] * 2
    assert len(conflicts.detection_times(limit=1)) == 1


class CountingTable:
    """Forwards every call to a real TableClient, counting the calls by name (Azurite answers all)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        self.calls[name] = self.calls.get(name, 0) + 1
        return getattr(self.table, name)


def _row(n: int, content: str, blob: str) -> dict[str, Any]:
    return {
        "PartitionKey": "p",
        "RowKey": f"{n:03d}",
        "ContentSha256": content,
        "SourceBlob": blob,
        "SourceSha256": "0" * 64,
        "SourceIndex": n,
    }


def test_a_batch_partly_stored_is_settled_from_batched_reads_and_the_rest_inserted_in_one_transaction(
    storage: Storage,
) -> None:
    table = storage.mailbox_access.client
    tables.insert_rows(table, [_row(n, "same", "first.json") for n in range(60)])
    again = [_row(n, "same" if n < 50 else "other", "second.json") for n in range(100)]
    counting = CountingTable(table)

    result = tables.insert_rows(cast(Any, counting), again)

    assert (result.inserted, result.duplicates, len(result.conflicts)) == (40, 50, 10)
    assert sorted(key for _, key in result.inserted_keys) == [f"{n:03d}" for n in range(60, 100)]
    assert {existing.source_blob for _, existing in result.conflicts} == {"first.json"}
    assert "create_entity" not in counting.calls  # no row went one by one
    assert counting.calls["submit_transaction"] == 2  # the batch, then the rows not stored
    stored = {row["RowKey"]: row for row in table.list_entities()}
    assert len(stored) == 100
    assert all(stored[f"{n:03d}"]["SourceBlob"] == "first.json" for n in range(60))  # first copy wins


def test_compare_off_returns_every_stored_row_as_a_conflict_and_inserts_the_others(storage: Storage) -> None:
    table = storage.mailbox_access.client
    tables.insert_rows(table, [_row(n, "same", "first.json") for n in range(0, 30, 3)])

    result = tables.insert_rows(table, [_row(n, "same", "second.json") for n in range(30)], compare=False)

    assert result.inserted == 20
    assert sorted(entity["RowKey"] for entity, _ in result.conflicts) == [f"{n:03d}" for n in range(0, 30, 3)]


def test_compare_off_gives_back_the_asked_columns_of_the_stored_rows_it_read_to_settle_a_batch(
    storage: Storage,
) -> None:
    table = storage.mailbox_access.client
    tables.insert_rows(table, [_row(n, "same", "first.json") for n in range(0, 30, 3)])

    result = tables.insert_rows(
        table, [_row(n, "other", "second.json") for n in range(30)], compare=False, select=["SourceBlob"]
    )

    assert sorted(key for _, key in result.stored) == [f"{n:03d}" for n in range(0, 30, 3)]
    assert {row["SourceBlob"] for row in result.stored.values()} == {"first.json"}
    assert all(row.metadata["etag"] for row in result.stored.values())  # for a conditional write

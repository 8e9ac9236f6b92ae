"""import -> queue -> process -> tables, end to end against a real Azurite."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from bench.requests import RequestTally, counted_storage
from shared.ingest import pieces, pipeline
from shared.ingest.verify import verify
from shared.parse import readers
from shared.parse.events import events_from_path
from shared.storage import (
    CONTENT_QUEUE,
    POISON_QUEUE,
    Storage,
    raw_store,
)
from shared.storage.context_index import ContextIndexTable
from shared.storage.raw_store import IntegrityError, RawPointer
from tests.helpers import (
    SAMPLE,
    blob_names,
    expected_keys,
    full_scan,
    keys_of,
    mia_record,
    sample_mia_records,
    sample_records,
    scan_all,
    write_json_array,
    write_json_lines,
)

pytestmark = pytest.mark.integration


def _queue_depth(storage: Storage, name: str) -> int:
    properties = storage.queues.get_queue_client(name).get_queue_properties()
    assert properties.approximate_message_count is not None
    return properties.approximate_message_count


def _import_and_drain(storage: Storage, path: Path) -> list[pipeline.ProcessResult]:
    pipeline.import_file(storage, path)
    return pipeline.drain_queue(storage)


def test_sample_import_then_drain_gives_exactly_one_row_per_distinct_record(storage: Storage) -> None:
    distinct = sample_mia_records()
    assert len(distinct) == 56  # 57 MailItemsAccessed rows in the CSV, one exported twice

    [result] = _import_and_drain(storage, SAMPLE)

    mailbox_rows = full_scan(storage.mailbox_access)
    actor_rows = full_scan(storage.actor_access)
    assert keys_of(mailbox_rows) == expected_keys("mailbox")
    assert keys_of(actor_rows) == expected_keys("actor")
    assert len(mailbox_rows) == len(actor_rows) == 56
    assert result.as_dict() == {
        "blob": result.blob,
        "rows": 56,
        "inserted": 56,
        "conflicts": 0,
        "records": 67,
        "events": 57,
        "other_operations": 10,
        "malformed": 0,
        # 165 distinct (mailbox, message) pairs, 120 named with a subject somewhere in the export;
        # no Graph here, so the other 45 are left for a report or a resolving run.
        "subjects": {
            "messages": 165,
            "audit": 120,
            "cached": 0,
            "graph": 0,
            "trace": 0,
            "unresolved": 0,
            "deferred": 0,
            "graph_requests": 0,
            "trace_requests": 0,
            "denied": 0,
        },
        "lookups_queued": 0,
    }
    assert _queue_depth(storage, CONTENT_QUEUE) == 0
    assert _queue_depth(storage, POISON_QUEUE) == 0


def test_sample_rows_carry_the_decoded_fields_of_their_records(storage: Storage) -> None:
    _import_and_drain(storage, SAMPLE)

    rows = {row["RecordId"]: row for row in full_scan(storage.mailbox_access)}
    for record in sample_mia_records():
        row = rows[record["Id"]]
        assert row["EventTime"] == record["CreationTime"] + "Z"
        assert row["Mailbox"] == record["MailboxOwnerUPN"].lower()
        assert row["User"] == record["UserId"].lower()
        assert row["SessionId"] == record["SessionId"]
        assert row["OriginatingServer"] == record["OriginatingServer"].strip()
        access = {p["Name"]: p["Value"] for p in record["OperationProperties"]}
        assert row["Access"] == access["MailAccessType"]
        assert row["Throttled"] is (access["IsThrottled"] == "True")
    attacker = [row for row in rows.values() if row["ClientIP"] == "185.220.101.45"]
    assert len(attacker) == 9  # 8 Graph binds (IP with port in the source) + 1 sync
    assert {row["Access"] for row in attacker} == {"Bind", "Sync"}
    assert sum(1 for row in rows.values() if row["Throttled"]) == 1


def test_importing_the_same_file_again_adds_no_rows_and_changes_no_entity(storage: Storage) -> None:
    _import_and_drain(storage, SAMPLE)
    before = scan_all(storage)
    blobs_before = blob_names(storage)

    again = pipeline.import_file(storage, SAMPLE)
    results = pipeline.drain_queue(storage)

    assert again.stored is False
    assert len(results) == 1  # re-announced and re-processed, harmlessly
    assert blob_names(storage) == blobs_before
    assert scan_all(storage) == before


@pytest.mark.parametrize(
    ("writer", "fmt"),
    [(write_json_array, "management-api"), (write_json_lines, "jsonl")],
    ids=["management-api", "jsonl"],
)
def test_the_same_records_in_another_format_add_no_rows_and_change_no_entity(
    storage: Storage, tmp_path: Path, writer, fmt: str
) -> None:
    _import_and_drain(storage, SAMPLE)
    before = scan_all(storage)
    other = writer(tmp_path / "same-records", sample_records())

    result = pipeline.import_file(storage, other)
    [processed] = pipeline.drain_queue(storage)

    assert result.format == fmt
    assert result.stored is True
    assert len(blob_names(storage)) == 2  # both files kept as evidence
    assert processed.stats.events == 57
    assert scan_all(storage) == before


def test_the_other_formats_alone_give_the_same_rows_as_the_csv(storage: Storage, tmp_path: Path) -> None:
    _import_and_drain(storage, write_json_lines(tmp_path / "records.jsonl", sample_records()))
    from_jsonl = scan_all(storage)
    for table in (storage.mailbox_access, storage.actor_access):
        table.client.delete_table()
        table.client.create_table()

    _import_and_drain(storage, SAMPLE)

    # The same content; each row names the file it came from.
    assert _without_provenance(scan_all(storage)) == _without_provenance(from_jsonl)
    assert {row["SourceBlob"] for row in full_scan(storage.mailbox_access)} == set(blob_names(storage)) - {
        row["SourceBlob"] for row in from_jsonl["mailbox"]
    }


def _without_provenance(scan: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    drop = {"SourceBlob", "SourceSha256", "SourceIndex"}
    return {
        table: [{k: v for k, v in row.items() if k not in drop} for row in rows]
        for table, rows in scan.items()
    }


def test_processing_the_same_pointer_twice_changes_nothing(storage: Storage) -> None:
    result = pipeline.import_file(storage, SAMPLE)
    body = RawPointer(blob=result.blob, sha256=result.sha256, format=result.format).encode()
    first = pipeline.process_pointer(storage, body)
    after_first = scan_all(storage)

    second = pipeline.process_pointer(storage, body.encode())

    assert scan_all(storage) == after_first
    assert second.as_dict() == {**first.as_dict(), "inserted": 0}  # every row was there
    assert keys_of(after_first["mailbox"]) == expected_keys("mailbox")


def test_malformed_records_in_the_middle_are_counted_and_the_rest_is_processed(
    storage: Storage, tmp_path: Path
) -> None:
    good = [mia_record(f"2026-11-18T0{n}:00:00", f"good-{n}") for n in range(4)]
    lines = [
        json.dumps(good[0]),
        json.dumps(good[1]),
        "{this is not json",
        json.dumps(mia_record("yesterday-ish", "bad-time")),
        json.dumps(mia_record("2026-11-18T05:00:00", "no-mailbox", MailboxOwnerUPN="")),
        json.dumps([1, 2, 3]),
        json.dumps({"Operation": "Send", "Id": "other-op", "CreationTime": "2026-11-18T06:00:00"}),
        json.dumps(good[2]),
        "",
        json.dumps(good[3]),
    ]
    path = tmp_path / "damaged.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    [result] = _import_and_drain(storage, path)

    assert result.stats.as_dict() == {"records": 9, "events": 4, "other_operations": 1, "malformed": 4}
    assert result.stats.malformed_positions == ["line 3", "line 4", "line 5", "line 6"]
    assert sorted(row["RecordId"] for row in full_scan(storage.mailbox_access)) == [
        "good-0",
        "good-1",
        "good-2",
        "good-3",
    ]


def test_a_csv_row_with_broken_audit_data_is_counted_and_the_other_rows_are_processed(
    storage: Storage, tmp_path: Path
) -> None:
    lines = SAMPLE.read_bytes().decode("utf-8-sig").split("\r\n")
    ids = [record["Id"] for record in sample_records()]
    # A row in the middle whose record appears once: its AuditData cell loses a quote (bad JSON).
    index = next(
        i for i in range(5, len(lines)) if "MailItemsAccessed" in lines[i] and ids.count(ids[i - 1]) == 1
    )
    damaged_id = ids[index - 1]
    lines[index] = lines[index].replace('""Operation"": ""MailItemsAccessed""', '""Operation"": ""x', 1)
    path = tmp_path / "damaged.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines)).encode())

    [result] = _import_and_drain(storage, path)

    assert result.stats.malformed == 1
    assert result.stats.malformed_positions == [f"CSV row {index + 1}"]
    assert result.stats.records == 67
    expected = {key for key in expected_keys("mailbox") if not key[1].endswith("_" + damaged_id)}
    assert len(expected) == 55
    assert keys_of(full_scan(storage.mailbox_access)) == expected


def test_a_pointer_to_a_missing_blob_raises(storage: Storage) -> None:
    body = RawPointer(blob="import/missing.gz", sha256="0" * 64, format="jsonl").encode()

    with pytest.raises(ResourceNotFoundError):
        pipeline.process_pointer(storage, body)


def test_a_pointer_with_a_wrong_sha256_raises_and_writes_nothing(storage: Storage) -> None:
    result = pipeline.import_file(storage, SAMPLE)
    body = RawPointer(blob=result.blob, sha256="f" * 64, format=result.format).encode()

    with pytest.raises(IntegrityError):
        pipeline.process_pointer(storage, body)

    assert scan_all(storage) == {"mailbox": [], "actor": []}


def _plain_messages(storage: Storage, queue: str) -> list[str]:
    """Decoded bodies of every message on a queue (peeked: they stay there)."""
    client = storage.queues.get_queue_client(queue)
    return [base64.b64decode(m.content).decode() for m in client.peek_messages(max_messages=32)]


@pytest.mark.parametrize("fault", ["missing-blob", "wrong-sha256", "not-a-pointer"])
def test_a_failing_message_moves_to_the_poison_queue_after_five_attempts(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    _import_and_drain(storage, SAMPLE)
    before = scan_all(storage)
    digest = raw_store.sha256_hex(SAMPLE.read_bytes())
    body = {
        "missing-blob": RawPointer("import/missing.gz", "0" * 64, "jsonl").encode(),
        "wrong-sha256": RawPointer(raw_store.import_blob_name(digest), "e" * 64, "csv-auditdata").encode(),
        "not-a-pointer": "hello, queue",
    }[fault]
    queue = raw_store.content_queue(storage.queues)
    queue.send_message(body)
    attempts: list[int] = []
    original = pipeline.process_pointer

    def counting(storage_: Storage, body_: bytes | str, *rest: Any, **named: Any) -> pipeline.ProcessResult:
        attempts.append(1)
        return original(storage_, body_, *rest, **named)

    monkeypatch.setattr(pipeline, "process_pointer", counting)
    results = pipeline.drain_queue(storage)

    assert results == []
    assert len(attempts) == pipeline.MAX_DEQUEUE_COUNT == 5
    assert _plain_messages(storage, POISON_QUEUE) == [body]
    assert _queue_depth(storage, CONTENT_QUEUE) == 0
    assert scan_all(storage) == before


def test_a_poisoned_message_does_not_hold_back_the_good_ones(storage: Storage) -> None:
    queue = raw_store.content_queue(storage.queues)
    queue.send_message(RawPointer("import/missing.gz", "0" * 64, "jsonl").encode())
    pipeline.import_file(storage, SAMPLE)

    results = pipeline.drain_queue(storage)

    assert len(results) == 1
    assert keys_of(full_scan(storage.mailbox_access)) == expected_keys("mailbox")
    assert len(_plain_messages(storage, POISON_QUEUE)) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"name,value\nx,1\n",
        b"\xff\xfe\x00\xd8",
    ],
    ids=["empty", "text", "png", "csv-without-auditdata", "broken-utf16"],
)
def test_an_unknown_file_format_is_rejected_at_import_and_nothing_is_stored(
    storage: Storage, data: bytes
) -> None:
    with pytest.raises(readers.UnknownFormat, match="not a recognised audit export"):
        pipeline.import_bytes(storage, data, "mystery.bin")

    assert blob_names(storage) == []
    assert _queue_depth(storage, CONTENT_QUEUE) == 0


def test_numbers_past_int32_are_kept_and_past_int64_are_named_as_repaired_never_poisoning_the_blob(
    storage: Storage, tmp_path: Path
) -> None:
    big_item = {
        "InternetMessageId": "<big@contoso.com>",
        "Subject": "Backup.pst",
        "SizeInBytes": 3_000_000_000,
    }
    records = [
        mia_record("2026-11-18T01:00:00", "normal"),
        mia_record("2026-11-18T02:00:00", "absurd", OperationCount=2**40),
        mia_record("2026-11-18T02:30:00", "big", Folders=[{"Path": "\\Inbox", "FolderItems": [big_item]}]),
        mia_record("2026-11-18T02:45:00", "beyond", OperationCount=2**70),
        mia_record("2026-11-18T03:00:00", "after"),
    ]

    [result] = _import_and_drain(storage, write_json_array(tmp_path / "content.json", records))

    assert result.stats.events == 5
    rows = {row["RecordId"]: row for row in full_scan(storage.mailbox_access)}
    assert sorted(rows) == ["absurd", "after", "beyond", "big", "normal"]
    assert rows["normal"]["OperationCount"].value == 1
    assert rows["absurd"]["OperationCount"].value == 2**40
    assert "OperationCount" not in rows["beyond"]
    assert json.loads(rows["beyond"]["Repaired"]) == ["OperationCount"]
    [indexed] = [row for row in full_scan(storage.message_index) if row["Subject"] == "Backup.pst"]
    assert indexed["SizeInBytes"].value == 3_000_000_000
    assert _queue_depth(storage, POISON_QUEUE) == 0


SENTINEL = Path(__file__).parents[1] / "parse" / "fixtures" / "sentinel"


def test_a_sentinel_row_saying_something_else_about_a_stored_record_is_a_conflict_not_a_row(
    storage: Storage, tmp_path: Path
) -> None:
    _import_and_drain(storage, SENTINEL / "auditdata-same-records.json")
    before = {row["RecordId"]: row for row in full_scan(storage.mailbox_access)}
    changed = tmp_path / "officeactivity-changed.csv"
    changed.write_bytes((SENTINEL / "officeactivity-export.csv").read_bytes().replace(b",Owner,", b",1,"))

    imported = pipeline.import_file(storage, changed)
    [result] = pipeline.drain_queue(storage)

    assert imported.format == readers.SENTINEL_CSV
    assert (result.inserted, result.conflicts, result.stats.events) == (0, 1, 2)
    after = {row["RecordId"]: row for row in full_scan(storage.mailbox_access)}
    assert after.keys() == before.keys()
    bind = "7d3c1e0a-5b1f-4a8e-9c2d-3e4f5a6b7c81"
    assert after[bind]["LogonType"] == "Owner"  # the first copy is kept, and flagged
    assert after[bind]["SourceBlob"] == before[bind]["SourceBlob"]
    assert after[bind]["Conflict"] is True
    [conflict] = storage.record_conflicts.client.list_entities()
    assert bind in str(dict(conflict))


def _first_copies() -> dict[str, int]:
    """Record Id -> position of its first copy in the sample, as the whole file gives them."""
    first: dict[str, int] = {}
    for event in events_from_path(SAMPLE, SAMPLE.name):
        assert event.source_index is not None
        first.setdefault(event.record_id, event.source_index)
    return first


def test_a_file_imported_in_pieces_gives_the_whole_files_rows_and_verifies(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pieces, "PIECE_RECORDS", 5)
    imported = pipeline.import_file(storage, SAMPLE)
    results = pipeline.drain_queue(storage)

    assert imported.pieces == len(results) == 14  # 67 records, 5 a piece
    assert sum(result.stats.records for result in results) == 67
    assert {result.blob.partition("#")[0] for result in results} == {imported.blob}
    rows = full_scan(storage.mailbox_access)
    assert keys_of(rows) == expected_keys("mailbox")
    assert {row["SourceBlob"] for row in rows} == {imported.blob}
    assert {row["RecordId"]: row["SourceIndex"].value for row in rows} == _first_copies()
    checked = verify(storage)
    assert checked.mismatches == []
    assert (checked.rows_checked, checked.blobs_verified) == (112, 1)  # both tables, one source blob


def test_a_piece_whose_bytes_are_not_what_its_pointer_says_is_refused_and_writes_nothing(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pieces, "PIECE_RECORDS", 20)
    pipeline.import_file(storage, SAMPLE)
    body = _plain_messages(storage, CONTENT_QUEUE)[1]
    pointer = RawPointer.decode(body)
    assert pointer.piece is not None
    shifted = replace(pointer, piece=replace(pointer.piece, start=pointer.piece.start + 1))

    with pytest.raises(IntegrityError, match="the piece's bytes hash to"):
        pipeline.process_pointer(storage, shifted.encode())

    assert scan_all(storage) == {"mailbox": [], "actor": []}


def test_processing_the_same_pointer_again_writes_nothing_but_the_blobs_own_context_index_rows(
    azurite: str, storage: Storage
) -> None:
    result = pipeline.import_file(storage, SAMPLE)
    body = RawPointer(blob=result.blob, sha256=result.sha256, format=result.format).encode()
    first = pipeline.process_pointer(storage, body)
    index_rows = full_scan(storage.context_index)
    tally = RequestTally()

    pipeline.process_pointer(counted_storage(azurite, tally), body)

    # Counted at the transport: every access row, subject and baseline row is found stored and
    # left as it is; the context index upserts the rows this blob owns again, with the same values
    # (how a retry repairs an index a crash left partial), and nothing else is written.
    assert first.alerts  # raised the first time, found raised this time
    assert tally.entities_written == {ContextIndexTable.NAME: len(index_rows)}
    assert full_scan(storage.context_index) == index_rows

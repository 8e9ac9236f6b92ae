"""bench/export.py: the generated Purview export is one our reader takes row for row, its records
in sessions, and its summary tells the truth about it."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections import defaultdict
from pathlib import Path

import pytest

from bench.export import ExportSummary, write_export
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from shared.parse.readers import CSV_AUDITDATA, PURVIEW_COLUMNS, read_records

pytestmark = pytest.mark.unit

SIZE = 400_000


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> ExportSummary:
    return write_export(tmp_path_factory.mktemp("export") / "export.csv", SIZE, seed=7)


def test_export_is_a_bom_prefixed_fully_quoted_purview_csv(export: ExportSummary) -> None:
    data = export.path.read_bytes()
    assert data.startswith(codecs.BOM_UTF8 + b'"RecordId","CreationDate"')
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == PURVIEW_COLUMNS
    assert all(len(row) == len(PURVIEW_COLUMNS) for row in rows[1:])
    assert len(rows) - 1 == export.rows


def test_export_size_and_hash_are_those_of_the_file(export: ExportSummary) -> None:
    data = export.path.read_bytes()
    assert export.bytes == len(data) >= SIZE
    assert export.sha256 == hashlib.sha256(data).hexdigest()


def test_our_reader_reads_every_row_as_a_record(export: ExportSummary) -> None:
    fmt, records = read_records(export.path.read_bytes())
    read = list(records)
    assert fmt == CSV_AUDITDATA
    assert len(read) == export.rows
    assert not [record.error for record in read if record.error]


def test_summary_counts_the_rows_distinct_records_repeats_and_sessions(export: ExportSummary) -> None:
    stats = ParseStats()
    events = list(events_from_bytes(export.path.read_bytes(), "export", stats=stats))
    assert stats.malformed == 0
    assert stats.records == export.rows
    assert export.rows - export.records == export.repeated_rows > 0
    assert len({event.record_id for event in events}) == export.mail_items_accessed < export.records
    assert len({event.session_id for event in events}) == export.sessions > 1
    assert len({event.mailbox for event in events}) > 20


def test_sessions_have_one_mailbox_at_most_two_addresses_and_several_records(export: ExportSummary) -> None:
    events = list(events_from_bytes(export.path.read_bytes(), "export"))
    mailboxes: dict[str, set[str]] = defaultdict(set)
    addresses: dict[str, set[str]] = defaultdict(set)
    records: dict[str, set[str]] = defaultdict(set)
    for event in events:
        mailboxes[event.session_id].add(event.mailbox)
        addresses[event.session_id].add(event.client_ip)
        records[event.session_id].add(event.record_id)
    assert all(len(found) == 1 for found in mailboxes.values())
    assert all(len(found) <= 2 for found in addresses.values())
    assert sum(len(found) for found in records.values()) / len(records) > 5
    assert {event.access for event in events} == {"Bind", "Sync"}


def test_the_same_seed_writes_the_same_file(export: ExportSummary, tmp_path: Path) -> None:
    again = write_export(tmp_path / "again.csv", SIZE, seed=7)
    other = write_export(tmp_path / "other.csv", SIZE, seed=8)
    assert again.sha256 == export.sha256
    assert other.sha256 != export.sha256

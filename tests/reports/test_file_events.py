"""shared/reports/file_events.py: the events of export files, read by a pool of processes in
parts, are exactly what one reader going through the files in order gives: the first copy of each
record, in time order, its conflicts, positions, counts and the messages the records name."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mia import cli
from shared.model.event import AccessEvent
from shared.model.message_info import MessageObserver
from shared.parse import split
from shared.parse.events import file_sha256
from shared.parse.normalize import ParseStats
from shared.reports import assemble, file_events
from shared.reports.request import ReportQuery, parse_file_report_request
from shared.settings import ReportSettings
from tests.helpers import SAMPLE, sample_mia_records, write_json_lines, write_purview_export
from tests.records_factory import folder, folder_item, mail_items_accessed, other_operation

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def whole_files_query(**parameters: str) -> ReportQuery:
    return parse_file_report_request(None, parameters, ReportSettings(), NOW)


def record(number: int, **fields: object) -> dict[str, object]:
    return mail_items_accessed(
        Id=f"record-{number:05d}",
        CreationTime=f"2026-11-{1 + number % 28:02d}T{number % 24:02d}:15:{number % 60:02d}",
        SessionId=f"session-{number % 7}",
        Folders=[folder("\\Inbox", folder_item(f"<m{number % 50}@contoso.com>", subject=f"s{number % 9}"))],
        **fields,
    )


def export_with_copies(tmp_path: Path) -> list[Path]:
    """A large CSV with repeats far apart (so in other parts), a later copy that says something
    else, a copy that says less (no OperationCount), a malformed row and other operations; then a
    JSON Lines file repeating some of its records."""
    rows: list[tuple[dict[str, object], str, bool]] = []
    for number in range(400):
        rows.append((record(number), "", number % 5 == 0))
        if number % 40 == 39:
            rows.append((other_operation(), "", False))
    rows += [(record(3), "", False), (record(10, ClientIPAddress="198.51.100.77"), "", True)]
    rows += [(record(20, OperationCount=None), "", False)]
    csv_path = write_purview_export(tmp_path / "export.csv", rows)
    with csv_path.open("ab") as out:  # a row whose AuditData is not JSON
        out.write(b'id,2026-11-18T09:15:42,50,MailItemsAccessed,alice,"{not json",,\r\n')
    jsonl = write_json_lines(tmp_path / "again.jsonl", [record(5), record(399), record(400)])
    return [csv_path, jsonl]


def read(
    paths: list[Path], query: ReportQuery, workers: int, part_bytes: int | None = None
) -> tuple[list[AccessEvent], ParseStats, MessageObserver, file_events.FileEvents]:
    stats, observer = ParseStats(), MessageObserver()
    events = file_events.FileEvents(paths, query, stats, observer, workers=workers, part_bytes=part_bytes)
    found = list(events)
    events.close()
    return found, stats, observer, events


def test_parts_read_by_a_pool_give_exactly_what_one_reader_gives(tmp_path: Path) -> None:
    paths = export_with_copies(tmp_path)
    query = whole_files_query()

    alone, alone_stats, alone_observer, one = read(paths, query, workers=1)
    pooled, pooled_stats, pooled_observer, many = read(paths, query, workers=3, part_bytes=20_000)

    assert len(split.cut(paths[0], 3, 20_000)) == 3
    assert pooled == alone
    assert pooled == sorted(alone, key=lambda e: (e.timestamp, e.record_id))
    assert [e.record_id for e in pooled if e.conflict] == ["record-00010"]
    assert len(pooled) == len(many) == len(one) == 401
    assert (many.first_seen, many.last_seen) == (one.first_seen, one.last_seen)
    assert pooled_stats == alone_stats
    assert alone_stats.malformed == 1
    assert alone_stats.other_operations == 10
    assert pooled_observer.messages == alone_observer.messages


def test_a_file_given_twice_is_read_twice_and_its_records_kept_once(tmp_path: Path) -> None:
    export = export_with_copies(tmp_path)[0]
    query = whole_files_query()

    once, once_stats, _, _ = read([export], query, workers=1)
    alone, alone_stats, _, _ = read([export, export], query, workers=1)
    pooled, pooled_stats, _, _ = read([export, export], query, workers=3, part_bytes=20_000)

    assert pooled == alone == once
    assert pooled_stats == alone_stats
    assert alone_stats.records == 2 * once_stats.records


def test_each_event_names_its_files_position_and_hash(tmp_path: Path) -> None:
    paths = export_with_copies(tmp_path)
    pooled, _, _, _ = read(paths, whole_files_query(), workers=2, part_bytes=20_000)

    by_id = {event.record_id: event for event in pooled}
    assert by_id["record-00003"].source_blob == str(paths[0])
    assert by_id["record-00399"].source_index == 399 + 9  # nine other operations come before it
    assert by_id["record-00400"].source_blob == str(paths[1])
    assert by_id["record-00400"].source_index == 2
    assert {event.source_sha256 for event in pooled} == {file_sha256(path) for path in paths}


def test_a_file_whose_cut_is_not_proved_is_read_again_whole(tmp_path: Path) -> None:
    # A stray quote in an unquoted cell: the cuts land inside indented AuditData cells.
    path = write_purview_export(tmp_path / "export.csv", [(record(n), "", True) for n in range(200)])
    data = path.read_bytes()
    header_end = data.index(b"\r\n") + 2
    path.write_bytes(data[:header_end] + b'stray"quote,,,,,,,\r\n' + data[header_end:])
    query = whole_files_query()

    alone, alone_stats, _, _ = read([path], query, workers=1)
    pooled, pooled_stats, _, _ = read([path], query, workers=3, part_bytes=10_000)

    assert len(alone) == 200
    assert pooled == alone
    assert pooled_stats == alone_stats


def test_the_query_and_its_filters_are_applied_by_every_reader(tmp_path: Path) -> None:
    paths = export_with_copies(tmp_path)
    query = whole_files_query(session="session-3")

    alone, _, _, _ = read(paths, query, workers=1)
    pooled, _, _, _ = read(paths, query, workers=2, part_bytes=20_000)

    assert pooled == alone
    assert {event.session_id for event in pooled} == {"session-3"}


def test_file_events_spilled_in_sorted_runs_are_the_events_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = sample_mia_records()
    changed = {**records[5], "ClientIPAddress": "198.51.100.77"}  # a later copy saying something else
    again = tmp_path / "again.jsonl"
    again.write_text("".join(json.dumps(r) + "\n" for r in (records[3], changed)), encoding="utf-8")
    query = whole_files_query()
    paths = [SAMPLE, again]
    held = file_events.FileEvents(paths, query, ParseStats())
    monkeypatch.setattr(file_events, "SPILL_EVENTS", 4)
    spilled = file_events.FileEvents(paths, query, ParseStats())

    runs = [run for part in spilled._reads for run in part.runs]
    assert len(runs) > 14  # 56 first copies and their repeats, 4 a run
    assert all(len(events) <= 4 for events in map(run_events, runs))
    assert list(spilled) == list(held) == sorted(list(held), key=lambda e: (e.timestamp, e.record_id))
    assert [e.record_id for e in spilled if e.conflict] == [records[5]["Id"]]
    assert list(spilled) == list(spilled)  # iterable again (a workbook reads it once a sheet)
    assert assemble.within_the_files(query, spilled) == assemble.within_the_files(query, list(held))
    spilled.close()
    held.close()
    assert not Path(spilled._directory.name).exists()


def run_events(run: str) -> list[object]:
    found: list[object] = []
    with open(run, "rb") as handle:
        while True:
            try:
                found.extend(pickle.load(handle))  # noqa: S301  # a run this test's report wrote
            except EOFError:
                return found


def test_mia_report_reads_with_the_workers_asked_and_refuses_a_bad_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(path) for path in export_with_copies(tmp_path)]
    monkeypatch.setattr(file_events, "PART_BYTES", 20_000)  # so three workers read three parts
    assert cli.main(["report", "--input", *paths, "--view", "sessions", "--workers", "1"]) == 0
    alone = capsys.readouterr().out
    assert cli.main(["report", "--input", *paths, "--view", "sessions", "--workers", "3"]) == 0
    assert capsys.readouterr().out == alone
    assert alone.count("session-") == 7

    with pytest.raises(SystemExit) as refused:
        cli.main(["report", "--input", *paths, "--workers", "0"])
    assert refused.value.code == 2
    assert "expected a whole number of processes, at least 1, got '0'" in capsys.readouterr().err


def test_mia_report_from_files_loads_no_storage_sdk() -> None:
    # A report from files needs no storage: the CLI imports the SDKs only in the commands that do.
    script = (
        "import sys; from mia import cli; "
        f"code = cli.main(['report', '--input', {str(SAMPLE)!r}, '-o', {os.devnull!r}]); "
        "loaded = sorted(name for name in sys.modules if name.startswith(('azure.', 'tqdm', 'xlsxwriter'))); "
        "print(code, loaded)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "0 []"

"""Reports from storage and straight from export files agree; stored reports page without loss."""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from mia import cli
from shared.ingest import pipeline
from shared.model.event import EVENT_COLUMNS, AccessEvent
from shared.parse.normalize import ParseStats
from shared.reports import assemble, file_events
from shared.reports.budget import WorkBudget
from shared.reports.request import ReportQuery, parse_file_report_request, parse_report_request
from shared.reports.views import EVENT_VIEW_COLUMNS, EXPOSURE_COLUMNS, MAILBOX_COLUMNS, SESSION_COLUMNS, VIEWS
from shared.settings import ReportSettings
from shared.storage import Storage, raw_store
from shared.storage.tables import AccessTable
from tests.helpers import (
    SAMPLE,
    SAMPLE_FROM,
    SAMPLE_TO,
    mia_record,
    parse_csv,
    records_for,
    sample_mia_records,
    write_json_lines,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def loaded(function_env: Storage) -> Storage:
    """The sample imported and processed; AzureWebJobsStorage points at it for the CLI."""
    pipeline.import_file(function_env, SAMPLE)
    pipeline.drain_queue(function_env)
    return function_env


def _mia(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _as_stored(report_text: str, path: Path) -> str:
    """A report from `path` as the same report from storage: identical, but for rows naming the
    file where stored rows name the blob that holds its bytes (with the same SHA-256 and index)."""
    stored = raw_store.import_blob_name(raw_store.sha256_hex(path.read_bytes()))
    return report_text.replace(str(path), stored)


def _without_provenance(json_report: str) -> list[dict[str, object]]:
    drop = {"SourceBlob", "SourceSha256", "SourceIndex"}
    return [{k: v for k, v in row.items() if k not in drop} for row in json.loads(json_report)]


CASES = [
    ("alice@contoso.com", "mailbox", SAMPLE_FROM, SAMPLE_TO),
    ("alice@contoso.com", "mailbox", "2026-11-18T02:15:00", "2026-11-18T02:40:00"),
    ("finance@contoso.com", "mailbox", SAMPLE_FROM, SAMPLE_TO),
    ("dave@contoso.com", "mailbox", SAMPLE_FROM, SAMPLE_TO),
    ("bob@contoso.com", "actor", SAMPLE_FROM, SAMPLE_TO),
    ("admin@contoso.com", "actor", SAMPLE_FROM, SAMPLE_TO),
    ("Alice@Contoso.com", "actor", "2026-11-17", "2026-11-18"),
]


@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize(("subject", "by", "start", "end"), CASES)
def test_report_from_storage_and_from_the_export_file_are_identical(
    loaded: Storage,
    capsys: pytest.CaptureFixture[str],
    view: str,
    subject: str,
    by: str,
    start: str,
    end: str,
) -> None:
    args = ["report", subject, "--by", by, "--view", view, "--from", start, "--to", end]

    from_storage = _mia(capsys, *args)
    from_file = _mia(capsys, *args, "--input", str(SAMPLE))

    assert from_storage == _as_stored(from_file, SAMPLE)
    rows = parse_csv(from_storage)
    assert tuple(rows[0]) == VIEWS[view][0]
    if view == "events" and start == SAMPLE_FROM:
        expected = records_for(subject.lower(), by)
        assert [row[EVENT_COLUMNS.index("RecordId")] for row in rows[1:]] == [r["Id"] for r in expected]


def test_json_reports_from_storage_and_from_files_are_identical(
    loaded: Storage, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["report", "alice@contoso.com", "--format", "json", "--from", SAMPLE_FROM, "--to", SAMPLE_TO]
    jsonl = write_json_lines(tmp_path / "records.jsonl", [dict(r) for r in records_for("alice@contoso.com")])

    from_storage = _mia(capsys, *args)

    assert from_storage == _as_stored(_mia(capsys, *args, "--input", str(SAMPLE)), SAMPLE)
    # The JSON Lines file comes first, so its copies are the rows' sources there.
    both = _mia(capsys, *args, "--input", str(jsonl), str(SAMPLE))
    assert _without_provenance(from_storage) == _without_provenance(both)
    assert {row["SourceBlob"] for row in json.loads(both)} == {str(jsonl)}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # Attacker records at 02:14:15, 02:16:41, ... 02:28:01 and 02:35:00 (sample story).
        ("2026-11-18T02:14:15.5", "2026-11-18T02:28:01"),
        ("2026-11-18T02:16:40.999", "2026-11-18T02:34:59.5"),
        ("2026-11-18T03:14:15.000001+01:00", "2026-11-18T02:35:00.9Z"),
    ],
)
def test_reports_with_fractional_second_bounds_agree_between_storage_and_files(
    loaded: Storage, capsys: pytest.CaptureFixture[str], start: str, end: str
) -> None:
    args = ["report", "alice@contoso.com", "--from", start, "--to", end]

    from_storage = _mia(capsys, *args)

    assert from_storage == _as_stored(_mia(capsys, *args, "--input", str(SAMPLE)), SAMPLE)
    assert len(parse_csv(from_storage)) > 2


def test_render_page_pages_the_events_view_and_continuation_yields_every_row_once_in_order(
    loaded: Storage,
) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    query = parse_report_request(
        "alice@contoso.com", {"from": SAMPLE_FROM, "to": SAMPLE_TO}, ReportSettings(), now
    )
    table = loaded.access_table(query.by)
    whole = assemble.render_page(table, query, page_rows=1000)
    assert whole.next_after is None
    all_rows = parse_csv(whole.body)[1:]
    assert len(all_rows) == whole.rows == 43

    pages = []
    after = None
    while True:
        page = assemble.render_page(table, dataclasses.replace(query, after=after), page_rows=5)
        pages.append(page)
        if page.next_after is None:
            break
        after = page.next_after

    assert [page.rows for page in pages] == [5] * 8 + [3]
    paged_rows = []
    for page in pages:
        header, *rows = parse_csv(page.body)
        assert tuple(header) == EVENT_VIEW_COLUMNS
        paged_rows += rows
    assert paged_rows == all_rows
    record_ids = [row[EVENT_COLUMNS.index("RecordId")] for row in paged_rows]
    assert record_ids == [r["Id"] for r in records_for("alice@contoso.com")]
    assert len(set(record_ids)) == 43


def test_render_page_of_an_exact_multiple_ends_without_an_empty_page(loaded: Storage) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    query = parse_report_request(
        "finance@contoso.com", {"from": SAMPLE_FROM, "to": SAMPLE_TO}, ReportSettings(), now
    )
    table = loaded.mailbox_access

    first = assemble.render_page(table, query, page_rows=6)
    second = assemble.render_page(table, dataclasses.replace(query, after=first.next_after), page_rows=6)

    assert (first.rows, second.rows, second.next_after) == (6, 6, None)
    assert first.next_after is not None


def _pages_within_three_ticks(table: AccessTable, query: ReportQuery) -> list[assemble.Page]:
    """Every page of `query`, each request with a budget whose deadline passes on its third check."""
    pages = []
    after = None
    while True:
        budget = WorkBudget.starting_now(10**9, 3, clock=functools.partial(next, count()))
        page = assemble.render_page(table, dataclasses.replace(query, after=after), 1000, None, budget)
        pages.append(page)
        if page.next_after is None:
            return pages
        after = page.next_after


def _record_ids(pages: list[assemble.Page]) -> list[str]:
    return [row[EVENT_COLUMNS.index("RecordId")] for page in pages for row in parse_csv(page.body)[1:]]


def test_a_page_past_its_deadline_ends_early_and_its_continuation_loses_nothing(loaded: Storage) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    query = parse_report_request(
        "alice@contoso.com", {"from": SAMPLE_FROM, "to": SAMPLE_TO}, ReportSettings(), now
    )
    table = loaded.access_table(query.by)

    pages = _pages_within_three_ticks(table, query)

    # Three rows read per page: the first unchecked, then two checks before the deadline.
    assert [page.rows for page in pages] == [3] * 14 + [1]
    assert _record_ids(pages) == [r["Id"] for r in records_for("alice@contoso.com")]


def test_a_filtered_page_past_its_deadline_may_be_empty_and_still_goes_on(loaded: Storage) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    params = {"from": SAMPLE_FROM, "to": SAMPLE_TO, "ip": ATTACKER_IP}
    query = parse_report_request("alice@contoso.com", params, ReportSettings(), now)
    table = loaded.access_table(query.by)

    pages = _pages_within_three_ticks(table, query)

    assert any(page.rows == 0 and page.next_after is not None for page in pages)
    whole = assemble.render_page(table, query, page_rows=1000)
    assert whole.next_after is None
    assert whole.rows > 0
    assert _record_ids(pages) == _record_ids([whole])


def test_render_page_of_the_sessions_view_aggregates_the_whole_range_in_one_page(loaded: Storage) -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    params = {"from": SAMPLE_FROM, "to": SAMPLE_TO, "view": "sessions"}
    query = parse_report_request("alice@contoso.com", params, ReportSettings(), now)
    table = loaded.mailbox_access

    page = assemble.render_page(table, query, page_rows=2)

    sessions = {r["SessionId"] for r in records_for("alice@contoso.com")}
    assert page.next_after is None
    assert page.rows == len(sessions) == 5
    rows = parse_csv(page.body)[1:]
    assert {row[0] for row in rows} == sessions
    records = {row[0]: int(row[SESSION_COLUMNS.index("Records")]) for row in rows}
    for session in sessions:
        assert records[session] == sum(
            1 for r in records_for("alice@contoso.com") if r["SessionId"] == session
        )


ATTACKER_IP = "185.220.101.45"
OWNER_OFFICE_IP = "203.0.113.10"


def _ids_by_ip(ip: str) -> set[str]:
    return {
        item["InternetMessageId"]
        for record in records_for("alice@contoso.com")
        if str(record["ClientIPAddress"]).split(":")[0] == ip
        for folder in record.get("Folders", [])
        for item in folder.get("FolderItems", [])
    }


# The attacker's Sync record is the sample's 39th data row: SourceIndex 38 (0-based).
SYNC_RECORD_POSITION = 38


def test_mia_report_exposure_from_the_export_file_filtered_to_the_attackers_ip(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _mia(
        capsys,
        "report",
        "alice@contoso.com",
        "--input",
        str(SAMPLE),
        "--from",
        SAMPLE_FROM,
        "--to",
        SAMPLE_TO,
        "--view",
        "exposure",
        "--ip",
        ATTACKER_IP,
    )

    rows = parse_csv(out)
    assert tuple(rows[0]) == EXPOSURE_COLUMNS
    cells = [dict(zip(EXPOSURE_COLUMNS, row, strict=True)) for row in rows[1:]]
    messages = [c for c in cells if c["Kind"] == "Message"]
    assert {c["InternetMessageId"] for c in messages} == _ids_by_ip(ATTACKER_IP)
    assert len(messages) == 72
    assert [c for c in cells if c["Kind"] != "Message"] == [
        {
            "Kind": "Folder",
            "Mailbox": "alice@contoso.com",
            "InternetMessageId": "",
            "Folder": "Inbox",
            "Subject": "all items in folder",
            "Sender": "",
            "Received": "",
            "SizeInBytes": "",
            "FirstAccess": "2026-11-18T02:35:00Z",
            "LastAccess": "2026-11-18T02:35:00Z",
            "Accesses": "1",
            "Sessions": "4b1a14fa-c93d-4180-a403-3f7ccf4eb375",
            "ClientIPs": ATTACKER_IP,
            # The embedded DB-IP Lite data (pinned in requirements.txt): a country, no AS number.
            "ClientCountry": "DE",
            "ClientASN": "",
            "ClientOrg": "",
            "ClientNetwork": "public",
            "Users": "alice@contoso.com",
            "SubjectSource": "",
            "FirstRecordId": "765b769c-8fc9-4db9-8963-59eb64e116cc",
            "SourceBlob": str(SAMPLE),
            "SourceSha256": raw_store.sha256_hex(SAMPLE.read_bytes()),
            "SourceIndex": str(SYNC_RECORD_POSITION),
        }
    ]
    assert {c["ClientIPs"] for c in cells} == {ATTACKER_IP}
    assert not _ids_by_ip(OWNER_OFFICE_IP) & {c["InternetMessageId"] for c in cells}
    assert next(c for c in messages if c["Subject"] == "Q4 board pack - draft 3")["SubjectSource"] == "audit"


def test_mia_report_filters_are_repeatable_or_comma_separated_and_exclude_ip_narrows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["report", "alice@contoso.com", "--input", str(SAMPLE), "--from", SAMPLE_FROM, "--to", SAMPLE_TO]
    repeated = _mia(capsys, *base, "--ip", ATTACKER_IP, "--ip", OWNER_OFFICE_IP)
    joined = _mia(capsys, *base, "--ip", f"{ATTACKER_IP},{OWNER_OFFICE_IP}")
    assert repeated == joined
    assert {row[EVENT_COLUMNS.index("ClientIP")] for row in parse_csv(joined)[1:]} == {
        ATTACKER_IP,
        OWNER_OFFICE_IP,
    }
    excluded = parse_csv(_mia(capsys, *base, "--view", "messages", "--exclude-ip", OWNER_OFFICE_IP))
    assert OWNER_OFFICE_IP not in {row[4] for row in excluded[1:]}
    session = parse_csv(_mia(capsys, *base, "--session", "4b1a14fa-c93d-4180-a403-3f7ccf4eb375"))
    assert {row[EVENT_COLUMNS.index("ClientIP")] for row in session[1:]} == {ATTACKER_IP}


def test_mia_report_rejects_a_bad_ip_filter(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["report", "alice@contoso.com", "--input", str(SAMPLE), "--ip", "185.220.101.45:443"])
    assert code == 2
    assert capsys.readouterr().err.startswith("mia: 'ip' must be IP addresses or CIDR ranges")


# --- Whole-file triage (mia report --input without a mailbox or a range) ------------------------
# LogonType, MailboxOwnerUPN and MailboxGuid: the Exchange mailbox audit fields of
# https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-schema


def _file_events(paths: list[Path], subject: str | None = None) -> tuple[ReportQuery, list[AccessEvent]]:
    query = parse_file_report_request(subject, {}, ReportSettings(), datetime(2026, 12, 2, tzinfo=UTC))
    return query, file_events.events_from_files(paths, query, ParseStats())


def test_mia_report_of_a_file_with_no_mailbox_and_no_range_reports_all_of_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = json.loads(_mia(capsys, "report", "--input", str(SAMPLE), "--format", "json"))

    expected = sorted(sample_mia_records(), key=lambda r: (r["CreationTime"], r["Id"]))
    assert [row["RecordId"] for row in rows] == [r["Id"] for r in expected]
    assert len({row["Mailbox"] for row in rows}) == 3


def test_mia_report_of_one_mailbox_of_a_file_with_no_range_is_all_of_its_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = json.loads(_mia(capsys, "report", "alice@contoso.com", "--input", str(SAMPLE), "--format", "json"))

    assert [row["RecordId"] for row in rows] == [r["Id"] for r in records_for("alice@contoso.com")]


def test_the_whole_of_the_files_is_narrowed_to_their_first_and_last_record() -> None:
    query, events = _file_events([SAMPLE])

    narrowed = assemble.within_the_files(query, events)

    times = sorted(r["CreationTime"] for r in sample_mia_records())
    assert narrowed.start == datetime.fromisoformat(times[0]).replace(tzinfo=UTC)
    assert narrowed.end == datetime.fromisoformat(times[-1]).replace(tzinfo=UTC) + timedelta(seconds=1)
    assert assemble.within_the_files(query, []) == query


def _mailbox_cells(out: str) -> list[dict[str, str]]:
    rows = parse_csv(out)
    assert tuple(rows[0]) == MAILBOX_COLUMNS
    return [dict(zip(MAILBOX_COLUMNS, row, strict=True)) for row in rows[1:]]


def _throttled(record: dict[str, object]) -> bool:
    properties = record.get("OperationProperties") or []
    assert isinstance(properties, list)
    return any(p["Name"] == "IsThrottled" and p["Value"] == "True" for p in properties)


def test_mia_report_mailboxes_of_the_sample_counts_each_mailbox_the_most_suspicious_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cells = _mailbox_cells(_mia(capsys, "report", "--input", str(SAMPLE), "--view", "mailboxes"))

    # Expected straight from the sample's records, independently of the normalizer.
    expected: dict[str, dict[str, int]] = {}
    for record in sample_mia_records():
        mailbox = record["MailboxOwnerUPN"].lower()
        counts = expected.setdefault(mailbox, {"Records": 0, "NonOwnerAccesses": 0, "ThrottledWindows": 0})
        counts["Records"] += 1
        counts["NonOwnerAccesses"] += record["LogonType"] != 0 or record["UserId"].lower() != mailbox
        counts["ThrottledWindows"] += _throttled(record)
    found = {
        c["Mailbox"]: {k: int(c[k]) for k in ("Records", "NonOwnerAccesses", "ThrottledWindows")}
        for c in cells
    }
    assert found == expected
    # finance (12 delegated reads) before alice (Bob's delegated reads, the attacker's Sync) before
    # dave (one admin read).
    assert [c["Mailbox"] for c in cells] == ["finance@contoso.com", "alice@contoso.com", "dave@contoso.com"]
    alice = cells[1]
    assert (alice["SyncedFolders"], alice["FirstAccess"]) == (
        "1",
        min(r["CreationTime"] + "Z" for r in records_for("alice@contoso.com")),
    )
    assert alice["SourceBlob"] == str(SAMPLE)


GUID_A = "0dcd61a6-c882-4a30-9d46-507794a00f39"
GUID_B = "9b2e7c41-5d3a-4f8e-a1c6-3e7d9f0b2a58"


def _guid_only(when: str, record_id: str, guid: str, **extra: Any) -> dict[str, Any]:
    record = mia_record(when, record_id, **extra)
    del record["MailboxOwnerUPN"]
    record["MailboxGuid"] = guid.upper()
    return record


def test_an_export_of_guid_only_records_groups_and_reports_by_mailbox_guid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export = write_json_lines(
        tmp_path / "guid-only.jsonl",
        [
            _guid_only("2026-11-18T09:00:00", "r1", GUID_A),
            _guid_only("2026-11-18T09:05:00", "r2", GUID_A, LogonType=2, UserId="bob@contoso.com"),
            _guid_only("2026-11-18T09:10:00", "r3", GUID_B, UserId="carol@contoso.com"),
        ],
    )

    cells = _mailbox_cells(_mia(capsys, "report", "--input", str(export), "--view", "mailboxes"))
    one = json.loads(_mia(capsys, "report", GUID_A.upper(), "--input", str(export), "--format", "json"))

    # Only LogonType tells a non-owner when the mailbox is known by its GUID alone.
    assert [(c["Mailbox"], c["Records"], c["NonOwnerAccesses"]) for c in cells] == [
        (GUID_A, "2", "1"),
        (GUID_B, "1", "0"),
    ]
    assert [row["RecordId"] for row in one] == ["r1", "r2"]
    assert {row["Mailbox"] for row in one} == {GUID_A}


def test_an_export_with_anonymised_ids_groups_and_reports_by_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    export = write_json_lines(
        tmp_path / "anonymised.jsonl",
        [
            mia_record("2026-11-18T09:00:00", "r1", mailbox="User_7F3A9C"),
            mia_record("2026-11-18T09:05:00", "r2", mailbox="user_7f3a9c"),
            mia_record("2026-11-18T09:10:00", "r3", mailbox="User_7F3A9C", UserId="User_09C1D2", LogonType=2),
            mia_record("2026-11-18T09:20:00", "r4", mailbox="User_09C1D2"),
        ],
    )

    cells = _mailbox_cells(_mia(capsys, "report", "--input", str(export), "--view", "mailboxes"))
    one = json.loads(_mia(capsys, "report", "User_7F3A9C", "--input", str(export), "--format", "json"))

    assert [(c["Mailbox"], c["Records"], c["NonOwnerAccesses"]) for c in cells] == [
        ("user_7f3a9c", "3", "1"),
        ("user_09c1d2", "1", "0"),
    ]
    assert [row["RecordId"] for row in one] == ["r1", "r2", "r3"]


def test_mia_report_mailboxes_by_actor_from_storage_is_one_row_per_mailbox_the_user_read(
    loaded: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "bob@contoso.com", "--by", "actor", "--view", "mailboxes"]
    args += ["--from", SAMPLE_FROM, "--to", SAMPLE_TO]

    cells = _mailbox_cells(_mia(capsys, *args))

    read = {r["MailboxOwnerUPN"].lower() for r in records_for("bob@contoso.com", "actor")}
    assert {c["Mailbox"] for c in cells} == read
    assert sum(int(c["Records"]) for c in cells) == len(records_for("bob@contoso.com", "actor"))

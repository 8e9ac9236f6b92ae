"""Microsoft Sentinel / Log Analytics OfficeActivity exports read as the AuditData they came from."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.model.event import AccessEvent
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from shared.parse.office_activity import display_time
from shared.parse.readers import MANAGEMENT_API, SENTINEL_CSV, SENTINEL_JSON, detect_format

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "sentinel"
EXPORT_CSV = FIXTURES / "officeactivity-export.csv"
EXPORT_JSON = FIXTURES / "officeactivity-export.json"
AUDIT_DATA = FIXTURES / "auditdata-same-records.json"


def _events(data: bytes, stats: ParseStats | None = None) -> list[AccessEvent]:
    return list(events_from_bytes(data, "export", stats=stats))


def _without_provenance(events: list[AccessEvent]) -> list[AccessEvent]:
    return [replace(event, source_blob="", source_sha256="", source_index=None) for event in events]


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _row(**columns: str) -> dict[str, str]:
    """The fewest columns a MailItemsAccessed row needs; keyword arguments add or replace."""
    row = {
        "TimeGenerated [UTC]": "11/18/2026, 9:05:00.000 AM",
        "Operation": "MailItemsAccessed",
        "MailboxOwnerUPN": "alice@contoso.com",
        "OfficeId": "row-1",
    }
    row.update(columns)
    return row


def test_the_exports_are_detected_by_their_own_format() -> None:
    assert detect_format(EXPORT_CSV.read_bytes()) == SENTINEL_CSV
    assert detect_format(EXPORT_JSON.read_bytes()) == SENTINEL_JSON
    assert detect_format(AUDIT_DATA.read_bytes()) == MANAGEMENT_API


@pytest.mark.parametrize("export", [EXPORT_CSV, EXPORT_JSON], ids=["csv", "json"])
def test_both_shapes_give_the_same_events_as_the_same_records_in_audit_data(export: Path) -> None:
    stats = ParseStats()
    from_sentinel = _events(export.read_bytes(), stats)
    from_audit_data = _events(AUDIT_DATA.read_bytes())

    assert stats.as_dict() == {"records": 3, "events": 2, "other_operations": 1, "malformed": 0}
    assert _without_provenance(from_sentinel) == _without_provenance(from_audit_data)
    assert [e.content_sha256() for e in from_sentinel] == [e.content_sha256() for e in from_audit_data]
    bind, sync = from_sentinel
    assert bind.record_id == "7d3c1e0a-5b1f-4a8e-9c2d-3e4f5a6b7c81"  # OfficeId is the record's Id
    assert bind.timestamp == datetime(2026, 11, 18, 14, 14, tzinfo=UTC)
    assert (bind.logon_type, sync.logon_type) == ("Owner", "Delegated")  # "Owner" and "2"
    assert (bind.client_ip, sync.client_ip) == ("198.51.100.23", "203.0.113.77")
    assert bind.aad_session_id == "736db8e0-9704-42f2-843f-83c340f7f9fa"
    assert [item.subject for item in bind.items] == ["Q4 board pack, draft 3", 'Re: "Fabrikam", term sheet']
    assert (sync.access, sync.folders, sync.items) == ("Sync", ("Inbox",), ())


def test_each_event_names_the_export_and_the_row_it_came_from() -> None:
    data = EXPORT_CSV.read_bytes()
    events = list(events_from_bytes(data, "audit-raw/imports/x.csv", sha256="ab" * 32))

    assert [(e.source_blob, e.source_sha256, e.source_index) for e in events] == [
        ("audit-raw/imports/x.csv", "ab" * 32, 0),
        ("audit-raw/imports/x.csv", "ab" * 32, 1),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11/18/2026, 2:14:00.000 PM", datetime(2026, 11, 18, 14, 14, tzinfo=UTC)),
        ("11/18/2026, 12:05:09.120 AM", datetime(2026, 11, 18, 0, 5, 9, 120_000, tzinfo=UTC)),
        ("1/2/2026, 12:00:00 PM", datetime(2026, 1, 2, 12, 0, tzinfo=UTC)),
        ("2/29/2028, 11:59:59.999 PM", datetime(2028, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC)),
        ("2026-11-18T14:14:00.0000000Z", datetime(2026, 11, 18, 14, 14, tzinfo=UTC)),
        ("2026-11-18T14:14:00Z", datetime(2026, 11, 18, 14, 14, tzinfo=UTC)),
    ],
)
def test_time_generated_is_read_in_iso_and_the_portals_us_display_format(
    text: str, expected: datetime
) -> None:
    assert display_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "18/11/2026, 14:14:00.000",  # another display language: day first, 24-hour
        "11/18/2026, 14:14:00.000 PM",
        "11/18/2026, 0:14:00.000 AM",
        "2/29/2026, 1:00:00 PM",  # not a leap year
        "13/01/2026, 1:00:00 PM",
        "yesterday",
        "",
    ],
)
def test_times_that_cannot_be_read_without_guessing_are_refused(text: str) -> None:
    assert display_time(text) is None


def test_json_string_columns_are_decoded_like_the_nested_values_they_were() -> None:
    folders = [
        {
            "Id": "LgAAAAB1",
            "Path": "\\Inbox",
            "FolderItems": [{"InternetMessageId": "<m1@x>", "SizeInBytes": 10}],
        },
        {"Id": "LgAAAAB2", "Path": "\\Finance"},
    ]
    properties = [{"Name": "IsThrottled", "Value": "True"}, {"Name": "MailAccessType", "Value": "Bind"}]
    context = {"ClientAppId": "27922004-5251-4030-b22d-91ecd9a37ea4", "AADSessionId": "aad-1"}
    row = _row(
        Folders=json.dumps(folders),
        OperationProperties=json.dumps(properties),
        AppAccessContext=json.dumps(context),
        Item=json.dumps(
            {"InternetMessageId": "<m2@x>", "ParentFolder": {"Path": "\\Sent Items", "Id": "F3"}}
        ),
    )

    [event] = _events(_csv([row]))

    assert event.folders == ("Inbox", "Finance", "Sent Items")
    assert event.folder_ids == ("LgAAAAB1", "LgAAAAB2", "F3")
    assert [(i.internet_message_id, i.folder, i.size_in_bytes) for i in event.items] == [
        ("<m1@x>", "Inbox", 10),
        ("<m2@x>", "Sent Items", None),
    ]
    assert (event.access, event.throttled) == ("Bind", True)
    assert (event.client_app_id, event.aad_session_id) == ("27922004-5251-4030-b22d-91ecd9a37ea4", "aad-1")


def test_fields_the_table_does_not_hold_stay_empty() -> None:
    [event] = _events(_csv([_row()]))

    assert event.record_id == "row-1"
    assert event.timestamp == datetime(2026, 11, 18, 9, 5, tzinfo=UTC)
    assert event.mailbox == "alice@contoso.com"
    assert event.operation_count is None  # no OperationCount column in OfficeActivity
    empty = (event.user, event.logon_type, event.access, event.client_ip, event.client_info)
    assert empty == ("", "", "", "", "")
    assert (event.session_id, event.aad_session_id, event.app_id, event.originating_server) == (
        "",
        "",
        "",
        "",
    )
    assert (event.folders, event.folder_ids, event.items, event.throttled, event.external_access) == (
        (),
        (),
        (),
        False,
        False,
    )


LOGON_TYPES = [
    ("Owner", "Owner"),
    ("0", "Owner"),
    ("1", "Admin"),
    ("Delegate", "Delegated"),
    ("6", "DelegatedAdmin"),
]


@pytest.mark.parametrize(("logon", "expected"), LOGON_TYPES)
def test_logon_type_is_read_as_a_name_or_a_number(logon: str, expected: str) -> None:
    [event] = _events(_csv([_row(Logon_Type=logon)]))

    assert event.logon_type == expected


def test_a_malformed_row_is_counted_and_the_rest_of_the_file_is_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [_row(OfficeId=f"good-{n}", Folders="") for n in range(3)]
    bad_time = _row(OfficeId="bad-time", Folders="", **{"TimeGenerated [UTC]": "18/11/2026, 14:14:00.000"})
    bad_json = _row(OfficeId="bad-json", Folders="[{not json")
    no_mailbox = _row(OfficeId="no-mailbox", MailboxOwnerUPN="", Folders="")
    data = _csv([good[0], bad_time, good[1], bad_json, no_mailbox, good[2]])
    short = data + b'"11/18/2026, 9:06:00.000 AM",MailItemsAccessed\r\n'
    stats = ParseStats()

    events = _events(short, stats)

    assert [event.record_id for event in events] == ["good-0", "good-1", "good-2"]
    assert stats.malformed == 4
    assert stats.malformed_positions == ["CSV row 3", "CSV row 5", "CSV row 6", "CSV row 8"]
    assert "English (United States)" in caplog.text
    assert "Folders is not JSON" in caplog.text
    assert "2 cells where the header has 5" in caplog.text


SYNC_PROPERTIES = '[{"Name":"MailAccessType","Value":"Sync"}]'  # a dynamic column as JSON text


def test_a_json_export_with_a_row_that_is_not_an_object_reads_the_others() -> None:
    rows: list[Any] = [
        {"TimeGenerated": "2026-11-18T09:05:00Z", "Operation": "MailItemsAccessed", "OfficeId": "a",
         "MailboxOwnerUPN": "alice@contoso.com", "OperationProperties": SYNC_PROPERTIES},
        "not a row",
        {"TimeGenerated": "2026-11-18T09:06:00Z", "Operation": "MailItemsAccessed", "OfficeId": "b",
         "MailboxOwnerUPN": "bob@contoso.com", "TimeGenerated [UTC]": ""},
    ]  # fmt: skip
    stats = ParseStats()

    events = _events(json.dumps(rows).encode(), stats)

    assert [(e.record_id, e.access) for e in events] == [("a", "Sync"), ("b", "")]
    assert (stats.malformed, stats.malformed_positions) == (1, ["item 1"])


def test_the_log_analytics_query_api_response_is_read_by_its_columns() -> None:
    # https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format
    response = {
        "tables": [
            {
                "name": "PrimaryResult",
                "columns": [
                    {"name": "TimeGenerated", "type": "datetime"},
                    {"name": "Operation", "type": "string"},
                    {"name": "MailboxOwnerUPN", "type": "string"},
                    {"name": "Logon_Type", "type": "string"},
                    {"name": "OperationProperties", "type": "dynamic"},
                    {"name": "OfficeId", "type": "string"},
                ],
                "rows": [
                    ["2026-11-18T09:05:00Z", "MailItemsAccessed", "alice@contoso.com", "Owner",
                     [{"Name": "MailAccessType", "Value": "Bind"}], "api-1"],
                    ["2026-11-18T09:06:00Z", "MailItemsAccessed"],
                ],
            }
        ]
    }  # fmt: skip
    data = json.dumps(response).encode()
    stats = ParseStats()

    assert detect_format(data) == SENTINEL_JSON
    events = _events(data, stats)

    assert [(e.record_id, e.logon_type, e.access) for e in events] == [("api-1", "Owner", "Bind")]
    assert stats.malformed == 1

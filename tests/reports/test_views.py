"""shared/reports/views.py: the events view and the per-session aggregation."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from shared.ipcontext.context import IpContext, open_context
from shared.model.event import AccessEvent
from shared.reports import render
from shared.reports.views import (
    EVENT_VIEW_COLUMNS,
    EXPOSURE_COLUMNS,
    MAILBOX_COLUMNS,
    MESSAGE_COLUMNS,
    NO_SESSION,
    SESSION_COLUMNS,
    VIEWS,
    event_rows,
    exposure_rows,
    mailbox_rows,
    message_rows,
    session_rows,
)
from tests.ipcontext.mmdb_files import GEOLITE2_ASN, write_mmdb
from tests.records_factory import (
    ABSENT,
    GRAPH,
    MID_1,
    MID_2,
    MID_3,
    UNKNOWN_APP,
    event,
    folder,
    folder_item,
    operation_properties,
)

pytestmark = pytest.mark.unit

ATTACKER = "sess-attacker"
OWNER = "sess-owner"


def ev(time: str, session: Any = OWNER, **fields: Any) -> AccessEvent:
    return event(CreationTime=f"2026-11-18T{time}", SessionId=session, Id=f"rec-{time}-{session}", **fields)


def attacker_events() -> list[AccessEvent]:
    return [
        ev(
            "09:00:00",
            ATTACKER,
            OperationCount=5,
            ClientIPAddress="185.220.101.45:50123",
            ClientInfoString="Client=REST;Client=RESTSystem;;",
            AppId=GRAPH,
            ClientAppId=UNKNOWN_APP,
            Folders=[folder("\\Inbox", folder_item(MID_1), folder_item(MID_2))],
        ),
        ev(
            "09:05:00",
            ATTACKER,
            OperationCount=ABSENT,
            ClientIPAddress="185.220.101.45",
            ClientInfoString="Client=REST;Client=RESTSystem;;",
            AppId=GRAPH,
            ClientAppId=UNKNOWN_APP,
            OperationProperties=operation_properties("Bind", "True"),
            Folders=[
                folder("\\Archive", folder_item(MID_2), folder_item(MID_3), folder_id="LgAAAAB-archive"),
                folder("\\Inbox", folder_item(MID_1)),
            ],
        ),
        ev(
            "09:21:00",
            ATTACKER,
            OperationCount=1,
            ClientIPAddress="[2001:db8:66::1]:443",
            OperationProperties=operation_properties("Sync", None),
            Folders=ABSENT,
            Item={"ParentFolder": {"Id": "LgAAAAB-sent", "Path": "\\Sent Items"}},
            LogonType=2,
            UserId="Mallory@Fabrikam.com",
        ),
    ]


def test_event_rows_are_the_events_rows_in_order() -> None:
    events = attacker_events()
    no_data = IpContext([])
    assert list(event_rows(events, ip_context=no_data)) == [
        {**e.row(), **no_data.facts(e.client_ip).columns()} for e in events
    ]
    assert [r["TimeStamp"] for r in event_rows(events)] == [
        "2026-11-18T09:00:00Z",
        "2026-11-18T09:05:00Z",
        "2026-11-18T09:21:00Z",
    ]


def test_views_table_names_columns_and_row_functions() -> None:
    assert {
        "events": (EVENT_VIEW_COLUMNS, event_rows),
        "messages": (MESSAGE_COLUMNS, message_rows),
        "sessions": (SESSION_COLUMNS, session_rows),
        "exposure": (EXPOSURE_COLUMNS, exposure_rows),
        "mailboxes": (MAILBOX_COLUMNS, mailbox_rows),
    } == VIEWS


def test_one_session_is_aggregated_into_one_row() -> None:
    # No IP database: the IP columns hold only what the addresses themselves say.
    assert list(session_rows(attacker_events(), ip_context=IpContext([]))) == [
        {
            "SessionId": ATTACKER,
            "FirstSeen": "2026-11-18T09:00:00Z",
            "LastSeen": "2026-11-18T09:21:00Z",
            "Records": 3,
            "Operations": 5 + 1 + 1,  # OperationCount missing counts as one operation
            "BindRecords": 2,
            "SyncRecords": 1,
            "DistinctMessages": 3,
            "Folders": "Inbox; Archive; Sent Items",
            "ClientIPs": "185.220.101.45; 2001:db8:66::1",
            "ClientCountry": "",  # nothing known of any address: empty, not "?; ?"
            "ClientASN": "",
            "ClientOrg": "",
            "ClientNetwork": "public; reserved",  # 2001:db8::/32 is for documentation (RFC 3849)
            "ClientFamilies": "RESTGraph; OutlookDesktop",
            "Apps": "Unknown app via Microsoft Graph",
            "LogonTypes": "Owner; Delegated",
            "Users": "alice@contoso.com; mallory@fabrikam.com",
            "Throttled": True,
            "FirstRecordId": "rec-09:00:00-sess-attacker",
            "SourceBlob": "",
            "SourceSha256": "",
            "SourceIndex": None,
        }
    ]


def test_session_row_columns_are_in_design_order() -> None:
    assert tuple(next(session_rows(attacker_events()))) == SESSION_COLUMNS


def test_first_and_last_seen_do_not_depend_on_input_order() -> None:
    events = attacker_events()
    shuffled = [events[2], events[0], events[1]]
    only = next(session_rows(shuffled))
    assert (only["FirstSeen"], only["LastSeen"]) == ("2026-11-18T09:00:00Z", "2026-11-18T09:21:00Z")


def test_operation_count_zero_adds_no_operations() -> None:
    only = next(session_rows([ev("09:00:00", OperationCount=0), ev("09:01:00", OperationCount=3)]))
    assert (only["Records"], only["Operations"]) == (2, 3)


def test_session_not_throttled_when_no_record_is() -> None:
    assert next(session_rows([ev("09:00:00"), ev("09:01:00")]))["Throttled"] is False


def test_records_with_neither_bind_nor_sync_count_in_neither_column() -> None:
    only = next(session_rows([ev("09:00:00", OperationProperties=ABSENT)]))
    assert (only["Records"], only["BindRecords"], only["SyncRecords"]) == (1, 0, 0)


def test_apps_fall_back_to_client_app_id_then_app_id_and_empty_values_are_not_listed() -> None:
    events = [
        ev("09:00:00", AppId="", ClientAppId=""),
        ev("09:01:00", AppId="11111111-aaaa-bbbb-cccc-222222222222", ClientAppId=""),
        ev("09:02:00", AppId="", ClientAppId=UNKNOWN_APP),
        ev("09:03:00", ClientIPAddress=ABSENT, UserId=ABSENT, LogonType=ABSENT),
    ]
    only = next(session_rows(events))
    assert only["Apps"] == f"11111111-aaaa-bbbb-cccc-222222222222; {UNKNOWN_APP}"
    assert only["ClientIPs"] == "203.0.113.10"
    assert only["Users"] == "alice@contoso.com"
    assert only["LogonTypes"] == "Owner"


def test_sessions_are_separate_rows_ordered_by_first_seen() -> None:
    events = [
        ev("08:00:00", "sess-b"),
        ev("07:00:00", "sess-c"),
        ev("09:00:00", "sess-a"),
        ev("06:30:00", "sess-b"),
    ]
    rows = list(session_rows(events))
    assert [(r["SessionId"], r["FirstSeen"], r["Records"]) for r in rows] == [
        ("sess-b", "2026-11-18T06:30:00Z", 2),
        ("sess-c", "2026-11-18T07:00:00Z", 1),
        ("sess-a", "2026-11-18T09:00:00Z", 1),
    ]


def test_sessions_first_seen_at_the_same_time_are_ordered_by_id() -> None:
    rows = list(session_rows([ev("09:00:00", "sess-z"), ev("09:00:00", "sess-a")]))
    assert [r["SessionId"] for r in rows] == ["sess-a", "sess-z"]


@pytest.mark.parametrize("session", ["", ABSENT, "   "])
def test_records_without_session_id_are_grouped_as_no_session_id(session: Any) -> None:
    rows = list(session_rows([ev("09:00:00", session), ev("09:10:00", OWNER), ev("09:20:00", session)]))
    assert NO_SESSION == "(no session id)"
    assert [(r["SessionId"], r["Records"]) for r in rows] == [(NO_SESSION, 2), (OWNER, 1)]
    assert rows[0]["LastSeen"] == "2026-11-18T09:20:00Z"


def test_distinct_messages_count_each_message_once_across_records() -> None:
    events = [
        ev("09:00:00", Folders=[folder("\\Inbox", folder_item(MID_1), folder_item(MID_2))]),
        ev("09:01:00", Folders=[folder("\\Inbox", folder_item(MID_2), folder_item(MID_1))]),
        ev("09:02:00", Folders=[folder("\\Inbox", folder_item(MID_2))]),
    ]
    assert next(session_rows(events))["DistinctMessages"] == 2


def test_no_events_no_sessions() -> None:
    assert list(session_rows([])) == []
    assert list(event_rows([])) == []


# The IP columns (docs/architecture.md#ip-context), looked up as the report is written.


def test_every_view_carries_the_ip_columns_of_its_addresses_from_the_embedded_data() -> None:
    events = [
        ev(
            "09:00:00",
            ATTACKER,
            ClientIPAddress="8.8.8.8:443",
            Folders=[folder("\\Inbox", folder_item(MID_1))],
        ),
        ev("09:01:00", ATTACKER, ClientIPAddress="10.0.0.5", Folders=[folder("\\Inbox", folder_item(MID_2))]),
        ev(
            "09:02:00",
            ATTACKER,
            ClientIPAddress="40.97.10.1",
            Folders=[folder("\\Inbox", folder_item(MID_3))],
        ),
    ]
    [first, second, third] = list(event_rows(events))
    assert (first["ClientCountry"], first["ClientASN"], first["ClientNetwork"]) == ("US", "", "public")
    assert (second["ClientCountry"], second["ClientNetwork"]) == ("", "private")
    assert third["ClientNetwork"] == "microsoft"  # Exchange Online's 40.96.0.0/13
    assert [row["ClientNetwork"] for row in message_rows(events)] == ["public", "private", "microsoft"]
    [session] = list(session_rows(events))
    assert session["ClientIPs"] == "8.8.8.8; 10.0.0.5; 40.97.10.1"
    assert session["ClientCountry"] == "US; ?; US"  # "?": nothing known of that address
    assert session["ClientASN"] == ""  # the embedded data has no AS numbers
    assert session["ClientNetwork"] == "public; private; microsoft"
    exposure = list(exposure_rows(events))
    assert [row["ClientNetwork"] for row in exposure] == ["public", "private", "microsoft"]
    for view, (columns, rows) in VIEWS.items():
        assert all(tuple(row) == columns for row in rows(events, None)), view


def test_the_ip_columns_sit_after_the_address_column_or_before_the_provenance_of_events() -> None:
    ip_columns = ("ClientCountry", "ClientASN", "ClientOrg", "ClientNetwork")
    assert EVENT_VIEW_COLUMNS[-7:] == (*ip_columns, "SourceBlob", "SourceSha256", "SourceIndex")
    for columns, address in (
        (MESSAGE_COLUMNS, "ClientIP"),
        (SESSION_COLUMNS, "ClientIPs"),
        (EXPOSURE_COLUMNS, "ClientIPs"),
    ):
        at = columns.index(address) + 1
        assert columns[at : at + 4] == ip_columns


def test_an_organisation_from_the_users_database_renders_neutralised(tmp_path: Path) -> None:
    """The file is the user's, its strings anyone's: they go through the same CSV neutralising."""
    context = open_context((write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", GEOLITE2_ASN),))
    events = [ev("09:00:00", ATTACKER, ClientIPAddress="185.220.101.45")]
    sink = io.StringIO()
    render.write_rows("csv", event_rows(events, ip_context=context), EVENT_VIEW_COLUMNS, sink)
    header, row = list(csv.reader(io.StringIO(sink.getvalue().removeprefix(render.BOM))))
    cells = dict(zip(header, row, strict=True))
    assert cells["ClientASN"] == "AS208294"
    assert cells["ClientOrg"] == '\'=HYPERLINK("http://evil")<script>'

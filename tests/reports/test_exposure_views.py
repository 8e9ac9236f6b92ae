"""shared/reports/views.py messages and exposure views, and the ip / session / exclude_ip filters.

One mailbox, alice@contoso.com, read by its owner from the office, by a delegate, and by an
attacker holding her token (Microsoft Graph, unknown app, foreign IP) who binds a message in Archive,
syncs Sent Items and finally trips throttling.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.ipcontext.context import IpContext
from shared.model.event import AccessEvent
from shared.model.message_info import MessageObserver
from shared.reports.assemble import audit_lookup
from shared.reports.request import parse_report_request
from shared.reports.selection import passes_filters
from shared.reports.views import EXPOSURE_COLUMNS, MESSAGE_COLUMNS, exposure_rows, message_rows
from shared.settings import ReportSettings
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

OWNER_IP = "203.0.113.10"
DELEGATE_IP = "198.51.100.7"
ATTACKER_IP = "185.220.101.45"
OWNER, DELEGATE, ATTACKER = "sess-owner", "sess-delegate", "sess-attacker"
ALICE, BOB = "alice@contoso.com", "bob@contoso.com"
REST = "Client=REST;Client=RESTSystem;;"


def ev(time: str, session: str, **fields: Any) -> AccessEvent:
    return event(CreationTime=f"2026-11-18T{time}", SessionId=session, Id=f"rec-{time}", **fields)


def attacker(time: str, **fields: Any) -> AccessEvent:
    graph = {"ClientIPAddress": f"{ATTACKER_IP}:50123", "ClientInfoString": REST, "AppId": GRAPH}
    return ev(time, ATTACKER, ClientAppId=UNKNOWN_APP, **{**graph, **fields})


def scenario() -> list[AccessEvent]:
    return [
        ev("09:00:00", OWNER, Folders=[folder("\\Inbox", folder_item(MID_1, subject="Budget 2027"))]),
        ev(
            "10:00:00",
            DELEGATE,
            UserId="Bob@Contoso.com",
            LogonType=2,
            ClientIPAddress=DELEGATE_IP,
            Folders=[folder("\\Inbox", folder_item(MID_1), folder_item(MID_2, size=900))],
        ),
        attacker("11:00:00", Folders=[folder("\\Archive", folder_item(MID_3, subject="Wire", size=1000))]),
        attacker(
            "11:05:00",
            OperationProperties=operation_properties("Sync", "False"),
            Folders=ABSENT,
            Item={"Id": "LgAAAAB-item", "ParentFolder": {"Id": "LgAAAAB-sent", "Path": "\\Sent Items"}},
        ),
        attacker(
            "11:10:00",
            OperationProperties=operation_properties("Bind", "True"),
            Folders=[folder("\\Inbox", folder_item(MID_2, size=900))],
        ),
    ]


def narrowed(events: list[AccessEvent], **params: str) -> list[AccessEvent]:
    query = parse_report_request(ALICE, params, ReportSettings(), now=datetime(2026, 11, 20, tzinfo=UTC))
    return [e for e in events if passes_filters(e, query)]


# Events made in memory have no blob behind them.
NO_SOURCE = {"SourceBlob": "", "SourceSha256": "", "SourceIndex": None}
# No IP database: the IP columns say only what the addresses themselves do. The owner's and the
# delegate's addresses are documentation ranges (RFC 5737).
NO_IP_DATA = IpContext([])
NETWORK = {OWNER_IP: "reserved", DELEGATE_IP: "reserved", ATTACKER_IP: "public"}


def ip_columns(ips: str) -> dict[str, str]:
    networks = "; ".join(NETWORK[ip] for ip in ips.split("; "))
    return {"ClientCountry": "", "ClientASN": "", "ClientOrg": "", "ClientNetwork": networks}


def message(time: str, user: str, session: str, ip: str, family: str, **rest: Any) -> dict[str, Any]:
    return {
        "TimeStamp": f"2026-11-18T{time}Z",
        "Mailbox": ALICE,
        "User": user,
        "SessionId": session,
        "ClientIP": ip,
        **ip_columns(ip),
        "ClientFamily": family,
        "Sender": "",
        "Received": "",
        **rest,
        "RecordId": f"rec-{time}",
        **NO_SOURCE,
    }


MESSAGE_ROWS = [
    message(
        "09:00:00", ALICE, OWNER, OWNER_IP, "OutlookDesktop", Folder="Inbox", InternetMessageId=MID_1,
        Subject="Budget 2027", SizeInBytes=48_213, SubjectSource="audit",
    ),
    # The delegate's record names MID_1 without a subject; the owner's record gave it.
    message(
        "10:00:00", BOB, DELEGATE, DELEGATE_IP, "OutlookDesktop", Folder="Inbox", InternetMessageId=MID_1,
        Subject="Budget 2027", SizeInBytes=48_213, SubjectSource="audit",
    ),
    message(
        "10:00:00", BOB, DELEGATE, DELEGATE_IP, "OutlookDesktop", Folder="Inbox", InternetMessageId=MID_2,
        Subject="", SizeInBytes=900, SubjectSource="unresolved:not-looked-up",
    ),
    message(
        "11:00:00", ALICE, ATTACKER, ATTACKER_IP, "RESTGraph", Folder="Archive", InternetMessageId=MID_3,
        Subject="Wire", SizeInBytes=1000, SubjectSource="audit",
    ),
    message(
        "11:10:00", ALICE, ATTACKER, ATTACKER_IP, "RESTGraph", Folder="Inbox", InternetMessageId=MID_2,
        Subject="", SizeInBytes=900, SubjectSource="unresolved:not-looked-up",
    ),
]  # fmt: skip


def exposed(kind: str, first: str, last: str, accesses: int, **rest: Any) -> dict[str, Any]:
    return {
        "Kind": kind,
        "Mailbox": ALICE,
        "Sender": "",
        "Received": "",
        "FirstAccess": first,
        "LastAccess": last,
        "Accesses": accesses,
        **ip_columns(rest["ClientIPs"]),
        **rest,
        "FirstRecordId": f"rec-{first[11:19]}",  # the scenario's record ids are rec-<time>
        **NO_SOURCE,
    }


ATTACKER_CONTEXT = {"Sessions": ATTACKER, "ClientIPs": ATTACKER_IP, "Users": ALICE}
MID_3_ROW = exposed(
    "Message", "2026-11-18T11:00:00Z", "2026-11-18T11:00:00Z", 1, InternetMessageId=MID_3, Folder="Archive",
    Subject="Wire", SizeInBytes=1000, SubjectSource="audit", **ATTACKER_CONTEXT,
)  # fmt: skip
SYNCED_ROW = exposed(
    "Folder", "2026-11-18T11:05:00Z", "2026-11-18T11:05:00Z", 1, InternetMessageId="", Folder="Sent Items",
    Subject="all items in folder", SizeInBytes=None, SubjectSource="", **ATTACKER_CONTEXT,
)  # fmt: skip
UNAUDITED_ROW = exposed(
    "Unaudited", "2026-11-18T11:10:00Z", "2026-11-19T11:10:00Z", 1, InternetMessageId="", Folder="Inbox",
    Subject="access not audited", SizeInBytes=None, SubjectSource="", **ATTACKER_CONTEXT,
)  # fmt: skip


def test_messages_view_has_one_row_per_record_and_message_in_time_order() -> None:
    rows = list(message_rows(scenario(), ip_context=NO_IP_DATA))
    assert rows == MESSAGE_ROWS
    assert all(tuple(row) == MESSAGE_COLUMNS for row in rows)


def test_messages_view_names_a_message_once_per_record_with_all_its_folders() -> None:
    twice = ev(
        "09:00:00",
        OWNER,
        Folders=[
            folder("\\Inbox", folder_item(MID_1)),
            folder("\\Archive", folder_item(MID_1, subject="Late subject", size=7)),
        ],
    )
    [only] = message_rows([twice])
    assert (only["Folder"], only["Subject"], only["SizeInBytes"], only["SubjectSource"]) == (
        "Inbox; Archive",
        "Late subject",
        48_213,
        "audit",
    )


def test_exposure_covers_owner_delegate_attacker_synced_folder_and_throttled_window() -> None:
    rows = list(exposure_rows(scenario(), ip_context=NO_IP_DATA))
    assert rows == [
        exposed(
            "Message", "2026-11-18T09:00:00Z", "2026-11-18T10:00:00Z", 2, InternetMessageId=MID_1,
            Folder="Inbox", Subject="Budget 2027", SizeInBytes=48_213, Sessions=f"{OWNER}; {DELEGATE}",
            ClientIPs=f"{OWNER_IP}; {DELEGATE_IP}", Users=f"{ALICE}; {BOB}", SubjectSource="audit",
        ),
        exposed(
            "Message", "2026-11-18T10:00:00Z", "2026-11-18T11:10:00Z", 2, InternetMessageId=MID_2,
            Folder="Inbox", Subject="", SizeInBytes=900, Sessions=f"{DELEGATE}; {ATTACKER}",
            ClientIPs=f"{DELEGATE_IP}; {ATTACKER_IP}", Users=f"{BOB}; {ALICE}",
            SubjectSource="unresolved:not-looked-up",
        ),
        MID_3_ROW,
        SYNCED_ROW,
        UNAUDITED_ROW,
    ]  # fmt: skip
    assert all(tuple(row) == EXPOSURE_COLUMNS for row in rows)


def test_exposure_rows_order_and_times_do_not_depend_on_input_order() -> None:
    events = scenario()
    timing = ("Kind", "InternetMessageId", "Folder", "FirstAccess", "LastAccess", "Accesses")

    def times(rows: Any) -> list[tuple[Any, ...]]:
        return [tuple(row[c] for c in timing) for row in rows]

    assert times(exposure_rows(reversed(events))) == times(exposure_rows(events))


def test_ip_filter_isolates_the_attackers_context_in_every_view() -> None:
    attacker_only = narrowed(scenario(), ip=ATTACKER_IP)
    attacker_mid_2 = exposed(
        "Message", "2026-11-18T11:10:00Z", "2026-11-18T11:10:00Z", 1, InternetMessageId=MID_2,
        Folder="Inbox", Subject="", SizeInBytes=900, SubjectSource="unresolved:not-looked-up",
        **ATTACKER_CONTEXT,
    )  # fmt: skip
    rows = list(exposure_rows(attacker_only, ip_context=NO_IP_DATA))
    assert rows == [MID_3_ROW, attacker_mid_2, SYNCED_ROW, UNAUDITED_ROW]
    assert list(message_rows(attacker_only, ip_context=NO_IP_DATA)) == MESSAGE_ROWS[3:]


def test_excluding_the_known_good_ips_leaves_the_same_context_as_the_attackers_ip() -> None:
    events = scenario()
    without_owner = narrowed(events, exclude_ip=OWNER_IP)
    assert [e.session_id for e in without_owner] == [DELEGATE, ATTACKER, ATTACKER, ATTACKER]
    # The owner's record named MID_1's subject: the index (here the whole scenario's) still knows it.
    everything = MessageObserver()
    for e in events:
        everything.add(e)
    lookup = audit_lookup(everything)
    assert list(message_rows(without_owner, lookup, ip_context=NO_IP_DATA)) == MESSAGE_ROWS[1:]
    known_good = narrowed(events, exclude_ip=f"{OWNER_IP}, 198.51.100.0/24")
    assert known_good == narrowed(events, ip=ATTACKER_IP)


def test_session_filter_and_ranges_combine_with_each_other() -> None:
    events = scenario()
    assert narrowed(events, session=ATTACKER) == events[2:]
    assert narrowed(events, session=f"{OWNER},{DELEGATE}") == events[:2]
    assert narrowed(events, ip="185.220.0.0/16,198.51.100.7", session=DELEGATE) == events[1:2]
    assert narrowed(events, session=ATTACKER, exclude_ip=ATTACKER_IP) == []
    assert narrowed(events) == events


def test_records_without_a_client_ip_never_match_ip_and_are_never_excluded() -> None:
    blank = ev("09:00:00", OWNER, ClientIPAddress=ABSENT)
    assert narrowed([blank], ip=OWNER_IP) == []
    assert narrowed([blank], exclude_ip=OWNER_IP) == [blank]


def test_ipv6_and_ipv4_mapped_addresses_are_matched_as_addresses() -> None:
    v6 = ev("09:00:00", OWNER, ClientIPAddress="[2001:DB8:66::1]:443")
    mapped = ev("09:01:00", OWNER, ClientIPAddress="::ffff:185.220.101.45")
    assert narrowed([v6, mapped], ip="2001:db8:66:0::1") == [v6]
    assert narrowed([v6, mapped], ip="2001:db8::/32") == [v6]
    assert narrowed([v6, mapped], ip=ATTACKER_IP) == [mapped]


def test_every_throttled_record_opens_its_own_unaudited_window() -> None:
    events = [
        ev("09:00:00", OWNER, OperationProperties=operation_properties("Bind", "True"), Folders=[]),
        ev("09:30:00", OWNER, OperationProperties=operation_properties("Bind", "True"), Folders=[]),
    ]
    rows = list(exposure_rows(events))
    assert [(r["Kind"], r["FirstAccess"], r["LastAccess"], r["Folder"]) for r in rows] == [
        ("Unaudited", "2026-11-18T09:00:00Z", "2026-11-19T09:00:00Z", ""),
        ("Unaudited", "2026-11-18T09:30:00Z", "2026-11-19T09:30:00Z", ""),
    ]


def test_a_folder_synced_twice_is_one_folder_row() -> None:
    sync = {"OperationProperties": operation_properties("Sync", "False"), "Folders": [folder("\\Inbox")]}
    rows = list(exposure_rows([ev("09:00:00", OWNER, **sync), ev("12:00:00", DELEGATE, **sync)]))
    assert [(r["Kind"], r["Folder"], r["FirstAccess"], r["LastAccess"], r["Accesses"]) for r in rows] == [
        ("Folder", "Inbox", "2026-11-18T09:00:00Z", "2026-11-18T12:00:00Z", 2)
    ]
    assert rows[0]["Sessions"] == f"{OWNER}; {DELEGATE}"


def test_no_events_no_rows() -> None:
    assert list(message_rows([])) == []
    assert list(exposure_rows([])) == []

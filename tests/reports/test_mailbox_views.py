"""shared/reports/views.py: the mailboxes view (whole-file triage), one row per mailbox.

LogonType, MailboxOwnerUPN and MailboxGuid are the Exchange mailbox audit fields of
https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-schema;
Bind, Sync and throttling are defined in https://learn.microsoft.com/purview/audit-log-investigate-accounts.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.model.event import AccessEvent
from shared.model.scope import is_non_owner_access
from shared.reports.budget import ENTRIES_SETTING, ReportTooLarge, WorkBudget
from shared.reports.views import MAILBOX_COLUMNS, SOURCE_COLUMNS, VIEWS, mailbox_rows
from tests.records_factory import (
    ABSENT,
    GRAPH,
    MAILBOX_GUID,
    MID_1,
    MID_2,
    MID_3,
    OUTLOOK_MOBILE,
    UNKNOWN_APP,
    event,
    folder,
    folder_item,
    operation_properties,
)

pytestmark = pytest.mark.unit

ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"


def ev(time: str, mailbox: str = ALICE, **fields: Any) -> AccessEvent:
    fields = {"UserId": mailbox, "MailboxOwnerUPN": mailbox, **fields}
    return event(CreationTime=f"2026-11-18T{time}", Id=f"rec-{time}-{mailbox}", **fields)


def rows(events: list[AccessEvent]) -> list[dict[str, Any]]:
    return list(mailbox_rows(events))


def test_the_mailboxes_view_is_registered_with_its_columns() -> None:
    assert VIEWS["mailboxes"] == (MAILBOX_COLUMNS, mailbox_rows)
    assert MAILBOX_COLUMNS[: -len(SOURCE_COLUMNS)] == (
        "Mailbox",
        "Records",
        "DistinctMessages",
        "SyncedFolders",
        "ThrottledWindows",
        "NonOwnerAccesses",
        "DistinctIPs",
        "Countries",
        "Apps",
        "FirstAccess",
        "LastAccess",
    )
    assert MAILBOX_COLUMNS[-len(SOURCE_COLUMNS) :] == SOURCE_COLUMNS


def test_one_mailbox_is_aggregated_into_one_row() -> None:
    events = [
        ev("09:00:00", Folders=[folder("\\Inbox", folder_item(MID_1), folder_item(MID_2))]),
        ev(
            "09:05:00",
            ClientIPAddress="185.220.101.45:50123",
            AppId=GRAPH,
            ClientAppId=UNKNOWN_APP,
            OperationProperties=operation_properties("Bind", "True"),
            Folders=[folder("\\Archive", folder_item(MID_2), folder_item(MID_3))],
        ),
        ev(
            "09:21:00",
            ClientIPAddress="185.220.101.45",
            OperationProperties=operation_properties("Sync", None),
            Folders=ABSENT,
            Item={"ParentFolder": {"Id": "LgAAAAB-sent", "Path": "\\Sent Items"}},
        ),
        ev(
            "09:30:00",
            ClientIPAddress="2001:db8::5",
            ClientAppId=OUTLOOK_MOBILE,
            OperationProperties=operation_properties("Sync", None),
            Folders=ABSENT,
            Item={"ParentFolder": {"Id": "LgAAAAB-sent", "Path": "\\Sent Items"}},
            LogonType=2,
            UserId="bob@contoso.com",
        ),
    ]

    [row] = rows(events)

    assert row == {
        "Mailbox": ALICE,
        "Records": 4,
        "DistinctMessages": 3,
        "SyncedFolders": 1,  # \Sent Items, synced twice
        "ThrottledWindows": 1,
        "NonOwnerAccesses": 1,  # Bob's delegated Sync
        "DistinctIPs": 3,
        "Countries": "DE",  # the others are documentation addresses (RFC 5737, RFC 3849)
        "Apps": "Unknown app via Microsoft Graph; Outlook Mobile",
        "FirstAccess": "2026-11-18T09:00:00Z",
        "LastAccess": "2026-11-18T09:30:00Z",
        "FirstRecordId": f"rec-09:00:00-{ALICE}",
        "SourceBlob": "",
        "SourceSha256": "",
        "SourceIndex": None,
    }


def test_first_and_last_access_and_the_source_do_not_depend_on_input_order() -> None:
    events = [ev("10:00:00"), ev("08:00:00"), ev("09:00:00")]

    [row] = rows(events)

    assert (row["FirstAccess"], row["LastAccess"]) == ("2026-11-18T08:00:00Z", "2026-11-18T10:00:00Z")
    assert row["FirstRecordId"] == f"rec-08:00:00-{ALICE}"


def test_the_most_suspicious_mailbox_comes_first_by_the_documented_key() -> None:
    delegated = {"LogonType": 2, "UserId": BOB}
    sync = {"OperationProperties": operation_properties("Sync", None)}
    throttled = {"OperationProperties": operation_properties("Bind", "True")}
    events = [
        *(ev(f"08:0{n}:00", "busy@contoso.com") for n in range(5)),  # records only
        ev("09:00:00", "throttled@contoso.com", **throttled),
        ev("09:01:00", "throttled@contoso.com", **throttled),
        ev("10:00:00", "synced@contoso.com", **sync),  # one synced folder beats two throttled
        ev("11:00:00", "delegated@contoso.com", **delegated),  # a non-owner access beats all
        ev("12:00:00", "b-quiet@contoso.com"),
        ev("12:00:00", "a-quiet@contoso.com"),  # a tie of every count: by mailbox
    ]

    order = [row["Mailbox"] for row in rows(events)]

    assert order == [
        "delegated@contoso.com",
        "synced@contoso.com",
        "throttled@contoso.com",
        "busy@contoso.com",
        "a-quiet@contoso.com",
        "b-quiet@contoso.com",
    ]


@pytest.mark.parametrize(
    ("fields", "non_owner"),
    [
        ({}, False),  # the owner, LogonType 0 (Owner)
        ({"UserId": "Alice@Contoso.com"}, False),  # UPNs compare case-insensitively
        ({"LogonType": 2, "UserId": BOB}, True),  # Delegated
        ({"LogonType": 1, "UserId": ALICE}, True),  # Admin, even as herself
        ({"LogonType": 4}, True),  # SystemService
        ({"LogonType": 99}, True),  # Unknown(99)
        ({"LogonType": ABSENT, "UserId": BOB}, True),  # no LogonType, another user
        ({"UserId": BOB}, True),  # Owner logon of another user's token
        ({"LogonType": ABSENT}, False),
        ({"LogonType": ABSENT, "UserId": ""}, False),  # nothing to tell: not counted
        # Only the MailboxGuid: the UserId (a UPN) cannot be compared with it, only LogonType.
        ({"MailboxOwnerUPN": ABSENT}, False),
        ({"MailboxOwnerUPN": ABSENT, "LogonType": 2, "UserId": BOB}, True),
        # Anonymised ids, the same pseudonym for the same person, compare as given.
        ({"MailboxOwnerUPN": "User_7F3A", "UserId": "User_7F3A"}, False),
        ({"MailboxOwnerUPN": "User_7F3A", "UserId": "User_09C1"}, True),
    ],
)
def test_non_owner_access_is_a_logon_type_other_than_owner_or_another_user(
    fields: dict[str, Any], non_owner: bool
) -> None:
    assert is_non_owner_access(event(**fields)) is non_owner


def test_a_mailbox_known_only_by_its_guid_is_one_row_keyed_by_the_guid() -> None:
    events = [
        ev("09:00:00", MailboxOwnerUPN=ABSENT, MailboxGuid=MAILBOX_GUID.upper()),
        ev("09:10:00", MailboxOwnerUPN=ABSENT, MailboxGuid=MAILBOX_GUID, LogonType=2, UserId=BOB),
    ]

    [row] = rows(events)

    assert (row["Mailbox"], row["Records"], row["NonOwnerAccesses"]) == (MAILBOX_GUID, 2, 1)


def test_anonymised_mailbox_ids_group_as_given() -> None:
    events = [
        ev("09:00:00", "User_7F3A"),
        ev("09:05:00", "user_7f3a"),
        ev("09:10:00", "User_09C1", UserId="User_7F3A"),
    ]

    found = {row["Mailbox"]: (row["Records"], row["NonOwnerAccesses"]) for row in rows(events)}

    assert found == {"user_09c1": (1, 1), "user_7f3a": (2, 0)}


def test_no_events_no_mailboxes() -> None:
    assert rows([]) == []


def test_the_budget_bounds_mailboxes_and_their_distinct_values_not_records() -> None:
    same = [ev(f"09:{n:02d}:00") for n in range(40)]  # one mailbox, one message, one address
    budget = WorkBudget(max_entries=4)
    assert len(list(mailbox_rows(same, None, budget))) == 1
    assert budget.entries == 4  # the mailbox, MID_1 and MID_2, its address

    many = [ev("09:00:00", f"user{n}@contoso.com") for n in range(3)]
    with pytest.raises(ReportTooLarge) as refused:
        list(mailbox_rows(many, None, WorkBudget(max_entries=8)))
    assert refused.value.setting == ENTRIES_SETTING


def test_countries_lists_the_distinct_countries_of_the_mailboxs_addresses() -> None:
    events = [
        ev("09:00:00", ClientIPAddress="8.8.8.8"),  # US in the embedded DB-IP Lite data
        ev("09:01:00", ClientIPAddress="10.0.0.1"),  # private: no country
        ev("09:02:00", ClientIPAddress="8.8.4.4"),
        ev("09:03:00", BOB, ClientIPAddress="192.0.2.1"),
    ]
    countries = {row["Mailbox"]: row["Countries"] for row in rows(events)}
    assert countries == {ALICE: "US", BOB: ""}
    assert MAILBOX_COLUMNS.index("Countries") == MAILBOX_COLUMNS.index("DistinctIPs") + 1

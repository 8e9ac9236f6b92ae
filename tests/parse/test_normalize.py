"""shared/parse/normalize.py: one row (docs/architecture.md#the-normalized-event) per MailItemsAccessed
record, and nothing crashes."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data import RecordFactory
from shared.model.event import EVENT_COLUMNS, AccessEvent
from shared.parse import normalize
from shared.parse.normalize import MalformedRecord, ParseStats, RawRecord, normalize_record, normalize_records
from shared.parse.readers import read_records
from tests import strategies
from tests.parse.reference_normalize import normalize_record as reference_normalize_record
from tests.records_factory import (
    AAD_SESSION_ID,
    ABSENT,
    GRAPH,
    INBOX_ID,
    MAILBOX_GUID,
    MID_1,
    MID_2,
    MID_3,
    OUTLOOK_MOBILE,
    RECORD_ID,
    SENT_ID,
    SESSION_ID,
    UNKNOWN_APP,
    folder,
    folder_item,
    mail_items_accessed,
    operation_properties,
    other_operation,
    row,
)

pytestmark = pytest.mark.unit


def test_default_record_gives_the_full_row_in_column_order() -> None:
    result = row()
    assert tuple(result) == EVENT_COLUMNS
    assert result == {
        "TimeStamp": "2026-11-18T09:15:42Z",
        "Mailbox": "alice@contoso.com",
        "User": "alice@contoso.com",
        "LogonType": "Owner",
        "Access": "Bind",
        "Throttled": False,
        "Folders": "Inbox",
        "FolderIds": INBOX_ID,
        "OperationCount": 2,
        "MessageCount": 2,
        "ClientIP": "203.0.113.10",
        "ClientInfo": "Client=MSExchangeRPC",
        "ClientFamily": "OutlookDesktop",
        "AppId": "",
        "ClientAppId": "",
        "AppName": "",
        "SessionId": SESSION_ID,
        "AADSessionId": AAD_SESSION_ID,
        "ExternalAccess": False,
        "OriginatingServer": "PH0PR11MB6049 (15.20.8158.017)",
        "RecordId": RECORD_ID,
        "Messages": f"{MID_1}; {MID_2}",
        "Repaired": "",
        "Conflict": False,
        "SourceBlob": "",
        "SourceSha256": "",
        "SourceIndex": None,
    }


# --- TimeStamp --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("creation_time", "timestamp"),
    [
        ("2020-04-07T23:47:30", "2020-04-07T23:47:30Z"),
        ("2020-04-07T23:47:30.9999999", "2020-04-07T23:47:30Z"),
        ("2020-04-07T23:47:30Z", "2020-04-07T23:47:30Z"),
        ("2020-04-08T01:47:30+02:00", "2020-04-07T23:47:30Z"),
    ],
)
def test_timestamp_is_utc_iso_8601_to_the_second_with_z(creation_time: str, timestamp: str) -> None:
    assert row(CreationTime=creation_time)["TimeStamp"] == timestamp


# --- Mailbox and User ---------------------------------------------------------------------------


def test_mailbox_is_the_owner_upn_lower_cased() -> None:
    assert row(MailboxOwnerUPN="Alice.Smith@Contoso.COM")["Mailbox"] == "alice.smith@contoso.com"


@pytest.mark.parametrize("upn", [ABSENT, "", "   ", None])
def test_mailbox_falls_back_to_the_mailbox_guid(upn: Any) -> None:
    assert row(MailboxOwnerUPN=upn, MailboxGuid=MAILBOX_GUID.upper())["Mailbox"] == MAILBOX_GUID


@pytest.mark.parametrize(
    ("user_id", "user"),
    [
        ("Bob@Contoso.COM", "bob@contoso.com"),
        (" bob@contoso.com ", "bob@contoso.com"),
        (
            "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
            "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
        ),
        ("S-1-5-21-3623811015-3361044348-30300820-1013", "S-1-5-21-3623811015-3361044348-30300820-1013"),
        (ABSENT, ""),
    ],
)
def test_user_is_lower_cased_only_when_it_is_a_upn(user_id: Any, user: str) -> None:
    assert row(UserId=user_id)["User"] == user


# --- LogonType ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"), [(0, "Owner"), (2, "Delegated"), ("1", "Admin"), (9, "Unknown(9)"), (ABSENT, "")]
)
def test_logon_type_column_is_the_decoded_name(value: Any, shown: str) -> None:
    assert row(LogonType=value)["LogonType"] == shown


# --- Access and Throttled -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "access", "throttled"),
    [
        (operation_properties("Bind", "False"), "Bind", False),
        (operation_properties("Sync", "True"), "Sync", True),
        (
            [{"Name": "IsThrottled", "Value": "True"}, {"Name": "MailAccessType", "Value": "Bind"}],
            "Bind",
            True,
        ),
        ([{"Name": "MailAccessType", "Value": "Sync"}], "Sync", False),
        (
            [{"name": "mailaccesstype", "value": "sync"}, {"name": "isthrottled", "value": "true"}],
            "Sync",
            True,
        ),
        (
            [{"NAME": "MAILACCESSTYPE", "VALUE": "BIND"}, {"NAME": "ISTHROTTLED", "VALUE": "TRUE"}],
            "Bind",
            True,
        ),
        (
            [
                {" Name ": " MailAccessType\t", " Value": " Bind\r\n"},
                {"Name ": " IsThrottled ", "Value": " True "},
            ],
            "Bind",
            True,
        ),
        (
            [
                {"Name": "ClientRequestId", "Value": "x"},
                {"Name": "IsThrottled", "Value": "False"},
                {"Name": "MailAccessType", "Value": "Bind"},
            ],
            "Bind",
            False,
        ),
        ([], "", False),
        ("MailAccessType=Bind", "", False),
    ],
)
def test_access_and_throttled_come_from_operation_properties_in_any_order_case_or_whitespace(
    properties: Any, access: str, throttled: bool
) -> None:
    result = row(OperationProperties=properties)
    assert result["Access"] == access
    assert result["Throttled"] is throttled


def test_throttled_is_false_when_operation_properties_are_absent() -> None:
    result = row(OperationProperties=ABSENT)
    assert result["Throttled"] is False
    assert result["Access"] == ""


def test_first_occurrence_of_a_repeated_operation_property_wins() -> None:
    properties = [{"Name": "IsThrottled", "Value": "True"}, {"Name": "IsThrottled", "Value": "False"}]
    assert row(OperationProperties=properties)["Throttled"] is True


# --- Folders, FolderIds, messages ---------------------------------------------------------------


def test_folders_drop_the_leading_backslash_and_join_in_record_order() -> None:
    folders = [
        folder("\\Sent Items", folder_item(MID_3), folder_id=SENT_ID),
        folder("\\Inbox", folder_item(MID_1), folder_id=INBOX_ID),
        folder("\\Inbox\\Projects\\Fabrikam", folder_id="LgAAAAB-fabrikam"),
    ]
    result = row(Folders=folders)
    assert result["Folders"] == "Sent Items; Inbox; Inbox\\Projects\\Fabrikam"
    assert result["FolderIds"] == f"{SENT_ID}; {INBOX_ID}; LgAAAAB-fabrikam"


def test_folder_without_path_uses_its_name_and_folders_without_either_are_skipped() -> None:
    folders: list[dict[str, Any]] = [
        {"Id": "LgAAAAB-a", "Name": "Archive"},
        {"FolderItems": [folder_item(MID_1)]},
    ]
    result = row(Folders=folders)
    assert result["Folders"] == "Archive"
    assert result["FolderIds"] == "LgAAAAB-a"
    assert result["Messages"] == MID_1


def test_sync_record_in_the_older_item_parent_folder_shape() -> None:
    result = row(
        Folders=ABSENT,
        OperationProperties=operation_properties("Sync", None),
        OperationCount=ABSENT,
        Item={
            "Id": "LgAAAAD-item",
            "ParentFolder": {"Id": "LgAAAAB-inbox", "Path": "\\Inbox", "Name": "Inbox"},
        },
    )
    assert result["Access"] == "Sync"
    assert result["Folders"] == "Inbox"
    assert result["FolderIds"] == "LgAAAAB-inbox"
    assert result["MessageCount"] == 0
    assert result["Messages"] == ""


def test_older_item_shape_names_its_message_and_parent_folder_name_when_no_path() -> None:
    event = normalize_record(
        mail_items_accessed(
            Folders=ABSENT,
            Item={
                "Id": "LgAAAAD-item",
                "InternetMessageId": MID_3,
                "Subject": "Payroll changes effective December",
                "SizeInBytes": 9120,
                "ParentFolder": {"Id": "LgAAAAB-drafts", "Name": "Drafts"},
            },
        )
    )
    assert event is not None
    assert event.folders == ("Drafts",)
    assert event.items[0].folder == "Drafts"
    assert event.items[0].size_in_bytes == 9120
    assert event.row()["Messages"] == f"{MID_3} (Payroll changes effective December)"


def test_older_item_parent_folder_already_listed_in_folders_is_not_repeated() -> None:
    result = row(Item={"ParentFolder": {"Id": INBOX_ID, "Path": "\\Inbox"}})
    assert result["Folders"] == "Inbox"
    assert result["FolderIds"] == INBOX_ID


@pytest.mark.parametrize(("value", "count"), [(3, 3), (1, 1), (0, 0), ("7", 7), (12.0, 12)])
def test_operation_count_is_as_given(value: Any, count: int) -> None:
    assert row(OperationCount=value)["OperationCount"] == count


@pytest.mark.parametrize("value", [ABSENT, None, "", "many", True, 2.5, [3], "\u00b2", "9" * 5000])
def test_operation_count_absent_or_unreadable_is_none(value: Any) -> None:
    assert row(OperationCount=value)["OperationCount"] is None


def test_message_count_counts_distinct_internet_message_ids() -> None:
    folders = [
        folder("\\Inbox", folder_item(MID_1), folder_item(MID_2), folder_item(MID_1)),
        folder("\\Archive", folder_item(MID_2), folder_item(MID_3), folder_id="LgAAAAB-archive"),
    ]
    result = row(Folders=folders)
    assert result["MessageCount"] == 3
    assert result["Messages"] == f"{MID_1}; {MID_2}; {MID_3}"


def test_items_without_an_internet_message_id_are_not_messages() -> None:
    folders = [
        folder("\\Inbox", {"Id": "LgAAAAD-x", "SizeInBytes": 10}, folder_item(" "), folder_item(MID_1))
    ]
    result = row(Folders=folders)
    assert result["MessageCount"] == 1
    assert result["Messages"] == MID_1


def test_messages_show_the_subject_only_when_known() -> None:
    folders = [
        folder(
            "\\Inbox",
            folder_item(MID_1, subject="Q4 board pack - draft 3"),
            folder_item(MID_2),
            folder_item(MID_3, subject=""),
        )
    ]
    assert row(Folders=folders)["Messages"] == f"{MID_1} (Q4 board pack - draft 3); {MID_2}; {MID_3}"


def test_a_subject_known_from_a_later_occurrence_is_used() -> None:
    folders = [
        folder("\\Inbox", folder_item(MID_1)),
        folder("\\Archive", folder_item(MID_1, subject="Lunch on Friday?"), folder_id="LgAAAAB-archive"),
    ]
    result = row(Folders=folders)
    assert result["Messages"] == f"{MID_1} (Lunch on Friday?)"
    assert result["MessageCount"] == 1


def test_unicode_subjects_are_kept_exactly() -> None:
    subjects = [
        "顧客リスト 2026",
        "Contrat de confidentialit\u00e9 \u2013 sign\u00e9",
        "Re: \U0001f525 urgent \U0001d538\U0001d553\U0001d554",
    ]
    folders = [folder("\\Inbox", *(folder_item(f"<{n}@x>", subject=s) for n, s in enumerate(subjects)))]
    assert row(Folders=folders)["Messages"] == "; ".join(f"<{n}@x> ({s})" for n, s in enumerate(subjects))


def test_a_record_with_twenty_thousand_items_is_normalized_whole() -> None:
    items = [folder_item(f"<{n:05d}.big@PH0PR11MB0001.namprd11.prod.outlook.com>") for n in range(20_000)]
    event = normalize_record(mail_items_accessed(Folders=[folder("\\Inbox", *items)], OperationCount=20_000))
    assert event is not None
    result = event.row()
    assert result["MessageCount"] == 20_000
    assert result["OperationCount"] == 20_000
    assert len(event.items) == 20_000
    assert event.message_ids[0] == "<00000.big@PH0PR11MB0001.namprd11.prod.outlook.com>"
    assert event.message_ids[-1] == "<19999.big@PH0PR11MB0001.namprd11.prod.outlook.com>"
    assert result["Messages"].count("; ") == 19_999


def test_message_items_keep_folder_and_size() -> None:
    event = normalize_record(
        mail_items_accessed(Folders=[folder("\\Inbox", folder_item(MID_1, size=292238, subject="Hi"))])
    )
    assert event is not None
    assert [(i.internet_message_id, i.folder, i.subject, i.size_in_bytes) for i in event.items] == [
        (MID_1, "Inbox", "Hi", 292238)
    ]


# --- ClientIP, ClientInfo, ClientFamily ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "ip"),
    [
        ({"ClientIPAddress": "[2001:db8:10::5]:443"}, "2001:db8:10::5"),
        ({"ClientIPAddress": "::ffff:198.51.100.7"}, "198.51.100.7"),
        ({"ClientIPAddress": "203.0.113.10:52344"}, "203.0.113.10"),
        ({"ClientIPAddress": ABSENT, "ClientIP": "198.51.100.7:50000"}, "198.51.100.7"),
        ({"ClientIPAddress": "", "ClientIP": "198.51.100.7"}, "198.51.100.7"),
        ({"ClientIPAddress": "185.220.101.45", "ClientIP": "198.51.100.7"}, "185.220.101.45"),
        ({"ClientIPAddress": ABSENT}, ""),
    ],
)
def test_client_ip_comes_from_client_ip_address_or_client_ip_cleaned(fields: dict[str, Any], ip: str) -> None:
    assert row(**fields)["ClientIP"] == ip


@pytest.mark.parametrize(
    ("client_info", "family"),
    [
        ("Client=OWA;Action=ViaProxy", "OWA"),
        ("Client=OutlookService;Outlook-iOS/2.0;", "OutlookMobile"),
        ("Client=REST;Client=RESTSystem;;", "RESTGraph"),
        ("Client=WebServices;EWSEditor/1.0;", "EWS"),
        ("", "Unknown"),
    ],
)
def test_client_info_is_kept_and_decoded_into_a_family(client_info: str, family: str) -> None:
    result = row(ClientInfoString=client_info)
    assert result["ClientInfo"] == client_info
    assert result["ClientFamily"] == family


# --- Applications and sessions ------------------------------------------------------------------


def test_unknown_app_reading_through_graph_is_named_as_such() -> None:
    result = row(AppId=GRAPH, ClientAppId=UNKNOWN_APP)
    assert (result["AppId"], result["ClientAppId"]) == (GRAPH, UNKNOWN_APP)
    assert result["AppName"] == "Unknown app via Microsoft Graph"


def test_app_name_uses_the_client_app_name_from_app_access_context() -> None:
    context = {"AADSessionId": AAD_SESSION_ID, "ClientAppName": "Contoso Mail Sync"}
    assert (
        row(AppId=GRAPH, ClientAppId=UNKNOWN_APP, AppAccessContext=context)["AppName"] == "Contoso Mail Sync"
    )


def test_known_client_app_id_names_the_app() -> None:
    assert row(AppId=OUTLOOK_MOBILE, ClientAppId=OUTLOOK_MOBILE)["AppName"] == "Outlook Mobile"


def test_client_app_id_falls_back_to_app_access_context() -> None:
    context = {"AADSessionId": AAD_SESSION_ID, "ClientAppId": OUTLOOK_MOBILE}
    result = row(AppId=GRAPH, ClientAppId=ABSENT, AppAccessContext=context)
    assert result["ClientAppId"] == OUTLOOK_MOBILE
    assert result["AppName"] == "Outlook Mobile"


def test_record_client_app_id_wins_over_app_access_context() -> None:
    context = {"ClientAppId": OUTLOOK_MOBILE}
    assert row(ClientAppId=UNKNOWN_APP, AppAccessContext=context)["ClientAppId"] == UNKNOWN_APP


def test_aad_session_id_comes_from_app_access_context() -> None:
    assert row(AppAccessContext={"aadsessionid": " 11111111-2222 "})["AADSessionId"] == "11111111-2222"
    assert row(AppAccessContext=ABSENT)["AADSessionId"] == ""
    assert row(AppAccessContext="not an object")["AADSessionId"] == ""


def test_session_id_is_as_given() -> None:
    assert row(SessionId="abc-123")["SessionId"] == "abc-123"
    assert row(SessionId=ABSENT)["SessionId"] == ""


@pytest.mark.parametrize(
    ("value", "external"),
    [
        (True, True),
        (False, False),
        ("True", True),
        ("true", True),
        ("False", False),
        (ABSENT, False),
        (1, False),
    ],
)
def test_external_access_is_a_boolean(value: Any, external: bool) -> None:
    assert row(ExternalAccess=value)["ExternalAccess"] is external


@pytest.mark.parametrize(
    ("server", "trimmed"),
    [
        ("PH0PR11MB6049 (15.20.8158.017)\r\n", "PH0PR11MB6049 (15.20.8158.017)"),
        ("  DM6PR04MB4321 (15.20.7000.000)\n", "DM6PR04MB4321 (15.20.7000.000)"),
        (ABSENT, ""),
    ],
)
def test_originating_server_is_trimmed_of_crlf(server: Any, trimmed: str) -> None:
    assert row(OriginatingServer=server)["OriginatingServer"] == trimmed


def test_record_id_is_the_record_id() -> None:
    assert (
        row(Id=" 5F1C2A7E-0B1D-4C55-9D0E-6A3F2B8C9D10 ")["RecordId"] == "5F1C2A7E-0B1D-4C55-9D0E-6A3F2B8C9D10"
    )


# --- Key spelling -----------------------------------------------------------------------------


def test_keys_with_stray_whitespace_and_odd_casing_are_read() -> None:
    record = {
        " creationtime ": "2020-04-07T23:47:30",
        "ID": "rec-1",
        "operation\t": "mailitemsaccessed",
        "MAILBOXOWNERUPN": "Dave@Contoso.com",
        "userid ": "Admin@Contoso.com",
        "logonType": 1,
        " operationProperties": [{" name": "MailAccessType", "VALUE ": "Bind"}],
        "FOLDERS": [
            {
                " path ": "\\Inbox",
                " ID": "f-1",
                "folderitems": [{"internetMESSAGEid": MID_1, "SUBJECT": "Hi"}],
            }
        ],
        "operationcount": 1,
        "clientipaddress": "198.51.100.7",
        "ClientInfoString ": "Client=WebServices;EWSEditor/1.0;",
        "sessionid": "s-1",
        "appaccesscontext": {" aadSessionId ": "aad-1"},
        "EXTERNALACCESS": True,
        "originatingserver": "DM6PR04MB4321 (15.20.7000.000)\r\n",
    }
    event = normalize_record(record)
    assert event is not None
    assert event.row() == {
        "TimeStamp": "2020-04-07T23:47:30Z",
        "Mailbox": "dave@contoso.com",
        "User": "admin@contoso.com",
        "LogonType": "Admin",
        "Access": "Bind",
        "Throttled": False,
        "Folders": "Inbox",
        "FolderIds": "f-1",
        "OperationCount": 1,
        "MessageCount": 1,
        "ClientIP": "198.51.100.7",
        "ClientInfo": "Client=WebServices;EWSEditor/1.0;",
        "ClientFamily": "EWS",
        "AppId": "",
        "ClientAppId": "",
        "AppName": "",
        "SessionId": "s-1",
        "AADSessionId": "aad-1",
        "ExternalAccess": True,
        "OriginatingServer": "DM6PR04MB4321 (15.20.7000.000)",
        "RecordId": "rec-1",
        "Messages": f"{MID_1} (Hi)",
        "Repaired": "",
        "Conflict": False,
        "SourceBlob": "",
        "SourceSha256": "",
        "SourceIndex": None,
    }


@pytest.mark.parametrize("operation", ["MailItemsAccessed", "mailitemsaccessed", " MAILITEMSACCESSED "])
def test_operation_name_is_matched_in_any_case(operation: str) -> None:
    assert normalize_record(mail_items_accessed(Operation=operation)) is not None


# --- Other operations and malformed records -----------------------------------------------------


@pytest.mark.parametrize("operation", ["MailboxLogin", "Send", "MessageBind", "MailItemsAccessedX", ""])
def test_records_of_other_operations_are_not_events(operation: str) -> None:
    assert normalize_record(other_operation(operation)) is None


def test_record_without_operation_is_not_an_event() -> None:
    assert normalize_record(mail_items_accessed(Operation=ABSENT)) is None
    assert normalize_record({}) is None


@pytest.mark.parametrize("value", ["MailItemsAccessed", 42, None, [mail_items_accessed()], True, 1.5])
def test_a_record_that_is_not_a_json_object_is_malformed(value: object) -> None:
    with pytest.raises(MalformedRecord, match="expected a JSON object"):
        normalize_record(value)


@pytest.mark.parametrize("creation_time", [ABSENT, "", "18/11/2026 09:15", "2026-11-31T09:15:42", 1700000000])
def test_a_record_with_a_bad_creation_time_is_malformed(creation_time: Any) -> None:
    with pytest.raises(MalformedRecord, match="CreationTime"):
        normalize_record(mail_items_accessed(CreationTime=creation_time))


def test_a_record_with_no_mailbox_is_malformed() -> None:
    with pytest.raises(MalformedRecord, match="neither MailboxOwnerUPN nor MailboxGuid"):
        normalize_record(mail_items_accessed(MailboxOwnerUPN=ABSENT, MailboxGuid=" "))


def test_normalize_records_counts_other_operations_and_malformed_records_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raws = [
        RawRecord("item 0", mail_items_accessed(Id="a")),
        RawRecord("item 1", other_operation("MailboxLogin")),
        RawRecord("item 2", "not an object"),
        RawRecord("item 3", mail_items_accessed(Id="b", CreationTime="garbage")),
        RawRecord("item 4", error="invalid JSON: unexpected end of data"),
        RawRecord("item 5", mail_items_accessed(Id="c", MailboxOwnerUPN=ABSENT, MailboxGuid=ABSENT)),
        RawRecord("item 6", other_operation("Send")),
        RawRecord("item 7", mail_items_accessed(Id="d")),
    ]
    stats = ParseStats()
    with caplog.at_level(logging.WARNING, logger="shared.parse.normalize"):
        events = list(normalize_records(raws, "blob Audit.Exchange/2026/11/18/09/x.json.gz", stats))
    assert [e.record_id for e in events] == ["a", "d"]
    assert stats.as_dict() == {"records": 8, "events": 2, "other_operations": 2, "malformed": 4}
    assert stats.malformed_positions == ["item 2", "item 3", "item 4", "item 5"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert warnings[2] == (
        "malformed record in blob Audit.Exchange/2026/11/18/09/x.json.gz at item 4: "
        "invalid JSON: unexpected end of data"
    )


def test_normalize_records_accumulates_into_a_shared_stats_object() -> None:
    stats = ParseStats()
    list(normalize_records([RawRecord("line 1", mail_items_accessed())], "a.jsonl", stats))
    list(normalize_records([RawRecord("line 1", error="bad")], "b.jsonl", stats))
    assert stats.as_dict() == {"records": 2, "events": 1, "other_operations": 0, "malformed": 1}
    assert stats.malformed_positions == ["line 1"]


def test_normalize_records_works_without_a_stats_object() -> None:
    assert len(list(normalize_records([RawRecord("item 0", mail_items_accessed())], "x"))) == 1


# --- Content-derived record ids -----------------------------------------------------------------


def test_a_record_without_id_gets_a_content_derived_id() -> None:
    event = normalize_record(mail_items_accessed(Id=ABSENT))
    assert event is not None
    assert re.fullmatch(r"sha256-[0-9a-f]{64}", event.record_id)


def test_content_derived_id_does_not_depend_on_key_order() -> None:
    record = mail_items_accessed(Id=ABSENT)
    reversed_record = {key: record[key] for key in reversed(record)}
    reversed_record["AppAccessContext"] = dict(reversed(list(record["AppAccessContext"].items())))
    first, second = normalize_record(record), normalize_record(reversed_record)
    assert first is not None
    assert second is not None
    assert first.record_id == second.record_id


def test_content_derived_id_is_stable_and_differs_with_content() -> None:
    one = normalize_record(mail_items_accessed(Id=ABSENT))
    again = normalize_record(mail_items_accessed(Id=ABSENT))
    other = normalize_record(mail_items_accessed(Id=ABSENT, ClientIPAddress="185.220.101.45"))
    assert one is not None
    assert again is not None
    assert other is not None
    assert one.record_id == again.record_id
    assert one.record_id != other.record_id


def test_blank_id_is_treated_as_missing() -> None:
    assert row(Id="  ")["RecordId"].startswith("sha256-")


def test_a_record_without_id_holding_integers_beyond_64_bits_still_gets_an_id() -> None:
    event = normalize_record(mail_items_accessed(Id=ABSENT, Extra=2**80))
    assert event is not None
    assert re.fullmatch(r"sha256-[0-9a-f]{64}", event.record_id)


def test_a_record_without_id_nested_too_deeply_to_identify_is_malformed() -> None:
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(MalformedRecord, match="nests too deeply"):
        normalize_record(mail_items_accessed(Id=ABSENT, Extra=nested))


def test_a_deeply_nested_record_with_an_id_is_read() -> None:
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested]
    event = normalize_record(mail_items_accessed(Extra=nested))
    assert event is not None
    assert event.record_id == RECORD_ID


# --- Property tests: no input may crash the parser ----------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

TIMESTAMPS = st.sampled_from(
    [
        "2026-11-18T09:15:42",
        "2020-04-07T23:47:30.1234567Z",
        "2021-01-01T00:30:00+01:00",
        "2020-02-30T00:00:00",
    ]
)


def _spellings(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), f" {name}\t"])


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategy | JSON_VALUES


FOLDER_ITEMS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "InternetMessageId": _maybe(st.text(max_size=20)),
            "Subject": _maybe(st.text(max_size=20)),
            "SizeInBytes": _maybe(st.integers() | st.text(max_size=5)),
        },
    ),
    max_size=4,
)
FOLDERS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "Id": _maybe(st.text(max_size=10)),
            "Path": _maybe(st.text(max_size=15)),
            "Name": _maybe(st.text(max_size=10)),
            "FolderItems": _maybe(FOLDER_ITEMS),
        },
    ),
    max_size=3,
)
OPERATION_PROPERTIES = st.lists(
    st.fixed_dictionaries(
        {
            "Name": _maybe(st.sampled_from(["MailAccessType", "IsThrottled", " isthrottled "])),
            "Value": _maybe(st.sampled_from(["Bind", "Sync", "True", "False"])),
        }
    ),
    max_size=3,
)
RECORD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "CreationTime": _maybe(TIMESTAMPS),
    "MailboxOwnerUPN": _maybe(st.text(max_size=20)),
    "MailboxGuid": JSON_VALUES,
    "Id": _maybe(st.text(max_size=10)),
    "UserId": JSON_VALUES,
    "LogonType": _maybe(st.integers(-3, 9) | st.text(max_size=6)),
    "OperationProperties": _maybe(OPERATION_PROPERTIES),
    "Folders": _maybe(FOLDERS),
    "Item": _maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "InternetMessageId": JSON_VALUES,
                "ParentFolder": _maybe(st.fixed_dictionaries({"Path": JSON_VALUES, "Id": JSON_VALUES})),
            },
        )
    ),
    "OperationCount": _maybe(st.integers() | st.text(max_size=6)),
    "ClientIPAddress": _maybe(st.sampled_from(["[2001:db8::5]:443", "::ffff:1.2.3.4", "1.2.3.4:80"])),
    "ClientIP": JSON_VALUES,
    "ClientInfoString": _maybe(st.sampled_from(["Client=OWA;Action=ViaProxy", "Client=REST;;"])),
    "AppId": _maybe(st.sampled_from([GRAPH, OUTLOOK_MOBILE])),
    "ClientAppId": _maybe(st.sampled_from([UNKNOWN_APP, OUTLOOK_MOBILE])),
    "AppAccessContext": _maybe(
        st.fixed_dictionaries(
            {}, optional={k: JSON_VALUES for k in ("AADSessionId", "ClientAppId", "ClientAppName")}
        )
    ),
    "SessionId": JSON_VALUES,
    "ExternalAccess": JSON_VALUES,
    "OriginatingServer": JSON_VALUES,
}


VALID_TIMESTAMPS = st.sampled_from(
    ["2026-11-18T09:15:42", "2020-04-07T23:47:30.1234567Z", "2021-01-01T00:30:00+01:00"]
)
MAILBOXES = st.sampled_from(["alice@contoso.com", "Finance@Contoso.COM"]) | st.text(
    min_size=1, max_size=20
).filter(str.strip)


@st.composite
def record_like(draw: st.DrawFn) -> dict[str, Any]:
    """A dict shaped like a MailItemsAccessed record, every field optional and of any JSON type.

    Most draws carry a readable Operation, CreationTime and mailbox so the rest of the record is
    actually parsed; the others damage those too."""
    record: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        record[draw(_spellings("Operation"))] = draw(
            st.sampled_from(["MailItemsAccessed", " mailitemsaccessed "])
        )
        record[draw(_spellings("CreationTime"))] = draw(VALID_TIMESTAMPS)
        record[draw(_spellings("MailboxOwnerUPN"))] = draw(MAILBOXES)
    else:
        record[draw(_spellings("Operation"))] = draw(st.just("MailItemsAccessed") | JSON_VALUES)
    for name, strategy in RECORD_FIELDS.items():
        if draw(st.booleans()):
            record[draw(_spellings(name))] = draw(strategy)
    return record


ANY_INPUT = JSON_VALUES | record_like()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_INPUT)
def test_normalize_record_raises_nothing_but_malformed_record(value: object) -> None:
    try:
        event = normalize_record(value)
    except MalformedRecord:
        return
    assert event is None or isinstance(event, AccessEvent)
    if event is not None:
        result = event.row()
        assert tuple(result) == EVENT_COLUMNS
        assert isinstance(result["Throttled"], bool)
        assert isinstance(result["MessageCount"], int)
        assert result["TimeStamp"].endswith("Z")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(ANY_INPUT.map(lambda value: ("value", value)) | st.text(max_size=20).map(lambda e: ("error", e)))
)
def test_normalize_records_never_raises_and_accounts_for_every_record(entries: list[tuple[str, Any]]) -> None:
    raws = [
        RawRecord(f"item {n}", value=payload) if kind == "value" else RawRecord(f"item {n}", error=payload)
        for n, (kind, payload) in enumerate(entries)
    ]
    stats = ParseStats()
    events = list(normalize_records(raws, "hypothesis", stats))
    assert stats.records == len(raws)
    assert stats.events == len(events)
    assert stats.events + stats.other_operations + stats.malformed == stats.records
    assert len(stats.malformed_positions) == stats.malformed


# --- The same events as the reference normalizer --------------------------------------------------
# tests/parse/reference_normalize.py is the normalizer before its per-record path was made cheap;
# the fast one must say exactly what it said, for every input.

WHITESPACE = " \t\r\n\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2003\u2028\u3000"  # all of them str.strip()s


def _outcome(normalize: Any, value: object, repaired: tuple[str, ...] = ("Pre[0].Repaired",)) -> object:
    try:
        return normalize(value, repaired, "blob", "sha", 7)
    except Exception as problem:  # whatever one raises, the other must raise alike
        return (type(problem), str(problem))


def assert_as_the_reference_says(value: object, repaired: tuple[str, ...] = ("Pre[0].Repaired",)) -> None:
    ours, reference = (
        _outcome(normalize_record, value, repaired),
        _outcome(reference_normalize_record, value, repaired),
    )
    # repr tells apart what == does not: True from 1, 1.0 from 1, a draft from an AccessEvent.
    assert repr(ours) == repr(reference)
    assert ours == reference


def _key_spellings(name: str) -> st.SearchStrategy[str]:
    """The key as the API spells it, other spellings that fold to it (any letter case, stray
    whitespace of any kind), and ones that only look alike (which must not be read as it)."""
    cased = st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True))
    )
    padding = st.text(WHITESPACE, max_size=2)
    folds_alike = st.tuples(padding, cased, padding).map("".join)
    lookalikes = st.sampled_from([f"{name[0]} {name[1:]}", f"{name}_", name[:-1], "\u0130" + name[1:], ""])
    return strategies.weighted(
        (2, st.just(name)), (1, st.just(name.lower())), (4, folds_alike), (1, lookalikes)
    )


@st.composite
def spelled(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """An object holding some of `fields`, with a few unrelated keys, in any order: either as the
    API writes it (each key in its own spelling) or with each field absent, once or twice under
    different spellings (so which one wins matters)."""
    as_the_api_writes = draw(st.booleans())
    entries: list[tuple[str, Any]] = []
    for name, values in fields.items():
        low = 1 if name in required else 0
        for _ in range(draw(st.integers(low, 1 if as_the_api_writes else 2))):
            key = name if as_the_api_writes else draw(_key_spellings(name))
            entries.append((key, draw(values)))
    entries += draw(st.lists(st.tuples(st.text(max_size=8), ODD_VALUES), max_size=2))
    return dict(draw(st.permutations(entries)))


# Values of the wrong type, cheaper to draw than JSON_VALUES (these records nest many of them).
ODD_VALUES = (
    JSON_SCALARS
    | st.lists(JSON_SCALARS, max_size=2)
    | st.dictionaries(st.text(max_size=4), JSON_SCALARS, max_size=2)
)


def _or_odd(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return strategies.weighted((5, strategy), (1, ODD_VALUES))


SIZES = st.integers() | st.sampled_from(
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**80, "7", " 12 ", 3.0, True]
)
CREATION_TIMES = st.one_of(
    st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31)).map(lambda moment: moment.isoformat()),
    st.datetimes(datetime(1000, 1, 1), datetime(9999, 12, 31)).map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S")),
    st.sampled_from(
        [
            "2026-11-18T09:15:42",
            "2026-11-18 09:15:42",
            " 2026-11-18T09:15:42\r\n",
            "2026-11-18T09:15:42.1234567Z",
            "2026-11-18T09:15:42+05:30",
            "2026-11-18T24:00:00",
            "2026-11-18T23:59:60",
            "2026-02-29T00:00:00",
            "2024-02-29T00:00:00",
            "0000-01-01T00:00:00",
            "\u0662\u0660\u0662\u0666-11-18T09:15:42",
        ]
    ),
)
ITEM_FIELDS = {
    "InternetMessageId": _or_odd(st.sampled_from([MID_1, f" {MID_2} ", ""])),
    "Subject": _or_odd(st.text(max_size=8)),
    "SizeInBytes": _or_odd(SIZES),
}
FOLDER_FIELDS = {
    "Id": _or_odd(st.sampled_from([INBOX_ID, SENT_ID, " "])),
    "Path": _or_odd(st.sampled_from(["\\Inbox", "\\\\Sent Items ", ""])),
    "Name": _or_odd(st.sampled_from(["Inbox", "Archive"])),
    "FolderItems": _or_odd(st.lists(spelled(ITEM_FIELDS, required=("InternetMessageId",)), max_size=3)),
}
FOLDERS_SPELLED = st.lists(spelled(FOLDER_FIELDS, required=("FolderItems",)), min_size=1, max_size=3)
PARENT_FIELDS = {k: FOLDER_FIELDS[k] for k in ("Id", "Path", "Name")}
EXCHANGE_ITEM_FIELDS = {**ITEM_FIELDS, "Id": ODD_VALUES, "ParentFolder": _or_odd(spelled(PARENT_FIELDS))}
PAIR_FIELDS = {
    "Name": _or_odd(st.sampled_from(["MailAccessType", "IsThrottled", " isthrottled ", "MAILACCESSTYPE"])),
    "Value": _or_odd(st.sampled_from(["Bind", "Sync", " sync ", "True", "False", "TRUE"])),
}
CONTEXT_FIELDS = {
    "AADSessionId": _or_odd(st.sampled_from([AAD_SESSION_ID, " x "])),
    "ClientAppId": _or_odd(st.sampled_from([UNKNOWN_APP, OUTLOOK_MOBILE, ""])),
    "ClientAppName": _or_odd(st.sampled_from(["Evil Reader", " "])),
}
SPELLED_RECORD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "MailboxGuid": _or_odd(st.sampled_from([MAILBOX_GUID, " "])),
    "UserId": _or_odd(st.sampled_from(["Alice@Contoso.com", "S-1-5-21-545102221", " "])),
    "ClientIPAddress": _or_odd(st.sampled_from(strategies.CLIENT_IPS)),
    "ClientIP": _or_odd(st.sampled_from(strategies.CLIENT_IPS)),
    "ClientInfoString": _or_odd(st.sampled_from(strategies.CLIENT_STRINGS) | st.text(max_size=12)),
    "AppId": _or_odd(st.sampled_from([GRAPH, OUTLOOK_MOBILE, " "])),
    "ClientAppId": _or_odd(st.sampled_from([UNKNOWN_APP, OUTLOOK_MOBILE, ""])),
    "SessionId": _or_odd(st.sampled_from([SESSION_ID, " x "])),
    "ExternalAccess": _or_odd(st.sampled_from([True, False, "True", " true ", "false"])),
    "OriginatingServer": _or_odd(st.just("PH0PR11MB6049 (15.20.8158.017)\r\n")),
    "Operation": strategies.weighted(
        (8, st.sampled_from(["MailItemsAccessed", " mailitemsaccessed "])),
        (1, st.just("Send")),
        (1, ODD_VALUES),
    ),
    "CreationTime": _or_odd(CREATION_TIMES),
    "MailboxOwnerUPN": _or_odd(MAILBOXES),
    "LogonType": _or_odd(
        st.sampled_from([0, 1, 2, 6, 99, -1, "2", " 1 ", "Owner", "delegate", True, False, 2.0, 2**70])
    ),
    "OperationProperties": _or_odd(st.lists(spelled(PAIR_FIELDS), max_size=3)),
    "Folders": _or_odd(FOLDERS_SPELLED),
    "Item": _or_odd(spelled(EXCHANGE_ITEM_FIELDS)),
    "OperationCount": _or_odd(SIZES),
    "AppAccessContext": _or_odd(spelled(CONTEXT_FIELDS)),
    "Id": _or_odd(st.sampled_from([RECORD_ID, " ", ""])),
}
SPELLED_RECORDS = spelled(
    SPELLED_RECORD_FIELDS, required=("Operation", "CreationTime", "MailboxOwnerUPN", "Folders")
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPELLED_RECORDS)
def test_records_with_keys_spelled_any_way_and_repeated_give_what_the_reference_gives(record: Any) -> None:
    assert_as_the_reference_says(record)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_INPUT)
def test_any_json_value_gives_what_the_reference_gives(value: object) -> None:
    assert_as_the_reference_says(value)


class _ReadOnlyRecord(Mapping[Any, Any]):
    """A mapping that is not a dict (as a caller other than a JSON reader may hand over)."""

    def __init__(self, entries: dict[Any, Any]) -> None:
        self._entries = entries

    def __getitem__(self, key: Any) -> Any:
        return self._entries[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPELLED_RECORDS, st.dictionaries(st.integers() | st.none(), JSON_SCALARS, max_size=2))
def test_mappings_other_than_dicts_and_keys_other_than_text_give_what_the_reference_gives(
    record: dict[str, Any], odd_keys: dict[Any, Any]
) -> None:
    assert_as_the_reference_says(_ReadOnlyRecord(record))
    with_odd_keys = {**odd_keys, **record}
    assert_as_the_reference_says(with_odd_keys)
    assert_as_the_reference_says(
        {**record, "Folders": [_ReadOnlyRecord(f) for f in _list_of(record, "Folders")]}
    )


def _list_of(record: dict[str, Any], key: str) -> list[Any]:
    value = record.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.fuzz_inputs(max_records=4))
def test_records_of_every_export_format_give_what_the_reference_gives(fuzz: strategies.FuzzInput) -> None:
    for export in fuzz.files:
        _, records = read_records(export.to_bytes())
        for raw in records:
            assert_as_the_reference_says(raw.value, raw.repaired + raw.lost)


ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/parse/fixtures"
EXPORT_FILES = [
    *sorted([*FIXTURES.glob("*/*.json"), *FIXTURES.glob("*/*.csv")]),
    ROOT / "samples/contoso-purview-export.csv",
    ROOT / "simulator/fixtures/graph_audit_query_published.json",
]


@pytest.mark.parametrize("path", EXPORT_FILES, ids=lambda path: path.name)
def test_records_of_the_real_shaped_export_files_give_what_the_reference_gives(path: Path) -> None:
    _, records = read_records(path.read_bytes())
    read = list(records)
    assert read
    for raw in read:
        assert_as_the_reference_says(raw.value, raw.repaired + raw.lost)


def test_the_benchmark_blob_gives_what_the_reference_gives() -> None:
    for record in RecordFactory(seed=1).records(2_000):
        assert_as_the_reference_says(record, ())


def test_keys_folded_differently_once_the_plain_key_set_is_full_still_give_what_the_reference_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(normalize, "_PLAIN_KEYS", set(normalize.KEYS))
    monkeypatch.setattr(normalize, "_PLAIN_KEYS_MAX", len(normalize.KEYS))
    record = mail_items_accessed(NeverSeenBefore=1, **{" clientipaddress ": "192.0.2.1"})
    assert_as_the_reference_says(record)
    assert_as_the_reference_says(mail_items_accessed(NeverSeenBefore=2))
    assert set(normalize.KEYS) == normalize._PLAIN_KEYS  # nothing learnt beyond the bound


def test_the_last_of_two_spellings_of_a_key_wins_as_folding_says() -> None:
    later = mail_items_accessed(ClientIPAddress="198.51.100.1", **{" clientipaddress ": "198.51.100.2"})
    earlier = {" clientipaddress ": "198.51.100.2", **mail_items_accessed(ClientIPAddress="198.51.100.1")}
    events = normalize_record(later), normalize_record(earlier)
    assert [event.client_ip if event else None for event in events] == ["198.51.100.2", "198.51.100.1"]
    assert_as_the_reference_says(later)
    assert_as_the_reference_says(earlier)


def test_no_folded_key_can_be_mistaken_for_a_spelling_the_normalizer_reads_by() -> None:
    # `_respelled` maps folded names back to KEYS; that is one to one only if no folded key is
    # itself one of KEYS. Each of KEYS has an ASCII capital; str.lower maps code points one by
    # one (final sigma aside, which lowers to a lower-case sigma), and none to an ASCII capital.
    assert all(re.search("[A-Z]", key) for key in normalize.KEYS)
    assert all(key == key.strip() for key in normalize.KEYS)
    assert len({key.lower() for key in normalize.KEYS}) == len(normalize.KEYS)
    capitals = re.compile("[A-Z]")
    assert not [c for c in range(0x110000) if capitals.search(chr(c).lower())]

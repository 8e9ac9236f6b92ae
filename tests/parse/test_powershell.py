"""Search-UnifiedAuditLog records written by ConvertTo-Json at its default depth: read back as far
as they go, and what was lost named."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from shared.model.event import AccessEvent
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from shared.parse.powershell import parse_string_form, recover_record
from shared.parse.readers import GRAPH_AUDIT_QUERY, MANAGEMENT_API, POWERSHELL_SHALLOW, detect_format

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "powershell"
SHALLOW = FIXTURES / "auditdata-depth2.json"
FULL = FIXTURES / "auditdata-full-depth.json"
SEARCH_RESULTS = FIXTURES / "search-unifiedauditlog.json"


def _events(path: Path, stats: ParseStats | None = None) -> list[AccessEvent]:
    return list(events_from_bytes(path.read_bytes(), "export", stats=stats))


def test_each_shape_is_detected() -> None:
    assert detect_format(SHALLOW.read_bytes()) == POWERSHELL_SHALLOW
    assert detect_format(FULL.read_bytes()) == MANAGEMENT_API
    assert detect_format(SEARCH_RESULTS.read_bytes()) == GRAPH_AUDIT_QUERY  # AuditData as a string


def test_search_results_with_auditdata_as_a_string_lose_nothing() -> None:
    full = _events(FULL)
    results = _events(SEARCH_RESULTS)

    strip = [replace(e, source_blob="", source_sha256="") for e in results]
    assert strip == [replace(e, source_blob="", source_sha256="") for e in full]
    assert sum(len(event.items) for event in results) == 3


def test_a_depth_truncated_export_keeps_access_type_folders_and_record_fields_but_no_messages() -> None:
    stats = ParseStats()
    shallow = _events(SHALLOW, stats)
    full = _events(FULL)

    assert stats.as_dict() == {
        "records": 4,
        "events": 3,
        "other_operations": 1,
        "malformed": 0,
        "truncated": 2,
    }
    assert [e.record_id for e in shallow] == [e.record_id for e in full]
    for cut, whole in zip(shallow, full, strict=True):
        assert cut.items == ()  # never read from the string form, never invented
        assert (cut.access, cut.throttled, cut.folders, cut.folder_ids) == (
            whole.access,
            whole.throttled,
            whole.folders,
            whole.folder_ids,
        )
        assert (cut.timestamp, cut.mailbox, cut.user, cut.logon_type, cut.client_ip, cut.session_id) == (
            whole.timestamp,
            whole.mailbox,
            whole.user,
            whole.logon_type,
            whole.client_ip,
            whole.session_id,
        )
        assert (cut.app_name, cut.aad_session_id) == (whole.app_name, whole.aad_session_id)
    bind, sync, odd_folder = shallow
    assert (bind.access, sync.access) == ("Bind", "Sync")
    assert bind.repaired == ("Folders[0].FolderItems",)  # the row says what it lacks
    assert sync.repaired == ()  # its folder had no items to lose: nothing truncated
    assert odd_folder.folders == ("Inbox\\Deals; Q4=final",)  # a user's name with "; X=" stays whole


def test_the_string_form_reads_in_any_property_order_and_joined_by_spaces() -> None:
    assert parse_string_form("@{Value=Bind; Name=MailAccessType}") == [
        {"Value": "Bind", "Name": "MailAccessType"}
    ]
    assert parse_string_form("@{Name=A; Value=1} @{Name=B; Value=}") == [
        {"Name": "A", "Value": "1"},
        {"Name": "B", "Value": ""},
    ]
    assert parse_string_form("@{}") == [{}]
    assert parse_string_form("@{Path=\\a}b; Id=x}") == [{"Path": "\\a}b", "Id": "x"}]  # a "}" in a value
    assert parse_string_form("not @{ a form") is None


def test_a_value_that_repeats_a_separator_and_key_is_lost_rather_than_guessed() -> None:
    recovered = recover_record(
        {
            "Operation": "MailItemsAccessed",
            "Folders": ["@{Id=real; Path=\\Inbox\\x; Path=\\Fake; FolderItems=System.Object[]}"],
        }
    )

    assert recovered.record["Folders"] == []
    assert recovered.lost == ("Folders[0]",)


def test_records_nested_one_level_deeper_come_back_from_joined_string_forms() -> None:
    wrapped = recover_record(
        {
            "Operation": "MailItemsAccessed",
            "OperationProperties": "@{Name=MailAccessType; Value=Sync} @{Name=IsThrottled; Value=True}",
            "Folders": "@{Id=f1; Path=\\Inbox; FolderItems=System.Object[]} @{Id=f2; Path=\\Sent Items}",
            "AppAccessContext": "@{ClientAppId=abc; AADSessionId=s-1}",
            "Item": "@{Id=i; InternetMessageId=<m@x>; ParentFolder=@{Id=p; Path=\\Drafts}; Subject=s}",
        }
    )

    record = wrapped.record
    assert record["OperationProperties"] == [
        {"Name": "MailAccessType", "Value": "Sync"},
        {"Name": "IsThrottled", "Value": "True"},
    ]
    assert record["Folders"] == [{"Id": "f1", "Path": "\\Inbox"}, {"Id": "f2", "Path": "\\Sent Items"}]
    assert record["AppAccessContext"] == {"ClientAppId": "abc", "AADSessionId": "s-1"}
    assert record["Item"] == {"Id": "i", "ParentFolder": {"Id": "p", "Path": "\\Drafts"}}
    assert wrapped.lost == ("Folders[0].FolderItems", "Item.InternetMessageId")


def test_an_array_cut_to_its_type_name_is_named_lost() -> None:
    recovered = recover_record({"Operation": "MailItemsAccessed", "OperationProperties": "System.Object[]"})

    assert recovered.record["OperationProperties"] == []
    assert recovered.lost == ("OperationProperties",)

"""shared/parse/readers.py: every export format is detected from its bytes and read record by record."""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

import orjson
import pytest

from shared.parse.normalize import ParseStats, RawRecord, normalize_records
from shared.parse.readers import (
    CSV_AUDITDATA,
    GRAPH_AUDIT_QUERY,
    JSON_LINES,
    MANAGEMENT_API,
    PURVIEW_COLUMNS,
    UnknownFormat,
    detect_format,
    read_records,
)
from tests.records_factory import (
    EXPORT_CSV_COLUMNS,
    EXPORT_CSV_TYPE_LINE,
    MID_1,
    folder,
    folder_item,
    graph_record,
    mail_items_accessed,
    other_operation,
)

pytestmark = pytest.mark.unit

TRICKY_SUBJECT = 'Re: "Fabrikam", term sheet, v2\n=HYPERLINK("http://evil.example")'


def records(index: int) -> dict[str, Any]:
    return mail_items_accessed(Id=f"rec-{index}", CreationTime=f"2026-11-18T09:{index:02d}:00")


def read(data: bytes) -> tuple[str, list[RawRecord]]:
    fmt, found = read_records(data)
    return fmt, list(found)


def purview_csv(audit_data: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(PURVIEW_COLUMNS)
    for n, cell in enumerate(audit_data):
        writer.writerow(
            [f"rec-{n}", "2026-11-18T09:00:00.0000000Z", "50", "MailItemsAccessed", "a", cell, "", ""]
        )
    return out.getvalue()


def export_csv(audit_data: list[str]) -> str:
    out = io.StringIO()
    out.write(EXPORT_CSV_TYPE_LINE + "\r\n")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(EXPORT_CSV_COLUMNS)
    for n, cell in enumerate(audit_data):
        writer.writerow(
            [
                "8d1e",
                "ExchangeItemAggregated",
                "18/11/2026 09:00:00",
                "a",
                "MailItemsAccessed",
                cell,
                *(str(n + 1), str(len(audit_data)), f"id-{n}", "True", "Unchanged"),
            ]
        )
    return out.getvalue()


# --- Management Activity API content blob ------------------------------------------------------


def test_management_api_json_array_is_detected_and_read() -> None:
    data = orjson.dumps([records(0), other_operation(), records(1)])
    fmt, found = read(data)
    assert detect_format(data) == MANAGEMENT_API
    assert fmt == MANAGEMENT_API
    assert found == [
        RawRecord("item 0", records(0)),
        RawRecord("item 1", other_operation()),
        RawRecord("item 2", records(1)),
    ]


def test_management_api_blob_pretty_printed_with_leading_whitespace_and_bom() -> None:
    data = codecs.BOM_UTF8 + b"\r\n  " + json.dumps([records(0)], indent=2).encode()
    fmt, found = read(data)
    assert fmt == MANAGEMENT_API
    assert found == [RawRecord("item 0", records(0))]


def test_empty_management_api_array_has_no_records() -> None:
    assert read(b"[]") == (MANAGEMENT_API, [])


def test_truncated_json_array_yields_the_readable_records_and_one_error() -> None:
    whole = orjson.dumps([records(0), records(1), records(2)])
    cut = whole[: whole.index(b'"rec-2"') + 3]
    fmt, found = read(cut)
    assert fmt == MANAGEMENT_API
    assert [r.value for r in found[:2]] == [records(0), records(1)]
    assert len(found) == 3
    assert found[2].position == "item 2"
    assert found[2].value is None
    assert found[2].error.startswith("invalid JSON from here on: ")


def test_json_array_cut_after_a_whole_record_reports_that_it_ends_early() -> None:
    whole = orjson.dumps([records(0), records(1)])
    cut = whole[: whole.index(b',{"CreationTime":"2026-11-18T09:01:00"')]
    found = read(cut)[1]
    assert [r.value for r in found[:1]] == [records(0)]
    assert len(found) == 2
    assert found[1].position == "item 1"
    assert found[1].error.startswith("array ends early: ")


def test_damaged_array_with_an_integer_beyond_the_digit_limit_is_an_error_not_a_crash() -> None:
    data = b'[{"Id": "a"}, {"OperationCount": ' + b"1" * 5000 + b"}]"
    found = read(data)[1]
    assert found[0] == RawRecord("item 0", {"Id": "a"})
    assert len(found) == 2
    assert found[1].position == "item 1"
    assert found[1].error.startswith("invalid JSON from here on: ")


def test_truncated_blob_through_normalize_records_counts_one_malformed_record() -> None:
    whole = orjson.dumps([records(0), records(1), records(2)])
    stats = ParseStats()
    events = list(normalize_records(read(whole[:-40])[1], "blob", stats))
    assert [e.record_id for e in events] == ["rec-0", "rec-1"]
    assert stats.as_dict() == {"records": 3, "events": 2, "other_operations": 0, "malformed": 1}
    assert stats.malformed_positions == ["item 2"]


# --- JSON Lines ------------------------------------------------------------------------------------


def test_json_lines_are_detected_and_read_line_by_line() -> None:
    data = b"\n".join(orjson.dumps(r) for r in (records(0), other_operation(), records(1))) + b"\n"
    fmt, found = read(data)
    assert detect_format(data) == JSON_LINES
    assert fmt == JSON_LINES
    assert found == [
        RawRecord("line 1", records(0)),
        RawRecord("line 2", other_operation()),
        RawRecord("line 3", records(1)),
    ]


def test_json_lines_bad_line_is_counted_and_the_rest_read() -> None:
    lines = [
        orjson.dumps(records(0)),
        b'{"Operation": "MailItemsAccessed", "Creat',
        b"",
        orjson.dumps(records(1)),
    ]
    data = b"\r\n".join(lines)
    fmt, found = read(data)
    assert fmt == JSON_LINES
    assert [r.position for r in found] == ["line 1", "line 2", "line 4"]
    assert found[0].value == records(0)
    assert found[1].value is None
    assert found[1].error.startswith("invalid JSON: ")
    assert found[2].value == records(1)
    stats = ParseStats()
    assert [e.record_id for e in normalize_records(found, "x.jsonl", stats)] == ["rec-0", "rec-1"]
    assert stats.malformed_positions == ["line 2"]


def test_json_lines_of_graph_records_unwrap_audit_data() -> None:
    data = orjson.dumps(graph_record(records(0))) + b"\n" + orjson.dumps(graph_record(records(1)))
    fmt, found = read(data)
    assert fmt == JSON_LINES
    assert found == [RawRecord("line 1", records(0)), RawRecord("line 2", records(1))]


def test_graph_pages_saved_one_a_line_are_read_page_by_page() -> None:
    page_1 = {"value": [graph_record(records(0)), graph_record(records(1))]}
    page_2 = {"value": [graph_record(records(2))]}
    data = orjson.dumps(page_1) + b"\n" + orjson.dumps(page_2) + b"\n"
    fmt, found = read(data)
    assert fmt == GRAPH_AUDIT_QUERY
    assert found == [
        RawRecord("line 1 item 0", records(0)),
        RawRecord("line 1 item 1", records(1)),
        RawRecord("line 2 item 0", records(2)),
    ]


# --- Graph audit-query records -------------------------------------------------------------------


def test_graph_response_page_pretty_printed_is_detected_and_unwrapped() -> None:
    page = {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/auditLog/queries('q')/records",
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/security/auditLog/queries/q/records?$skiptoken=x",
        "value": [graph_record(records(0)), graph_record(records(1))],
    }
    data = json.dumps(page, indent=2).encode()
    assert b"\n" in data
    fmt, found = read(data)
    assert detect_format(data) == GRAPH_AUDIT_QUERY
    assert fmt == GRAPH_AUDIT_QUERY
    assert found == [RawRecord("item 0", records(0)), RawRecord("item 1", records(1))]


def test_graph_page_on_one_line_is_detected() -> None:
    data = orjson.dumps({"value": [graph_record(records(0))]})
    assert read(data) == (GRAPH_AUDIT_QUERY, [RawRecord("item 0", records(0))])


def test_array_of_graph_records_with_audit_data_objects() -> None:
    data = orjson.dumps([graph_record(records(0)), graph_record(records(1))])
    fmt, found = read(data)
    assert fmt == GRAPH_AUDIT_QUERY
    assert found == [RawRecord("item 0", records(0)), RawRecord("item 1", records(1))]


def test_audit_data_given_as_a_json_string_is_parsed() -> None:
    data = orjson.dumps([graph_record(orjson.dumps(records(0)).decode())])
    assert read(data) == (GRAPH_AUDIT_QUERY, [RawRecord("item 0", records(0))])


def test_audit_data_key_is_matched_in_any_case() -> None:
    record = graph_record(records(0))
    record["AuditData"] = record.pop("auditData")
    assert read(orjson.dumps([record]))[1] == [RawRecord("item 0", records(0))]


def test_audit_data_string_that_is_not_json_becomes_a_malformed_record() -> None:
    found = read(orjson.dumps([graph_record("{not json"), graph_record(records(1))]))[1]
    assert found[0].value == "{not json"
    stats = ParseStats()
    assert [e.record_id for e in normalize_records(found, "graph.json", stats)] == ["rec-1"]
    assert stats.malformed_positions == ["item 0"]


def test_graph_records_normalize_to_the_same_rows_as_the_classic_records() -> None:
    classic = list(normalize_records(read(orjson.dumps([records(0)]))[1], "a"))
    graph = list(normalize_records(read(orjson.dumps({"value": [graph_record(records(0))]}))[1], "b"))
    assert [e.content_sha256() for e in graph] == [e.content_sha256() for e in classic]
    assert [{**e.row(), "SourceBlob": ""} for e in graph] == [{**e.row(), "SourceBlob": ""} for e in classic]
    assert classic[0].row()["RecordId"] == "rec-0"


# --- CSV with an AuditData column ----------------------------------------------------------------


def test_purview_csv_with_bom_is_detected_and_its_audit_data_read() -> None:
    tricky = mail_items_accessed(
        Id="rec-tricky", Folders=[folder("\\Inbox", folder_item(MID_1, subject=TRICKY_SUBJECT))]
    )
    cells = [json.dumps(records(0)), json.dumps(tricky, indent=2), json.dumps(records(2))]
    data = codecs.BOM_UTF8 + purview_csv(cells).encode()
    assert b"\n" in json.dumps(tricky, indent=2).encode()  # the cell spans lines
    fmt, found = read(data)
    assert detect_format(data) == CSV_AUDITDATA
    assert fmt == CSV_AUDITDATA
    assert [r.value for r in found] == [records(0), tricky, records(2)]
    assert [r.error for r in found] == ["", "", ""]
    events = list(normalize_records(found, "purview.csv"))
    assert events[1].row()["Messages"] == f"{MID_1} ({TRICKY_SUBJECT})"


def _every_format(subject: str) -> dict[str, str]:
    record = mail_items_accessed(Id="rec-u", Folders=[folder("\\Inbox", folder_item(MID_1, subject=subject))])
    return {
        MANAGEMENT_API: json.dumps([record], ensure_ascii=False),
        JSON_LINES: json.dumps(record, ensure_ascii=False) + "\n" + json.dumps(records(1)) + "\n",
        GRAPH_AUDIT_QUERY: json.dumps({"value": [graph_record(record)]}, ensure_ascii=False),
        CSV_AUDITDATA: purview_csv([json.dumps(record, ensure_ascii=False)]),
    }


@pytest.mark.parametrize("fmt", [MANAGEMENT_API, JSON_LINES, GRAPH_AUDIT_QUERY, CSV_AUDITDATA])
def test_every_format_reads_the_same_with_or_without_a_utf8_byte_order_mark(fmt: str) -> None:
    # Purview writes its exports with the mark, as the reports of this tool now are; a file saved
    # by another tool may have none. Either way the records, a non-ASCII subject included, match.
    text = _every_format("Réunion 顧客リスト")[fmt]
    without = read(text.encode("utf-8"))
    with_bom = read(codecs.BOM_UTF8 + text.encode("utf-8"))
    assert without[0] == with_bom[0] == fmt
    assert [r.value for r in with_bom[1]] == [r.value for r in without[1]]
    assert [r.error for r in with_bom[1]] == [""] * len(without[1])
    assert "Réunion 顧客リスト" in json.dumps(with_bom[1][0].value, ensure_ascii=False)


def test_purview_csv_positions_count_physical_lines() -> None:
    cells = [json.dumps(records(0)), json.dumps(records(1), indent=2), "", "{broken"]
    found = read(purview_csv(cells).encode("utf-8-sig"))[1]
    lines_of_second = json.dumps(records(1), indent=2).count("\n") + 1
    assert [r.position for r in found] == [
        "CSV row 2",
        f"CSV row {2 + lines_of_second}",
        f"CSV row {3 + lines_of_second}",
        f"CSV row {4 + lines_of_second}",
    ]
    assert found[2].error == "the AuditData cell is empty"
    assert found[3].error.startswith("AuditData is not JSON: ")


def test_csv_audit_data_larger_than_the_csv_default_field_limit_is_read_and_so_is_the_rest() -> None:
    bulk = mail_items_accessed(
        Id="rec-bulk",
        Folders=[
            folder(
                "\\Inbox",
                *(
                    folder_item(f"<{n:04d}.bulk@PH0PR11MB0001.namprd11.prod.outlook.com>")
                    for n in range(1000)
                ),
            )
        ],
        OperationCount=1000,
    )
    cells = [json.dumps(records(0)), json.dumps(bulk), json.dumps(records(2))]
    assert len(cells[1]) > 131_072  # csv's default field_size_limit
    previous = csv.field_size_limit(131_072)  # as in a fresh process
    try:
        found = read(purview_csv(cells).encode("utf-8-sig"))[1]
    finally:
        csv.field_size_limit(previous)
    assert [r.error for r in found] == ["", "", ""]
    assert [r.value for r in found] == [records(0), bulk, records(2)]


def test_csv_rows_that_are_entirely_blank_are_skipped() -> None:
    text = purview_csv([json.dumps(records(0))]) + '"","","","","","","",""\r\n\r\n'
    assert read(text.encode())[1] == [RawRecord("CSV row 2", records(0))]


def test_csv_row_too_short_to_have_audit_data_is_an_error() -> None:
    text = purview_csv([json.dumps(records(0))]) + '"rec-9","2026-11-18"\r\n'
    found = read(text.encode())[1]
    assert found[1] == RawRecord("CSV row 3", error="the AuditData cell is empty")


def test_search_unified_audit_log_export_csv_with_type_line() -> None:
    data = export_csv([json.dumps(records(0)), json.dumps(records(1))]).encode()
    fmt, found = read(data)
    assert detect_format(data) == CSV_AUDITDATA
    assert fmt == CSV_AUDITDATA
    assert found == [RawRecord("CSV row 3", records(0)), RawRecord("CSV row 4", records(1))]


def test_utf16_le_export_csv_with_bom_is_read() -> None:
    text = export_csv([json.dumps(records(0), ensure_ascii=False), json.dumps(records(1))])
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    fmt, found = read(data)
    assert detect_format(data) == CSV_AUDITDATA
    assert fmt == CSV_AUDITDATA
    assert [r.value for r in found] == [records(0), records(1)]


def test_utf16_le_export_larger_than_the_detection_window_with_a_split_surrogate_pair() -> None:
    tricky = mail_items_accessed(
        Id="rec-emoji", Folders=[folder("\\Inbox", folder_item(MID_1, subject="Re: 🔥 launch"))]
    )

    def build(padding: int) -> tuple[dict[str, Any], str, int]:
        padded = mail_items_accessed(Id="rec-pad", Filler="x" * padding)
        text = export_csv([json.dumps(padded), json.dumps(tricky, ensure_ascii=False)])
        emoji_at = len(codecs.BOM_UTF16_LE) + len(text[: text.index("🔥")].encode("utf-16-le"))
        return padded, text, emoji_at

    # Pad the first AuditData so the emoji's surrogate pair straddles byte 65536 of the file:
    # high surrogate at bytes 65534-65535, low surrogate just beyond the detection window.
    padded, text, emoji_at = build(0)
    padded, text, emoji_at = build((65534 - emoji_at) // 2)
    assert emoji_at == 65534
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    assert detect_format(data) == CSV_AUDITDATA
    fmt, found = read(data)
    assert fmt == CSV_AUDITDATA
    assert [r.value for r in found] == [padded, tricky]


def test_csv_header_with_audit_data_in_other_case_or_padding() -> None:
    text = '"Id"," auditdata "\r\n"1","{""Id"": ""x""}"\r\n'
    assert read(text.encode()) == (CSV_AUDITDATA, [RawRecord("CSV row 2", {"Id": "x"})])


# --- Unknown files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \r\n",
        b"Hello,\nthis is a plain text note about the incident.\n",
        b"Name,Value\r\nalice,1\r\n",
        b'"RecordId","CreationDate","Operation"\r\n"1","2026-11-18","MailItemsAccessed"\r\n',
        b"<html><body>audit</body></html>",
        "\ufeffNo AuditData here".encode(),
    ],
)
def test_unknown_file_raises_unknown_format_naming_the_expected_formats(data: bytes) -> None:
    with pytest.raises(UnknownFormat) as raised:
        read_records(data)
    message = str(raised.value)
    assert message.startswith("not a recognised audit export: expected ")
    for expected in ("Management Activity API", "JSON array", "JSON Lines", "AuditData column", "auditData"):
        assert expected in message


def test_an_unknown_format_name_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(UnknownFormat, match="unknown format 'xml'; known: management-api, graph-audit-query"):
        read_records(b"[]", "xml")


def test_explicit_format_skips_detection() -> None:
    data = orjson.dumps(records(0))
    assert read_records(data, JSON_LINES)[0] == JSON_LINES
    assert list(read_records(data, JSON_LINES)[1]) == [RawRecord("line 1", records(0))]


def test_data_after_a_json_arrays_end_is_reported_never_silently_ignored() -> None:
    found = read(orjson.dumps([records(0)]) + b' {"Id": "appended"}')[1]
    assert [r.value for r in found[:1]] == [records(0)]
    assert len(found) == 2
    assert found[1].position == "item 1"
    assert found[1].error.startswith("data after the array's end: ")

"""Text that is not valid Unicode, decided once where a reader hands a record over (shared/parse/text.py,
shared/parse/readers.py): U+FFFD in its place, the JSON path named in `Repaired`, every renderer happy."""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

import orjson
import pytest

from shared.parse.normalize import ParseStats, normalize_records
from shared.parse.readers import read_records
from shared.parse.text import REPLACEMENT, repair_value
from shared.reports import render
from shared.reports.views import VIEWS
from tests.records_factory import MID_1, folder, folder_item, graph_record, mail_items_accessed

pytestmark = pytest.mark.unit

# What .NET writes when it cuts a string inside a surrogate pair: a lone high surrogate, escaped.
LONE = "\\ud83d"
SUBJECT_PATH = "Folders[0].FolderItems[0].Subject"


def record_text(subject_escape: str, record_id: str = "rec-1") -> str:
    """A record's JSON text whose subject holds `subject_escape` as written (JSON escapes kept)."""
    record = mail_items_accessed(
        Id=record_id, Folders=[folder("\\Inbox", folder_item(MID_1, subject="@@SUBJECT@@"))]
    )
    return json.dumps(record).replace("@@SUBJECT@@", f"Invoice {subject_escape} paid")


def purview(cells: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(["RecordId", "CreationDate", "Operation", "AuditData"])
    for n, cell in enumerate(cells):
        writer.writerow([f"r{n}", "2026-11-18T09:00:00Z", "MailItemsAccessed", cell])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def graph_page(text: str) -> str:
    wrapper = json.dumps({"value": [graph_record({"placeholder": 1})]})
    return wrapper.replace('{"placeholder": 1}', text)


EXPORTS = {
    "management-api": lambda text: f"[{text}, {record_text('ok', 'rec-2')}]".encode(),
    "management-api-cut": lambda text: f"[{text}, {record_text('ok', 'rec-2')}".encode(),
    "jsonl": lambda text: f"{text}\n{record_text('ok', 'rec-2')}\n".encode(),
    "purview-csv": lambda text: purview([text, record_text("ok", "rec-2")]),
    "graph-page": lambda text: graph_page(text).encode(),
    "graph-audit-data-string": lambda text: json.dumps({"value": [{"auditData": text}]}).encode(),
}


@pytest.mark.parametrize("export", sorted(EXPORTS))
def test_a_lone_surrogate_becomes_u_fffd_and_its_path_is_named_in_every_reader(export: str) -> None:
    data = EXPORTS[export](record_text(LONE))
    stats = ParseStats()

    events = list(normalize_records(read_records(data)[1], export, stats))

    first = events[0]
    assert first.items[0].subject == f"Invoice {REPLACEMENT} paid"
    assert first.repaired == (SUBJECT_PATH,)
    assert first.row()["Repaired"] == SUBJECT_PATH
    assert stats.malformed == (1 if export == "management-api-cut" else 0)  # only the cut-off tail
    assert all(event.repaired == () for event in events[1:])  # the record after it is untouched
    if export not in ("management-api-cut", "graph-page", "graph-audit-data-string"):
        assert [event.record_id for event in events] == ["rec-1", "rec-2"]


def test_bytes_that_are_not_utf8_become_u_fffd_and_are_named() -> None:
    data = record_text("\udcff").encode("utf-8", "surrogateescape")  # a lone 0xFF byte in the subject
    assert b"\xff" in data

    [event] = list(normalize_records(read_records(b"[" + data + b"]")[1], "blob"))

    assert event.items[0].subject == f"Invoice {REPLACEMENT} paid"
    assert event.repaired == (SUBJECT_PATH,)


def test_a_repaired_record_renders_in_every_view_and_format() -> None:
    [event] = list(normalize_records(read_records(f"[{record_text(LONE)}]".encode())[1], "blob"))
    for view, (columns, rows) in VIEWS.items():
        for fmt in render.FORMATS:
            sink = io.StringIO()
            render.write_rows(fmt, rows([event], None), columns, sink)
            sink.getvalue().encode("utf-8")  # strict: no lone surrogate reaches any output
            # The sessions and mailboxes views carry no subject, where the repair is.
            assert REPLACEMENT in sink.getvalue() or view in ("sessions", "mailboxes"), (view, fmt)


def test_valid_text_is_passed_through_untouched_and_unrepaired() -> None:
    value: dict[str, Any] = {"a": ["😀 ok", {"b": "日本語"}], "n": 3}
    repaired: list[str] = []
    assert repair_value(value, repaired) is value
    assert repaired == []


def test_a_name_and_nested_values_are_repaired_with_their_paths() -> None:
    value = {"k\ud800": ["x", {"s": "a\udfffb"}]}
    repaired: list[str] = []
    assert repair_value(value, repaired) == {"k\ufffd": ["x", {"s": "a\ufffdb"}]}
    assert repaired == ["k\ufffd (name)", "k\ufffd[1].s"]


def test_orjson_refuses_what_the_fallback_reads() -> None:
    """Why the fallback exists: the fast decoder rejects these records outright."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(record_text(LONE))


@pytest.mark.parametrize(
    ("field", "value"),
    [("OperationCount", 2**70), ("OperationCount", -(2**64))],
)
def test_a_number_beyond_int64_is_left_out_and_named_as_repaired(field: str, value: int) -> None:
    text = json.dumps(mail_items_accessed(Id="rec-1", **{field: value}))
    [event] = list(normalize_records(read_records(f"[{text}]".encode())[1], "blob"))
    assert event.operation_count is None
    assert event.repaired == (field,)
    render.write_rows("json", VIEWS["events"][1]([event], None), VIEWS["events"][0], io.StringIO())


def test_a_size_beyond_int64_is_left_out_and_named_with_its_path() -> None:
    item = {"InternetMessageId": MID_1, "SizeInBytes": 10**30}
    text = json.dumps(mail_items_accessed(Id="rec-1", Folders=[{"Path": "\\Inbox", "FolderItems": [item]}]))
    [event] = list(normalize_records(read_records(f"[{text}]".encode())[1], "blob"))
    assert event.items[0].size_in_bytes is None
    assert event.repaired == ("Folders[0].FolderItems[0].SizeInBytes",)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_json_lines_are_split_on_line_feeds_only_never_on_separators_inside_a_string(separator: str) -> None:
    """JSON writers leave U+2028, U+2029 and NEL unescaped inside strings (RFC 8259 allows it)."""
    record = mail_items_accessed(Id="rec-1", ClientInfoString=f"Client=OWA;{separator}Mozilla/5.0")
    data = (
        json.dumps(record, ensure_ascii=False) + "\r\n" + json.dumps(record | {"Id": "rec-2"}) + "\n"
    ).encode()
    stats = ParseStats()

    events = list(normalize_records(read_records(data)[1], "jsonl", stats))

    assert [event.record_id for event in events] == ["rec-1", "rec-2"]
    assert events[0].client_info == f"Client=OWA;{separator}Mozilla/5.0"
    assert stats.malformed == 0

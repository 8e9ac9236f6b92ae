"""shared/reports/render.py: RFC 4180 CSV neutralised against formula injection, and a JSON array."""

from __future__ import annotations

import codecs
import io
import json
from typing import Any

import pytest

from shared.model.event import EVENT_COLUMNS
from shared.reports.render import BOM, neutralise_cell, write_csv, write_json, write_rows
from tests.helpers import parse_csv
from tests.records_factory import row

pytestmark = pytest.mark.unit

COLUMNS = ("Name", "Flag", "Count", "Note")


def csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    sink = io.StringIO()
    write_csv(rows, columns, sink)
    return sink.getvalue()


def csv_cells(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> list[list[str]]:
    return parse_csv(csv_text(rows, columns))


def json_value(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> Any:
    sink = io.StringIO()
    write_json(rows, columns, sink)
    return json.loads(sink.getvalue())


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\n", "\0"])
def test_cells_starting_like_a_formula_are_prefixed_with_a_quote(start: str) -> None:
    value = start + 'HYPERLINK("http://evil.example/x","Invoice")'
    assert neutralise_cell(value) == "'" + value
    assert csv_cells([{"Name": value}])[1][0] == "'" + value


@pytest.mark.parametrize(
    "value",
    [
        "Inbox",
        "alice@contoso.com",
        "Q4 board pack - draft 3",
        "203.0.113.10",
        "2026-11-20T08:00:00Z",
        "'already quoted",
        "a=b",
        "顧客リスト 2026",
        "",
    ],
)
def test_safe_cells_are_untouched(value: str) -> None:
    assert neutralise_cell(value) == value
    assert csv_cells([{"Name": value}])[1][0] == value


def test_numbers_are_written_as_text_and_negative_ones_neutralised() -> None:
    assert csv_cells([{"Count": 3}, {"Count": 0}, {"Count": -1}])[1:] == [
        ["", "", "3", ""],
        ["", "", "0", ""],
        ["", "", "'-1", ""],
    ]


@pytest.mark.parametrize(
    "value",
    [
        'Re: "Fabrikam" term sheet',
        "Wire transfer approval 250,000 EUR",
        "line one\nline two",
        "line one\r\nline two",
        'all, of "them"\r\nat once',
        '""',
    ],
)
def test_quotes_commas_and_newlines_round_trip_through_csv_reader(value: str) -> None:
    assert csv_cells([{"Name": value, "Note": value}]) == [list(COLUMNS), [value, "", "", value]]


def test_csv_quotes_every_field_doubles_quotes_and_ends_lines_with_crlf() -> None:
    text = csv_text([{"Name": 'say "hi"', "Flag": True, "Count": 2, "Note": None}])
    assert text == '\ufeff"Name","Flag","Count","Note"\r\n"say ""hi""","True","2",""\r\n'


def test_booleans_are_true_false_in_csv() -> None:
    assert csv_cells([{"Flag": True}, {"Flag": False}])[1:] == [["", "True", "", ""], ["", "False", "", ""]]


def test_none_and_missing_values_are_empty_csv_cells() -> None:
    assert csv_cells([{"Name": None, "Flag": None}])[1] == ["", "", "", ""]


def test_csv_columns_follow_the_given_order_and_ignore_extra_keys() -> None:
    cells = csv_cells([{"Note": "n", "Name": "a", "Extra": "x", "Count": 1}], ("Note", "Name", "Count"))
    assert cells == [["Note", "Name", "Count"], ["n", "a", "1"]]


def test_csv_of_no_rows_is_the_header_alone() -> None:
    sink = io.StringIO()
    assert write_csv([], COLUMNS, sink) == 0
    assert sink.getvalue() == '\ufeff"Name","Flag","Count","Note"\r\n'


def test_write_csv_returns_the_row_count() -> None:
    assert write_csv(iter([{"Name": "a"}, {"Name": "b"}, {"Name": "c"}]), COLUMNS, io.StringIO()) == 3


class RecordingSink:
    """Every write() call, in order: where the byte-order mark goes in a streamed body."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str, /) -> int:
        self.writes.append(text)
        return len(text)


def test_csv_starts_with_one_byte_order_mark_written_before_anything_else() -> None:
    # Excel opens a UTF-8 CSV right only with the mark (Microsoft Support, "Opening CSV UTF-8 files
    # correctly in Excel": https://support.microsoft.com/en-us/office/opening-csv-utf-8-files-correctly-in-excel-8a935af5-3416-4edd-ba7e-3dfd2bc4a032).
    sink = RecordingSink()
    rows = [{"Name": "Réunion du conseil"}, {"Name": "顧客リスト 2026"}]
    assert write_csv(iter(rows), COLUMNS, sink) == 2
    assert sink.writes[0] == BOM
    assert "".join(sink.writes).count(BOM) == 1
    encoded = "".join(sink.writes).encode("utf-8")
    assert encoded.startswith(codecs.BOM_UTF8 + b'"Name"')
    assert encoded.decode("utf-8-sig").startswith('"Name"')


def test_a_bom_inside_a_cell_is_data_and_the_body_still_starts_with_exactly_one() -> None:
    text = csv_text([{"Name": BOM + "subject"}])
    assert text.startswith(BOM + '"Name"')
    assert csv_cells([{"Name": BOM + "subject"}])[1][0] == BOM + "subject"


def test_json_has_no_byte_order_mark() -> None:
    # RFC 8259 section 8.1: implementations must not add a byte order mark to JSON text.
    sink = io.StringIO()
    write_rows("json", [{"Name": "Réunion"}], COLUMNS, sink)
    assert not sink.getvalue().startswith(BOM)
    assert BOM not in sink.getvalue()


def test_json_is_an_array_of_objects_keyed_by_column_in_order() -> None:
    value = json_value([{"Count": 1, "Name": "a", "Extra": "dropped"}, {"Name": "b"}])
    assert value == [
        {"Name": "a", "Flag": None, "Count": 1, "Note": None},
        {"Name": "b", "Flag": None, "Count": None, "Note": None},
    ]
    assert [list(obj) for obj in value] == [list(COLUMNS), list(COLUMNS)]


def test_json_booleans_are_true_false_and_none_is_null() -> None:
    sink = io.StringIO()
    write_json([{"Name": None, "Flag": True, "Count": 7, "Note": False}], COLUMNS, sink)
    assert sink.getvalue() == '[{"Name":null,"Flag":true,"Count":7,"Note":false}]'


def test_json_of_no_rows_is_an_empty_array() -> None:
    sink = io.StringIO()
    assert write_json([], COLUMNS, sink) == 0
    assert sink.getvalue() == "[]"


def test_json_keeps_values_as_they_are_without_neutralising() -> None:
    value = '=HYPERLINK("http://evil.example/x","Invoice")\n"quoted", unicode 顧客'
    assert json_value([{"Name": value}])[0]["Name"] == value


def test_json_of_many_rows_is_one_valid_array() -> None:
    rows = [{"Name": f"n{i}", "Count": i} for i in range(250)]
    sink = io.StringIO()
    assert write_json(rows, COLUMNS, sink) == 250
    value = json.loads(sink.getvalue())
    assert [obj["Count"] for obj in value] == list(range(250))


def test_event_rows_render_with_the_design_header_and_typed_json() -> None:
    event_row = row(OperationProperties=[{"Name": "IsThrottled", "Value": "True"}])
    cells = csv_cells([event_row], EVENT_COLUMNS)
    assert cells[0] == list(EVENT_COLUMNS)
    assert dict(zip(EVENT_COLUMNS, cells[1], strict=True))["Throttled"] == "True"
    assert dict(zip(EVENT_COLUMNS, cells[1], strict=True))["OperationCount"] == "2"
    obj = json_value([event_row], EVENT_COLUMNS)[0]
    assert list(obj) == list(EVENT_COLUMNS)
    assert obj["Throttled"] is True
    assert obj["ExternalAccess"] is False
    assert obj["MessageCount"] == 2


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_write_rows_dispatches_by_format(fmt: str) -> None:
    sink = io.StringIO()
    assert write_rows(fmt, [{"Name": "a"}], COLUMNS, sink) == 1
    assert sink.getvalue().startswith(BOM + '"Name"' if fmt == "csv" else '[{"Name":"a"')


def test_write_rows_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'html'"):
        write_rows("html", [], COLUMNS, io.StringIO())

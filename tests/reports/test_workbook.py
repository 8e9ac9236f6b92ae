"""shared/reports/workbook.py and assemble.workbook_sheets: typed, formula-free, bounded sheets."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from shared.model.event import EVENT_COLUMNS, MessageRef
from shared.reports import assemble
from shared.reports.request import ReportQuery
from shared.reports.views import MESSAGE_COLUMNS
from shared.reports.workbook import CUT_MARK, MAX_CELL_UTF16, Sheet, fit_cell, write_workbook
from tests.helpers import make_event
from tests.reports.xlsx import assert_workbook_is_safe, sheet_rows

pytestmark = pytest.mark.unit

QUERY = ReportQuery(
    subject="alice@contoso.com",
    by="mailbox",
    view="events",
    fmt="xlsx",
    start=datetime(2026, 11, 18, tzinfo=UTC),
    end=datetime(2026, 11, 19, tzinfo=UTC),
)


def test_a_text_longer_than_a_cell_holds_is_cut_with_a_visible_mark() -> None:
    # A character outside the BMP is two UTF-16 units: Excel's limit counts units, not characters.
    text = "\U0001f4e7" * 20_000
    cut = fit_cell(text)

    assert cut.endswith(CUT_MARK)
    assert len(cut.encode("utf-16-le")) // 2 <= MAX_CELL_UTF16
    assert cut.removesuffix(CUT_MARK) == text[: len(cut.removesuffix(CUT_MARK))]
    assert fit_cell("short") == "short"


def test_a_subject_over_the_cell_limit_is_written_cut_not_dropped() -> None:
    out = io.BytesIO()
    write_workbook(out, [Sheet("events", ("Subject",), [{"Subject": "x" * 40_000}])])

    [row] = sheet_rows(load_workbook(io.BytesIO(out.getvalue()))["events"])
    assert str(row["Subject"].value).endswith(CUT_MARK)
    assert len(str(row["Subject"].value)) == MAX_CELL_UTF16


def test_an_empty_range_gives_every_sheet_its_header_and_no_note() -> None:
    out = io.BytesIO()
    written = assemble.render_workbook(QUERY, lambda: [], out)

    assert written == {"exposure": 0, "sessions": 0, "messages": 0, "events": 0}
    book = load_workbook(io.BytesIO(out.getvalue()))
    assert [cell.value for cell in book["events"][1]] == list(EVENT_COLUMNS)
    assert book["events"].auto_filter.ref == f"A1:{get_column_letter(len(EVENT_COLUMNS))}1"
    assert book["events"].max_row == 1
    assert_workbook_is_safe(out.getvalue())


def test_without_a_page_bound_every_row_of_the_range_is_written() -> None:
    events = [
        make_event(
            timestamp=datetime(2026, 11, 18, 8, tzinfo=UTC) + timedelta(seconds=n),
            record_id=f"r{n}",
            items=tuple(MessageRef(f"<m{n}-{k}@x>", "Inbox", "", 1) for k in range(4)),
        )
        for n in range(300)
    ]
    out = io.BytesIO()
    written = assemble.render_workbook(QUERY, lambda: events, out)

    assert written == {"exposure": 1200, "sessions": 1, "messages": 1200, "events": 300}
    book = load_workbook(io.BytesIO(out.getvalue()))
    assert [cell.value for cell in book["messages"][1]] == list(MESSAGE_COLUMNS)
    assert book["messages"].max_row == 1201  # no note under the rows
    assert [row["RecordId"].value for row in sheet_rows(book["events"])] == [f"r{n}" for n in range(300)]

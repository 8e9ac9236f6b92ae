"""Reading report workbooks back with openpyxl, for the tests of format=xlsx (HTTP, CLI, unit)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from openpyxl import load_workbook
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from shared.model.times import parse_iso_z
from shared.reports.render import neutralise_cell
from shared.reports.workbook import TIME_COLUMNS

_LAST_ROW = re.compile(r"^A1:[A-Z]+(\d+)$")


def sheet_rows(sheet: Worksheet) -> list[dict[str, Cell]]:
    """The data rows (under the header, inside the autofilter) as cells keyed by column name."""
    match = _LAST_ROW.fullmatch(sheet.auto_filter.ref or "")
    assert match, sheet.auto_filter.ref
    header = [cell.value for cell in sheet[1]]
    rows: list[dict[str, Cell]] = []
    for row in sheet.iter_rows(min_row=2, max_row=int(match.group(1)), max_col=len(header)):
        cells = [cell for cell in row if isinstance(cell, Cell)]  # no merged cells in a report
        rows.append({str(name): cell for name, cell in zip(header, cells, strict=True)})
    return rows


def assert_cell_holds(cell: Cell, column: str, expected: Any) -> None:
    """The cell is the typed form of `expected` (a JSON report value) in its column."""
    where = f"{column} {cell.coordinate}"
    if expected is None or expected == "":
        assert cell.value is None, where
    elif isinstance(expected, bool):
        assert (cell.data_type, cell.value) == ("b", expected), where
    elif isinstance(expected, int):
        assert cell.data_type == "n", where
        assert type(cell.value) is int, where
        assert cell.value == expected, where
    elif column in TIME_COLUMNS:
        assert cell.is_date, where
        assert isinstance(cell.value, datetime), where
        assert cell.value == parse_iso_z(expected).replace(tzinfo=None), where
        assert "UTC" in cell.number_format, where
    else:
        assert (cell.data_type, cell.value) == ("s", neutralise_cell(expected)), where


def assert_sheet_matches(
    sheet: Worksheet, columns: Sequence[str], expected: Sequence[Mapping[str, Any]]
) -> None:
    """The sheet has the view's header (frozen, filterable) and exactly `expected`, typed."""
    assert [cell.value for cell in sheet[1]] == list(columns)
    assert sheet.freeze_panes == "A2"
    rows = sheet_rows(sheet)
    assert len(rows) == len(expected), sheet.title
    for row, wanted in zip(rows, expected, strict=True):
        for column in columns:
            assert_cell_holds(row[column], column, wanted[column])
    # Widths are set for every column, at least as wide as the header.
    for index, name in enumerate(columns, start=1):
        assert sheet.column_dimensions[get_column_letter(index)].width >= len(name), (sheet.title, name)


def assert_workbook_is_safe(body: bytes) -> None:
    """No cell is a formula, in the package itself and as openpyxl reads it; every string is an
    inline string, as XlsxWriter's constant_memory mode writes them (no shared-string table)."""
    package = zipfile.ZipFile(io.BytesIO(body))
    sheets = [name for name in package.namelist() if name.startswith("xl/worksheets/sheet")]
    assert sheets
    assert "xl/sharedStrings.xml" not in package.namelist()
    for name in sheets:
        xml = package.read(name).decode("utf-8")
        assert "<f>" not in xml, name
        assert "<f " not in xml, name
        assert 't="s"' not in xml, name
    for sheet in load_workbook(io.BytesIO(body)).worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate)
                if cell.data_type == "s":
                    assert not str(cell.value).startswith(("=", "+", "-", "@")), cell.coordinate

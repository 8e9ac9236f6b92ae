"""Write report views as sheets of one Excel workbook (.xlsx), in constant memory.

XlsxWriter's `constant_memory` mode writes each row to a temporary file as soon as the next row
starts, so memory stays flat however long a sheet is. Rows must then be written in order: a cell
written to a row before the current one is dropped (the write returns -2), so every write here is
checked. That mode also disallows add_table() and autofit(), so the header is an autofilter and
column widths are measured while the rows stream
(https://xlsxwriter.readthedocs.io/working_with_memory.html).

Cells are typed: times as Excel date-times in UTC (a serial number with no zone,
"Date systems in Excel": https://support.microsoft.com/en-us/office/date-systems-in-excel-e7fe7167-48a9-4b96-bb53-5612a800b487,
so the number format says UTC), booleans as booleans, counts as numbers, and text with
write_string, so no cell is ever a formula; text is neutralised as in CSV too, because a cell
copied out of Excel or saved as CSV is read again as a formula.

A worksheet holds at most 1,048,576 rows and a cell at most 32,767 characters ("Excel
specifications and limits": https://support.microsoft.com/en-us/office/excel-specifications-and-limits-1672b34d-7043-467e-8e27-269d656771c3);
a longer text is cut with a visible mark, never silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from shared.model.times import parse_iso_z
from shared.reports.render import neutralise_cell

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_SHEET_ROWS = 1_048_576
# Rows a sheet may give to data: the header, a blank row and a note line take the rest.
MAX_DATA_ROWS = MAX_SHEET_ROWS - 3
MAX_CELL_UTF16 = 32_767
CUT_MARK = " [cut: the cell limit is 32,767 characters; CSV and JSON hold the whole text]"
TIME_COLUMNS = frozenset({"TimeStamp", "FirstSeen", "LastSeen", "Received", "FirstAccess", "LastAccess"})
TIME_FORMAT = 'yyyy-mm-dd hh:mm:ss "UTC"'
TIME_WIDTH = 23
MIN_WIDTH, MAX_WIDTH = 8, 60


class WorkbookError(RuntimeError):
    """XlsxWriter refused a write (a bug here, never a data problem): no workbook half-written."""


@dataclass(frozen=True)
class Sheet:
    """One view as a sheet: its rows (dicts keyed by column) and, once they are written, an
    optional note line to put under them (None for none)."""

    name: str
    columns: tuple[str, ...]
    rows: Iterable[dict[str, Any]]
    note: Callable[[], str | None] = lambda: None


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit_cell(text: str) -> str:
    """`text`, cut with CUT_MARK when it exceeds what one cell holds."""
    if len(text) <= MAX_CELL_UTF16 // 2 or _utf16_units(text) <= MAX_CELL_UTF16:
        return text
    room = MAX_CELL_UTF16 - _utf16_units(CUT_MARK)
    # errors="ignore" drops half of a surrogate pair split at the cut.
    kept = text.encode("utf-16-le")[: 2 * room].decode("utf-16-le", errors="ignore")
    return kept + CUT_MARK


def _excel_time(value: str) -> datetime:
    """An `iso_z` value as the naive UTC datetime XlsxWriter writes as a serial number."""
    return parse_iso_z(value).replace(tzinfo=None)


class _SheetWriter:
    def __init__(self, worksheet: Any, columns: tuple[str, ...], time_format: Any) -> None:
        self._sheet = worksheet
        self._columns = columns
        self._time_format = time_format
        self._widths = [max(MIN_WIDTH, len(column) + 3) for column in columns]
        self.row = 0

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            raise WorkbookError(f"XlsxWriter refused {what} at row {self.row} ({result})")

    def header(self) -> None:
        for col, name in enumerate(self._columns):
            self._check(self._sheet.write_string(0, col, name), "a header cell")

    def _cell(self, col: int, name: str, value: object) -> None:
        sheet, row = self._sheet, self.row
        if value is None or value == "":
            return  # an empty cell
        if isinstance(value, bool):
            self._check(sheet.write_boolean(row, col, value), name)
            width = 6
        elif isinstance(value, int | float):
            self._check(sheet.write_number(row, col, value), name)
            width = len(str(value))
        elif name in TIME_COLUMNS and isinstance(value, str):
            self._check(sheet.write_datetime(row, col, _excel_time(value), self._time_format), name)
            width = TIME_WIDTH
        else:
            text = fit_cell(neutralise_cell(str(value)))
            self._check(sheet.write_string(row, col, text), name)
            width = len(text)
        self._widths[col] = max(self._widths[col], min(width + 2, MAX_WIDTH))

    def data_row(self, values: dict[str, Any]) -> None:
        self.row += 1
        for col, name in enumerate(self._columns):
            self._cell(col, name, values.get(name))

    def note(self, text: str) -> None:
        self._check(self._sheet.write_string(self.row + 2, 0, fit_cell(text)), "the note")

    def finish(self, last_data_row: int) -> None:
        """Header frozen and filterable over the data rows; widths from what was written."""
        self._sheet.freeze_panes(1, 0)
        self._sheet.autofilter(0, 0, last_data_row, len(self._columns) - 1)
        for col, width in enumerate(self._widths):
            self._sheet.set_column(col, col, width)


def write_workbook(target: str | Path | IO[bytes], sheets: Iterable[Sheet]) -> dict[str, int]:
    """Write `sheets`, in order, as one workbook to `target` (a path or a binary file object);
    returns the data rows written per sheet. A sheet with more than MAX_DATA_ROWS rows raises
    WorkbookError: callers bound their rows (assemble.workbook_sheets)."""
    written: dict[str, int] = {}
    import xlsxwriter  # loaded only when a workbook is written

    book = xlsxwriter.Workbook(
        str(target) if isinstance(target, Path) else target,
        {
            "constant_memory": True,
            # Text is data here: never turned into formulas, numbers or links.
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    try:
        time_format = book.add_format({"num_format": TIME_FORMAT})
        for sheet in sheets:
            writer = _SheetWriter(book.add_worksheet(sheet.name), sheet.columns, time_format)
            writer.header()
            for values in sheet.rows:
                if writer.row >= MAX_DATA_ROWS:
                    raise WorkbookError(f"sheet {sheet.name} has more than {MAX_DATA_ROWS} rows")
                writer.data_row(values)
            last_data_row = writer.row
            note = sheet.note()
            if note:
                writer.note(note)
            writer.finish(last_data_row)
            written[sheet.name] = last_data_row
    finally:
        book.close()
    return written

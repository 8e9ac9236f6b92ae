"""Render view rows as CSV or JSON, streaming to a text sink (docs/architecture.md#report-formats).

CSV is RFC 4180 (every field quoted), and any cell a spreadsheet could take for a formula is
neutralised (OWASP CSV Injection; ASVS 5.0 V1.2.10): audit fields such as subjects, client strings
and display names are attacker-controlled.

CSV starts with a UTF-8 byte-order mark, once, before the header: Excel opens a CSV without one in
the ANSI code page, so a French or Japanese subject shows as mojibake ("Opening CSV UTF-8 files
correctly in Excel", https://support.microsoft.com/en-us/office/opening-csv-utf-8-files-correctly-in-excel-8a935af5-3416-4edd-ba7e-3dfd2bc4a032).
JSON carries none: RFC 8259 section 8.1 forbids adding one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

import orjson

FORMATS = ("csv", "json")
BOM = "\ufeff"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


class TextSink(Protocol):
    def write(self, text: str, /) -> Any: ...


def neutralise_cell(value: str) -> str:
    """Prefix a single quote to a cell that begins like a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return neutralise_cell(str(value))


def write_csv(rows: Iterable[dict[str, Any]], columns: tuple[str, ...], sink: TextSink) -> int:
    sink.write(BOM)
    writer = csv.writer(sink, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
        count += 1
    return count


def write_json(rows: Iterable[dict[str, Any]], columns: tuple[str, ...], sink: TextSink) -> int:
    """A JSON array of objects keyed by the column names, written one object at a time."""
    sink.write("[")
    count = 0
    for row in rows:
        sink.write(("," if count else "") + orjson.dumps({c: row.get(c) for c in columns}).decode())
        count += 1
    sink.write("]")
    return count


def write_rows(fmt: str, rows: Iterable[dict[str, Any]], columns: tuple[str, ...], sink: TextSink) -> int:
    if fmt == "csv":
        return write_csv(rows, columns, sink)
    if fmt == "json":
        return write_json(rows, columns, sink)
    raise ValueError(f"unknown format {fmt!r}")

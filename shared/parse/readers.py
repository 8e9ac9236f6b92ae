"""Readers for every audit export a responder is likely to hold (docs/architecture.md#importing-exports).

Formats, detected from the bytes:
- `management-api`: an Office 365 Management Activity API content blob, a JSON array of records;
- `graph-audit-query`: Graph audit-log query records (`{"value": [...]}` pages or an array of
  them), each record's classic AuditData in `auditData`;
- `jsonl`: JSON Lines, one record per line (a record or a Graph record);
- `csv-auditdata`: CSV with an `AuditData` column: Purview audit search exports (UTF-8 with BOM)
  and `Search-UnifiedAuditLog | Export-Csv` files (possibly with a `#TYPE` first line, possibly
  UTF-16 from Windows PowerShell's `-Encoding Unicode`);
- `sentinel-csv` / `sentinel-json`: Microsoft Sentinel / Log Analytics `OfficeActivity` rows, as the
  portal's Export writes them (CSV), or as JSON (an array of row objects, or the Log Analytics
  query API's `{"tables": [{"columns", "rows"}]}` response); see shared/parse/office_activity.py;
- `powershell-shallow`: records parsed from AuditData and written back by `ConvertTo-Json` at its
  default depth, nested values as `@{...}` / `System.Object[]` text: read back as far as they go,
  the lost paths named (shared/parse/powershell.py).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from shared.parse import office_activity, powershell
from shared.parse.normalize import RawRecord
from shared.parse.text import repair_value

MANAGEMENT_API = "management-api"
GRAPH_AUDIT_QUERY = "graph-audit-query"
JSON_LINES = "jsonl"
CSV_AUDITDATA = "csv-auditdata"
SENTINEL_CSV = "sentinel-csv"
SENTINEL_JSON = "sentinel-json"
POWERSHELL_SHALLOW = "powershell-shallow"
FORMATS = (
    MANAGEMENT_API,
    GRAPH_AUDIT_QUERY,
    JSON_LINES,
    CSV_AUDITDATA,
    SENTINEL_CSV,
    SENTINEL_JSON,
    POWERSHELL_SHALLOW,
)
# What an import of each format must tell the responder, per file.
WARNINGS = {POWERSHELL_SHALLOW: powershell.REEXPORT_ADVICE}

_EXPECTED = (
    "expected a Management Activity API content blob (JSON array), JSON Lines of records, "
    "a CSV with an AuditData column (Purview audit search or Search-UnifiedAuditLog | Export-Csv), "
    "Graph audit-query records (auditData), "
    "or Microsoft Sentinel / Log Analytics OfficeActivity rows (CSV or JSON, with an OfficeId column)"
)

# An OfficeActivity row's record id column, as a JSON key: no AuditData record has one.
_OFFICE_ID_KEY = re.compile(r'"officeid"\s*:', re.IGNORECASE)
_TABLES_KEY = re.compile(r'\{\s*"tables"\s*:')


class UnknownFormat(ValueError):
    """The bytes are none of the supported export formats."""


def _decode(data: bytes) -> str:
    """The text of an export. Bytes that are not valid UTF-8 (or UTF-16) are kept as lone
    surrogates, which `_loads` turns into U+FFFD and names in the record's `Repaired` list."""
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="surrogatepass")
    return data.decode("utf-8-sig", errors="surrogateescape")


def _detect_text(data: bytes) -> str:
    # The first 64 KiB may end inside a character: only format detection reads this text.
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _loads(text: str) -> tuple[object, tuple[str, ...]]:
    """One JSON document, and the JSON paths of the text in it that had to be repaired.

    orjson first (fast, and it only ever yields valid Unicode); what it refuses, the standard
    library reads: lone surrogate escapes, integers beyond 64 bits. Raises ValueError (or
    RecursionError for very deep nesting) when neither can."""
    try:
        return orjson.loads(text), ()
    except orjson.JSONDecodeError:
        value = json.loads(text)
    repaired: list[str] = []
    return repair_value(value, repaired), tuple(repaired)


def _record(position: str, value: object, repaired: tuple[str, ...] = ()) -> RawRecord:
    """A reader's record: a Graph record unwrapped to its classic AuditData, text repaired. The
    repaired paths are relative to the classic record, whatever wrapped it."""
    inner = _graph_audit_data(value)
    if inner is not value:
        repaired = tuple(_inside_audit_data(path) for path in repaired)
        if isinstance(inner, str):  # auditData given as a JSON string
            try:
                inner, more = _loads(inner)
            except (ValueError, RecursionError):
                return RawRecord(position=position, value=inner, repaired=repaired)
            repaired = tuple(path for path in repaired if path != "(value)") + more
    return RawRecord(position=position, value=inner, repaired=repaired)


def _inside_audit_data(path: str) -> str:
    head, dot, rest = path.partition(".")
    if head.strip().lower() == "auditdata":
        return rest if dot else "(value)"
    return path


def _graph_audit_data(value: object) -> object:
    """Unwrap a Graph auditLogRecord to its classic record; other values pass through."""
    if not isinstance(value, Mapping) or "Operation" in value:
        return value  # a classic (PascalCase) record: nothing to unwrap, the common case
    for key, inner in value.items():
        if isinstance(key, str) and key.strip().lower() == "auditdata":
            return inner  # a JSON string is decoded by _record
    return value


def _graph_page_values(value: object) -> list[Any] | None:
    if isinstance(value, Mapping) and isinstance(value.get("value"), list):
        return list(value["value"])
    return None


def _csv_header(text: str) -> tuple[list[str], int] | None:
    """The header row and its line index, skipping Export-Csv's `#TYPE` line; None unless it names
    an AuditData column."""
    found = _first_csv_row(text)
    if found is not None and any(name.strip().lower() == "auditdata" for name in found[0]):
        return found
    return None


def _office_activity_header(text: str) -> tuple[list[str], int] | None:
    """The header row of an OfficeActivity CSV export and its line index; None if not one."""
    found = _first_csv_row(text)
    if found is not None and office_activity.is_office_activity(found[0]):
        return found
    return None


def _first_csv_row(text: str) -> tuple[list[str], int] | None:
    lines = _lines(text)
    index = 1 if lines and lines[0].startswith("#TYPE") else 0
    if index >= len(lines):
        return None
    try:
        header = next(csv.reader([lines[index]]))
    except (csv.Error, StopIteration):
        return None
    return header, index


def detect_format(data: bytes) -> str:
    """Name the format of an export, or raise UnknownFormat saying what was expected."""
    text = _detect_text(data[:65536])
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{") and powershell.is_depth_truncated(stripped):
        return POWERSHELL_SHALLOW
    if stripped.startswith("["):
        if _OFFICE_ID_KEY.search(stripped):
            return SENTINEL_JSON
        return GRAPH_AUDIT_QUERY if '"auditdata"' in stripped.lower() else MANAGEMENT_API
    if stripped.startswith("{"):
        if _is_log_analytics_response(stripped):
            return SENTINEL_JSON
        try:
            first = orjson.loads(stripped.split("\n", 1)[0])
        except orjson.JSONDecodeError:
            return GRAPH_AUDIT_QUERY  # one JSON document over several lines: a Graph response page
        return GRAPH_AUDIT_QUERY if _graph_page_values(first) is not None else JSON_LINES
    if _csv_header(text) is not None:
        return CSV_AUDITDATA
    if _office_activity_header(text) is not None:
        return SENTINEL_CSV
    raise UnknownFormat(f"not a recognised audit export: {_EXPECTED}")


def _lines(text: str) -> list[str]:
    """Lines ended by LF (or CRLF) only. str.splitlines also splits on U+2028, U+2029, U+0085 and
    other separators that JSON writers leave unescaped inside strings, which would cut a record."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _under(repaired: tuple[str, ...], prefix: str) -> tuple[str, ...]:
    """The repaired paths inside the element at `prefix`, relative to it."""
    inner = []
    for path in repaired:
        if path == prefix:
            inner.append("(value)")
        elif path.startswith(prefix + ".") or path.startswith(prefix + "["):
            inner.append(path[len(prefix) :].removeprefix("."))
    return tuple(inner)


def _json_records(text: str) -> Iterator[RawRecord]:
    try:
        document, repaired = _loads(text)
    except (ValueError, RecursionError) as problem:
        if text.lstrip().startswith("{"):  # several documents, one a line: Graph pages saved as lines
            yield from _json_lines(text)
        else:
            yield from _salvage_array(text, str(problem)[:200])
        return
    page = _graph_page_values(document)
    if page is not None:
        values, prefix = page, "value"
    elif isinstance(document, list):
        values, prefix = document, ""
    else:
        yield _record("item 0", document, repaired)
        return
    for index, value in enumerate(values):
        yield _record(f"item {index}", value, _under(repaired, f"{prefix}[{index}]"))


def _salvage_array(text: str, problem: str) -> Iterator[RawRecord]:
    """A JSON array that neither decoder reads whole (a truncated or damaged blob), element by
    element: every element before the damage is kept, text repaired, and the rest is reported as
    one unreadable record. Anything after the closing bracket is reported the same way."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start < 0:
        yield RawRecord(position="item 0", error=f"not a JSON array: {problem}")
        return
    position = start + 1
    index = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            yield RawRecord(position=f"item {index}", error=f"array ends early: {problem}")
            return
        if text[position] == "]":
            if text[position + 1 :].strip():
                yield RawRecord(position=f"item {index}", error=f"data after the array's end: {problem}")
            return
        try:
            value, position = decoder.raw_decode(text, position)
            repaired: list[str] = []
            value = repair_value(value, repaired)
        except (ValueError, RecursionError):  # JSONDecodeError, or an integer beyond int()'s digit limit
            yield RawRecord(position=f"item {index}", error=f"invalid JSON from here on: {problem}")
            return
        yield _record(f"item {index}", value, tuple(repaired))
        index += 1


def _json_lines(text: str) -> Iterator[RawRecord]:
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            value, repaired = _loads(line)
        except (ValueError, RecursionError) as problem:
            yield RawRecord(position=f"line {number}", error=f"invalid JSON: {str(problem)[:200]}")
            continue
        page = _graph_page_values(value)
        if page is not None:
            for index, inner in enumerate(page):
                yield _record(f"line {number} item {index}", inner, _under(repaired, f"value[{index}]"))
        else:
            yield _record(f"line {number}", value, repaired)


def _csv_data_rows(text: str, header_index: int) -> Iterator[tuple[str, list[str]] | RawRecord]:
    """The non-blank rows below the header, each with its position; a CSV error ends them with a
    RawRecord naming it."""
    # The AuditData of a large Bind record outgrows csv's default 128 KiB field limit, and hitting
    # it would stop the whole file; the text is already in memory, so no cell is larger than it.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    stream = io.StringIO(text)
    for _ in range(header_index + 1):
        stream.readline()
    reader = csv.reader(stream)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield f"CSV row {reader.line_num + header_index + 1}", row
    except csv.Error as problem:
        yield RawRecord(position=f"CSV row {reader.line_num + header_index + 1}", error=str(problem))


def _csv_records(text: str) -> Iterator[RawRecord]:
    found = _csv_header(text)
    if found is None:
        return
    header, header_index = found
    column = next(i for i, name in enumerate(header) if name.strip().lower() == "auditdata")
    for item in _csv_data_rows(text, header_index):
        if isinstance(item, RawRecord):
            yield item
            continue
        position, row = item
        if column >= len(row) or not row[column].strip():
            yield RawRecord(position=position, error="the AuditData cell is empty")
            continue
        try:
            value, repaired = _loads(row[column])
        except (ValueError, RecursionError) as problem:
            yield RawRecord(position=position, error=f"AuditData is not JSON: {str(problem)[:200]}")
            continue
        yield RawRecord(position=position, value=value, repaired=repaired)


def _is_log_analytics_response(text: str) -> bool:
    """The Log Analytics query API's response (`{"tables": [...]}`) with an OfficeId column;
    https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format"""
    return _TABLES_KEY.match(text) is not None and '"officeid"' in text.lower()


def _office_activity_record(position: str, row: Mapping[str, object]) -> RawRecord:
    try:
        value, repaired = office_activity.audit_record(row)
    except office_activity.RowError as problem:
        return RawRecord(position=position, error=str(problem))
    return RawRecord(position=position, value=value, repaired=repaired)


def _office_activity_csv(text: str) -> Iterator[RawRecord]:
    found = _office_activity_header(text)
    if found is None:
        return
    header, header_index = found
    for item in _csv_data_rows(text, header_index):
        if isinstance(item, RawRecord):
            yield item
            continue
        position, row = item
        if len(row) != len(header):
            yield RawRecord(position=position, error=f"{len(row)} cells where the header has {len(header)}")
            continue
        yield _office_activity_record(position, dict(zip(header, row, strict=True)))


def _office_activity_rows(document: object) -> Iterator[object]:
    """The rows of an OfficeActivity JSON export: an array of row objects, or the query API's
    tables, each row a list of values in the order of the table's `columns`."""
    if isinstance(document, list):
        yield from document
        return
    tables = document.get("tables") if isinstance(document, Mapping) else None
    for table in tables if isinstance(tables, list) else []:
        if not isinstance(table, Mapping):
            yield table  # reported as malformed
            continue
        columns, rows = table.get("columns"), table.get("rows")
        names = [column.get("name") if isinstance(column, Mapping) else None for column in _as_list(columns)]
        for row in _as_list(rows):
            if isinstance(row, list) and len(row) == len(names):
                yield {name: value for name, value in zip(names, row, strict=True) if isinstance(name, str)}
            else:
                yield row  # not a row of this table: reported as malformed


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _office_activity_json(text: str) -> Iterator[RawRecord]:
    try:
        document: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # lone surrogate escapes, integers beyond 64 bits: repaired row by row
            document = json.loads(text)
        except (ValueError, RecursionError) as problem:
            yield RawRecord(position="item 0", error=f"invalid JSON: {str(problem)[:200]}")
            return
    for index, row in enumerate(_office_activity_rows(document)):
        position = f"item {index}"
        if isinstance(row, Mapping):
            yield _office_activity_record(position, row)
        else:
            yield RawRecord(position=position, error=f"expected a row object, got {type(row).__name__}")


def _shallow_records(text: str) -> Iterator[RawRecord]:
    """A depth-truncated PowerShell export: its JSON records, nested string forms read back."""
    for raw in _json_records(text):
        if isinstance(raw.value, Mapping):
            recovered = powershell.recover_record(raw.value)
            yield RawRecord(raw.position, recovered.record, raw.error, raw.repaired, recovered.lost)
        else:
            yield raw


def read_records(data: bytes, fmt: str | None = None) -> tuple[str, Iterator[RawRecord]]:
    """Detect (or take) the format and return it with an iterator of the source's records."""
    fmt = fmt or detect_format(data)
    text = _decode(data)
    if fmt in (MANAGEMENT_API, GRAPH_AUDIT_QUERY):
        return fmt, _json_records(text)
    if fmt == JSON_LINES:
        return fmt, _json_lines(text)
    if fmt == CSV_AUDITDATA:
        return fmt, _csv_records(text)
    if fmt == SENTINEL_CSV:
        return fmt, _office_activity_csv(text)
    if fmt == SENTINEL_JSON:
        return fmt, _office_activity_json(text)
    if fmt == POWERSHELL_SHALLOW:
        return fmt, _shallow_records(text)
    raise UnknownFormat(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")

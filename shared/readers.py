"""Readers for every audit export a responder is likely to hold (DESIGN section 5, `mia import`).

Formats, detected from the bytes:
- `management-api`: an Office 365 Management Activity API content blob, a JSON array of records;
- `graph-audit-query`: Graph audit-log query records (`{"value": [...]}` pages or an array of
  them), each record's classic AuditData in `auditData`;
- `jsonl`: JSON Lines, one record per line (a record or a Graph record);
- `csv-auditdata`: CSV with an `AuditData` column: Purview audit search exports (UTF-8 with BOM)
  and `Search-UnifiedAuditLog | Export-Csv` files (possibly with a `#TYPE` first line, possibly
  UTF-16 from Windows PowerShell's `-Encoding Unicode`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from shared.records import RawRecord

MANAGEMENT_API = "management-api"
GRAPH_AUDIT_QUERY = "graph-audit-query"
JSON_LINES = "jsonl"
CSV_AUDITDATA = "csv-auditdata"
FORMATS = (MANAGEMENT_API, GRAPH_AUDIT_QUERY, JSON_LINES, CSV_AUDITDATA)

_EXPECTED = (
    "expected a Management Activity API content blob (JSON array), JSON Lines of records, "
    "a CSV with an AuditData column (Purview audit search or Search-UnifiedAuditLog | Export-Csv), "
    "or Graph audit-query records (auditData)"
)


class UnknownFormat(ValueError):
    """The bytes are none of the supported export formats."""


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _graph_audit_data(value: object) -> object:
    """Unwrap a Graph auditLogRecord to its classic record; other values pass through."""
    if not isinstance(value, Mapping) or "Operation" in value:
        return value  # a classic (PascalCase) record: nothing to unwrap, the common case
    for key, inner in value.items():
        if isinstance(key, str) and key.strip().lower() == "auditdata":
            if isinstance(inner, str):
                try:
                    return orjson.loads(inner)
                except orjson.JSONDecodeError:
                    return inner
            return inner
    return value


def _graph_page_values(value: object) -> list[Any] | None:
    if isinstance(value, Mapping) and isinstance(value.get("value"), list):
        return list(value["value"])
    return None


def _csv_header(text: str) -> tuple[list[str], int] | None:
    """The header row and its line index, skipping Export-Csv's `#TYPE` line; None if not CSV."""
    lines = text.splitlines()
    index = 1 if lines and lines[0].startswith("#TYPE") else 0
    if index >= len(lines):
        return None
    try:
        header = next(csv.reader([lines[index]]))
    except (csv.Error, StopIteration):
        return None
    if any(name.strip().lower() == "auditdata" for name in header):
        return header, index
    return None


def detect_format(data: bytes) -> str:
    """Name the format of an export, or raise UnknownFormat saying what was expected."""
    text = _decode(data[:65536])
    stripped = text.lstrip()
    if stripped.startswith("["):
        return GRAPH_AUDIT_QUERY if '"auditdata"' in stripped.lower() else MANAGEMENT_API
    if stripped.startswith("{"):
        try:
            first = orjson.loads(stripped.split("\n", 1)[0])
        except orjson.JSONDecodeError:
            return GRAPH_AUDIT_QUERY  # one JSON document over several lines: a Graph response page
        return GRAPH_AUDIT_QUERY if _graph_page_values(first) is not None else JSON_LINES
    if _csv_header(text) is not None:
        return CSV_AUDITDATA
    raise UnknownFormat(f"not a recognised audit export: {_EXPECTED}")


def _json_records(text: str) -> Iterator[RawRecord]:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as problem:
        if text.lstrip().startswith("{"):  # several documents, one a line: Graph pages saved as lines
            yield from _json_lines(text)
        else:
            yield from _salvage_array(text, str(problem))
        return
    page = _graph_page_values(document)
    values = page if page is not None else document if isinstance(document, list) else [document]
    for index, value in enumerate(values):
        yield RawRecord(position=f"item {index}", value=_graph_audit_data(value))


def _salvage_array(text: str, problem: str) -> Iterator[RawRecord]:
    """A JSON array that does not parse whole (a truncated or damaged blob): keep every element
    before the damage, then report the rest as one unreadable record."""
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    index = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            yield RawRecord(position=f"item {index}", error=f"array ends early: {problem}")
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):  # JSONDecodeError, or an integer beyond int()'s digit limit
            yield RawRecord(position=f"item {index}", error=f"invalid JSON from here on: {problem}")
            return
        yield RawRecord(position=f"item {index}", value=_graph_audit_data(value))
        index += 1


def _json_lines(text: str) -> Iterator[RawRecord]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as problem:
            yield RawRecord(position=f"line {number}", error=f"invalid JSON: {problem}")
            continue
        page = _graph_page_values(value)
        if page is not None:
            for index, inner in enumerate(page):
                yield RawRecord(position=f"line {number} item {index}", value=_graph_audit_data(inner))
        else:
            yield RawRecord(position=f"line {number}", value=_graph_audit_data(value))


def _csv_records(text: str) -> Iterator[RawRecord]:
    found = _csv_header(text)
    if found is None:
        return
    header, header_index = found
    column = next(i for i, name in enumerate(header) if name.strip().lower() == "auditdata")
    # The AuditData of a large Bind record outgrows csv's default 128 KiB field limit, and hitting
    # it would stop the whole file; the text is already in memory, so no cell is larger than it.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    stream = io.StringIO(text)
    for _ in range(header_index + 1):
        stream.readline()
    reader = csv.reader(stream)
    try:
        for row in reader:
            position = f"CSV row {reader.line_num + header_index + 1}"
            if not any(cell.strip() for cell in row):
                continue
            if column >= len(row) or not row[column].strip():
                yield RawRecord(position=position, error="the AuditData cell is empty")
                continue
            try:
                yield RawRecord(position=position, value=orjson.loads(row[column]))
            except orjson.JSONDecodeError as problem:
                yield RawRecord(position=position, error=f"AuditData is not JSON: {problem}")
    except csv.Error as problem:
        yield RawRecord(position=f"CSV row {reader.line_num + header_index + 1}", error=str(problem))


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
    raise UnknownFormat(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")

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
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shared.parse import csvrow, office_activity, powershell, stream
from shared.parse.normalize import RawRecord
from shared.parse.stream import MAX_RECORD_BYTES, ByteSource, Element, JsonValues, Readable, RecordTooLarge

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
# The header of a Purview audit search export (Audit > Export), of which only AuditData is read:
# what the tests, the bench and the bundled sample write.
PURVIEW_COLUMNS = (
    "RecordId",
    "CreationDate",
    "RecordType",
    "Operation",
    "UserId",
    "AuditData",
    "AssociatedAdminUnits",
    "AssociatedAdminUnitsNames",
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


def _detect_text(data: bytes) -> str:
    # The first 64 KiB may end inside a character: only format detection reads this text.
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _record(position: str, value: object, repaired: tuple[str, ...] = ()) -> RawRecord:
    """A reader's record: a Graph record unwrapped to its classic AuditData, text repaired. The
    repaired paths are relative to the classic record, whatever wrapped it."""
    inner = _graph_audit_data(value)
    if inner is not value:
        repaired = tuple(_inside_audit_data(path) for path in repaired)
        if isinstance(inner, str):  # auditData given as a JSON string
            try:
                inner, more = stream.loads(inner)
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


# ---------------------------------------------------------------------------------------------
# Reading, forward from a byte stream (shared/parse/stream.py): memory bounded by the largest
# record, and each record's start known, so an imported file can be processed in pieces.

# A document that opens with `{` (one Graph page, a Log Analytics response) is read whole up to
# this size, and member by member beyond it.
WHOLE_DOCUMENT_BYTES = 8 * 1024 * 1024
_SPLITTABLE = frozenset({MANAGEMENT_API, GRAPH_AUDIT_QUERY, JSON_LINES, CSV_AUDITDATA, SENTINEL_CSV,
                         SENTINEL_JSON, POWERSHELL_SHALLOW})  # fmt: skip


@dataclass(frozen=True)
class Resume:
    """Where a piece of a source starts: reading `prefix` bytes of the source (its header, or its
    opening `[`) and then the piece's bytes reads the piece's records with the positions they have
    in the whole source. `lines` counts the source's lines before the piece, `index` its records."""

    offset: int
    lines: int
    index: int


@dataclass
class Cursor:
    """Where a reader is. `body` is the offset where the records begin (after a CSV header or a JSON
    array's `[`). `start` and `lines` describe the record the reader has just yielded: the offset
    of its unit (array element, line, CSV row) and the lines before it; `boundary` is False when it
    is not the first record of its unit (a Graph page on one line holds several). `count` is the
    records yielded so far, counted from the resumed piece's first index. `splittable` is False for
    a source that cannot be cut between records (an object document, a transcoded UTF-16 file)."""

    body: int = 0
    start: int = 0
    lines: int = 0
    count: int = 0
    boundary: bool = True
    splittable: bool = True

    def before_last(self) -> Resume:
        """Where a piece starting with the record just yielded would resume."""
        return Resume(self.start, self.lines, self.count - 1)


class Records(Iterator[RawRecord]):
    """The records of one source, with its format and a Cursor on where the reader is."""

    def __init__(self, fmt: str, records: Iterator[RawRecord], cursor: Cursor) -> None:
        self.format = fmt
        self.cursor = cursor
        self._records = records

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> RawRecord:
        record = next(self._records)
        self.cursor.count += 1
        return record


def read_records(data: bytes, fmt: str | None = None) -> tuple[str, Records]:
    """Detect (or take) the format and return it with an iterator of the source's records."""
    records = read_stream(io.BytesIO(data), fmt)
    return records.format, records


def read_stream(
    stream: Readable, fmt: str | None = None, resume: Resume | None = None, limit: int = MAX_RECORD_BYTES
) -> Records:
    """The records of a byte stream, read forward, in memory bounded by its largest record. Raises
    UnknownFormat. With `resume`, the stream is the source's first `resume.offset`... see Resume."""
    source = ByteSource(stream, limit)
    fmt = fmt or detect_format(source.peek(65536))
    if fmt not in FORMATS:
        raise UnknownFormat(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    splittable = fmt in _SPLITTABLE and not source.transcoded
    cursor = Cursor(count=resume.index if resume else 0, splittable=splittable)
    reader = _READERS[fmt]
    return Records(fmt, reader(source, cursor, resume), cursor)


def _at(cursor: Cursor, source: ByteSource, lines: int) -> None:
    cursor.start = source.offset
    cursor.lines = lines
    cursor.boundary = True


# JSON documents ------------------------------------------------------------------------------


def _json_document(source: ByteSource, cursor: Cursor, resume: Resume | None) -> Iterator[RawRecord]:
    """A Management API blob, Graph records or pages: an array, one page, or pages one a line."""
    opening = source.next_byte()
    if opening == b"[":
        source.skip(1)
        yield from _array_records(source, cursor, resume, _record)
    elif opening == b"{":
        yield from _object_document(source, cursor)
    else:
        yield RawRecord(position="item 0", error="not a JSON array")


def _array_records(
    source: ByteSource,
    cursor: Cursor,
    resume: Resume | None,
    make: Callable[[str, object, tuple[str, ...]], RawRecord],
    repair: bool = True,
) -> Iterator[RawRecord]:
    source.next_byte()
    cursor.body = source.offset
    values = JsonValues(source, resumed=resume is not None, repair=repair)
    index = resume.index if resume else 0
    for element in values:
        cursor.start = element.start
        if element.error:
            yield RawRecord(position=f"item {index}", error=element.error)
            return
        yield make(f"item {index}", element.value, element.repaired)
        index += 1
    if values.closed and (after := source.peek(40).lstrip()):
        yield RawRecord(position=f"item {index}", error=f"data after the array's end: {after!r}")


def _object_document(source: ByteSource, cursor: Cursor) -> Iterator[RawRecord]:
    """A document opening with `{`: a Graph page (its `value`), pages one a line, or one record."""
    cursor.splittable = False
    head = source.peek(WHOLE_DOCUMENT_BYTES + 1)
    if len(head) <= WHOLE_DOCUMENT_BYTES:
        source.skip(len(head))
        yield from _whole_json(head)
        return
    if _first_line_is_a_document(head):
        yield from _json_lines(source, Cursor(splittable=False), None)
        return
    source.skip(1)
    index = 0
    for member in _members(source):
        if isinstance(member, Element):
            yield RawRecord(position=f"item {index}", error=member.error)
            return
        if member == "value" and source.next_byte() == b"[":
            source.skip(1)
            for element in JsonValues(source):
                if element.error:
                    yield RawRecord(position=f"item {index}", error=element.error)
                    return
                yield _record(f"item {index}", element.value, element.repaired)
                index += 1
        elif (problem := _skip_value(source)) is not None:
            yield RawRecord(position=f"item {index}", error=problem)
            return
    if index == 0:
        yield RawRecord(position="item 0", error=f"a JSON object larger than {WHOLE_DOCUMENT_BYTES} bytes "
                        "with no 'value' array: not read as one record")  # fmt: skip
    elif source.next_byte() != b"":
        yield RawRecord(position=f"item {index}", error="data after the document's end")


def _first_line_is_a_document(head: bytes) -> bool:
    """Graph pages saved one a line: the first line is a whole JSON document."""
    end = head.find(b"\n")
    if end < 0:
        return False
    try:
        stream.loads(head[:end], repair=False)
    except (ValueError, RecursionError):
        return False
    return True


def _whole_json(data: bytes) -> Iterator[RawRecord]:
    """A small `{` document, decoded whole: a page's records, one record, or JSON lines."""
    try:
        document, repaired = stream.loads(data)
    except (ValueError, RecursionError):  # several documents, one a line: Graph pages saved as lines
        yield from _json_lines(ByteSource(io.BytesIO(data)), Cursor(splittable=False), None)
        return
    page = _graph_page_values(document)
    if page is None:
        yield _record("item 0", document, repaired)
        return
    for index, value in enumerate(page):
        yield _record(f"item {index}", value, _under(repaired, f"value[{index}]"))


def _members(source: ByteSource) -> Iterator[str | Element]:
    """The member names of the object whose `{` was just consumed; after each, the caller consumes
    the member's value. An Element is a syntax error, and the last thing yielded."""
    first = True
    while True:
        byte = source.next_byte()
        if byte == b"}":
            source.skip(1)
            return
        if not first:
            if byte != b",":
                yield Element(
                    source.offset, error=f"invalid JSON from here on: expected ',' or '}}', found {byte!r}"
                )
                return
            source.skip(1)
            byte = source.next_byte()
        first = False
        found = stream.decode_next(source) if byte == b'"' else "expected a member name"
        if isinstance(found, str) or not isinstance(found[1], str):
            problem = found if isinstance(found, str) else "a member name is not a string"
            yield Element(source.offset, error=f"invalid JSON from here on: {problem}")
            return
        source.skip(found[0])
        if source.next_byte() != b":":
            yield Element(source.offset, error="invalid JSON from here on: expected ':'")
            return
        source.skip(1)
        source.next_byte()
        yield found[1]


def _skip_value(source: ByteSource) -> str | None:
    found = stream.decode_next(source)
    if isinstance(found, str):
        return found
    source.skip(found[0])
    return None


def _json_lines(source: ByteSource, cursor: Cursor, resume: Resume | None) -> Iterator[RawRecord]:
    number = resume.lines if resume else 0
    while True:
        _at(cursor, source, number)
        try:
            line = source.readline()
        except RecordTooLarge as problem:
            yield RawRecord(position=f"line {number + 1}", error=f"{problem}: the rest is not read")
            return
        if not line:
            return
        number += 1
        if not line.strip():
            continue
        try:
            value, repaired = stream.loads(line, source.errors)
        except (ValueError, RecursionError) as problem:
            yield RawRecord(position=f"line {number}", error=f"invalid JSON: {str(problem)[:200]}")
            continue
        page = _graph_page_values(value)
        if page is not None:
            for index, inner in enumerate(page):
                yield _record(f"line {number} item {index}", inner, _under(repaired, f"value[{index}]"))
                cursor.boundary = False
        else:
            yield _record(f"line {number}", value, repaired)


# CSV -------------------------------------------------------------------------------------------


def _csv_rows(
    source: ByteSource, cursor: Cursor, resume: Resume | None, header: list[str] | None = None
) -> Iterator[tuple[str, list[str]] | RawRecord]:
    """The header row, then each non-blank row with its position (`CSV row N`, N the physical line
    it ends on); a row the csv module refuses ends them with a RawRecord naming it. Lines are read
    one at a time: a row is held, never the file. A cell beyond the csv module's field limit is
    read by `shared.parse.csvrow` (the limit is process-wide, so it is never raised)."""
    state = _LineFeed(source)
    first = state.next_line()
    if first is not None and first.startswith("#TYPE"):
        first = state.next_line()
    if first is None:
        return
    try:
        yield "header", next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return
    cursor.body = source.offset
    if resume is not None:
        state.lines = resume.lines
    reader = csv.reader(state)
    while True:
        state.row_begins()
        _at(cursor, source, state.lines)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as problem:
            if not csvrow.beyond_field_limit(problem):
                yield RawRecord(position=f"CSV row {state.lines}", error=str(problem))
                return
            try:
                row = csvrow.parse_row(state.row_text(), state.next_line, source.limit)
            except csvrow.RowError as slow_problem:
                yield RawRecord(position=f"CSV row {state.lines}", error=str(slow_problem))
                return
            reader = csv.reader(state)
        except RecordTooLarge as problem:
            yield RawRecord(position=f"CSV row {state.lines + 1}", error=f"{problem}: the rest is not read")
            return
        if any(cell.strip() for cell in row):
            yield f"CSV row {state.lines}", row


class _LineFeed(Iterator[str]):
    """A source's lines as text for csv.reader, keeping the lines of the row being read."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self.lines = 0
        self._row: list[str] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        line = self.next_line()
        if line is None:
            raise StopIteration
        return line

    def next_line(self) -> str | None:
        data = self._source.readline()
        if not data:
            return None
        self.lines += 1
        text = self._source.text(data)
        self._row.append(text)
        return text

    def row_begins(self) -> None:
        self._row = []

    def row_text(self) -> str:
        return "".join(self._row)


def _csv_records(source: ByteSource, cursor: Cursor, resume: Resume | None) -> Iterator[RawRecord]:
    rows = _csv_rows(source, cursor, resume)
    column = -1
    for item in rows:
        if isinstance(item, RawRecord):
            yield item
            continue
        position, row = item
        if position == "header":
            found = [i for i, name in enumerate(row) if name.strip().lower() == "auditdata"]
            if not found:
                return
            column = found[0]
            continue
        if column >= len(row) or not row[column].strip():
            yield RawRecord(position=position, error="the AuditData cell is empty")
            continue
        try:
            value, repaired = stream.loads(row[column])
        except (ValueError, RecursionError) as problem:
            yield RawRecord(position=position, error=f"AuditData is not JSON: {str(problem)[:200]}")
            continue
        yield RawRecord(position=position, value=value, repaired=repaired)


def _office_activity_csv(source: ByteSource, cursor: Cursor, resume: Resume | None) -> Iterator[RawRecord]:
    header: list[str] = []
    for item in _csv_rows(source, cursor, resume):
        if isinstance(item, RawRecord):
            yield item
            continue
        position, row = item
        if position == "header":
            if not office_activity.is_office_activity(row):
                return
            header = row
            continue
        if len(row) != len(header):
            yield RawRecord(position=position, error=f"{len(row)} cells where the header has {len(header)}")
            continue
        yield _office_activity_record(position, dict(zip(header, row, strict=True)))


# Sentinel JSON and PowerShell ------------------------------------------------------------------


def _office_activity_json(source: ByteSource, cursor: Cursor, resume: Resume | None) -> Iterator[RawRecord]:
    """An array of OfficeActivity row objects, or the Log Analytics query API's response."""
    opening = source.next_byte()
    if opening == b"[":
        source.skip(1)
        # Not repaired here: office_activity.audit_record repairs the record it builds and names the paths.
        yield from _array_records(source, cursor, resume, _office_activity_item, repair=False)
        return
    cursor.splittable = False
    head = source.peek(WHOLE_DOCUMENT_BYTES + 1)
    if len(head) <= WHOLE_DOCUMENT_BYTES or opening != b"{":
        source.skip(len(head))
        yield from _whole_office_activity(head)
        return
    source.skip(1)
    yield from _log_analytics_tables(source)


def _office_activity_item(position: str, row: object, repaired: tuple[str, ...] = ()) -> RawRecord:
    if isinstance(row, Mapping):
        return _office_activity_record(position, row)
    return RawRecord(position=position, error=f"expected a row object, got {type(row).__name__}")


def _whole_office_activity(data: bytes) -> Iterator[RawRecord]:
    try:
        document, _ = stream.loads(data, repair=False)  # audit_record repairs and names the paths
    except (ValueError, RecursionError) as problem:
        yield RawRecord(position="item 0", error=f"invalid JSON: {str(problem)[:200]}")
        return
    for index, row in enumerate(_office_activity_rows(document)):
        yield _office_activity_item(f"item {index}", row)


def _log_analytics_tables(source: ByteSource) -> Iterator[RawRecord]:
    """A large `{"tables": [{"columns": [...], "rows": [[...], ...]}]}`, row by row: columns come
    before rows in the API's responses (a table whose rows come first is reported, not guessed)."""
    counter = itertools.count()
    for member in _members(source):
        if isinstance(member, Element):
            yield RawRecord(position=f"item {next(counter)}", error=member.error)
            return
        if member != "tables" or source.next_byte() != b"[":
            if (problem := _skip_value(source)) is not None:
                yield RawRecord(position=f"item {next(counter)}", error=problem)
                return
            continue
        source.skip(1)
        first = True
        while True:
            byte = source.next_byte()
            if byte == b"]":
                source.skip(1)
                break
            if not first and byte == b",":
                source.skip(1)
                byte = source.next_byte()
            first = False
            if byte != b"{":
                problem = "invalid JSON from here on: expected a table"
                yield RawRecord(position=f"item {next(counter)}", error=problem)
                return
            source.skip(1)
            for record in _table_rows(source, counter):
                yield record
                if record.error.startswith("invalid JSON from here on"):
                    return


def _table_rows(source: ByteSource, counter: Iterator[int]) -> Iterator[RawRecord]:
    names: list[object] | None = None
    for member in _members(source):
        if isinstance(member, Element):
            yield RawRecord(position=f"item {next(counter)}", error=member.error)
            return
        if member == "rows" and source.next_byte() == b"[" and names is not None:
            source.skip(1)
            for element in JsonValues(source, repair=False):
                position = f"item {next(counter)}"
                if element.error:
                    yield RawRecord(position=position, error=f"invalid JSON from here on: {element.error}")
                    return
                row = element.value
                if isinstance(row, list) and len(row) == len(names):
                    pairs = zip(names, row, strict=True)
                    yield _office_activity_record(position, {n: v for n, v in pairs if isinstance(n, str)})
                else:
                    yield _office_activity_item(position, row)
            continue
        found = stream.decode_next(source, repair=False)
        if isinstance(found, str):
            yield RawRecord(position=f"item {next(counter)}", error=found)
            return
        source.skip(found[0])
        if member == "columns":
            names = [c.get("name") if isinstance(c, Mapping) else None for c in _as_list(found[1])]
        elif member == "rows":
            yield RawRecord(position=f"item {next(counter)}", error="a table's rows come before its columns")


def _shallow_records(source: ByteSource, cursor: Cursor, resume: Resume | None) -> Iterator[RawRecord]:
    """A depth-truncated PowerShell export: its JSON records, nested string forms read back."""
    for raw in _json_document(source, cursor, resume):
        if isinstance(raw.value, Mapping):
            recovered = powershell.recover_record(raw.value)
            yield RawRecord(raw.position, recovered.record, raw.error, raw.repaired, recovered.lost)
        else:
            yield raw


_READERS: dict[str, Callable[[ByteSource, Cursor, Resume | None], Iterator[RawRecord]]] = {
    MANAGEMENT_API: _json_document,
    GRAPH_AUDIT_QUERY: _json_document,
    JSON_LINES: _json_lines,
    CSV_AUDITDATA: _csv_records,
    SENTINEL_CSV: _office_activity_csv,
    SENTINEL_JSON: _office_activity_json,
    POWERSHELL_SHALLOW: _shallow_records,
}

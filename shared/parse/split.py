"""One export file cut into parts that separate processes read at once (`mia report --input`).

A part is a byte range that starts where a record starts. Reading the file's head (a CSV header)
and then the part's range reads the part's records with the line numbers they have in the whole
file, as a piece of an import does (readers.Resume); its record indices are counted from 0 and
shifted by whoever knows the records before it.

Where a record starts is found without parsing: in JSON Lines every LF ends a record (JSON text
holds no raw line break); in a CSV file an LF ends a row when the quotes before it pair up (the
excel dialect doubles a quote inside a quoted field, so a field that holds line breaks leaves an
odd count until it closes). A cut is a guess until it is proved: the part before it must stop
exactly at it (`Chain.proves`), since that part was read from a start already proved (the
file's own). A file whose cut is not proved (a stray quote in an unquoted field, a row the csv
module refuses, which ends the reading) is read again as one part.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.parse import readers
from shared.parse.normalize import RawRecord
from shared.parse.stream import Prefixed, Readable

_CUTTABLE = frozenset({readers.CSV_AUDITDATA, readers.SENTINEL_CSV, readers.JSON_LINES})
_QUOTED = frozenset({readers.CSV_AUDITDATA, readers.SENTINEL_CSV})
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Part:
    """Records `start` up to `end` (the next part's first record; None: to the end of the file) of
    `path`, read after the file's first `head` bytes, with `lines` lines of the file before."""

    path: Path
    format: str
    head: int
    start: int
    end: int | None
    lines: int

    @property
    def resume(self) -> readers.Resume | None:
        return readers.Resume(self.start, self.lines, 0) if self.start else None


def whole(path: Path, fmt: str) -> Part:
    """All of `path` as one part."""
    return Part(path, fmt, 0, 0, None, 0)


def cut(path: Path, parts: int, min_bytes: int) -> list[Part]:
    """`path` as at most `parts` parts of at least `min_bytes` each, cut where records start (one
    part for a small file, or one that cannot be cut: JSON documents, UTF-16 text). Raises
    readers.UnknownFormat."""
    with path.open("rb") as handle:
        fmt, body = _format_and_body(handle)
        size = handle.seek(0, 2)
        count = min(parts, (size - body) // max(min_bytes, 1))
        if fmt not in _CUTTABLE or body < 0 or count < 2:
            return [whole(path, fmt)]
        targets = [body + (size - body) * number // count for number in range(1, count)]
        handle.seek(0)
        starts = _record_starts(handle, targets, quoted=fmt in _QUOTED)
    if not starts:
        return [whole(path, fmt)]
    ends: list[int | None] = [start for start, _ in starts]
    cuts = [(0, 0), *starts]
    return [
        Part(path, fmt, body if start else 0, start, end, lines)
        for (start, lines), end in zip(cuts, [*ends, None], strict=True)
    ]


def _format_and_body(handle: BinaryIO) -> tuple[str, int]:
    """The format, and the offset where records begin after a header (-1: not cuttable)."""
    records = readers.read_stream(handle)
    next(records, None)  # reads the header, and the first record, so the body is known
    handle.seek(0)
    return records.format, records.cursor.body if records.cursor.splittable else -1


def _record_starts(handle: BinaryIO, targets: list[int], quoted: bool) -> list[tuple[int, int]]:
    """For each target, the first offset after it where a non-blank line starts outside any quoted
    field, with the lines before it (fewer starts than targets when the file ends first)."""
    scan = _Scan(handle, quoted)
    found: list[tuple[int, int]] = []
    for target in targets:
        if found and found[-1][0] >= target:
            continue
        scan.advance(target)
        while (start := scan.next_line_start()) is not None:
            if scan.quotes % 2 == 0 and scan.next_byte() not in b"\r\n":
                found.append((start, scan.lines))
                break
        else:
            break
    return found


class _Scan:
    """A file read forward a block at a time, counting the quotes and line feeds before `offset`."""

    def __init__(self, handle: BinaryIO, quoted: bool) -> None:
        self._handle = handle
        self._quoted = quoted
        self._buf = b""
        self._base = 0  # the file offset of _buf[0]
        self._pos = 0  # what is counted: the file before _base + _pos
        self.quotes = 0
        self.lines = 0

    def _fill(self) -> bool:
        more = self._handle.read(_BLOCK)
        if not more:
            return False
        self._buf = self._buf[self._pos :] + more
        self._base += self._pos
        self._pos = 0
        return True

    def _count_to(self, end: int) -> None:
        if self._quoted:
            self.quotes += self._buf.count(b'"', self._pos, end)
        self.lines += self._buf.count(b"\n", self._pos, end)
        self._pos = end

    def advance(self, offset: int) -> None:
        """Count up to `offset` (or the end of the file)."""
        while self._base + len(self._buf) < offset:
            self._count_to(len(self._buf))
            if not self._fill():
                return
        self._count_to(max(offset - self._base, self._pos))

    def next_line_start(self) -> int | None:
        """Count through the next line feed and return the offset after it; None at the end of
        the file (a line feed that ends it starts nothing)."""
        while True:
            newline = self._buf.find(b"\n", self._pos)
            if 0 <= newline < len(self._buf) - 1:
                self._count_to(newline + 1)
                return self._base + self._pos
            if not self._fill():
                self._count_to(len(self._buf))
                return None

    def next_byte(self) -> int:
        """The byte at the counted offset (next_line_start made sure there is one)."""
        return self._buf[self._pos]


@contextmanager
def opened(part: Part) -> Iterator[Readable]:
    """The stream to read `part` from: the file's head, then the file from the part's start."""
    with part.path.open("rb") as handle:
        if not part.start:
            yield handle
            return
        head = handle.read(part.head)
        handle.seek(part.start)
        yield Prefixed(head, handle)


def file_offset(part: Part, stream_offset: int) -> int:
    """The offset in the file of `stream_offset` in `opened(part)`."""
    return stream_offset if not part.start else part.start + stream_offset - part.head


class PartRecords(Iterator[RawRecord]):
    """The records of `part`, read from `opened(part)`: up to the first that starts at or past the
    part's end, whose offset is then `stopped_at` (None while not reached: the file, or the
    reading, ended first). The part's records are proved its own when `stopped_at` is the next
    part's start: see the module's text."""

    def __init__(self, part: Part, stream: Readable) -> None:
        self._part = part
        self._records = readers.read_stream(stream, part.format, part.resume)
        self.stopped_at: int | None = None

    def __iter__(self) -> PartRecords:
        return self

    def __next__(self) -> RawRecord:
        if self.stopped_at is not None:
            raise StopIteration
        record = next(self._records)
        cursor = self._records.cursor
        if self._part.end is not None and cursor.boundary:
            offset = file_offset(self._part, cursor.start)
            if offset >= self._part.end:
                self.stopped_at = offset
                raise StopIteration
        return record

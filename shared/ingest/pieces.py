"""An imported file cut into pieces: ranges of its records that are processed one at a time.

One reading pass over the file (shared/parse/readers.py, memory bounded by the largest record)
finds where each record starts and hashes the file; a piece ends before the record that would
take it past PIECE_RECORDS records or PIECE_BYTES bytes. A second pass hashes each piece's bytes
(the file's prefix, a CSV header or a JSON array's `[`, then the piece's range) so processing can
verify exactly what it reads. Together the pieces hold every record of the file once, in order,
with the positions they have in the whole file.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

from shared.parse import readers
from shared.parse.stream import Readable
from shared.storage.raw_store import Piece

PIECE_RECORDS = 10_000
PIECE_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024

Opener = Callable[[], AbstractContextManager[BinaryIO]]


@dataclass
class Plan:
    """A file's format, SHA-256, size, record count and pieces (none: it is read as one unit, being
    small or not cuttable between records: one JSON document, a UTF-16 file)."""

    format: str
    sha256: str
    size: int
    records: int
    pieces: list[Piece] = field(default_factory=list)


class Hashing:
    """A stream that hashes and counts what is read from it."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self.hasher.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


def plan(open_file: Opener, max_records: int | None = None, max_bytes: int | None = None) -> Plan:
    """Read the file once for its format, hash, records and cuts, then once more for each piece's
    hash (pieces of at most PIECE_RECORDS records and PIECE_BYTES bytes unless given). Raises
    readers.UnknownFormat."""
    max_records = max_records or PIECE_RECORDS
    max_bytes = max_bytes or PIECE_BYTES
    with open_file() as raw:
        hashing = Hashing(raw)
        records = readers.read_stream(hashing)
        cursor = records.cursor
        cuts: list[readers.Resume] = []
        in_piece = 0
        for _ in records:
            full = in_piece >= max_records or (bool(cuts) and cursor.start - cuts[-1].offset >= max_bytes)
            if not cuts or (full and cursor.boundary):
                cuts.append(cursor.before_last())
                in_piece = 0
            in_piece += 1
        hashing.drain()
    result = Plan(records.format, hashing.hasher.hexdigest(), hashing.size, cursor.count)
    if cursor.splittable and len(cuts) > 1:
        result.pieces = _hashed_pieces(open_file, cursor.body, cuts, result)
    return result


def _hashed_pieces(open_file: Opener, prefix: int, cuts: list[readers.Resume], whole: Plan) -> list[Piece]:
    ends = [cut.offset for cut in cuts[1:]] + [whole.size]
    counts = [later.index - cut.index for cut, later in itertools.pairwise(cuts)]
    counts.append(whole.records - cuts[-1].index)
    pieces = []
    with open_file() as raw:
        head = raw.read(prefix)
        position = prefix
        for cut, end, count in zip(cuts, ends, counts, strict=True):
            _read_range(raw, cut.offset - position, lambda _: None)  # whitespace or blank lines
            hasher = hashlib.sha256(head)
            _read_range(raw, end - cut.offset, hasher.update)
            position = end
            pieces.append(Piece(prefix, cut.offset, end, cut.lines, cut.index, count, hasher.hexdigest()))
    return pieces


def _read_range(raw: BinaryIO, size: int, into: Callable[[bytes], object]) -> None:
    """Read the next `size` bytes, a chunk at a time, handing each to `into`."""
    while size > 0:
        data = raw.read(min(size, _CHUNK))
        if not data:
            raise OSError("the file got shorter while it was imported")
        into(data)
        size -= len(data)

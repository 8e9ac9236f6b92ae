"""Normalized events of one raw source, bytes in: the reader the bytes call for, then the normalizer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from shared.model.event import AccessEvent
from shared.parse import readers
from shared.parse.normalize import ParseStats, normalize_records
from shared.parse.stream import Readable

_HASH_CHUNK = 1024 * 1024


def events_from_bytes(
    data: bytes,
    source: str,
    fmt: str | None = None,
    stats: ParseStats | None = None,
    sha256: str | None = None,
) -> Iterator[AccessEvent]:
    """Normalized events of one raw source (no storage), each with its provenance: `source`, the
    SHA-256 of `data` and its position. Raises readers.UnknownFormat."""
    _, records = readers.read_records(data, fmt)
    digest = sha256 if sha256 is not None else hashlib.sha256(data).hexdigest()
    return normalize_records(records, source, stats, digest)


def events_from_stream(
    stream: Readable,
    source: str,
    sha256: str,
    fmt: str | None = None,
    stats: ParseStats | None = None,
    resume: readers.Resume | None = None,
) -> Iterator[AccessEvent]:
    """Normalized events of a source read forward from `stream` (of a piece of it, with `resume`),
    each with its provenance: `source`, `sha256` (of the whole source, verified by the caller) and
    its position in the whole source. Raises readers.UnknownFormat."""
    records = readers.read_stream(stream, fmt, resume)
    return normalize_records(records, source, stats, sha256, resume.index if resume else 0)


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def events_from_path(
    path: Path, source: str, fmt: str | None = None, stats: ParseStats | None = None
) -> Iterator[AccessEvent]:
    """Normalized events of one export file, read forward (memory bounded by its largest record),
    each with its provenance: `source`, the file's SHA-256 and the record's position. The format
    is detected (or checked) at once: raises readers.UnknownFormat before any event."""
    digest = file_sha256(path)
    handle = path.open("rb")
    try:
        events = events_from_stream(handle, source, digest, fmt, stats)
    except BaseException:
        handle.close()
        raise
    return _closing(events, handle)


def _closing(events: Iterator[AccessEvent], handle: BinaryIO) -> Iterator[AccessEvent]:
    try:
        yield from events
    finally:
        handle.close()

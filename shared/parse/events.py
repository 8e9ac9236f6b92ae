"""Normalized events of one raw source, bytes in: the reader the bytes call for, then the normalizer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from shared.model.event import AccessEvent
from shared.parse import readers
from shared.parse.normalize import ParseStats, normalize_records


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


def events_from_path(
    path: Path, source: str, fmt: str | None = None, stats: ParseStats | None = None
) -> Iterator[AccessEvent]:
    """Normalized events of one export file, each with its provenance: `source`, the file's SHA-256
    and the record's position. Raises readers.UnknownFormat."""
    data = path.read_bytes()
    return events_from_bytes(data, source, fmt, stats)

"""Raw evidence in Blob Storage and the pointer messages announcing it (docs/architecture.md#storage-model).

A raw blob holds exactly the bytes received, with the SHA-256 of those bytes in its metadata:
gzip-compressed when the name ends in `.gz` (Management API content, backfill pages), stored as
they are otherwise (imported files, so a piece of one can be read by its byte range). Writes never
overwrite: a blob that exists with the same hash is the same evidence (idempotent); one with
another hash is an integrity error, never silently replaced.

Bytes are verified before they are used: a piece against the SHA-256 its pointer carries, a
whole blob against its metadata, by a hashing pass before the reading pass when it is too large
to hold. A gzip blob that inflates past MAX_INFLATED_BYTES is refused (kept, reported, not read).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.model.times import iso_z, utcnow
from shared.storage import CONTENT_QUEUE, RAW_CONTAINER

POINTER_VERSION = 1
MAX_INFLATED_BYTES = 1024**3  # a gzip blob inflating past this is refused, never read
HELD_BYTES = 32 * 1024 * 1024  # a blob up to this size is verified and read in one download
_CHUNK = 4 * 1024 * 1024
_TOO_LARGE = f"{RAW_CONTAINER}/{{name}} inflates past {MAX_INFLATED_BYTES} bytes: kept as evidence, not read"
_TRACE = ("traceparent", "tracestate")  # optional: a malformed value only loses the trace link


class IntegrityError(RuntimeError):
    """Stored evidence does not match its recorded SHA-256."""


class BadPointer(ValueError):
    """A queue message is not a pointer to a raw blob."""


class BlobTooLarge(IntegrityError):
    """A gzip blob inflates past MAX_INFLATED_BYTES: it stays as evidence and is not read."""


@dataclass(frozen=True)
class Piece:
    """A range of the records of a raw blob: its first `prefix` bytes (a CSV header, a JSON
    array's `[`) and then bytes [start, end) read as the `records` records from `index` on, the
    source having `lines` lines before `start`; `sha256` is of those prefix and range bytes."""

    prefix: int
    start: int
    end: int
    lines: int
    index: int
    records: int
    sha256: str

    @property
    def name(self) -> str:
        """The piece's name in indexes keyed by source: the blob and the range."""
        return f"#{self.start}-{self.end}"

    @classmethod
    def decode(cls, data: object) -> Piece:
        if not isinstance(data, dict):
            raise BadPointer("queue message 'piece' is not an object")
        numbers = {key: data.get(key) for key in ("prefix", "start", "end", "lines", "index", "records")}
        if not all(type(value) is int and value >= 0 for value in numbers.values()):
            raise BadPointer("queue message 'piece' needs non-negative integers")
        digest = data.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise BadPointer("queue message 'piece' has no valid 'sha256'")
        piece = cls(sha256=digest, **numbers)  # type: ignore[arg-type]
        if not piece.prefix <= piece.start <= piece.end:
            raise BadPointer("queue message 'piece' has prefix <= start <= end out of order")
        return piece


@dataclass(frozen=True)
class RawPointer:
    """The queue message body: where the raw bytes are and what they should hash to, and the W3C
    trace context of the span that stored them (`traceparent`, `tracestate`: written only when
    there is one, so an untraced pointer is as small as before, and a pointer written before they
    existed still decodes)."""

    blob: str
    sha256: str
    format: str
    v: int = POINTER_VERSION
    traceparent: str = ""
    tracestate: str = ""
    piece: Piece | None = None  # None: the whole blob

    @property
    def unit(self) -> str:
        """What this pointer names: the blob, or the blob and the piece's range."""
        return self.blob if self.piece is None else self.blob + self.piece.name

    def encode(self) -> str:
        fields = {key: value for key, value in asdict(self).items() if value != "" or key not in _TRACE}
        if self.piece is None:
            del fields["piece"]
        return orjson.dumps(fields).decode()

    @classmethod
    def decode(cls, body: bytes | str) -> RawPointer:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as problem:
            raise BadPointer(f"queue message is not JSON: {problem}") from None
        if not isinstance(data, dict):
            raise BadPointer("queue message is not a JSON object")
        blob, digest, fmt = data.get("blob"), data.get("sha256"), data.get("format")
        if not isinstance(blob, str) or not blob or ".." in blob or blob.startswith("/"):
            raise BadPointer("queue message has no valid 'blob'")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise BadPointer("queue message has no valid 'sha256'")
        if not isinstance(fmt, str) or not fmt:
            raise BadPointer("queue message has no 'format'")
        trace = {key: data[key] for key in _TRACE if isinstance(data.get(key), str)}
        piece = Piece.decode(data["piece"]) if data.get("piece") is not None else None
        return cls(blob=blob, sha256=digest.lower(), format=fmt, piece=piece, **trace)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def api_blob_name(content_type: str, content_id: str, content_created: datetime) -> str:
    """`Audit.Exchange/YYYY/MM/DD/HH/<contentId>.json.gz` (docs/architecture.md#raw-evidence-audit-raw)."""
    stamp = content_created.astimezone(UTC).strftime("%Y/%m/%d/%H")
    return f"{content_type}/{stamp}/{quote(content_id, safe='$._-')}.json.gz"


def import_blob_name(digest: str) -> str:
    """Imported exports are keyed by their hash: re-importing the same file stores nothing new.
    Stored as they are (no `.gz`), so a piece is read by its byte range."""
    return f"import/{digest}"


def is_gzip(name: str) -> bool:
    return name.endswith(".gz")


def _metadata_value(value: str) -> str:
    # Blob metadata must be ASCII; file names may not be.
    return quote(value, safe=" ./:-_@")


def store_raw(blobs: BlobServiceClient, name: str, data: bytes, metadata: dict[str, str]) -> tuple[str, bool]:
    """Store `data` gzip-compressed under `name`; returns (sha256, written). Idempotent."""
    digest = sha256_hex(data)
    blob = blobs.get_blob_client(RAW_CONTAINER, name)
    meta = {key: _metadata_value(value) for key, value in metadata.items()}
    meta["sha256"] = digest
    meta.setdefault("fetchedAt", iso_z(utcnow()))
    try:
        blob.upload_blob(gzip.compress(data, mtime=0), overwrite=False, metadata=meta)
    except ResourceExistsError:
        existing = blob.get_blob_properties().metadata.get("sha256", "")
        if existing != digest:
            raise IntegrityError(
                f"{RAW_CONTAINER}/{name} already holds other content (sha256 {existing})"
            ) from None
        return digest, False
    return digest, True


UPLOAD_BLOCK_BYTES = 8 * 1024 * 1024


def store_stream(
    blobs: BlobServiceClient,
    name: str,
    open_file: Callable[[], AbstractContextManager[BinaryIO]],
    size: int,
    digest: str,
    metadata: dict[str, str],
) -> bool:
    """Upload a file as it is, streamed (never held), under `name`; `digest` is its SHA-256, from
    the caller's reading pass. The bytes sent are hashed as they go, in staged blocks that are
    committed only if they are `size` bytes with that SHA-256: a file that changed since it was
    read raises IntegrityError and leaves no blob. Returns whether it was written. Idempotent."""
    blob = blobs.get_blob_client(RAW_CONTAINER, name)
    if blob.exists():
        return _same_content(blob, name, digest)
    meta = {key: _metadata_value(value) for key, value in metadata.items()}
    meta["sha256"] = digest
    meta.setdefault("fetchedAt", iso_z(utcnow()))
    hasher = hashlib.sha256()
    blocks: list[BlobBlock] = []
    sent = 0
    with open_file() as handle:
        while data := handle.read(UPLOAD_BLOCK_BYTES):
            hasher.update(data)
            sent += len(data)
            block_id = f"{len(blocks):08d}"  # Block ids of one blob must all have the same length.
            blob.stage_block(block_id, data, length=len(data))
            blocks.append(BlobBlock(block_id))
    if sent != size or hasher.hexdigest() != digest:
        raise IntegrityError(
            f"{name}: the file changed while it was imported (read as {size} bytes with sha256 "
            f"{digest}, sent as {sent} bytes with sha256 {hasher.hexdigest()}); nothing was stored"
        )
    try:
        blob.commit_block_list(blocks, metadata=meta, match_condition=MatchConditions.IfMissing)
    except ResourceExistsError:  # another import of the same name committed first
        return _same_content(blob, name, digest)
    return True


def _same_content(blob: BlobClient, name: str, digest: str) -> bool:
    """False (nothing written) when the existing blob holds `digest`; IntegrityError otherwise."""
    existing = blob.get_blob_properties().metadata.get("sha256", "")
    if existing != digest:
        raise IntegrityError(f"{RAW_CONTAINER}/{name} already holds other content (sha256 {existing})")
    return False


def load_raw(blobs: BlobServiceClient, pointer: RawPointer) -> bytes:
    """The raw bytes of a whole blob, verified against the blob's and the pointer's SHA-256."""
    blob = blobs.get_blob_client(RAW_CONTAINER, pointer.blob)
    downloader = blob.download_blob()
    recorded = (downloader.properties.metadata or {}).get("sha256", "")
    data = downloader.readall()
    if is_gzip(pointer.blob):
        data = _inflate(data, pointer.blob)
    _verify(pointer, sha256_hex(data), recorded)
    return data


def _verify(pointer: RawPointer, actual: str, recorded: str) -> None:
    if actual != recorded or actual != pointer.sha256:
        raise IntegrityError(
            f"{RAW_CONTAINER}/{pointer.blob}: content sha256 {actual} does not match "
            f"metadata {recorded or '(none)'} / pointer {pointer.sha256}"
        )


def _inflate(data: bytes, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits=31)  # gzip framing
    inflated = inflater.decompress(data, MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail:
        raise BlobTooLarge(_TOO_LARGE.format(name=name))
    return inflated + inflater.flush()


def open_verified(blobs: BlobServiceClient, pointer: RawPointer) -> io.RawIOBase | io.BytesIO:
    """The bytes a pointer names, verified before any is handed out: a piece (its prefix and
    range) against the piece's SHA-256; a blob whose content is at most HELD_BYTES in one
    download; a larger one by a hashing pass first, then a second download of the same version
    (its ETag) to read, so memory stays bounded whatever the blob's size."""
    blob = blobs.get_blob_client(RAW_CONTAINER, pointer.blob)
    if pointer.piece is not None:
        return io.BytesIO(_load_piece(blob, pointer, pointer.piece))
    properties = blob.get_blob_properties()
    recorded = (properties.metadata or {}).get("sha256", "")
    if properties.size <= HELD_BYTES:
        held = _held(blob, properties.etag)
        if held is not None:
            _verify(pointer, sha256_hex(held), recorded)
            return io.BytesIO(held)
    hasher = hashlib.sha256()
    for chunk in _content(blob, properties.etag):
        hasher.update(chunk)
    _verify(pointer, hasher.hexdigest(), recorded)
    return ChunkStream(_content(blob, properties.etag))


def _held(blob: BlobClient, etag: str) -> bytes | None:
    """The content of a small blob, or None when it inflates past HELD_BYTES."""
    data = blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified).readall()
    if not is_gzip(blob.blob_name):
        return data
    inflater = zlib.decompressobj(wbits=31)
    inflated = inflater.decompress(data, HELD_BYTES)
    return None if inflater.unconsumed_tail else inflated + inflater.flush()


def _load_piece(blob: BlobClient, pointer: RawPointer, piece: Piece) -> bytes:
    head = blob.download_blob(offset=0, length=piece.prefix).readall() if piece.prefix else b""
    downloader = blob.download_blob(offset=piece.start, length=piece.end - piece.start)
    recorded = (downloader.properties.metadata or {}).get("sha256", "")
    if recorded != pointer.sha256:
        raise IntegrityError(
            f"{RAW_CONTAINER}/{pointer.blob}: metadata sha256 {recorded} is not the pointer's"
        )
    data = head + downloader.readall()
    actual = sha256_hex(data)
    if actual != piece.sha256:
        raise IntegrityError(
            f"{RAW_CONTAINER}/{pointer.unit}: the piece's bytes hash to {actual}, "
            f"its pointer says {piece.sha256}"
        )
    return data


def _content(blob: BlobClient, etag: str) -> Iterator[bytes]:
    """The blob's content (inflated when gzip, bounded by MAX_INFLATED_BYTES), a chunk at a time,
    from the version with `etag`."""
    downloader = blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
    if not is_gzip(blob.blob_name):
        yield from downloader.chunks()
        return
    inflater = zlib.decompressobj(wbits=31)
    inflated = 0
    for chunk in downloader.chunks():
        data = chunk
        while data:
            out = inflater.decompress(data, _CHUNK)
            inflated += len(out)
            if inflated > MAX_INFLATED_BYTES:
                raise BlobTooLarge(_TOO_LARGE.format(name=blob.blob_name))
            yield out
            data = inflater.unconsumed_tail
    yield inflater.flush()


class ChunkStream(io.RawIOBase):
    """An iterator of byte chunks as a readable stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = chunk
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def blob_content(blobs: BlobServiceClient, name: str) -> tuple[ChunkStream, dict[str, str]]:
    """A raw blob's content as a stream (inflated when gzip) and its metadata, for a reader that
    verifies as it goes (`mia verify`)."""
    blob = blobs.get_blob_client(RAW_CONTAINER, name)
    properties = blob.get_blob_properties()
    return ChunkStream(_content(blob, properties.etag)), dict(properties.metadata or {})


def content_queue(queues: QueueServiceClient, name: str = CONTENT_QUEUE) -> QueueClient:
    """A queue client speaking base64, the Functions queue trigger's default message encoding."""
    return queues.get_queue_client(
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def enqueue_pointer(queue: QueueClient, pointer: RawPointer) -> None:
    queue.send_message(pointer.encode())

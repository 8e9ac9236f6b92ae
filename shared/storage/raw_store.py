"""Raw evidence in Blob Storage and the pointer messages announcing it (docs/architecture.md#storage-model).

A raw blob holds exactly the bytes received, gzip-compressed, with the SHA-256 of the uncompressed
bytes in its metadata. Writes never overwrite: a blob that exists with the same hash is the same
evidence (idempotent); one with another hash is an integrity error, never silently replaced.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.model.times import iso_z, utcnow
from shared.storage import CONTENT_QUEUE, RAW_CONTAINER

POINTER_VERSION = 1
_TRACE = ("traceparent", "tracestate")  # optional: a malformed value only loses the trace link


class IntegrityError(RuntimeError):
    """Stored evidence does not match its recorded SHA-256."""


class BadPointer(ValueError):
    """A queue message is not a pointer to a raw blob."""


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

    def encode(self) -> str:
        fields = {key: value for key, value in asdict(self).items() if value != "" or key not in _TRACE}
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
        return cls(blob=blob, sha256=digest.lower(), format=fmt, **trace)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def api_blob_name(content_type: str, content_id: str, content_created: datetime) -> str:
    """`Audit.Exchange/YYYY/MM/DD/HH/<contentId>.json.gz` (docs/architecture.md#raw-evidence-audit-raw)."""
    stamp = content_created.astimezone(UTC).strftime("%Y/%m/%d/%H")
    return f"{content_type}/{stamp}/{quote(content_id, safe='$._-')}.json.gz"


def import_blob_name(digest: str) -> str:
    """Imported exports are keyed by their hash: re-importing the same file stores nothing new."""
    return f"import/{digest}.gz"


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


def load_raw(blobs: BlobServiceClient, pointer: RawPointer) -> bytes:
    """The uncompressed raw bytes, verified against the blob's and the pointer's SHA-256."""
    blob = blobs.get_blob_client(RAW_CONTAINER, pointer.blob)
    downloader = blob.download_blob()
    recorded = (downloader.properties.metadata or {}).get("sha256", "")
    data = gzip.decompress(downloader.readall())
    actual = sha256_hex(data)
    if actual != recorded or actual != pointer.sha256:
        raise IntegrityError(
            f"{RAW_CONTAINER}/{pointer.blob}: content sha256 {actual} does not match "
            f"metadata {recorded or '(none)'} / pointer {pointer.sha256}"
        )
    return data


def content_queue(queues: QueueServiceClient, name: str = CONTENT_QUEUE) -> QueueClient:
    """A queue client speaking base64, the Functions queue trigger's default message encoding."""
    return queues.get_queue_client(
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


def enqueue_pointer(queue: QueueClient, pointer: RawPointer) -> None:
    queue.send_message(pointer.encode())

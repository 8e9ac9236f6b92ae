"""Raw evidence in Blob Storage and pointer messages on the queue, against a real Azurite."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import BinaryIO

import orjson
import pytest

from shared.ingest import pipeline
from shared.storage import CONTENT_QUEUE, RAW_CONTAINER, Storage, raw_store
from shared.storage.raw_store import BadPointer, IntegrityError, RawPointer
from tests.helpers import SAMPLE, blob_names, sample_records

pytestmark = pytest.mark.integration

DATA = b'[{"Operation": "MailItemsAccessed", "Id": "r1"}]'


def _blob(storage: Storage, name: str):
    return storage.blobs.get_blob_client(RAW_CONTAINER, name)


def test_imported_blob_is_exactly_the_input_bytes_with_its_metadata(storage: Storage) -> None:
    data = SAMPLE.read_bytes()
    result = pipeline.import_bytes(storage, data, "contoso purview export (ü).csv")

    digest = hashlib.sha256(data).hexdigest()
    assert result.sha256 == digest
    assert result.blob == f"import/{digest}"
    assert result.stored is True
    blob = _blob(storage, result.blob)
    assert blob.download_blob().readall() == data  # as received: a piece is read by its byte range
    metadata = blob.get_blob_properties().metadata
    assert metadata["sha256"] == digest
    assert metadata["format"] == "csv-auditdata"
    assert metadata["recordCount"] == str(len(sample_records())) == "67"
    assert metadata["pieces"] == "1"
    # Blob metadata is ASCII: the file name is kept percent-encoded.
    assert metadata["source"] == "contoso purview export %28%C3%BC%29.csv"
    assert "fetchedAt" in metadata


def opener(data: bytes) -> Callable[[], AbstractContextManager[BinaryIO]]:
    return lambda: contextlib.nullcontext(io.BytesIO(data))


def test_a_streamed_upload_in_many_blocks_is_the_files_bytes(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = SAMPLE.read_bytes()
    monkeypatch.setattr(raw_store, "UPLOAD_BLOCK_BYTES", 1000)
    digest = hashlib.sha256(data).hexdigest()

    stored = raw_store.store_stream(storage.blobs, "import/x", opener(data), len(data), digest, {})
    again = raw_store.store_stream(storage.blobs, "import/x", opener(data), len(data), digest, {})

    assert (stored, again) == (True, False)
    assert _blob(storage, "import/x").download_blob().readall() == data
    assert len(_blob(storage, "import/x").get_block_list()[0]) == -(-len(data) // 1000)


def test_a_file_that_changed_since_it_was_read_is_refused_and_leaves_no_blob(storage: Storage) -> None:
    read_then = SAMPLE.read_bytes()
    changed = read_then.replace(b"alice@contoso.com", b"alicf@contoso.com", 1)
    digest = hashlib.sha256(read_then).hexdigest()

    with pytest.raises(IntegrityError, match="the file changed while it was imported"):
        raw_store.store_stream(storage.blobs, "import/y", opener(changed), len(read_then), digest, {})

    assert not _blob(storage, "import/y").exists()
    assert raw_store.store_stream(storage.blobs, "import/y", opener(read_then), len(read_then), digest, {})


def test_store_raw_of_the_same_bytes_twice_writes_once_and_keeps_the_blob(storage: Storage) -> None:
    first = raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA, {"format": "management-api"})
    etag = _blob(storage, "test/a.json.gz").get_blob_properties().etag

    second = raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA, {"format": "management-api"})

    assert first == (hashlib.sha256(DATA).hexdigest(), True)
    assert second == (hashlib.sha256(DATA).hexdigest(), False)
    assert _blob(storage, "test/a.json.gz").get_blob_properties().etag == etag
    assert blob_names(storage) == ["test/a.json.gz"]


def test_store_raw_of_other_bytes_under_the_same_name_raises_and_leaves_the_original(
    storage: Storage,
) -> None:
    raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA, {"format": "management-api"})
    before = _blob(storage, "test/a.json.gz").get_blob_properties()

    with pytest.raises(IntegrityError, match=r"audit-raw/test/a\.json\.gz already holds other content"):
        raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA + b" ", {"format": "management-api"})

    after = _blob(storage, "test/a.json.gz")
    assert after.get_blob_properties().etag == before.etag
    assert after.get_blob_properties().metadata == before.metadata
    assert gzip.decompress(after.download_blob().readall()) == DATA


def test_load_raw_returns_the_bytes_when_blob_metadata_and_pointer_agree(storage: Storage) -> None:
    digest, _ = raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA, {"format": "management-api"})

    pointer = RawPointer(blob="test/a.json.gz", sha256=digest, format="management-api")

    assert raw_store.load_raw(storage.blobs, pointer) == DATA


def test_load_raw_detects_content_overwritten_behind_its_metadata(storage: Storage) -> None:
    digest, _ = raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA, {"format": "management-api"})
    blob = _blob(storage, "test/a.json.gz")
    metadata = blob.get_blob_properties().metadata
    tampered = DATA.replace(b"r1", b"r2")
    blob.upload_blob(gzip.compress(tampered), overwrite=True, metadata=metadata)
    assert blob.get_blob_properties().metadata["sha256"] == digest  # metadata kept as it was

    with pytest.raises(IntegrityError, match=hashlib.sha256(tampered).hexdigest()):
        raw_store.load_raw(storage.blobs, RawPointer("test/a.json.gz", digest, "management-api"))


def test_load_raw_rejects_a_pointer_whose_sha256_differs_from_the_blob(storage: Storage) -> None:
    raw_store.store_raw(storage.blobs, "test/a.json.gz", DATA, {"format": "management-api"})
    other = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(IntegrityError, match=f"pointer {other}"):
        raw_store.load_raw(storage.blobs, RawPointer("test/a.json.gz", other, "management-api"))


def test_pointer_messages_are_base64_of_the_pointer_json_on_the_queue(storage: Storage) -> None:
    pointer = RawPointer(blob="import/abc.gz", sha256="a" * 64, format="jsonl")
    raw_store.enqueue_pointer(raw_store.content_queue(storage.queues), pointer)

    plain = storage.queues.get_queue_client(CONTENT_QUEUE)  # no decode policy: the wire text
    [message] = plain.receive_messages(max_messages=32)

    assert message.content != pointer.encode()
    decoded = base64.b64decode(message.content, validate=True)
    assert json.loads(decoded) == {"blob": "import/abc.gz", "sha256": "a" * 64, "format": "jsonl", "v": 1}
    assert RawPointer.decode(decoded) == pointer


def test_import_enqueues_one_base64_pointer_naming_the_stored_blob(storage: Storage) -> None:
    result = pipeline.import_file(storage, SAMPLE)

    plain = storage.queues.get_queue_client(CONTENT_QUEUE)
    messages = list(plain.receive_messages(max_messages=32))

    assert len(messages) == 1
    pointer = RawPointer.decode(base64.b64decode(messages[0].content, validate=True))
    assert pointer == RawPointer(blob=result.blob, sha256=result.sha256, format="csv-auditdata")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"import/x.gz"',
        b"{}",
        b'{"sha256": "' + b"a" * 64 + b'", "format": "jsonl"}',
        b'{"blob": "", "sha256": "' + b"a" * 64 + b'", "format": "jsonl"}',
        b'{"blob": 7, "sha256": "' + b"a" * 64 + b'", "format": "jsonl"}',
        b'{"blob": "../secret.gz", "sha256": "' + b"a" * 64 + b'", "format": "jsonl"}',
        b'{"blob": "import/../../x.gz", "sha256": "' + b"a" * 64 + b'", "format": "jsonl"}',
        b'{"blob": "/etc/passwd", "sha256": "' + b"a" * 64 + b'", "format": "jsonl"}',
        b'{"blob": "import/x.gz", "sha256": "abc", "format": "jsonl"}',
        b'{"blob": "import/x.gz", "sha256": "' + b"z" * 64 + b'", "format": "jsonl"}',
        b'{"blob": "import/x.gz", "sha256": null, "format": "jsonl"}',
        b'{"blob": "import/x.gz", "sha256": "' + b"a" * 64 + b'"}',
        b'{"blob": "import/x.gz", "sha256": "' + b"a" * 64 + b'", "format": ""}',
        b'{"blob": "import/x.gz", "sha256": "' + b"a" * 64 + b'", "format": ["jsonl"]}',
    ],
)
def test_raw_pointer_decode_rejects_junk(body: bytes) -> None:
    with pytest.raises(BadPointer):
        RawPointer.decode(body)


def test_raw_pointer_round_trips_through_encode_and_decode_with_the_hash_lower_cased() -> None:
    pointer = RawPointer(blob="Audit.Exchange/2026/11/18/02/x$y.json.gz", sha256="ab" * 32, format="jsonl")

    assert RawPointer.decode(pointer.encode()) == pointer
    upper = orjson.dumps({"blob": pointer.blob, "sha256": "AB" * 32, "format": "jsonl"})
    assert RawPointer.decode(upper) == pointer


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_pointer_carries_its_trace_context_only_when_it_has_one() -> None:
    untraced = RawPointer(blob="import/abc.gz", sha256="a" * 64, format="jsonl")
    traced = RawPointer("import/abc.gz", "a" * 64, "jsonl", traceparent=TRACEPARENT, tracestate="mia=1")

    assert set(orjson.loads(untraced.encode())) == {"blob", "sha256", "format", "v"}
    assert orjson.loads(traced.encode())["traceparent"] == TRACEPARENT
    assert RawPointer.decode(traced.encode()) == traced
    assert len(traced.encode()) - len(untraced.encode()) < 100


def test_a_pointer_written_before_the_trace_context_or_with_a_bad_one_still_decodes() -> None:
    old = orjson.dumps({"blob": "import/abc.gz", "sha256": "a" * 64, "format": "jsonl", "v": 1})
    odd = orjson.dumps({"blob": "import/abc.gz", "sha256": "a" * 64, "format": "jsonl", "traceparent": 7})

    assert RawPointer.decode(old) == RawPointer("import/abc.gz", "a" * 64, "jsonl")
    assert RawPointer.decode(odd).traceparent == ""


def _store_gzip(storage: Storage, name: str, data: bytes) -> RawPointer:
    digest = hashlib.sha256(data).hexdigest()
    _blob(storage, name).upload_blob(gzip.compress(data, mtime=0), metadata={"sha256": digest})
    return RawPointer(blob=name, sha256=digest, format="management-api")


def test_a_blob_too_large_to_hold_is_hashed_in_one_pass_and_read_in_another(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_store, "HELD_BYTES", 1024)
    data = orjson.dumps(sample_records())
    pointer = _store_gzip(storage, "test/large.json.gz", data)

    stream = raw_store.open_verified(storage.blobs, pointer)

    assert not isinstance(stream, io.BytesIO)  # streamed, not held
    assert b"".join(iter(lambda: stream.read(4096), b"")) == data


def test_a_large_blob_that_does_not_hash_to_its_pointer_is_refused_before_any_byte_is_read(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_store, "HELD_BYTES", 1024)
    pointer = _store_gzip(storage, "test/large.json.gz", orjson.dumps(sample_records()))

    with pytest.raises(IntegrityError, match="does not match"):
        raw_store.open_verified(storage.blobs, replace(pointer, sha256="0" * 64))


def test_a_gzip_blob_inflating_past_the_bound_is_kept_and_refused_not_read(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_store, "HELD_BYTES", 1024)
    monkeypatch.setattr(raw_store, "MAX_INFLATED_BYTES", 4 * 1024 * 1024)
    pointer = _store_gzip(storage, "test/bomb.json.gz", b"[" + b" " * (8 * 1024 * 1024) + b"]")

    with pytest.raises(raw_store.BlobTooLarge, match="inflates past"):
        raw_store.open_verified(storage.blobs, pointer)

    assert "test/bomb.json.gz" in blob_names(storage)  # the evidence stays

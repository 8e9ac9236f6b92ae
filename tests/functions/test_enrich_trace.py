"""enrich_trace driven with real azure.functions.QueueMessage objects against a real Azurite."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.ingest import pipeline
from shared.storage import Storage, raw_store
from shared.storage.raw_store import BadPointer, IntegrityError, RawPointer
from tests.helpers import SAMPLE, expected_keys, keys_of, scan_all

pytestmark = pytest.mark.functions

Handler = Callable[[func.QueueMessage], None]


def _receive_as_the_host_would(storage: Storage) -> func.QueueMessage:
    """Take the pointer message off the queue and hand it over as the trigger does (decoded body)."""
    [message] = raw_store.content_queue(storage.queues).receive_messages(max_messages=32)
    return func.QueueMessage(id=message.id, body=message.content.encode(), pop_receipt=message.pop_receipt)


def test_enrich_trace_turns_the_imported_sample_into_rows(
    function_env: Storage, enrich_trace: Handler
) -> None:
    pipeline.import_file(function_env, SAMPLE)
    message = _receive_as_the_host_would(function_env)

    enrich_trace(message)

    tables = scan_all(function_env)
    assert keys_of(tables["mailbox"]) == expected_keys("mailbox")
    assert keys_of(tables["actor"]) == expected_keys("actor")
    assert len(tables["mailbox"]) == 56


def test_enrich_trace_on_a_redelivered_message_changes_nothing(
    function_env: Storage, enrich_trace: Handler
) -> None:
    pipeline.import_file(function_env, SAMPLE)
    message = _receive_as_the_host_would(function_env)
    enrich_trace(message)
    before = scan_all(function_env)

    enrich_trace(message)
    enrich_trace(func.QueueMessage(id="other-id", body=message.get_body(), pop_receipt="other-receipt"))

    assert scan_all(function_env) == before


def test_enrich_trace_accepts_the_body_as_text_too(function_env: Storage, enrich_trace: Handler) -> None:
    result = pipeline.import_file(function_env, SAMPLE)
    body = RawPointer(result.blob, result.sha256, result.format).encode()

    enrich_trace(func.QueueMessage(id="1", body=body, pop_receipt="r"))

    assert keys_of(scan_all(function_env)["mailbox"]) == expected_keys("mailbox")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", BadPointer),
        (b"not a pointer", BadPointer),
        (b'{"blob": "../../x.gz", "sha256": "' + b"0" * 64 + b'", "format": "jsonl"}', BadPointer),
        (RawPointer("import/missing.gz", "0" * 64, "jsonl").encode().encode(), ResourceNotFoundError),
        ("wrong-sha256", IntegrityError),
    ],
    ids=["empty", "text", "traversal", "missing-blob", "wrong-sha256"],
)
def test_enrich_trace_raises_on_a_bad_pointer_so_the_host_retries_then_poisons(
    function_env: Storage, enrich_trace: Handler, body: bytes | str, error: type[Exception]
) -> None:
    result = pipeline.import_file(function_env, SAMPLE)
    if body == "wrong-sha256":
        body = RawPointer(result.blob, "a" * 64, result.format).encode().encode()
    assert isinstance(body, bytes)

    with pytest.raises(error):
        enrich_trace(func.QueueMessage(id="m1", body=body, pop_receipt="r1"))

    assert scan_all(function_env) == {"mailbox": [], "actor": []}

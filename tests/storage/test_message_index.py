"""MessageIndexTable: its keys, the stored entity and its reads, against a real Azurite."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from azure.data.tables import EdmType, EntityProperty

from bench.requests import RequestTally, counted_storage
from shared.model.message_info import NOT_LOOKED_UP, MessageInfo
from shared.storage import Storage
from shared.storage.tables import KEYS_PER_QUERY
from tests.helpers import full_scan

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 11, 18, 9, 15, 42, tzinfo=UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def test_a_row_is_keyed_by_the_encoded_mailbox_and_the_sha256_of_the_message_id(storage: Storage) -> None:
    mailbox, message_id = "o'brien/ops#1@contoso.com", "<a/b\\c#d?e@x>"
    info = MessageInfo("Quarterly", "cfo@contoso.com", RECEIVED, 3_000_000_000, "graph", None, 0, 2)

    assert storage.message_index.write(mailbox, {message_id: info}) == 1

    [row] = full_scan(storage.message_index)
    assert row == {
        "PartitionKey": "o'brien%2Fops%231@contoso.com",
        "RowKey": _sha256(message_id),
        "Mailbox": mailbox,
        "InternetMessageId": message_id,
        "Subject": "Quarterly",
        "Sender": "cfo@contoso.com",
        "Source": "graph",
        "Attempts": 0,
        "Copies": 2,
        "Received": RECEIVED,
        "SizeInBytes": EntityProperty(3_000_000_000, EdmType.INT64),
    }


def test_a_negative_answer_stores_when_to_look_again_and_no_absent_property(storage: Storage) -> None:
    retry_at = RECEIVED + timedelta(hours=6)
    info = MessageInfo(source="unresolved:not-found", retry_at=retry_at, attempts=3)

    storage.message_index.write("alice@contoso.com", {"<gone@x>": info})

    [row] = full_scan(storage.message_index)
    assert "Received" not in row
    assert "SizeInBytes" not in row
    assert (row["Source"], row["RetryAt"], row["Attempts"]) == ("unresolved:not-found", retry_at, 3)


def test_read_gives_back_what_was_written_in_utc_across_many_query_chunks(storage: Storage) -> None:
    """More ids than one filter may compare (14 RowKeys), non-ASCII among them."""
    index = storage.message_index
    paris = timezone(timedelta(hours=1))
    infos = {
        f"<{n}@x>": MessageInfo(f"subject {n}", received=RECEIVED.astimezone(paris), size=n, source="trace")
        for n in range(40)
    }
    infos["<日本語😀@x>"] = MessageInfo("受信トレイ", source="audit")
    index.write("alice@contoso.com", infos)
    index.write("bob@contoso.com", {"<0@x>": MessageInfo("bob's copy", source="audit")})

    found = index.read("alice@contoso.com", [*infos, "<absent@x>"])

    assert found == {
        mid: MessageInfo(
            info.subject,
            received=info.received.astimezone(UTC) if info.received else None,
            size=info.size,
            source=info.source,
        )
        for mid, info in infos.items()
    }
    received = found["<5@x>"].received
    assert received is not None
    assert received.tzinfo == UTC  # equal above whatever the zone: the zone itself is UTC
    assert index.read("alice@contoso.com", []) == {}


def test_record_subjects_writes_only_what_a_record_tells_and_never_over_an_answer(storage: Storage) -> None:
    index = storage.message_index
    index.write("alice@contoso.com", {"<graph@x>": MessageInfo("From Graph", "s@x", source="graph")})
    told = {
        "<graph@x>": MessageInfo("From audit", size=10, source="audit"),
        "<new@x>": MessageInfo("From audit", sender="ignored@x", size=20, source="audit"),
    }

    assert index.record_subjects("alice@contoso.com", told) == 1

    rows = {row["InternetMessageId"]: row for row in full_scan(index)}
    assert rows["<graph@x>"]["Subject"] == "From Graph"
    assert set(rows["<new@x>"]) == {
        "PartitionKey",
        "RowKey",
        "Mailbox",
        "InternetMessageId",
        "Subject",
        "Source",
        "SizeInBytes",
    }
    assert rows["<new@x>"]["SizeInBytes"] == EntityProperty(20, EdmType.INT64)
    assert index.read("alice@contoso.com", ["<new@x>"])["<new@x>"].attempts == 0


def test_a_row_without_a_source_reads_as_not_looked_up(storage: Storage) -> None:
    index = storage.message_index
    index.write("alice@contoso.com", {"<a@x>": MessageInfo("s", source="audit")})
    [row] = full_scan(index)
    index.client.update_entity({"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "Source": ""})

    assert index.read("alice@contoso.com", ["<a@x>"])["<a@x>"].source == NOT_LOOKED_UP


def test_record_subjects_answers_every_unresolved_row_across_query_chunks_and_keeps_every_answer(
    storage: Storage,
) -> None:
    index = storage.message_index
    unresolved = {f"<u{n}@x>": MessageInfo("", source="unresolved:not-found") for n in range(20)}
    answered = {f"<a{n}@x>": MessageInfo("From Graph", source="graph") for n in range(20)}
    index.write("alice@contoso.com", {**unresolved, **answered})
    told = {mid: MessageInfo("From audit", source="audit") for mid in [*unresolved, *answered, "<new@x>"]}

    assert index.record_subjects("alice@contoso.com", told) == 21  # 20 unresolved rows and one new

    known = index.read("alice@contoso.com", told)
    assert all((known[mid].subject, known[mid].source) == ("From audit", "audit") for mid in unresolved)
    assert all((known[mid].subject, known[mid].source) == ("From Graph", "graph") for mid in answered)
    assert known["<new@x>"].subject == "From audit"


def test_record_subjects_reads_each_stored_row_once_to_settle_and_answer_it(
    azurite: str, storage: Storage
) -> None:
    unresolved = {f"<u{n}@x>": MessageInfo("", source="unresolved:not-found") for n in range(20)}
    answered = {f"<a{n}@x>": MessageInfo("From Graph", source="graph") for n in range(8)}
    storage.message_index.write("alice@contoso.com", {**unresolved, **answered})
    told = {mid: MessageInfo("From audit", source="audit") for mid in [*unresolved, *answered]}
    tally = RequestTally()

    assert counted_storage(azurite, tally).message_index.record_subjects("alice@contoso.com", told) == 20

    # One transaction refused, the 28 stored rows read 14 to a query, the 20 unresolved ones merged.
    methods = tally.breakdown()["table"]["MessageIndex"]
    assert methods == {"POST $batch": 1, "GET": math.ceil(28 / KEYS_PER_QUERY), "PATCH": 20}

"""Access rows in Table Storage: keys, entity conversion, batched idempotent upserts, range queries.

Keys follow DESIGN section 2: PartitionKey = the mailbox (or, in ActorAccess, the accessing user),
lower-case; RowKey = `<yyyymmddThhmmss>_<record Id>`, so rows sort by time and a record always
lands on the same key. Caller input only ever reaches a filter as a bound parameter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.records import AccessEvent, MessageRef
from shared.storage import ACTOR_TABLE, MAILBOX_TABLE

MAX_BATCH = 100  # entity-group transaction limit
MAX_BATCH_BYTES = 3_500_000  # below the 4 MiB transaction payload limit
ITEM_CHUNK_CHARS = 30_000  # a string property holds at most 64 KiB of UTF-16
MAX_ITEM_CHUNKS = 12  # keeps an entity well below the 1 MiB limit
MAX_KEY_CHARS = 400
# A string property holds 64 KiB of UTF-16: 16,000 characters fit even if all are surrogate pairs.
MAX_TEXT = 16_000
UNKNOWN_ACTOR = "~unknown"

# Characters forbidden in PartitionKey/RowKey, plus '%' so the encoding is reversible.
_KEY_UNSAFE = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")
_ROWKEY_TIME = "%Y%m%dT%H%M%S"


def encode_key(value: str) -> str:
    """A Table key for any string: forbidden characters percent-encoded, long values hashed."""
    encoded = _KEY_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)
    if len(encoded) > MAX_KEY_CHARS:
        digest = hashlib.sha256(value.encode()).hexdigest()
        encoded = f"{encoded[:100]}~{digest}"
    return encoded


def time_key(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    # Year zero-padded by hand: strftime leaves years before 1000 short, which breaks ordering.
    return f"{utc.year:04d}{utc.strftime(_ROWKEY_TIME[2:])}"


def row_key(event: AccessEvent) -> str:
    return f"{time_key(event.timestamp)}_{encode_key(event.record_id)}"


def _ascii_json(items: list[list[Any]]) -> str:
    # ASCII only (non-ASCII as \u escapes): one character is then one UTF-16 unit in storage and
    # at most two bytes on the wire, so the character budget below bounds both.
    return json.dumps(items, separators=(",", ":"))


def _item_chunks(event: AccessEvent) -> tuple[list[str], int]:
    """Serialized items split across string properties; items beyond the entity budget are
    counted in ItemsTruncated (the raw blob keeps them all)."""
    items = [
        [item.internet_message_id, item.folder, item.subject, item.size_in_bytes] for item in event.items
    ]
    budget = ITEM_CHUNK_CHARS * MAX_ITEM_CHUNKS
    text = _ascii_json(items)
    dropped = 0
    while len(text) > budget:
        keep = max(0, int(len(items) * budget / len(text)) - 1)
        dropped += len(items) - keep
        items = items[:keep]
        text = _ascii_json(items)
    chunks = [text[i : i + ITEM_CHUNK_CHARS] for i in range(0, len(text), ITEM_CHUNK_CHARS)]
    return chunks, dropped


def to_entity(event: AccessEvent, partition: str) -> dict[str, Any]:
    chunks, dropped = _item_chunks(event)
    entity: dict[str, Any] = {
        "PartitionKey": encode_key(partition),
        "RowKey": row_key(event),
        "EventTime": event.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Mailbox": event.mailbox,
        "User": event.user,
        "LogonType": event.logon_type,
        "Access": event.access,
        "Throttled": event.throttled,
        "Folders": _json_list(event.folders),
        "FolderIds": _json_list(event.folder_ids),
        "ClientIP": event.client_ip,
        "ClientInfo": event.client_info,
        "ClientFamily": event.client_family,
        "AppId": event.app_id,
        "ClientAppId": event.client_app_id,
        "AppName": event.app_name,
        "SessionId": event.session_id,
        "AADSessionId": event.aad_session_id,
        "ExternalAccess": event.external_access,
        "OriginatingServer": event.originating_server,
        "RecordId": event.record_id,
        "ItemChunks": len(chunks),
        "ItemsTruncated": dropped,
    }
    # An Int32 property: a count beyond it is nonsense, and the SDK would refuse the whole batch.
    if event.operation_count is not None and -(2**31) <= event.operation_count < 2**31:
        entity["OperationCount"] = event.operation_count
    truncated = [name for name, value in entity.items() if isinstance(value, str) and len(value) > MAX_TEXT]
    for name in truncated:  # the raw blob keeps the whole value
        entity[name] = entity[name][:MAX_TEXT]
    if truncated:
        entity["TruncatedFields"] = ",".join(truncated)
    for index, chunk in enumerate(chunks):
        entity[f"Items{index}"] = chunk
    return entity


def _json_list(values: tuple[str, ...]) -> str:
    """A JSON list that fits one property: trailing values beyond MAX_TEXT characters are left out."""
    kept = list(values)
    text = orjson.dumps(kept).decode()
    while len(text) > MAX_TEXT:
        kept = kept[: len(kept) // 2]
        text = orjson.dumps(kept).decode()
    return text


def from_entity(entity: dict[str, Any]) -> AccessEvent:
    text = "".join(entity.get(f"Items{i}", "") for i in range(int(entity.get("ItemChunks", 0))))
    items = tuple(
        MessageRef(internet_message_id=mid, folder=folder, subject=subject, size_in_bytes=size)
        for mid, folder, subject, size in (orjson.loads(text) if text else [])
    )
    return AccessEvent(
        timestamp=datetime.strptime(entity["EventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        mailbox=entity.get("Mailbox", ""),
        user=entity.get("User", ""),
        logon_type=entity.get("LogonType", ""),
        access=entity.get("Access", ""),
        throttled=bool(entity.get("Throttled", False)),
        folders=tuple(orjson.loads(entity.get("Folders", "[]"))),
        folder_ids=tuple(orjson.loads(entity.get("FolderIds", "[]"))),
        operation_count=entity.get("OperationCount"),
        client_ip=entity.get("ClientIP", ""),
        client_info=entity.get("ClientInfo", ""),
        client_family=entity.get("ClientFamily", ""),
        app_id=entity.get("AppId", ""),
        client_app_id=entity.get("ClientAppId", ""),
        app_name=entity.get("AppName", ""),
        session_id=entity.get("SessionId", ""),
        aad_session_id=entity.get("AADSessionId", ""),
        external_access=bool(entity.get("ExternalAccess", False)),
        originating_server=entity.get("OriginatingServer", ""),
        record_id=entity.get("RecordId", ""),
        items=items,
    )


def _entity_size(entity: dict[str, Any]) -> int:
    return sum(len(k) + (len(v) * 2 if isinstance(v, str) else 16) for k, v in entity.items()) + 64


def _batches(entities: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Group by PartitionKey into transactions of at most MAX_BATCH entities and MAX_BATCH_BYTES."""
    by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entity in entities:
        by_partition[entity["PartitionKey"]].append(entity)
    for group in by_partition.values():
        batch: list[dict[str, Any]] = []
        size = 0
        seen: set[str] = set()
        for entity in group:
            if entity["RowKey"] in seen:  # a transaction may not touch one entity twice
                continue
            seen.add(entity["RowKey"])
            entity_size = _entity_size(entity)
            if batch and (len(batch) == MAX_BATCH or size + entity_size > MAX_BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(entity)
            size += entity_size
        if batch:
            yield batch


def upsert_entities(
    table: TableClient, entities: Iterable[dict[str, Any]], mode: UpdateMode = UpdateMode.REPLACE
) -> int:
    """Upsert (replace, or merge into what is there) in entity-group transactions; returns the
    number of entities written."""
    written = 0
    for batch in _batches(entities):
        if len(batch) == 1:
            # One request either way, and a plain upsert skips the multipart transaction envelope
            # (about 6 ms against 2 ms per request on Azurite); partitions of one are common when a
            # blob's records spread over many mailboxes.
            table.upsert_entity(batch[0], mode=mode)
            written += 1
            continue
        try:
            table.submit_transaction([("upsert", entity, {"mode": mode}) for entity in batch])
        except TableTransactionError:
            # The whole transaction rolled back; one entity is at fault. Write one by one so the
            # error names it and the others are not held back by it.
            for entity in batch:
                table.upsert_entity(entity, mode=mode)
        written += len(batch)
    return written


def write_events(mailbox_table: TableClient, actor_table: TableClient, events: list[AccessEvent]) -> int:
    """Write each event to MailboxAccess and ActorAccess; idempotent by key."""
    upsert_entities(mailbox_table, (to_entity(event, event.mailbox) for event in events))
    upsert_entities(actor_table, (to_entity(event, event.user or UNKNOWN_ACTOR) for event in events))
    return len(events)


def table_for(by: str) -> str:
    return ACTOR_TABLE if by == "actor" else MAILBOX_TABLE


def query_events(
    table: TableClient,
    subject: str,
    start: datetime,
    end: datetime,
    after: str | None = None,
    page_size: int = 1000,
) -> Iterator[tuple[str, AccessEvent]]:
    """Rows of one partition with start <= time < end (and RowKey > after), in RowKey order."""
    query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
    parameters = {"pk": encode_key(subject), "lo": time_key(start), "hi": time_key(end)}
    if after:
        query += " and RowKey gt @after"
        parameters["after"] = after
    for entity in table.query_entities(query, parameters=parameters, results_per_page=page_size):
        yield entity["RowKey"], from_entity(dict(entity))

"""The access rows (MailboxAccess, ActorAccess) and RecordConflicts, each table behind its class;
and the batched writes every table class uses (idempotent upserts, first-copy-wins inserts).

Keys (docs/architecture.md#access-tables-mailboxaccess-and-actoraccess): PartitionKey = the
mailbox (or, in ActorAccess, the accessing user), lower-case; RowKey = `<yyyymmddThhmmss>_<record
Id>`, so rows sort by time and a record always lands on the same key. Caller input only ever
reaches a filter as a bound parameter.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableTransactionError,
    UpdateMode,
)

from shared.model.event import AccessEvent, MessageRef
from shared.model.keys import encode_key, time_key
from shared.model.times import iso_z
from shared.storage.base import Table

if TYPE_CHECKING:
    from shared.storage import Storage

MAX_BATCH = 100  # entity-group transaction limit
MAX_BATCH_BYTES = 3_500_000  # below the 4 MiB transaction payload limit
# An entity holds at most 1 MiB, a string property 64 KiB of UTF-16 (Azure Table service data
# model: https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model).
MAX_ENTITY_BYTES = 1_000_000
CHUNK_CHARS = 30_000  # one payload property: 60 KB as UTF-16 (the payload is ASCII JSON)
# Longer string values move from their own property into the payload, so nothing is cut.
MAX_TEXT = 16_000
UNKNOWN_ACTOR = "~unknown"
# Where a partition's overflow rows live: `<PartitionKey>%overflow`. encode_key never writes a
# "%" that is not followed by two hex digits, so no mailbox or actor key can end like this.
OVERFLOW_SUFFIX = "%overflow"

# Row properties that hold text; a value longer than MAX_TEXT goes to the payload instead.
_TEXT_FIELDS = (
    "Mailbox",
    "User",
    "LogonType",
    "Access",
    "ClientIP",
    "ClientInfo",
    "ClientFamily",
    "AppId",
    "ClientAppId",
    "AppName",
    "SessionId",
    "AADSessionId",
    "OriginatingServer",
    "RecordId",
    "SourceBlob",
)
_LIST_FIELDS = ("Folders", "FolderIds", "Repaired")

Fetch = Callable[[str, str], Mapping[str, Any]]


class IncompleteRow(RuntimeError):
    """A stored row's overflow rows are missing or belong to other content."""


def int64(value: int) -> EntityProperty:
    """An Edm.Int64 property: the SDK sends a plain int as Int32 and refuses anything larger."""
    return EntityProperty(value, EdmType.INT64)


def plain(value: object) -> object:
    """A property's value as Python holds it (the SDK reads Int64 back as an EntityProperty)."""
    return value.value if isinstance(value, EntityProperty) else value


def _ascii_json(value: object) -> str:
    # ASCII only (non-ASCII as JSON escapes): one character is then one UTF-16 unit in storage and
    # one byte on the wire, so the character budget below bounds both.
    return json.dumps(value, separators=(",", ":"))


def _value_bytes(value: object) -> int:
    """Stored size of one property value (the Table service's published sizes per type)."""
    value = plain(value)
    if isinstance(value, str):
        return 4 + 2 * len(value) if value.isascii() else 4 + len(value.encode("utf-16-le"))
    if isinstance(value, bool):
        return 1
    return 8  # Int64, Double, DateTime


def entity_bytes(entity: Mapping[str, Any]) -> int:
    """Stored size of an entity: 4 bytes, the keys as UTF-16, and per property 8 bytes, its name as
    UTF-16 and its value."""
    size = 4
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            size += _value_bytes(value)
        else:
            size += 8 + 2 * len(name) + _value_bytes(value)
    return size


def _content_fields(event: AccessEvent) -> dict[str, Any]:
    """The row's properties except keys and payload, with Folders, FolderIds and Repaired as JSON."""
    fields: dict[str, Any] = {
        "Mailbox": event.mailbox,
        "User": event.user,
        "LogonType": event.logon_type,
        "Access": event.access,
        "Throttled": event.throttled,
        "Folders": orjson.dumps(list(event.folders)).decode(),
        "FolderIds": orjson.dumps(list(event.folder_ids)).decode(),
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
        "Repaired": orjson.dumps(list(event.repaired)).decode(),
        "SourceBlob": event.source_blob,
        "SourceSha256": event.source_sha256,
    }
    if event.operation_count is not None:
        fields["OperationCount"] = int64(event.operation_count)
    if event.source_index is not None:
        fields["SourceIndex"] = int64(event.source_index)
    return fields


def _to_entities(event: AccessEvent, partition: str, content: str) -> list[dict[str, Any]]:
    """The entities that store one event: its overflow rows (if any) first, the row itself last.

    Nothing is cut. The message list, and any text too long for its own property, go into a
    JSON payload spread over `Payload<n>` properties of the row up to the entity size limit, and
    on into overflow rows (`<PartitionKey>%overflow`, keyed by the row's key and content hash, so
    two copies of a record with different content never share one)."""
    pk, rk = encode_key(partition), AccessTable.row_key(event)
    entity: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": rk,
        "EventTime": iso_z(event.timestamp),
        **_content_fields(event),
        "ContentSha256": content,
    }
    spilled: dict[str, str] = {}
    for name in (*_TEXT_FIELDS, *_LIST_FIELDS):
        if len(entity[name]) > MAX_TEXT:
            spilled[name] = entity.pop(name)
    items = [[i.internet_message_id, i.folder, i.subject, i.size_in_bytes] for i in event.items]
    text = _ascii_json({"items": items, "fields": spilled})
    chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
    entity["PayloadChunks"] = len(chunks)
    overflow: list[dict[str, Any]] = []
    position = _fill(entity, chunks, 0)
    while position < len(chunks):
        part: dict[str, Any] = {
            "PartitionKey": pk + OVERFLOW_SUFFIX,
            "RowKey": f"{rk}~{content[:16]}~{len(overflow):04d}",
            "ContentSha256": content,
            "FirstChunk": position,
        }
        position = _fill(part, chunks, position)
        overflow.append(part)
    entity["OverflowRows"] = len(overflow)
    return [*overflow, entity]


def _fill(entity: dict[str, Any], chunks: list[str], position: int) -> int:
    """Add `Payload<n>` properties from chunks[position:] while the entity stays under its limit;
    returns the next chunk's position."""
    size = entity_bytes(entity) + 64  # room for the count properties added after
    while position < len(chunks):
        name = f"Payload{position}"
        cost = 8 + 2 * len(name) + _value_bytes(chunks[position])
        if size + cost > MAX_ENTITY_BYTES:
            break
        entity[name] = chunks[position]
        size += cost
        position += 1
    return position


def _payload(entity: Mapping[str, Any], fetch: Fetch) -> dict[str, Any]:
    total = int(plain(entity.get("PayloadChunks", 0)) or 0)  # type: ignore[call-overload]
    parts: list[str] = []
    position = 0
    while position < total and f"Payload{position}" in entity:
        parts.append(entity[f"Payload{position}"])
        position += 1
    overflow_rows = int(plain(entity.get("OverflowRows", 0)) or 0)  # type: ignore[call-overload]
    content = str(entity.get("ContentSha256", ""))
    for number in range(overflow_rows):
        key = f"{entity['RowKey']}~{content[:16]}~{number:04d}"
        try:
            part = fetch(str(entity["PartitionKey"]) + OVERFLOW_SUFFIX, key)
        except ResourceNotFoundError:
            raise IncompleteRow(f"overflow row {key} is missing") from None
        if part.get("ContentSha256") != content:
            raise IncompleteRow(f"overflow row {key} belongs to other content")
        while f"Payload{position}" in part:
            parts.append(part[f"Payload{position}"])
            position += 1
    if position != total:
        raise IncompleteRow(f"row {entity['RowKey']}: {position} of {total} payload chunks found")
    text = "".join(parts)
    payload: dict[str, Any] = orjson.loads(text) if text else {"items": [], "fields": {}}
    return payload


def int_or_none(value: object) -> int | None:
    value = plain(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _from_entity(entity: Mapping[str, Any], fetch: Fetch) -> AccessEvent:
    """The event a row stores; `fetch(PartitionKey, RowKey)` reads its overflow rows, if any."""
    payload = _payload(entity, fetch)
    fields = {**entity, **payload.get("fields", {})}
    items = tuple(
        MessageRef(internet_message_id=mid, folder=folder, subject=subject, size_in_bytes=size)
        for mid, folder, subject, size in payload.get("items", [])
    )
    return AccessEvent(
        timestamp=datetime.strptime(entity["EventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        mailbox=fields.get("Mailbox", ""),
        user=fields.get("User", ""),
        logon_type=fields.get("LogonType", ""),
        access=fields.get("Access", ""),
        throttled=bool(fields.get("Throttled", False)),
        folders=tuple(orjson.loads(fields.get("Folders", "[]"))),
        folder_ids=tuple(orjson.loads(fields.get("FolderIds", "[]"))),
        operation_count=int_or_none(fields.get("OperationCount")),
        client_ip=fields.get("ClientIP", ""),
        client_info=fields.get("ClientInfo", ""),
        client_family=fields.get("ClientFamily", ""),
        app_id=fields.get("AppId", ""),
        client_app_id=fields.get("ClientAppId", ""),
        app_name=fields.get("AppName", ""),
        session_id=fields.get("SessionId", ""),
        aad_session_id=fields.get("AADSessionId", ""),
        external_access=bool(fields.get("ExternalAccess", False)),
        originating_server=fields.get("OriginatingServer", ""),
        record_id=fields.get("RecordId", ""),
        items=items,
        repaired=tuple(orjson.loads(fields.get("Repaired", "[]"))),
        conflict=bool(fields.get("Conflict", False)),
        source_blob=fields.get("SourceBlob", ""),
        source_sha256=fields.get("SourceSha256", ""),
        source_index=int_or_none(fields.get("SourceIndex")),
    )


def _wire_bytes(entity: Mapping[str, Any]) -> int:
    """About the bytes an entity takes in a transaction's JSON body (non-ASCII text as JSON escapes)."""
    size = 64
    for name, value in entity.items():
        value = plain(value)
        if isinstance(value, str):
            size += len(name) + 8 + (len(value) if value.isascii() else 3 * len(value.encode("utf-16-le")))
        else:
            size += len(name) + 40
    return size


def _batches(entities: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Group by PartitionKey into transactions of at most MAX_BATCH entities and MAX_BATCH_BYTES,
    keeping the order of each partition's entities."""
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
            entity_size = _wire_bytes(entity)
            if batch and (len(batch) == MAX_BATCH or size + entity_size > MAX_BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(entity)
            size += entity_size
        if batch:
            yield batch


def requests_to_write(entities: Iterable[dict[str, Any]]) -> int:
    """The requests `upsert_entities` makes for `entities` when no transaction fails."""
    return sum(1 for _ in _batches(entities))


def upsert_entities(
    table: TableClient, entities: Iterable[dict[str, Any]], mode: UpdateMode = UpdateMode.REPLACE
) -> int:
    """Upsert (replace, or merge into what is there) in entity-group transactions; returns the
    number of entities written. For rows that describe state (checkpoints, the message index),
    never for evidence: access rows are inserted by `insert_rows`, first copy wins."""
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


@dataclass(frozen=True)
class Existing:
    """A row already stored under the key a new copy wanted."""

    partition_key: str
    row_key: str
    content_sha256: str
    source_blob: str
    source_sha256: str
    source_index: int | None


@dataclass
class InsertResult:
    inserted: int = 0
    duplicates: int = 0  # the same record again (same content): nothing written
    conflicts: list[tuple[dict[str, Any], Existing]] = field(default_factory=list)
    inserted_keys: list[tuple[str, str]] = field(default_factory=list)  # (PartitionKey, RowKey)
    found: list[Existing] = field(default_factory=list)  # the stored rows of the duplicates
    # With compare=False: the conflicts' stored rows, by (PartitionKey, RowKey), as read to settle
    # a transaction (with their ETags); a conflict met inserting one row alone is not read.
    stored: dict[tuple[str, str], TableEntity] = field(default_factory=dict)


_UNREAD = Existing("", "", "", "", "", None)
_EXISTING_SELECT = ["PartitionKey", "RowKey", "ContentSha256", "SourceBlob", "SourceSha256", "SourceIndex"]


def _as_existing(entity: Mapping[str, Any], found: Mapping[str, Any]) -> Existing:
    return Existing(
        partition_key=str(entity["PartitionKey"]),
        row_key=str(entity["RowKey"]),
        content_sha256=str(found.get("ContentSha256", "")),
        source_blob=str(found.get("SourceBlob", "")),
        source_sha256=str(found.get("SourceSha256", "")),
        source_index=int_or_none(found.get("SourceIndex")),
    )


def _existing(table: TableClient, entity: Mapping[str, Any]) -> Existing | None:
    try:
        found = table.get_entity(entity["PartitionKey"], entity["RowKey"], select=_EXISTING_SELECT)
    except ResourceNotFoundError:
        return None
    return _as_existing(entity, found)


def _settle_existing(entity: dict[str, Any], existing: Existing, result: InsertResult) -> None:
    """A stored row under the new copy's key: the same content is a duplicate, other content a conflict."""
    if existing.content_sha256 == entity["ContentSha256"]:
        result.duplicates += 1
        result.found.append(existing)
    else:
        result.conflicts.append((entity, existing))


def _insert_one(table: TableClient, entity: dict[str, Any], result: InsertResult, compare: bool) -> None:
    try:
        table.create_entity(entity)
    except ResourceExistsError:
        if not compare:
            result.conflicts.append((entity, _UNREAD))
            return
        existing = _existing(table, entity)
        if existing is None:  # removed in between: nothing should delete rows, so try once more
            table.create_entity(entity)
            result.inserted += 1
            result.inserted_keys.append((entity["PartitionKey"], entity["RowKey"]))
        else:
            _settle_existing(entity, existing, result)
        return
    result.inserted += 1
    result.inserted_keys.append((entity["PartitionKey"], entity["RowKey"]))


# Table service: at most 15 discrete comparisons in one filter (PartitionKey + 14 RowKeys).
KEYS_PER_QUERY = 14
READ_WORKERS = 4
# A failed entity-group transaction names the operation at fault ("<index>:<message>", Azure
# Table service, "Performing entity group transactions"): a row stored since the batch's rows were
# read is settled alone and the rest sent again, a few times; then the rest go one by one.
TRANSACTION_RETRIES = 3


def _query_rows(
    table: TableClient, partition: str, keys: list[str], select: list[str] | None
) -> list[TableEntity]:
    # Parameterised: the SDK quotes the values (callers' keys are encoded or digests anyway).
    parameters = {"pk": partition, **{f"r{n}": key for n, key in enumerate(keys)}}
    rows = " or ".join(f"RowKey eq @r{n}" for n in range(len(keys)))
    # Spaces around the parameters: the SDK takes "@r1)" for a parameter named "r1)".
    found = table.query_entities(f"PartitionKey eq @pk and ( {rows} )", parameters=parameters, select=select)
    return list(found)  # TableEntity: a dict that keeps each row's ETag in .metadata


def read_rows(
    table: TableClient, partition: str, row_keys: Iterable[str], select: list[str] | None = None
) -> dict[str, TableEntity]:
    """The stored rows of these keys of one partition, by RowKey (absent ones left out): 14 keys
    to a query, a few queries at a time, rather than one request per row."""
    keys = sorted(set(row_keys))
    chunks = [keys[start : start + KEYS_PER_QUERY] for start in range(0, len(keys), KEYS_PER_QUERY)]
    if not chunks:
        return {}
    if select is not None and "RowKey" not in select:
        select = [*select, "RowKey"]
    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(chunks))) as pool:
        pages = list(pool.map(lambda chunk: _query_rows(table, partition, chunk, select), chunks))
    return {str(row["RowKey"]): row for page in pages for row in page}


def insert_rows(
    table: TableClient, rows: Iterable[dict[str, Any]], compare: bool = True, select: Sequence[str] = ()
) -> InsertResult:
    """Insert rows, first copy wins: a row already stored with the same ContentSha256 is a
    duplicate (nothing written); one with different content is returned as a conflict, and the
    stored row is left exactly as it was. With compare=False every row found stored is returned as
    a conflict, for the caller to decide, with the `select` columns of the stored rows read to
    settle a transaction in `InsertResult.stored` (so the caller need not read them again)."""
    result = InsertResult()
    for batch in _batches(rows):
        for entity in _insert_batch(table, batch, result, compare, select):
            _insert_one(table, entity, result, compare)
    return result


def _insert_batch(
    table: TableClient,
    batch: list[dict[str, Any]],
    result: InsertResult,
    compare: bool,
    select: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Insert one partition's batch in one transaction; when some of its rows are stored already
    (a redelivery, records repeating), read which in a few queries, settle those, and insert the
    others in a transaction again. Returns the rows left to insert one by one."""
    pending = batch
    for attempt in range(TRANSACTION_RETRIES + 1):
        if len(pending) < 2:
            break
        try:
            table.submit_transaction([("create", entity) for entity in pending])
        except TableTransactionError as failed:
            at_fault = failed.index
            code = getattr(failed, "error_code", None)  # set by the SDK's error decoding
            if code != "EntityAlreadyExists" or not 0 <= at_fault < len(pending):
                break  # not a stored row, or no index: one by one names the problem
            if attempt == 0:
                pending = _settle_stored(table, pending, result, compare, select)
            else:  # stored in between by another writer
                _insert_one(table, pending[at_fault], result, compare)
                pending = pending[:at_fault] + pending[at_fault + 1 :]
        else:
            result.inserted += len(pending)
            result.inserted_keys.extend((entity["PartitionKey"], entity["RowKey"]) for entity in pending)
            return []
    return pending


def _settle_stored(
    table: TableClient,
    batch: list[dict[str, Any]],
    result: InsertResult,
    compare: bool,
    select: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Record the batch's rows already stored as duplicates or conflicts; returns the others."""
    columns = [*_EXISTING_SELECT, *(name for name in select if name not in _EXISTING_SELECT)]
    stored = read_rows(table, batch[0]["PartitionKey"], (e["RowKey"] for e in batch), columns)
    absent = []
    for entity in batch:
        found = stored.get(entity["RowKey"])
        if found is None:
            absent.append(entity)
        elif not compare:
            result.conflicts.append((entity, _UNREAD))
            result.stored[(str(entity["PartitionKey"]), str(entity["RowKey"]))] = found
        else:
            _settle_existing(entity, _as_existing(entity, found), result)
    return absent


def _range_filter(
    partition: str | None, start: datetime | None, end: datetime | None
) -> tuple[str, dict[str, str]]:
    """A filter on one partition (or every one) and start <= time < end (either bound may be open)
    over RowKeys that begin with the time key; "" for no filter at all."""
    clauses, parameters = [], {}
    if partition is not None:
        clauses.append("PartitionKey eq @pk")
        parameters["pk"] = encode_key(partition)
    if start is not None:
        clauses.append("RowKey ge @lo")
        parameters["lo"] = time_key(start)
    if end is not None:
        clauses.append("RowKey lt @hi")
        parameters["hi"] = time_key(end)
    return " and ".join(clauses), parameters


def _entities(client: TableClient, query: str, parameters: dict[str, str]) -> Iterator[Mapping[str, Any]]:
    if query:
        yield from client.query_entities(query, parameters=parameters, results_per_page=1000)
    else:
        yield from client.list_entities(results_per_page=1000)


class AccessTable(Table, ABC):
    """One row per record, first copy wins, under the partition of `partition_of(event)`; a row
    too large for one entity continues in overflow rows of its partition's `%overflow` twin."""

    @staticmethod
    @abstractmethod
    def partition_of(event: AccessEvent) -> str:
        """Whose partition the event's row is in (before encoding)."""

    @staticmethod
    def row_key(event: AccessEvent) -> str:
        return f"{time_key(event.timestamp)}_{encode_key(event.record_id)}"

    @staticmethod
    def is_overflow_row(entity: Mapping[str, Any]) -> bool:
        """An overflow row carries the rest of a long row's payload; it is no access row itself."""
        return str(entity["PartitionKey"]).endswith(OVERFLOW_SUFFIX)

    @classmethod
    def to_entities(cls, event: AccessEvent, content: str | None = None) -> list[dict[str, Any]]:
        """The entities that store one event: its overflow rows (if any) first, the row itself
        last. `content` is the event's content_sha256() when the caller has it already."""
        content = content if content is not None else event.content_sha256()
        return _to_entities(event, cls.partition_of(event), content)

    @classmethod
    def to_entity(cls, event: AccessEvent) -> dict[str, Any]:
        """The row of an event whose payload fits the row itself (no overflow rows)."""
        entities = cls.to_entities(event)
        if len(entities) != 1:
            raise ValueError("this event needs overflow rows: use to_entities")
        return entities[0]

    def from_entity(self, entity: Mapping[str, Any]) -> AccessEvent:
        """The event a stored row holds, its overflow rows read from this table; IncompleteRow
        when they are missing or belong to other content."""
        return _from_entity(entity, self._get)

    def _get(self, partition_key: str, key: str) -> Mapping[str, Any]:
        return self.client.get_entity(partition_key, key)

    def insert_events(self, events: list[AccessEvent], contents: list[str]) -> InsertResult:
        """Insert the events' rows, first copy wins (`contents` are their content hashes)."""
        overflow: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for event, content in zip(events, contents, strict=True):
            *parts, row = self.to_entities(event, content)
            if parts:
                existing = _existing(self.client, row)
                if existing is not None:  # decided without writing overflow rows that would be orphans
                    rows.append(row)
                    continue
            overflow.extend(parts)
            rows.append(row)
        # Overflow rows first: a row exists only once everything it points to does.
        upsert_entities(self.client, overflow)
        return insert_rows(self.client, rows)

    def mark_conflicts(self, keys: Iterable[tuple[str, str]]) -> None:
        """Flag stored rows that another copy contradicts (the flag is not part of their content)."""
        for partition_key, key in dict.fromkeys(keys):
            self.client.update_entity(
                {"PartitionKey": partition_key, "RowKey": key, "Conflict": True}, mode=UpdateMode.MERGE
            )

    def query_events(
        self,
        subject: str,
        start: datetime,
        end: datetime,
        after: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[tuple[str, AccessEvent]]:
        """(RowKey, event) of one partition with start <= time < end (and RowKey > after), in
        RowKey order."""
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        parameters = {"pk": encode_key(subject), "lo": time_key(start), "hi": time_key(end)}
        if after:
            query += " and RowKey gt @after"
            parameters["after"] = after
        for entity in self.client.query_entities(query, parameters=parameters, results_per_page=page_size):
            yield entity["RowKey"], self.from_entity(entity)

    def history_before(self, subject: str, before: datetime, limit: int) -> tuple[datetime | None, int]:
        """The time of the partition's first row, and how many of its rows lie before `before`
        (counted up to `limit`); reads RowKeys only (the detection warm-up)."""
        query, pk = "PartitionKey eq @pk", {"pk": encode_key(subject)}
        first_rows = self.client.query_entities(query, parameters=pk, select=["RowKey"], results_per_page=1)
        first_key = next((str(row["RowKey"]) for row in islice(first_rows, 1)), None)
        if first_key is None:
            return None, 0
        first = datetime.strptime(first_key[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        earlier = self.client.query_entities(
            query + " and RowKey lt @hi",
            parameters={**pk, "hi": time_key(before)},
            select=["RowKey"],
            results_per_page=min(max(limit, 1), 1000),
        )
        return first, sum(1 for _ in islice(earlier, limit))

    def count_rows(self, subject: str, *, after: datetime, through: datetime) -> int:
        """Rows of one partition with after < time <= through, to the second; reads RowKeys only."""
        query = "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi"
        parameters = {
            "pk": encode_key(subject),
            # RowKey = <yyyymmddThhmmss>_<id>: "~" sorts after "_", so these bounds are by time alone.
            "lo": time_key(after) + "~",
            "hi": time_key(through) + "~",
        }
        rows = self.client.query_entities(
            query, parameters=parameters, select=["RowKey"], results_per_page=1000
        )
        return sum(1 for _ in rows)

    def rows_in(
        self, subject: str | None, start: datetime | None, end: datetime | None
    ) -> Iterator[Mapping[str, Any]]:
        """The stored access rows of one partition (None: of every one) with start <= time < end
        (open where None), overflow rows left out."""
        query, parameters = _range_filter(subject, start, end)
        for entity in _entities(self.client, query, parameters):
            if not self.is_overflow_row(entity):
                yield entity

    def record_ids(self) -> list[str]:
        """The RecordId of every access row (the whole table; overflow rows left out)."""
        rows = self.client.list_entities(select=["PartitionKey", "RecordId"])
        return [row["RecordId"] for row in rows if not self.is_overflow_row(row)]


class MailboxAccessTable(AccessTable):
    """MailboxAccess: the access rows of each mailbox (PartitionKey = the mailbox)."""

    NAME = "MailboxAccess"

    @staticmethod
    def partition_of(event: AccessEvent) -> str:
        return event.mailbox


class ActorAccessTable(AccessTable):
    """ActorAccess: the access rows of each accessing user (PartitionKey = the user, or
    UNKNOWN_ACTOR for a record that names none)."""

    NAME = "ActorAccess"

    @staticmethod
    def partition_of(event: AccessEvent) -> str:
        return event.user or UNKNOWN_ACTOR


class RecordConflictsTable(Table):
    """RecordConflicts: a second copy of a record whose content differs from the stored row (the
    first copy wins). PartitionKey = the row's partition (the mailbox), RowKey = the row's key and
    the new copy's content hash, so the same conflicting copy is recorded once."""

    NAME = "RecordConflicts"
    # What `listed` gives of each conflict (for a reviewer: both copies' sources and hashes).
    LISTED = ("PartitionKey", "AccessRowKey", "RecordId", "EventTime", "FirstSourceBlob", "SourceBlob",
              "FirstContentSha256", "ContentSha256", "DetectedAt")  # fmt: skip

    @staticmethod
    def to_entity(new: Mapping[str, Any], old: Existing, detected_at: datetime) -> dict[str, Any]:
        """The conflict of `new` (the access row a copy would have written) with the stored `old`."""
        return {
            "PartitionKey": old.partition_key,
            "RowKey": f"{old.row_key}|{str(new['ContentSha256'])[:32]}",
            "AccessRowKey": old.row_key,
            "RecordId": str(new.get("RecordId", ""))[:MAX_TEXT],
            "Mailbox": str(new.get("Mailbox", ""))[:MAX_TEXT],
            "EventTime": new["EventTime"],
            "FirstContentSha256": old.content_sha256,
            "FirstSourceBlob": old.source_blob,
            "FirstSourceSha256": old.source_sha256,
            **({"FirstSourceIndex": int64(old.source_index)} if old.source_index is not None else {}),
            "ContentSha256": new["ContentSha256"],
            "SourceBlob": str(new.get("SourceBlob", ""))[:MAX_TEXT],
            "SourceSha256": new.get("SourceSha256", ""),
            **({"SourceIndex": new["SourceIndex"]} if "SourceIndex" in new else {}),
            "DetectedAt": iso_z(detected_at),
        }

    def record(self, conflicts: Iterable[tuple[Mapping[str, Any], Existing]], detected_at: datetime) -> None:
        upsert_entities(self.client, (self.to_entity(new, old, detected_at) for new, old in conflicts))

    def listed(
        self, mailbox: str | None, start: datetime | None, end: datetime | None
    ) -> list[dict[str, Any]]:
        """The LISTED properties of the conflicts of one mailbox (None: of all) whose rows have
        start <= time < end (open where None)."""
        query, parameters = _range_filter(mailbox, start, end)  # RowKey = the row's key, then a hash
        return [
            {name: plain(entity.get(name)) for name in self.LISTED}
            for entity in _entities(self.client, query, parameters)
        ]

    def detection_times(self, limit: int) -> list[str]:
        """DetectedAt of up to `limit` conflicts, in no particular order; reads no more than that."""
        rows = self.client.list_entities(select=["DetectedAt"], results_per_page=limit)
        return [str(row.get("DetectedAt") or "") for row in islice(rows, limit)]


@dataclass
class WriteResult:
    events: int = 0
    inserted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    # The events whose stored MailboxAccess row is this very copy: inserted now, or found stored
    # from the same source blob and position (a redelivery, a retry after a crash). A copy from
    # another source, or a contradicting one, is not among them. What the context index counts.
    kept: list[AccessEvent] = field(default_factory=list)


def _kept(events: list[AccessEvent], result: InsertResult) -> list[AccessEvent]:
    """The events whose MailboxAccess row `result` says is theirs (see WriteResult.kept), each once."""
    inserted = set(result.inserted_keys)
    found = {(e.partition_key, e.row_key): (e.source_blob, e.source_index) for e in result.found}
    kept, seen = [], set()
    for event in events:
        key = (encode_key(MailboxAccessTable.partition_of(event)), AccessTable.row_key(event))
        if key in seen:
            continue
        if key in inserted or found.get(key) == (event.source_blob, event.source_index):
            seen.add(key)
            kept.append(event)
    return kept


def _saying_less(table: AccessTable, events: list[AccessEvent], result: InsertResult) -> InsertResult:
    """`result` with the copies that only lack a field their source has no room for (a Sentinel
    copy of a collected record: AccessEvent.agrees_with) counted as duplicates, not conflicts. The
    stored row is read whole only for a conflict, which is rare."""
    if not result.conflicts:
        return result
    by_key = {(table.partition_of(event), table.row_key(event)): event for event in events}
    kept: list[tuple[dict[str, Any], Existing]] = []
    for entity, existing in result.conflicts:
        incoming = by_key.get((entity["PartitionKey"], entity["RowKey"]))
        stored_row = (
            table.client.get_entity(existing.partition_key, existing.row_key) if existing.row_key else None
        )
        if (
            incoming is not None
            and stored_row is not None
            and table.from_entity(stored_row).agrees_with(incoming)
        ):
            result.duplicates += 1
            result.found.append(existing)
        else:
            kept.append((entity, existing))
    result.conflicts = kept
    return result


def store_events(
    storage: Storage, events: list[AccessEvent], detected_at: datetime | None = None
) -> WriteResult:
    """Write each event to MailboxAccess and ActorAccess, first copy wins. A copy whose content
    differs from the stored row is recorded in RecordConflicts and both stored rows are flagged;
    nothing stored is replaced."""
    contents = [event.content_sha256() for event in events]  # once for both tables
    mailbox_access, actor_access = storage.mailbox_access, storage.actor_access
    by_mailbox = _saying_less(mailbox_access, events, mailbox_access.insert_events(events, contents))
    by_actor = _saying_less(actor_access, events, actor_access.insert_events(events, contents))
    storage.record_conflicts.record(by_mailbox.conflicts, detected_at or datetime.now(UTC))
    mailbox_access.mark_conflicts((old.partition_key, old.row_key) for _, old in by_mailbox.conflicts)
    actor_access.mark_conflicts((old.partition_key, old.row_key) for _, old in by_actor.conflicts)
    return WriteResult(
        events=len(events),
        inserted=by_mailbox.inserted,
        duplicates=by_mailbox.duplicates,
        conflicts=len(by_mailbox.conflicts),
        kept=_kept(events, by_mailbox),
    )

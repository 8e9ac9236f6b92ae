"""The MessageIndex table (docs/architecture.md#messageindex): what is known of each message of each mailbox.

PartitionKey = mailbox (encoded), RowKey = SHA-256 of the InternetMessageId (keys forbid `/ \\ # ?`,
and ids carry all of them). A row holds the subject, sender, received time and size, where the
answer came from (`audit`, `graph`, `trace`) or why there is none (`unresolved:<reason>`), and for
negative answers when to look again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.model.keys import encode_key
from shared.model.message_info import NOT_LOOKED_UP, UNRESOLVED, MessageInfo
from shared.model.times import as_utc
from shared.storage import tables
from shared.storage.base import Table

# Table service: at most 15 discrete comparisons in one filter (PartitionKey + 14 RowKeys).
KEYS_PER_QUERY = 14
READ_WORKERS = 4
# What a record tells about a message: merged over a row without touching what Graph found.
_RECORD_FIELDS = {
    "PartitionKey",
    "RowKey",
    "Mailbox",
    "InternetMessageId",
    "Subject",
    "Source",
    "SizeInBytes",
}
# A subject is at most a few hundred characters; one longer than a table property holds is cut,
# visibly, in every view that shows it.
MAX_SUBJECT_CHARS = tables.MAX_TEXT


def visibly_cut(text: str, limit: int) -> str:
    """`text`, or its first characters and a marker saying how many were not kept."""
    if len(text) <= limit:
        return text
    marker = f" [cut: {len(text) - limit + 40} more characters not kept]"
    return text[: limit - 40] + marker


def _row_key(internet_message_id: str) -> str:
    return hashlib.sha256(internet_message_id.encode("utf-8", "surrogatepass")).hexdigest()


def _to_entity(mailbox: str, internet_message_id: str, info: MessageInfo) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": encode_key(mailbox),
        "RowKey": _row_key(internet_message_id),
        "Mailbox": mailbox,
        "InternetMessageId": internet_message_id[: tables.MAX_TEXT],
        "Subject": visibly_cut(info.subject, MAX_SUBJECT_CHARS),
        "Sender": info.sender[:320],
        "Source": info.source,
        "Attempts": info.attempts,
        "Copies": info.copies,
    }
    if info.received is not None:
        entity["Received"] = info.received
    if info.size is not None:
        entity["SizeInBytes"] = tables.int64(info.size)  # sizes pass 2 GiB: never an Int32
    if info.retry_at is not None:
        entity["RetryAt"] = info.retry_at
    return entity


def _moment(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return as_utc(value)


def _from_entity(entity: Mapping[str, Any]) -> MessageInfo:
    """The row's answer (the row's InternetMessageId may be cut: callers key by RowKey)."""
    size = tables.plain(entity.get("SizeInBytes"))
    return MessageInfo(
        subject=str(entity.get("Subject") or ""),
        sender=str(entity.get("Sender") or ""),
        received=_moment(entity.get("Received")),
        size=int(size) if isinstance(size, int) else None,
        source=str(entity.get("Source") or NOT_LOOKED_UP),
        retry_at=_moment(entity.get("RetryAt")),
        attempts=int(entity.get("Attempts") or 0),
        copies=int(entity.get("Copies") or 0),
    )


def is_answer(source: str) -> bool:
    """A subject was found (audit, graph, trace), as opposed to a reason why not."""
    return bool(source) and not source.startswith(UNRESOLVED)


def _query_chunk(table: TableClient, partition: str, keys: list[str]) -> list[dict[str, Any]]:
    # Parameterised: the SDK quotes the values (they are hex digests and an encoded key anyway).
    parameters = {"pk": partition, **{f"r{n}": key for n, key in enumerate(keys)}}
    rows = " or ".join(f"RowKey eq @r{n}" for n in range(len(keys)))
    # Spaces around the parameters: the SDK takes "@r1)" for a parameter named "r1)".
    found = table.query_entities(f"PartitionKey eq @pk and ( {rows} )", parameters=parameters)
    return [dict(entity) for entity in found]


class MessageIndexTable(Table):
    """MessageIndex: one row per message of a mailbox, keyed by what it describes."""

    NAME = "MessageIndex"

    def read(self, mailbox: str, internet_message_ids: Iterable[str]) -> dict[str, MessageInfo]:
        """The index rows of these messages of one mailbox (absent ones are left out)."""
        wanted = {_row_key(mid): mid for mid in internet_message_ids}
        if not wanted:
            return {}
        partition = encode_key(mailbox)
        keys = sorted(wanted)
        chunks = [keys[start : start + KEYS_PER_QUERY] for start in range(0, len(keys), KEYS_PER_QUERY)]
        with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(chunks))) as pool:
            pages = list(pool.map(lambda keys: _query_chunk(self.client, partition, keys), chunks))
        found: dict[str, MessageInfo] = {}
        for page in pages:
            for entity in page:
                message_id = wanted.get(str(entity.get("RowKey")))
                if message_id is not None:
                    found[message_id] = _from_entity(entity)
        return found

    def write(self, mailbox: str, infos: Mapping[str, MessageInfo]) -> int:
        """Upsert rows for one mailbox (idempotent: a row is keyed by what it describes)."""
        entities = (_to_entity(mailbox, mid, info) for mid, info in infos.items())
        return tables.upsert_entities(self.client, entities)

    def record_subjects(self, mailbox: str, infos: Mapping[str, MessageInfo]) -> int:
        """Record the subjects the records give, first answer wins: a message with no row gets one
        (inserted without reading first, the common case); a row that holds only a reason why there
        is no answer yet takes the record's subject; a row with an answer (what Graph or the trace
        found, or an earlier record) is left as it is. Returns the rows written."""
        entities = [
            {name: value for name, value in _to_entity(mailbox, mid, info).items() if name in _RECORD_FIELDS}
            for mid, info in infos.items()
        ]
        result = tables.insert_rows(self.client, entities, compare=False)
        written = result.inserted
        for entity, _ in result.conflicts:
            written += self._answer_unresolved(entity)
        return written

    def _answer_unresolved(self, entity: dict[str, Any]) -> int:
        """Merge a record's subject over a row that has no answer; 0 if it has one (or changed)."""
        try:
            current = self.client.get_entity(entity["PartitionKey"], entity["RowKey"], select=["Source"])
        except ResourceNotFoundError:
            return 0
        if is_answer(str(current.get("Source") or "")):
            return 0
        try:
            self.client.update_entity(
                entity,
                mode=UpdateMode.MERGE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as problem:
            if problem.status_code == 412:  # answered in between: that answer came first
                return 0
            raise
        return 1

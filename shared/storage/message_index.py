"""The MessageIndex table (docs/architecture.md#messageindex): what is known of each message of each mailbox.

PartitionKey = mailbox (encoded), RowKey = SHA-256 of the InternetMessageId (keys forbid `/ \\ # ?`,
and ids carry all of them). A row holds the subject, sender, received time and size, where the
answer came from (`audit`, `graph`, `trace`) or why there is none (`unresolved:<reason>`), and for
negative answers when to look again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableEntity, UpdateMode

from shared.model.keys import encode_key
from shared.model.message_info import NOT_LOOKED_UP, UNRESOLVED, MessageInfo
from shared.model.times import as_utc
from shared.storage import tables
from shared.storage.base import Table

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


class MessageIndexTable(Table):
    """MessageIndex: one row per message of a mailbox, keyed by what it describes."""

    NAME = "MessageIndex"

    def read(self, mailbox: str, internet_message_ids: Iterable[str]) -> dict[str, MessageInfo]:
        """The index rows of these messages of one mailbox (absent ones are left out)."""
        wanted = {_row_key(mid): mid for mid in internet_message_ids}
        if not wanted:
            return {}
        rows = tables.read_rows(self.client, encode_key(mailbox), wanted)
        return {wanted[key]: _from_entity(row) for key, row in rows.items()}  # only keys asked for

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
        result = tables.insert_rows(self.client, entities, compare=False, select=["Source"])
        conflicting = [entity for entity, _ in result.conflicts]
        return result.inserted + self._answer_unresolved(encode_key(mailbox), conflicting, result.stored)

    def _answer_unresolved(
        self, partition: str, entities: list[dict[str, Any]], stored: Mapping[tuple[str, str], TableEntity]
    ) -> int:
        """Merge each record's subject over a row that has no answer yet; returns the rows merged.
        A row with an answer, or one gone or changed since it was read, is left as it is. `stored`
        holds rows read already (the rest are read here)."""
        unread = [str(e["RowKey"]) for e in entities if (partition, str(e["RowKey"])) not in stored]
        current = {row: found for (_, row), found in stored.items()}
        current.update(tables.read_rows(self.client, partition, unread, ["Source"]))
        written = 0
        for entity in entities:
            row = current.get(str(entity["RowKey"]))
            if row is None or is_answer(str(row.get("Source") or "")):
                continue
            etag = row.metadata["etag"]
            if etag is not None:  # a row read from the service always carries one
                written += self._merge_if_unchanged(entity, etag)
        return written

    def _merge_if_unchanged(self, entity: dict[str, Any], etag: str) -> int:
        try:
            self.client.update_entity(
                entity, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as problem:
            # 412: answered in between, and that answer came first; 404: the row is gone.
            if problem.status_code in (404, 412):
                return 0
            raise
        return 1

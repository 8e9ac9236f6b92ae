"""ContextIndex: for each context (IP, network, app, session, actor, and `all:`), which mailboxes
it touched per day, contributed blob by blob (docs/architecture.md#contextindex).

PartitionKey = `<shard>~<yyyymm>`: the shard is the first hex digit of the SHA-256 of the row's
mailbox, the month its UTC day's. RowKey = `<context tag>_<yyyymmdd>_<encoded mailbox>_<blob
tag>~<part>`, the context tag the first 32 hex of the SHA-256 of `ip:203.0.113.7`,
`net:203.0.113.0/24`, `app:<id>`, `session:<id>`, `actor:<upn>` or `all:`. A blob's rows of one
month so fall in at most 16 partitions, written in entity-group transactions of up to 100 rows,
where one partition per context took a request per context (nearly all of them a row alone); and
no context's rows, however common the context (`all:`, Outlook's app id), crowd one partition.
A context's days are a RowKey range in each of the 16 partitions of each month. Each source blob
owns its own rows: processing a blob again rewrites exactly the rows it wrote before (an upsert of
the same values), and the rows of two blobs never overlap. Counting is exact because a blob
contributes only the records whose stored access row came from it (`tables.WriteResult.kept`).

Rows written before this layout (PartitionKey = the encoded context key, RowKey the same without
the context tag) are read too, and a row the new layout also holds (its blob processed again
since) is read once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from shared.model.keys import encode_key
from shared.model.scope import FirstRecord, Tallies, Tally, TallyKey, key_text
from shared.model.times import iso_z, parse_iso_z
from shared.storage.base import Table
from shared.storage.tables import CHUNK_CHARS, int64, int_or_none, plain, requests_to_write, upsert_entities

# The distinct values of one row's sets, in characters of ASCII JSON: stored as UTF-16 they take
# twice that, well under the entity's 1 MiB. More values continue in further parts of the row.
PART_CHARS = 400_000
SHARDS = "0123456789abcdef"  # the first hex digit of the SHA-256 of a row's mailbox
_COUNTS = (
    ("Records", "records"),
    ("Messages", "messages"),
    ("Throttled", "throttled"),
    ("NonOwner", "non_owner"),
)
_SETS = ("sessions", "synced_folders", "ips", "apps")


def blob_tag(blob: str) -> str:
    """A fixed-length name for a source blob in a RowKey (its full name is the SourceBlob column)."""
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def context_tag(kind: str, value: str) -> str:
    """A fixed-length name for a context in a RowKey (its text is the Context column): of fixed
    length, so that no context's RowKeys begin with another's."""
    return hashlib.sha256(key_text(kind, value).encode("utf-8")).hexdigest()[:32]


def _day_key(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _partition(shard: str, day: date) -> str:
    return f"{shard}~{day.year:04d}{day.month:02d}"


def _shard(mailbox: str) -> str:
    """One of 16, by mailbox: a mailbox's records are bounded (throttled past 1,000 a day)."""
    return hashlib.sha256(mailbox.encode("utf-8")).hexdigest()[0]


def _months(first_day: date, last_day: date) -> Iterator[tuple[date, date]]:
    """The days from first_day to last_day (both included), cut at month ends."""
    start = first_day
    while start <= last_day:
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        end = min(last_day, following - timedelta(days=1))
        yield start, end
        start = following


def _parts(tally: Tally) -> list[dict[str, list[str]]]:
    """The tally's sets split into parts of at most PART_CHARS of JSON each (one part at least)."""
    parts: list[dict[str, list[str]]] = [{}]
    size = 0
    for name in _SETS:
        for value in sorted(getattr(tally, name)):
            cost = len(json.dumps(value)) + 1
            if size and size + cost > PART_CHARS:
                parts.append({})
                size = 0
            parts[-1].setdefault(name, []).append(value)
            size += cost
    return parts


def _first(first: FirstRecord | None) -> list[Any] | None:
    if first is None:
        return None
    return [
        iso_z(first.timestamp),
        first.record_id,
        first.source_blob,
        first.source_sha256,
        first.source_index,
    ]


@dataclass(frozen=True)
class IndexWrite:
    entities: int
    requests: int  # entity-group transactions, or single upserts for a partition of one


class ContextIndexTable(Table):
    """ContextIndex: per context key, day, mailbox and source blob, what the context's records did."""

    NAME = "ContextIndex"

    @staticmethod
    def legacy_partition_key(kind: str, value: str) -> str:
        """The partition of one context's rows in the layout before shards and months."""
        return encode_key(key_text(kind, value))

    @classmethod
    def to_entities(cls, key: TallyKey, tally: Tally, blob: str) -> list[dict[str, Any]]:
        kind, value, day, mailbox = key
        tag = context_tag(kind, value)
        prefix = f"{tag}_{_day_key(day)}_{encode_key(mailbox)}_{blob_tag(blob)}"
        entities = []
        for number, values in enumerate(_parts(tally)):
            document: dict[str, Any] = {"mailbox": mailbox, "sets": values}
            entity: dict[str, Any] = {
                "PartitionKey": _partition(_shard(mailbox), day),
                "RowKey": f"{prefix}~{number:04d}",
                "Kind": kind,
                "Context": key_text(kind, value),
                "Day": day.isoformat(),
                "SourceBlob": blob,
                "Part": number,
            }
            if number == 0:
                for column, attribute in _COUNTS:
                    entity[column] = int64(getattr(tally, attribute))
                document["first"] = _first(tally.first)
                if tally.last is not None:
                    entity["LastAccess"] = iso_z(tally.last)
                if tally.first is not None:
                    entity["FirstAccess"] = iso_z(tally.first.timestamp)
            text = json.dumps(document, separators=(",", ":"))  # ASCII: one char, one UTF-16 unit
            chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
            entity["PayloadChunks"] = len(chunks)
            entity.update({f"Payload{n}": chunk for n, chunk in enumerate(chunks)})
            entities.append(entity)
        return entities

    @staticmethod
    def from_entity(entity: Mapping[str, Any]) -> tuple[str, Tally]:
        """(mailbox, tally) of one stored row (a later part carries values only)."""
        chunks = int(plain(entity.get("PayloadChunks", 0)) or 0)  # type: ignore[call-overload]
        document = json.loads("".join(str(entity[f"Payload{n}"]) for n in range(chunks)))
        tally = Tally()
        for column, attribute in _COUNTS:
            setattr(tally, attribute, int_or_none(entity.get(column)) or 0)
        first = document.get("first")
        if first is not None:
            moment, record_id, blob, sha, index = first
            tally.first = FirstRecord(parse_iso_z(moment), record_id, blob, sha, index)
        if entity.get("LastAccess"):
            tally.last = parse_iso_z(str(entity["LastAccess"]))
        for name in _SETS:
            setattr(tally, name, set(document["sets"].get(name, [])))
        return str(document["mailbox"]), tally

    def write(self, blob: str, tallies: Tallies) -> IndexWrite:
        """Upsert the contribution of one source blob, in entity-group transactions per partition.
        Idempotent: the same blob's tallies land on the same rows with the same values."""
        entities = [
            entity for key, tally in tallies.by_key.items() for entity in self.to_entities(key, tally, blob)
        ]
        requests = requests_to_write(entities)
        upsert_entities(self.client, entities)
        return IndexWrite(len(entities), requests)

    def tallies(self, kind: str, value: str, first_day: date, last_day: date) -> Iterator[tuple[str, Tally]]:
        """(mailbox, tally) of every row of one context from first_day to last_day (both included):
        one query over a RowKey range per shard and month, then the rows of the layout before (one
        partition query) that those did not hold."""
        if first_day == date.min or last_day == date.max:
            raise ValueError("the ContextIndex is read over bounded days")
        tag = context_tag(kind, value)
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        read: set[str] = set()
        for start, end in _months(first_day, last_day):
            for shard in SHARDS:
                parameters = {
                    "pk": _partition(shard, start),
                    "lo": f"{tag}_{_day_key(start)}",
                    "hi": f"{tag}_{_day_key(end + timedelta(days=1))}",
                }
                for entity in self.client.query_entities(query, parameters=parameters, results_per_page=1000):
                    read.add(str(entity["RowKey"])[len(tag) + 1 :])
                    yield self.from_entity(entity)
        legacy = {
            "pk": self.legacy_partition_key(kind, value),
            "lo": _day_key(first_day),
            "hi": _day_key(last_day + timedelta(days=1)),
        }
        for entity in self.client.query_entities(query, parameters=legacy, results_per_page=1000):
            if str(entity["RowKey"]) not in read:
                yield self.from_entity(entity)

"""ContextIndex: for each context (IP, network, app, session, actor, and `all:`), which mailboxes
it touched per day, contributed blob by blob (docs/architecture.md#contextindex).

PartitionKey = the encoded context key (`ip:203.0.113.7`, `net:203.0.113.0/24`, `app:<id>`,
`session:<id>`, `actor:<upn>`, `all:`); RowKey = `<yyyymmdd>_<encoded mailbox>_<blob tag>~<part>`,
so one partition query over a RowKey range reads a context's days, and each source blob owns its
own rows: processing a blob again rewrites exactly the rows it wrote before (an upsert of the same
values), and the rows of two blobs never overlap. Counting is exact because a blob contributes
only the records whose stored access row came from it (`tables.WriteResult.kept`).
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


def _day_key(day: date) -> str:
    return day.strftime("%Y%m%d")


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
    def partition_key(kind: str, value: str) -> str:
        return encode_key(key_text(kind, value))

    @classmethod
    def to_entities(cls, key: TallyKey, tally: Tally, blob: str) -> list[dict[str, Any]]:
        kind, value, day, mailbox = key
        prefix = f"{_day_key(day)}_{encode_key(mailbox)}_{blob_tag(blob)}"
        entities = []
        for number, values in enumerate(_parts(tally)):
            document: dict[str, Any] = {"mailbox": mailbox, "sets": values}
            entity: dict[str, Any] = {
                "PartitionKey": cls.partition_key(kind, value),
                "RowKey": f"{prefix}~{number:04d}",
                "Kind": kind,
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
        one partition query over the RowKey range of those days."""
        parameters = {
            "pk": self.partition_key(kind, value),
            "lo": _day_key(first_day),
            "hi": _day_key(last_day + timedelta(days=1)),
        }
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        for entity in self.client.query_entities(query, parameters=parameters, results_per_page=1000):
            yield self.from_entity(entity)

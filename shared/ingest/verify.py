"""`mia verify`: every access row checked against the raw evidence it names.

For each row in scope: the row's own content hash is recomputed from what it stores (overflow rows
included); then its source blob is read from `audit-raw`, decompressed and re-hashed against the
SHA-256 in the blob's metadata and in the row; the record at the row's `SourceIndex` is read and
normalized again, and its content hash must equal the row's. Every disagreement is reported with
the row and the reason. Conflicting copies of records (a second copy with different content, kept
aside in RecordConflicts) are listed too: they are not mismatches, but a reviewer must see them.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.ingest.pieces import Hashing
from shared.model.event import AccessEvent
from shared.model.progress import SILENT, Progress
from shared.parse import readers
from shared.parse.normalize import normalize_records
from shared.storage import RAW_CONTAINER, Storage, raw_store
from shared.storage.tables import AccessTable, IncompleteRow


@dataclass(frozen=True)
class Mismatch:
    table: str
    partition_key: str
    row_key: str
    record_id: str
    source_blob: str
    source_index: int | None
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "partitionKey": self.partition_key,
            "rowKey": self.row_key,
            "recordId": self.record_id,
            "sourceBlob": self.source_blob,
            "sourceIndex": self.source_index,
            "problem": self.problem,
        }


@dataclass
class VerifyResult:
    rows_checked: int = 0
    blobs_verified: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> dict[str, int]:
        """The `evidence` figures of the demo summary."""
        return {
            "rows_checked": self.rows_checked,
            "mismatches": len(self.mismatches),
            "blobs_verified": self.blobs_verified,
            "conflicts": len(self.conflicts),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "mismatchDetails": [mismatch.as_dict() for mismatch in self.mismatches],
            "conflictDetails": self.conflicts,
        }


@dataclass(frozen=True)
class _Row:
    table: str
    partition_key: str
    row_key: str
    record_id: str
    source_blob: str
    source_sha256: str
    source_index: int | None
    content_sha256: str

    def mismatch(self, problem: str) -> Mismatch:
        return Mismatch(
            self.table,
            self.partition_key,
            self.row_key,
            self.record_id,
            self.source_blob,
            self.source_index,
            problem,
        )


def _rows(
    table: AccessTable,
    mailbox: str | None,
    start: datetime | None,
    end: datetime | None,
    result: VerifyResult,
) -> Iterator[_Row]:
    """The access rows in scope that are whole and match their own content hash; the others are
    recorded as mismatches."""
    for entity in table.rows_in(mailbox, start, end):
        result.rows_checked += 1
        content = str(entity.get("ContentSha256", ""))
        stored: AccessEvent | None = None
        try:
            stored = table.from_entity(entity)
        except IncompleteRow as problem:
            trouble = f"the row cannot be read whole: {problem}"
        else:
            trouble = "" if stored.content_sha256() == content else "the row does not match its ContentSha256"
        row = _Row(
            table=table.name,
            partition_key=str(entity["PartitionKey"]),
            row_key=str(entity["RowKey"]),
            record_id=stored.record_id if stored else str(entity.get("RecordId", "")),
            source_blob=stored.source_blob if stored else str(entity.get("SourceBlob", "")),
            source_sha256=stored.source_sha256 if stored else "",
            source_index=stored.source_index if stored else None,
            content_sha256=content,
        )
        if not trouble and (not row.source_blob or row.source_index is None):
            trouble = "the row names no source blob and position"
        if trouble:
            result.mismatches.append(row.mismatch(trouble))
            continue
        yield row


def _check_blob(storage: Storage, name: str, rows: list[_Row], result: VerifyResult) -> None:
    """Read the blob forward (memory bounded by its largest record), hashing what is read; the
    rows are judged once the whole content is hashed."""
    try:
        content, metadata = raw_store.blob_content(storage.blobs, name)
    except ResourceNotFoundError:
        result.mismatches.extend(
            row.mismatch(f"the source blob {RAW_CONTAINER}/{name} does not exist") for row in rows
        )
        return
    hashing = Hashing(content)
    wanted = {row.source_index for row in rows}
    found: dict[int, tuple[str, str]] = {}
    recorded = metadata.get("sha256", "")
    try:
        records = readers.read_stream(hashing, metadata.get("format") or None)
        for event in normalize_records(records, name, sha256=recorded):
            if event.source_index in wanted and event.source_index is not None:
                found[event.source_index] = (event.record_id, event.content_sha256())
        hashing.drain()
    except readers.UnknownFormat as problem:
        result.mismatches.extend(row.mismatch(f"the source blob cannot be read: {problem}") for row in rows)
        return
    except (OSError, EOFError, zlib.error, raw_store.BlobTooLarge) as problem:
        result.mismatches.extend(row.mismatch(f"the source blob cannot be read: {problem}") for row in rows)
        return
    digest = hashing.hexdigest()
    if digest != recorded:
        wrong = f"the source blob's content hashes to {digest}, its metadata says {recorded}"
        result.mismatches.extend(row.mismatch(wrong) for row in rows)
        return
    result.blobs_verified += 1
    for row in rows:
        if row.source_sha256 != digest:
            wrong = f"the row names SHA-256 {row.source_sha256}, the blob's content is {digest}"
            result.mismatches.append(row.mismatch(wrong))
            continue
        record = found.get(row.source_index) if row.source_index is not None else None
        if record is None:
            result.mismatches.append(row.mismatch("no MailItemsAccessed record at that position in the blob"))
        elif record[0] != row.record_id:
            result.mismatches.append(row.mismatch(f"the record at that position is {record[0]!r}"))
        elif record[1] != row.content_sha256:
            result.mismatches.append(row.mismatch("the record at that position says something else"))


def verify(
    storage: Storage,
    mailbox: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    progress: Progress = SILENT,
) -> VerifyResult:
    """Check the rows of one mailbox (or, without one, of MailboxAccess and ActorAccess) with
    start <= time < end against their raw blobs (`progress` counts the blobs). Memory grows with
    the rows in scope."""
    result = VerifyResult()
    scope: list[AccessTable] = [storage.mailbox_access]
    if mailbox is None:
        scope.append(storage.actor_access)
    by_blob: dict[str, list[_Row]] = defaultdict(list)
    for table in scope:
        for row in _rows(table, mailbox, start, end, result):
            by_blob[row.source_blob].append(row)
    progress.expect(len(by_blob))
    for blob_name, rows in sorted(by_blob.items()):
        _check_blob(storage, blob_name, rows, result)
        progress.advance()
    result.conflicts = storage.record_conflicts.listed(mailbox, start, end)
    return result

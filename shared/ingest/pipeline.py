"""The path from raw bytes to rows, shared by `mia import`/`mia process` and the functions.

import: an export file is stored untouched as raw evidence and announced by a pointer message,
exactly as collection does with Management API content. process: a pointer is turned into rows
(pointer -> blob -> verify SHA-256 -> normalize -> tables). Both are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from azure.storage.queue import QueueMessage

from shared.alerts import checks, outbox
from shared.alerts.rules import Alert
from shared.model.event import AccessEvent
from shared.model.message_info import MessageObserver
from shared.model.times import utcnow
from shared.parse import readers
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from shared.settings import AlertSettings, ResolutionSettings
from shared.storage import (
    POISON_QUEUE,
    Storage,
    raw_store,
    tables,
)
from shared.subjects import lookup_queue
from shared.subjects.resolver import ResolveStats, SubjectResolver

log = logging.getLogger(__name__)

# Same as the Functions host's default maxDequeueCount (host.json extensions.queues).
MAX_DEQUEUE_COUNT = 5
WRITE_CHUNK = 2000  # events buffered before a table write: bounds memory on huge blobs
VISIBILITY_S = 300  # a received batch stays hidden while it is processed


@dataclass
class ImportResult:
    path: str
    format: str
    blob: str
    sha256: str
    stored: bool
    records: int
    warning: str = ""  # what the responder must know about this file (readers.WARNINGS)


@dataclass
class ProcessResult:
    blob: str
    stats: ParseStats = field(default_factory=ParseStats)
    rows: int = 0  # distinct records in the blob (a record repeated in the source is one row)
    inserted: int = 0  # rows this blob added (the rest were stored before: first copy wins)
    conflicts: int = 0  # records whose stored row says something else: recorded, not replaced
    alerts: list[Alert] = field(default_factory=list)  # newly raised by this blob
    subjects: ResolveStats | None = None  # what the records and the index answered
    lookups_queued: int = 0  # messages left for the resolve_subjects timer (Graph)

    def as_dict(self) -> dict[str, object]:
        subjects: dict[str, object] = {"lookups_queued": self.lookups_queued}
        if self.subjects is not None:
            subjects["subjects"] = self.subjects.as_dict()
        warning = {"warning": readers.WARNINGS[readers.POWERSHELL_SHALLOW]} if self.stats.truncated else {}
        return {
            "blob": self.blob,
            "rows": self.rows,
            "inserted": self.inserted,
            "conflicts": self.conflicts,
            **self.stats.as_dict(),
            **subjects,
            **warning,
        }


def import_bytes(
    storage: Storage, data: bytes, source_name: str, provenance: Mapping[str, str] | None = None
) -> ImportResult:
    """Store one export as raw evidence and enqueue it for processing. `provenance` is kept in
    the blob's metadata beside what is always there (a query result's `query` text, say; values
    are percent-encoded to ASCII). Raises UnknownFormat."""
    fmt = readers.detect_format(data)
    _, records = readers.read_records(data, fmt)
    count = sum(1 for _ in records)
    digest = raw_store.sha256_hex(data)
    name = raw_store.import_blob_name(digest)
    metadata = {**(provenance or {}), "format": fmt, "source": source_name, "recordCount": str(count)}
    warning = readers.WARNINGS.get(fmt, "")
    if warning:
        metadata["warning"] = warning
    digest, stored = raw_store.store_raw(storage.blobs, name, data, metadata)
    # Enqueued even when the blob already existed: a crash between the two writes must not leave
    # evidence that is never processed, and processing twice changes nothing.
    pointer = raw_store.RawPointer(blob=name, sha256=digest, format=fmt)
    raw_store.enqueue_pointer(raw_store.content_queue(storage.queues), pointer)
    return ImportResult(source_name, fmt, name, digest, stored, count, warning)


def import_file(storage: Storage, path: Path) -> ImportResult:
    return import_bytes(storage, path.read_bytes(), path.name)


def process_pointer(
    storage: Storage,
    body: bytes | str,
    alert_settings: AlertSettings | None = None,
    clock: Callable[[], datetime] = utcnow,
    resolver: SubjectResolver | None = None,
) -> ProcessResult:
    """pointer -> blob -> verified bytes -> rows -> mailbox alerts -> subjects. Raises on integrity
    or storage errors so the message is retried and, in the end, parked on the poison queue.

    The alert rules run after the rows are written, from the rows: a retry raises nothing twice.
    Subjects are resolved last (the rows never wait on Graph); a retry finds earlier answers in
    MessageIndex and looks nothing up again."""
    settings = alert_settings or AlertSettings()
    activity = checks.MailboxActivity()
    pointer = raw_store.RawPointer.decode(body)
    data = raw_store.load_raw(storage.blobs, pointer)
    result = ProcessResult(blob=pointer.blob)
    pending: list[AccessEvent] = []
    contents: dict[str, str] = {}  # record Id -> content hash of its first occurrence in the blob
    contradicting: list[AccessEvent] = []  # a later occurrence that says something else
    observed = MessageObserver()

    def write(events: list[AccessEvent]) -> None:
        written = tables.store_events(storage, events, clock())
        result.inserted += written.inserted
        result.conflicts += written.conflicts

    for event in events_from_bytes(data, pointer.blob, pointer.format, result.stats, pointer.sha256):
        content = event.content_sha256()
        first = contents.setdefault(event.record_id, content)
        if first is not content:  # repeated within the blob: its first occurrence is the source
            if first != content:
                contradicting.append(event)  # written after the first, so it meets it as a conflict
            continue
        observed.add(event)
        activity.add(event)
        pending.append(event)
        if len(pending) >= WRITE_CHUNK:
            write(pending)
            pending = []
    if pending:
        write(pending)
    for event in contradicting:
        write([event])
    if result.conflicts:
        log.warning("%s: %d records conflict with stored rows (kept in %s)", pointer.blob,
                    result.conflicts, tables.RecordConflictsTable.NAME)  # fmt: skip
    result.rows = len(contents)
    result.alerts = checks.mailbox_alerts(storage, activity, settings, clock())
    resolver = resolver or index_only_resolver(storage)
    result.subjects = ResolveStats()
    lookups = resolver.record_arrivals(observed.messages, result.subjects)
    result.lookups_queued = sum(len(messages) for messages in lookups.values())
    lookup_queue.enqueue(storage, lookups)
    log.info("processed %s: %s", pointer.blob, result.as_dict())
    return result


def index_only_resolver(storage: Storage) -> SubjectResolver:
    """No Graph: the records' own subjects still go into MessageIndex."""
    return SubjectResolver(storage.message_index, ResolutionSettings(), graph=None)


@dataclass
class Failure:
    """A queue message that could not be processed this time (or, `poisoned`, for good)."""

    message_id: str
    blob: str
    error: str
    poisoned: bool


@dataclass
class Drained:
    results: list[ProcessResult] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def poisoned(self) -> list[Failure]:
        return [failure for failure in self.failures if failure.poisoned]


def _pointer_blob(body: str) -> str:
    try:
        return raw_store.RawPointer.decode(body).blob
    except raw_store.BadPointer:
        return ""


def _handle(
    storage: Storage, message: QueueMessage, settings: AlertSettings, resolver: SubjectResolver | None
) -> ProcessResult | Failure:
    """One message as the queue trigger would: processed and deleted, or left for a retry and,
    after MAX_DEQUEUE_COUNT attempts, moved to the poison queue as the Functions host does."""
    queue = raw_store.content_queue(storage.queues)
    try:
        result = process_pointer(storage, message.content, settings, resolver=resolver)
    except Exception as problem:
        log.exception("message %s failed (attempt %s)", message.id, message.dequeue_count)
        poisoned = (message.dequeue_count or 0) >= MAX_DEQUEUE_COUNT
        if poisoned:
            raw_store.content_queue(storage.queues, POISON_QUEUE).send_message(message.content)
            queue.delete_message(message)
        else:
            queue.update_message(message, visibility_timeout=0)
        error = f"{type(problem).__name__}: {str(problem).splitlines()[0] if str(problem) else ''}"
        return Failure(message.id, _pointer_blob(message.content), error[:300], poisoned)
    queue.delete_message(message)
    return result


def drain(
    storage: Storage,
    max_messages: int | None = None,
    workers: int = 8,
    alert_settings: AlertSettings | None = None,
    resolver: SubjectResolver | None = None,
) -> Drained:
    """Process queued pointers until the queue is empty (or `max_messages` succeeded), `workers`
    at a time as the host's batchSize does; failures are retried as the host would, and what
    could not be processed after MAX_DEQUEUE_COUNT attempts is parked on the poison queue and
    reported. After each batch, messages parked on the poison queue are alerted on and pending
    alerts delivered (when a webhook is set)."""
    settings = alert_settings or AlertSettings()
    resolver = resolver or index_only_resolver(storage)
    queue = raw_store.content_queue(storage.queues)
    drained = Drained()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while max_messages is None or len(drained.results) < max_messages:
            wanted = 32 if max_messages is None else min(32, max_messages - len(drained.results))
            batch = list(
                queue.receive_messages(
                    messages_per_page=wanted, max_messages=wanted, visibility_timeout=VISIBILITY_S
                )
            )
            if not batch:
                break
            for outcome in pool.map(lambda m: _handle(storage, m, settings, resolver), batch):
                if isinstance(outcome, Failure):
                    drained.failures.append(outcome)
                else:
                    drained.results.append(outcome)
            checks.scan_poison(storage, settings)
            outbox.deliver_quietly(storage, settings)
    return drained


def process_and_alert(
    storage: Storage, body: bytes | str, alert_settings: AlertSettings, resolver: SubjectResolver | None
) -> ProcessResult:
    """process_pointer as enrich_trace runs it: the alerts the blob raised are sent at once rather
    than on the next deliver_alerts tick (DELIVER_SCHEDULE); a failed delivery stays in the outbox."""
    result = process_pointer(storage, body, alert_settings, resolver=resolver)
    if result.alerts:
        outbox.deliver_quietly(storage, alert_settings)
    return result


def drain_queue(
    storage: Storage,
    max_messages: int | None = None,
    workers: int = 8,
    alert_settings: AlertSettings | None = None,
    resolver: SubjectResolver | None = None,
) -> list[ProcessResult]:
    """`drain`, the processed blobs only."""
    return drain(storage, max_messages, workers, alert_settings, resolver).results

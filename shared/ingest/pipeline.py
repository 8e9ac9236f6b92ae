"""The path from raw bytes to rows, shared by `mia import`/`mia process` and the functions.

import: an export file is stored untouched as raw evidence and announced by a pointer message,
exactly as collection does with Management API content. process: a pointer is turned into rows
(pointer -> blob -> verify SHA-256 -> normalize -> tables). Both are idempotent.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from azure.storage.queue import QueueMessage

from shared.alerts import checks, outbox
from shared.alerts.rules import Alert
from shared.detect import engine as detection
from shared.ingest import pieces
from shared.model.event import AccessEvent
from shared.model.message_info import MessageObserver
from shared.model.progress import SILENT, Progress
from shared.model.scope import Tallies
from shared.model.times import utcnow
from shared.parse import readers
from shared.parse.events import events_from_stream
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
from shared.telemetry import (
    TraceCarrier,
    current_carrier,
    record_detections,
    record_processed,
    remote_context,
    span,
)

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
    pieces: int = 1  # the queue messages it was announced as


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

    def outcomes(self) -> dict[str, int]:
        """The blob's records by outcome (the telemetry contract's `mia.records.processed`): a
        record stored before or repeated unchanged within the blob is a duplicate."""
        duplicates = self.stats.events - self.inserted - self.conflicts
        return {
            "inserted": self.inserted,
            "duplicate": max(duplicates, 0),
            "conflict": self.conflicts,
            "malformed": self.stats.malformed,
            "other_operation": self.stats.other_operations,
        }


def import_bytes(
    storage: Storage, data: bytes, source_name: str, provenance: Mapping[str, str] | None = None
) -> ImportResult:
    """`import_file` of bytes in memory (a query result, a test's export)."""
    return _import(storage, lambda: io.BytesIO(data), source_name, provenance)


def import_file(storage: Storage, path: Path, provenance: Mapping[str, str] | None = None) -> ImportResult:
    """Store one export file as raw evidence, as it is, and enqueue it for processing: streamed,
    in memory bounded by its largest record whatever its size, and announced as pieces of at most
    pieces.PIECE_RECORDS records, each verified and processed on its own. `provenance` is kept in
    the blob's metadata beside what is always there (a query result's `query` text, say; values are
    percent-encoded to ASCII). Raises UnknownFormat."""
    return _import(storage, lambda: path.open("rb"), path.name, provenance)


def _import(
    storage: Storage, open_file: pieces.Opener, source_name: str, provenance: Mapping[str, str] | None
) -> ImportResult:
    layout = pieces.plan(open_file)
    name = raw_store.import_blob_name(layout.sha256)
    metadata = {**(provenance or {}), "format": layout.format, "source": source_name}
    metadata |= {"recordCount": str(layout.records), "pieces": str(max(len(layout.pieces), 1))}
    warning = readers.WARNINGS.get(layout.format, "")
    if warning:
        metadata["warning"] = warning
    stored = raw_store.store_stream(storage.blobs, name, open_file, layout.size, layout.sha256, metadata)
    # Enqueued even when the blob already existed: a crash between the two writes must not leave
    # evidence that is never processed, and processing twice changes nothing.
    trace = current_carrier()
    queue = raw_store.content_queue(storage.queues)
    announced: list[raw_store.Piece | None] = [*layout.pieces] or [None]
    for piece in announced:
        pointer = raw_store.RawPointer(
            blob=name,
            sha256=layout.sha256,
            format=layout.format,
            traceparent=trace.traceparent,
            tracestate=trace.tracestate,
            piece=piece,
        )
        raw_store.enqueue_pointer(queue, pointer)
    count = len(layout.pieces) or 1
    digest = layout.sha256
    return ImportResult(source_name, layout.format, name, digest, stored, layout.records, warning, count)


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
    MessageIndex and looks nothing up again.

    One `enrich_trace` span, continuing the trace of the span that stored the blob when the pointer
    carries it; the records' outcomes and the detections are recorded as metrics."""
    pointer = raw_store.RawPointer.decode(body)
    parent = remote_context(TraceCarrier(pointer.traceparent, pointer.tracestate))
    with span("enrich_trace", parent=parent):
        result = _process(storage, pointer, alert_settings or AlertSettings(), clock, resolver)
    record_processed(result.outcomes())
    record_detections(alert.type for alert in result.alerts)
    return result


def _process(
    storage: Storage,
    pointer: raw_store.RawPointer,
    settings: AlertSettings,
    clock: Callable[[], datetime],
    resolver: SubjectResolver | None,
) -> ProcessResult:
    activity = checks.MailboxActivity()
    stream = raw_store.open_verified(storage.blobs, pointer)
    piece = pointer.piece
    resume = readers.Resume(piece.start, piece.lines, piece.index) if piece else None
    result = ProcessResult(blob=pointer.unit)
    pending: list[AccessEvent] = []
    contents: dict[str, str] = {}  # record Id -> content hash of its first occurrence in the blob
    contradicting: list[AccessEvent] = []  # a later occurrence that says something else
    observed = MessageObserver()
    detected: list[Alert] = []
    scope = Tallies()  # the records whose stored row is this blob's: the context index's share

    def write(events: list[AccessEvent], first_copies: bool = True) -> None:
        written = tables.store_events(storage, events, clock())
        result.inserted += written.inserted
        result.conflicts += written.conflicts
        if first_copies:  # the rules judge each record of the blob once, as its first copy says
            detected.extend(detection.detect_stored(storage, events, settings, clock()))
        scope.add_all(written.kept)

    events = events_from_stream(stream, pointer.blob, pointer.sha256, pointer.format, result.stats, resume)
    for event in events:
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
        write([event], first_copies=False)
    storage.context_index.write(pointer.unit, scope)  # after the rows: a retry repairs it
    if piece is not None and result.stats.records != piece.records:
        raise raw_store.IntegrityError(
            f"{pointer.unit}: {result.stats.records} records read where the import found {piece.records}"
        )
    if result.conflicts:
        log.warning("%s: %d records conflict with stored rows (kept in %s)", pointer.blob,
                    result.conflicts, tables.RecordConflictsTable.NAME)  # fmt: skip
    result.rows = len(contents)
    result.alerts = checks.mailbox_alerts(storage, activity, settings, clock())
    result.alerts += detected
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
    progress: Progress = SILENT,
) -> Drained:
    """Process queued pointers until the queue is empty (or `max_messages` succeeded), `workers`
    at a time as the host's batchSize does; failures are retried as the host would, and what
    could not be processed after MAX_DEQUEUE_COUNT attempts is parked on the poison queue and
    reported. After each batch, messages parked on the poison queue are alerted on and pending
    alerts delivered (when a webhook is set). `progress` counts the messages handled, of the
    queue's approximate length at the start (grown when more arrive or come back for a retry)."""
    settings = alert_settings or AlertSettings()
    resolver = resolver or index_only_resolver(storage)
    queue = raw_store.content_queue(storage.queues)
    drained = Drained()
    expected = queue.get_queue_properties().approximate_message_count or 0
    progress.expect(expected)
    handled = 0
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
            if handled + len(batch) > expected:
                progress.expect(handled + len(batch) - expected)
                expected = handled + len(batch)
            for outcome in pool.map(lambda m: _handle(storage, m, settings, resolver), batch):
                handled += 1
                progress.advance()
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

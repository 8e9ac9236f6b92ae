"""The `subject-lookups` queue: messages waiting for a Graph lookup, gathered across blobs.

enrich_trace records what the records themselves say and queues the rest; the resolve_subjects
timer takes everything queued and resolves it in one pass, so a `$batch` carries 20 lookups even
when each blob names only a few messages (a blob holds 5-10 minutes of a tenant's audit, often
a handful of records). A queue message holds one mailbox's messages:
`{"m": mailbox, "ids": [[InternetMessageId, first access (ISO 8601) or null, size or null], ...]}`,
and `"tp"`, the W3C traceparent of the enrich_trace span that queued it, when there was one: each
pass's `subjects.lookup` span links to the traces of the blobs whose ids it resolves.

Messages are deleted once every id in them has an answer in MessageIndex (found, or not found
with its retry time). Ids a run's budget did not reach (deferred) go back on the queue as new
messages: deferring is not failing, so they never use up a dequeue count. Ids Graph was throttling
or failing on stay in their message and come back after their retry time; a message received more
than MAX_DEQUEUE_COUNT times is dropped, its ids counted and left visible in MessageIndex as
`unresolved:graph-error` (a report can still look them up on demand).
Everything is idempotent: an id queued twice, or a message seen again, is answered from the index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from azure.storage.queue import QueueClient, QueueMessage

from shared.alerts import outbox, rules
from shared.model.message_info import UNRESOLVED, Key, MessageInfo, Observed
from shared.model.times import utc_timestamp
from shared.storage import LOOKUP_QUEUE, Storage, raw_store
from shared.subjects.resolver import DEFERRED, SHORT_RETRY, ResolveStats, SubjectResolver
from shared.telemetry import TraceCarrier, current_carrier, linked_context, record_subject_lookups, span

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 40_000  # 64 KiB per queue message, base64 takes a third more
MAX_KEYS_PER_PASS = 4_000  # ids resolved together (200 full batches)
VISIBILITY_S = 600  # a received message stays hidden while its pass runs
MAX_DEQUEUE_COUNT = 5  # real failures only; then dropped, counted, its ids left in MessageIndex
# Answers worth asking again soon (their index rows carry a retry time SHORT_RETRY away).
RETRY_LATER = {UNRESOLVED + reason for reason in ("throttled", "graph-error", "graph-permission")}
RETRY_VISIBILITY_S = int(SHORT_RETRY.total_seconds()) + 60


def lookup_queue(storage: Storage) -> QueueClient:
    return raw_store.content_queue(storage.queues, LOOKUP_QUEUE)


def _entry(message_id: str, seen: Observed) -> list[object]:
    first = seen.first_access.isoformat() if seen.first_access is not None else None
    return [message_id, first, seen.size]


def _body(mailbox: str, entries: list[list[object]], traceparent: str) -> str:
    document: dict[str, object] = {"m": mailbox, "ids": entries}
    if traceparent:
        document["tp"] = traceparent
    return orjson.dumps(document).decode()


def message_bodies(mailbox: str, messages: Mapping[str, Observed], traceparent: str = "") -> Iterator[str]:
    """Queue message bodies for one mailbox, each under MAX_MESSAGE_BYTES (a traceparent is 55
    bytes, well inside the 64 KiB the limit leaves room to)."""
    entries: list[list[object]] = []
    size = 0
    for message_id, seen in messages.items():
        entry = _entry(message_id, seen)
        entry_size = len(orjson.dumps(entry)) + 1
        if entries and size + entry_size > MAX_MESSAGE_BYTES:
            yield _body(mailbox, entries, traceparent)
            entries, size = [], 0
        entries.append(entry)
        size += entry_size
    if entries:
        yield _body(mailbox, entries, traceparent)


def enqueue(storage: Storage, pending: Mapping[str, Mapping[str, Observed]]) -> int:
    """Queue what is still to look up, with the current trace; returns the messages sent."""
    queue = lookup_queue(storage)
    traceparent = current_carrier().traceparent
    sent = 0
    for mailbox, messages in pending.items():
        for body in message_bodies(mailbox, messages, traceparent):
            queue.send_message(body)
            sent += 1
    return sent


def parse(body: str) -> dict[str, dict[str, Observed]]:
    """A queue message's ids; anything malformed raises ValueError."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("not a subject-lookups message: not JSON") from None
    mailbox = document.get("m") if isinstance(document, dict) else None
    entries = document.get("ids") if isinstance(document, dict) else None
    if not isinstance(mailbox, str) or not mailbox or not isinstance(entries, list):
        raise ValueError("not a subject-lookups message")
    messages: dict[str, Observed] = {}
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str):
            raise ValueError("bad entry in a subject-lookups message")
        size = entry[2] if isinstance(entry[2], int) else None
        first_access = utc_timestamp(entry[1]) if isinstance(entry[1], str) else None
        messages[entry[0]] = Observed(size=size, first_access=first_access)
    return {mailbox: messages}


def trace_of(body: str) -> TraceCarrier:
    """The trace a message was queued in; empty for a message without one (or unreadable)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return TraceCarrier()
    traceparent = document.get("tp") if isinstance(document, dict) else None
    return TraceCarrier(traceparent) if isinstance(traceparent, str) else TraceCarrier()


@dataclass
class DrainResult:
    stats: ResolveStats = field(default_factory=ResolveStats)
    queue_messages: int = 0  # answered and deleted
    left_queued: int = 0  # the budget ran out before all their ids were answered: queued anew
    retry_later: int = 0  # Graph was throttling or failing: asked again after SHORT_RETRY
    dropped: int = 0  # unreadable, or failed too often
    dropped_ids: int = 0  # unresolved ids of the messages dropped after failing too often

    def as_dict(self) -> dict[str, object]:
        return {
            "queue_messages": self.queue_messages,
            "left_queued": self.left_queued,
            "retry_later": self.retry_later,
            "dropped": self.dropped,
            "dropped_ids": self.dropped_ids,
            **self.stats.as_dict(),
        }

    def outcomes(self) -> dict[str, int]:
        """Message ids by where their answer came from, `error` for those given up on (the
        telemetry contract's `mia.subjects.lookups`)."""
        answered = ("audit", "cached", "graph", "trace", "unresolved", "deferred")
        return {**{name: getattr(self.stats, name) for name in answered}, "error": self.dropped_ids}


@dataclass
class _Pass:
    observed: dict[str, dict[str, Observed]] = field(default_factory=dict)
    messages: list[tuple[QueueMessage, list[Key]]] = field(default_factory=list)
    keys: int = 0
    traces: list[TraceCarrier] = field(default_factory=list)


def _gather(queue: QueueClient, resolver: SubjectResolver, result: DrainResult) -> _Pass:
    """Receive queued messages until MAX_KEYS_PER_PASS ids or the queue is empty."""
    gathered = _Pass()
    while gathered.keys < MAX_KEYS_PER_PASS:
        batch = list(
            queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=VISIBILITY_S)
        )
        if not batch:
            break
        for message in batch:
            try:
                wanted = parse(message.content)
            except ValueError:
                log.warning("dropping unreadable subject-lookups message %s", message.id)
                queue.delete_message(message)
                result.dropped += 1
                continue
            if (message.dequeue_count or 0) > MAX_DEQUEUE_COUNT:
                given_up = resolver.give_up(wanted)  # before the delete: no id is lost unrecorded
                log.warning(
                    "dropping subject-lookups message %s after %s failed attempts: %s ids left "
                    "unresolved in MessageIndex",
                    message.id,
                    MAX_DEQUEUE_COUNT,
                    given_up,
                )
                queue.delete_message(message)
                result.dropped += 1
                result.dropped_ids += given_up
                continue
            keys: list[Key] = []
            for mailbox, messages in wanted.items():
                into = gathered.observed.setdefault(mailbox, {})
                for message_id, seen in messages.items():
                    previous = into.get(message_id, Observed())
                    into[message_id] = previous.merge(seen.subject, seen.size, seen.first_access)
                    keys.append((mailbox, message_id))
            gathered.messages.append((message, keys))
            gathered.keys += len(keys)
            gathered.traces.append(trace_of(message.content))
    return gathered


def drain(storage: Storage, resolver: SubjectResolver, tenant: str = "") -> DrainResult:
    """Resolve everything queued, pass by pass, within one run budget. When Graph or message
    trace refuses (a missing permission), subjects.lookup_failed is raised (once a day)."""
    result = DrainResult()
    budget = resolver.run_budget()
    if budget is None:
        return result
    queue = lookup_queue(storage)
    while not budget.exhausted():
        gathered = _gather(queue, resolver, result)
        if not gathered.messages:
            break
        with span("subjects.lookup", {"ids": gathered.keys}, links=linked_context(gathered.traces)):
            answers = resolver.resolve(gathered.observed, budget, resolver.settings.covers, result.stats)
            requeued: set[Key] = set()
            for message, keys in gathered.messages:
                _settle(queue, message, keys, answers, gathered.observed, requeued, result)
        if result.left_queued:
            break  # what is left is queued anew: this run's budget is spent
    record_subject_lookups(result.outcomes())
    log.info("subject lookups: %s", result.as_dict())
    if result.dropped_ids:
        log.warning("subject lookups: gave up on %s ids after repeated failures", result.dropped_ids)
    if result.stats.problem:
        _raise_lookup_failed(storage, result, tenant)
    return result


def _bodies(keys: list[Key], observed: Mapping[str, Mapping[str, Observed]]) -> list[str]:
    by_mailbox: dict[str, dict[str, Observed]] = {}
    for mailbox, message_id in keys:
        by_mailbox.setdefault(mailbox, {})[message_id] = observed[mailbox][message_id]
    return [body for mailbox, messages in by_mailbox.items() for body in message_bodies(mailbox, messages)]


def _settle(
    queue: QueueClient,
    message: QueueMessage,
    keys: list[Key],
    answers: Mapping[Key, MessageInfo],
    observed: Mapping[str, Mapping[str, Observed]],
    requeued: set[Key],
    result: DrainResult,
) -> None:
    """One received message after the pass: deferred ids are queued again as new messages (a fresh
    dequeue count: deferring is not failing); ids Graph failed on stay in this message, hidden until
    their retry time (their dequeue count counts); the message goes once nothing is left in it.
    A key without an answer belongs to a mailbox no longer covered (RESOLVE_SUBJECTS changed)."""
    deferred = [key for key in dict.fromkeys(keys) if key in answers and answers[key].source == DEFERRED]
    failed = [key for key in dict.fromkeys(keys) if key in answers and answers[key].source in RETRY_LATER]
    fresh = [key for key in deferred if key not in requeued]  # an id queued twice goes back once
    for body in _bodies(fresh, observed):
        queue.send_message(body)  # sent before the old message changes: nothing is lost between
    requeued.update(fresh)
    if deferred:
        result.left_queued += 1
    if failed:
        first, *rest = _bodies(failed, observed)
        for body in rest:
            queue.send_message(body, visibility_timeout=RETRY_VISIBILITY_S)
        # Back once the index's retry time has passed, so the next pass asks Graph again.
        queue.update_message(message, content=first, visibility_timeout=RETRY_VISIBILITY_S)
        result.retry_later += 1
        return
    queue.delete_message(message)
    if not deferred:
        result.queue_messages += 1


def _raise_lookup_failed(storage: Storage, result: DrainResult, tenant: str) -> None:
    now = datetime.now(UTC)
    alert = rules.make_alert(
        rules.SUBJECTS_LOOKUP_FAILED,
        tenant=tenant,
        triggered_at=now,
        detected_at=now,
        details={"message": result.stats.problem, "messagesDenied": result.stats.denied},
    )
    log.error("subject lookups refused: %s", result.stats.problem)
    outbox.raise_alert(storage, alert, now)

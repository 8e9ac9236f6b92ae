"""Where alerts are decided against storage: mailbox rules while records are processed, the poison
queue watch, and replay of poison messages. The rules themselves are in shared/alerts/rules.py."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from azure.storage.queue import QueueClient

from shared.alerts import outbox, rules
from shared.model import times
from shared.model.event import AccessEvent
from shared.settings import AlertSettings
from shared.storage import CONTENT_QUEUE, LOOKUP_QUEUE, POISON_QUEUE, Storage, raw_store
from shared.telemetry import record_queue_depth

log = logging.getLogger(__name__)

TRAILING = timedelta(hours=24)


@dataclass
class MailboxActivity:
    """What one processed blob says about each mailbox: its newest record and throttled records."""

    newest: dict[str, datetime] = field(default_factory=dict)
    throttled: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (mailbox, record id)

    def add(self, event: AccessEvent) -> None:
        if not event.mailbox:
            return
        if event.mailbox not in self.newest or event.timestamp > self.newest[event.mailbox]:
            self.newest[event.mailbox] = event.timestamp
        if event.throttled:
            self.throttled[(event.mailbox, event.record_id)] = event.timestamp


def distinct_records(storage: Storage, mailbox: str, end: datetime) -> int:
    """Distinct MailItemsAccessed records of `mailbox` with end - 24h < time <= end, counted from the
    MailboxAccess rows (one per record Id, so repeats never count twice)."""
    return storage.mailbox_access.count_rows(mailbox, after=end - TRAILING, through=end)


def mailbox_alerts(
    storage: Storage, activity: MailboxActivity, settings: AlertSettings, now: datetime
) -> list[rules.Alert]:
    """Raise mailbox.throttled and mailbox.near_throttle for one processed blob; returns those
    newly raised."""
    raised: list[rules.Alert] = []
    for (mailbox, record_id), moment in sorted(activity.throttled.items(), key=lambda kv: kv[1]):
        alert = rules.throttled_alert(settings.tenant, mailbox, moment, record_id, now)
        if outbox.raise_alert(storage, alert, now):
            raised.append(alert)
    threshold = settings.near_throttle_threshold
    for mailbox, newest in activity.newest.items():
        count = distinct_records(storage, mailbox, newest)
        if count >= threshold:
            alert = rules.near_throttle_alert(settings.tenant, mailbox, count, threshold, newest, now)
            if outbox.raise_alert(storage, alert, now):
                raised.append(alert)
    return raised


# --- the poison queue ---------------------------------------------------------------------------


def _pointer_blob(stored: str) -> str:
    """The blob a stored (base64) pointer names, or "" for a body that is not one."""
    try:
        return raw_store.RawPointer.decode(base64.b64decode(stored, validate=True)).blob
    except Exception:  # an unreadable body is exactly what can end up here
        return ""


def _raw_queue(storage: Storage, name: str) -> QueueClient:
    """A client that moves bodies as stored (base64 text), never decoding them."""
    return storage.queues.get_queue_client(name)


def scan_poison(storage: Storage, settings: AlertSettings, now: datetime | None = None) -> list[rules.Alert]:
    """Peek (never receive) the poison queue and raise processing.poison once per message. The
    depths of the poison, content and subject-lookups queues are recorded (mia.queue.depth)."""
    moment = now or datetime.now(UTC)
    queue = _raw_queue(storage, POISON_QUEUE)
    depth = queue.get_queue_properties().approximate_message_count
    record_queue_depth(POISON_QUEUE, depth)
    for name in (CONTENT_QUEUE, LOOKUP_QUEUE):
        record_queue_depth(name, _raw_queue(storage, name).get_queue_properties().approximate_message_count)
    raised: list[rules.Alert] = []
    for message in queue.peek_messages(max_messages=32):
        inserted = message.inserted_on or moment
        details = {
            "queue": POISON_QUEUE,
            "messageId": message.id,
            "insertedAt": times.iso_z(inserted),
            "blob": _pointer_blob(str(message.content)),
            "poisonDepth": depth,
            "message": (
                f"a message could not be processed after repeated attempts and is parked in "
                f"{POISON_QUEUE}; fix the cause (see the enrich_trace log), then run `mia replay-poison`"
            ),
        }
        alert = rules.make_alert(
            rules.PROCESSING_POISON,
            tenant=settings.tenant,
            subject=message.id,
            triggered_at=inserted,
            detected_at=moment,
            details=details,
        )
        if outbox.raise_alert(storage, alert, moment):
            raised.append(alert)
    return raised


def replay_poison(storage: Storage, max_messages: int | None = None) -> int:
    """Move poison messages back to audit-content with the same body; returns how many."""
    poison = _raw_queue(storage, POISON_QUEUE)
    target = _raw_queue(storage, CONTENT_QUEUE)
    moved = 0
    while max_messages is None or moved < max_messages:
        wanted = 32 if max_messages is None else min(32, max_messages - moved)
        batch = list(
            poison.receive_messages(messages_per_page=wanted, max_messages=wanted, visibility_timeout=60)
        )
        if not batch:
            break
        for message in batch:
            target.send_message(message.content)  # sent first: a crash here duplicates, never loses
            poison.delete_message(message)
            moved += 1
            log.info("replayed poison message %s", message.id)
    return moved

"""Detection over storage, as `enrich_trace` runs it: the state a blob's records need is loaded
from DetectionBaseline (and the warm-up from MailboxAccess), the same Detector as `detect_events`
runs over the records in record-time order, what changed is merged back, and each detection the
blob raised or grew is raised (or refreshed) in the outbox.

Order: a record at time t is judged by sightings before t alone, so records that arrive late (a
backfill of older content) are judged as live collection would have judged them, and they never
make an earlier decision about a later record wrong after the fact. A decision already taken is
not taken back: a later record alerted on before the older ones arrived stays alerted (its
context was new to everything stored when it was judged); README "Detection" says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from azure.data.tables import TableEntity

from shared.alerts import outbox
from shared.alerts.rules import Alert, make_alert
from shared.detect import rules
from shared.detect.rules import Detection, Detector, Draft, History, MassWindow, Sightings, State
from shared.ipcontext.context import open_context
from shared.model.event import AccessEvent
from shared.model.times import iso_z
from shared.parse.events import events_from_path
from shared.parse.normalize import ParseStats
from shared.settings import AlertSettings, DetectionSettings
from shared.storage import Storage
from shared.storage.detection_baseline import (
    TENANT_PARTITION,
    DetectionBaselineTable,
    draft_key,
    mailbox_partition,
    sighting_key,
    window_key,
)

log = logging.getLogger(__name__)
_TIME = "%Y-%m-%dT%H:%M:%SZ"
FOLDERS_LISTED = 20
LOAD_WORKERS = 4  # concurrent reads and writes of one blob's baselines (drain runs 8 blobs at once)
REWRITES = 8  # rounds of reading again and merging in transactions (one per blob drain processes at once)
MAILBOXES_LISTED = 50


@lru_cache(maxsize=8)
def ip_lookup(databases: tuple[Path, ...] = ()) -> rules.IpLookup:
    """Country and ASN from the reports' IP data (IP_DATABASE_PATH, then the embedded data)."""
    context = open_context(databases)

    def lookup(address: str) -> tuple[str, str]:
        facts = context.facts(address)
        return facts.country, facts.asn

    return lookup


def detect(events: Iterable[AccessEvent], settings: DetectionSettings) -> list[Detection]:
    """`rules.detect_events` with the configured IP data, as enrich_trace judges records."""
    return rules.detect_events(events, settings, ip_lookup(settings.ip_databases))


def detect_files(
    paths: Sequence[Path], settings: DetectionSettings, stats: ParseStats, start: datetime, end: datetime
) -> list[Detection]:
    """`mia detect --input`: the files' records (each record Id once, its first copy) through the
    rules; the detections whose first record lies in [start, end)."""
    events = (event for path in paths for event in events_from_path(path, str(path), stats=stats))
    return [found for found in detect(events, settings) if start <= found.first_seen < end]


# --- the stored state ----------------------------------------------------------------------------


def _time(text: str) -> datetime:
    return datetime.strptime(text, _TIME).replace(tzinfo=UTC)


def _keys(text: str) -> set[str]:
    return set(text.split(",")) if text else set()


def _sightings(entity: Mapping[str, Any]) -> Sightings:
    return Sightings({day: (pair[0], pair[1]) for day, pair in json.loads(entity["Days"]).items()})


def _draft(entity: Mapping[str, Any]) -> Draft:
    data = json.loads(entity["Draft"])
    return Draft(
        type=data["type"],
        mailbox=data["mailbox"],
        key=data["key"],
        session_id=data["sessionId"],
        new=tuple(data["new"]),
        context=dict(data["context"]),
        reasons=list(data["reasons"]),
        first_seen=_time(data["firstSeen"]),
        first_record_id=data["firstRecordId"],
        records=_keys(entity.get("Records", "")),
        messages=_keys(entity.get("Messages", "")),
        folders=set(data["folders"]),
        mailboxes=set(data["mailboxes"]),
    )


def _draft_entity(draft: Draft) -> dict[str, Any]:
    data = {
        "type": draft.type,
        "mailbox": draft.mailbox,
        "key": draft.key,
        "sessionId": draft.session_id,
        "new": list(draft.new),
        "context": draft.context,
        "reasons": draft.reasons,
        "firstSeen": draft.first_seen.strftime(_TIME),
        "firstRecordId": draft.first_record_id,
        "folders": sorted(draft.folders),
        "mailboxes": sorted(draft.mailboxes),
    }
    return {
        "Draft": json.dumps(data, ensure_ascii=True),
        "Records": ",".join(sorted(draft.records)),
        "Messages": ",".join(sorted(draft.messages)),
    }


def _window(entity: Mapping[str, Any]) -> MassWindow:
    mailboxes = {mailbox: _time(first) for mailbox, first in json.loads(entity["Mailboxes"]).items()}
    return MassWindow(mailboxes, _keys(entity.get("Records", "")))


def _window_entity(window: MassWindow) -> dict[str, Any]:
    mailboxes = {mailbox: first.strftime(_TIME) for mailbox, first in sorted(window.mailboxes.items())}
    return {
        "Mailboxes": json.dumps(mailboxes, ensure_ascii=True),
        "Records": ",".join(sorted(window.records)),
    }


def _window_ids(events: Sequence[AccessEvent], minutes: int) -> set[tuple[str, str, str]]:
    ids = set()
    for event in events:
        start = rules.window_start(event.timestamp, minutes)
        for kind, value in rules.mass_values(event).items():
            for moment in (start, start - timedelta(minutes=minutes)):
                ids.add((kind, value, moment.strftime("%Y%m%dT%H%M")))
    return ids


def _mass_alert_keys(events: Sequence[AccessEvent]) -> set[str]:
    return {
        f"{rules.day_key(event.timestamp)}|{rules.mass_key(kind, value)}"
        for event in events
        for kind, value in rules.mass_values(event).items()
    }


class Loaded:
    """The stored rows a blob's state was loaded from (each with the ETag it was read with), by
    (PartitionKey, RowKey)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], TableEntity] = {}

    def add(self, row: TableEntity) -> None:
        self.rows[(str(row["PartitionKey"]), str(row["RowKey"]))] = row

    def etag(self, partition: str, row: str) -> str | None:
        stored = self.rows.get((partition, row))
        return None if stored is None else str(stored.metadata["etag"])

    def holds(self, partition: str, row: str, entity: Mapping[str, Any]) -> bool:
        """The row was loaded with exactly these values: writing them would change nothing."""
        return _holds(self.rows.get((partition, row)), entity)


def _holds(stored: Mapping[str, Any] | None, entity: Mapping[str, Any]) -> bool:
    return stored is not None and all(stored.get(name) == value for name, value in entity.items())


def load_state(
    storage: Storage, events: Sequence[AccessEvent], settings: DetectionSettings
) -> tuple[State, Loaded]:
    """What the rules need to judge these records: their mailboxes' contexts and detections, the
    mass-access windows and detections they touch, and each mailbox's history; with the stored
    rows they were loaded from."""
    table = storage.detection_baseline
    state = State(history=_stored_history(storage, events, settings))
    loaded = Loaded()
    mailboxes = sorted({event.mailbox.lower() for event in events})
    with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
        partitions = list(pool.map(lambda mailbox: list(table.partition(mailbox)), mailboxes))
    for mailbox, rows_of_mailbox in zip(mailboxes, partitions, strict=True):
        for row in rows_of_mailbox:
            loaded.add(row)
            if "Days" in row:
                state.sightings[(mailbox, str(row["Name"]), str(row["Value"]))] = _sightings(row)
            elif "Draft" in row:
                draft = _draft(row)
                state.drafts[f"{draft.day}|{draft.key}"] = draft
    windows = {
        window_key(*window): window for window in sorted(_window_ids(events, settings.mass_window_minutes))
    }
    alert_keys = {draft_key(alert_key): alert_key for alert_key in sorted(_mass_alert_keys(events))}
    # One read for the tenant rows the records touch: most windows are new, so most are absent.
    found = table.read(TENANT_PARTITION, [*windows, *alert_keys])
    for key, window in windows.items():
        if key in found:
            loaded.add(found[key])
            state.windows[window] = _window(found[key])
    for key, alert_key in alert_keys.items():
        if key in found:
            loaded.add(found[key])
            state.drafts[alert_key] = _draft(found[key])
    return state, loaded


def _stored_history(
    storage: Storage, events: Sequence[AccessEvent], settings: DetectionSettings
) -> Callable[[str, datetime], History]:
    """Each (mailbox, day) of the records: the mailbox's first stored row and its rows on earlier
    days, read once (up to the warm-up's record count) from MailboxAccess."""
    limit = max(settings.warmup_records, 1)
    wanted = sorted({(event.mailbox, rules.day_key(event.timestamp)) for event in events})

    # One client for the threads: azure-core chains a new client's pipeline through policy
    # objects the service client shares, so clients made in several threads at once can break
    # each other's chain ('_SansIOHTTPPolicyRunner' object has no attribute 'next').
    access = storage.mailbox_access

    def read(key: tuple[str, str]) -> History:
        day_start = datetime.strptime(key[1], "%Y%m%d").replace(tzinfo=UTC)
        return History(*access.history_before(key[0], day_start, limit))

    with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
        answers = dict(zip(wanted, pool.map(read, wanted), strict=True))

    def history(mailbox: str, moment: datetime) -> History:
        return answers.get((mailbox, rules.day_key(moment)), History(None, 0))

    return history


Merger = Callable[[Mapping[str, Any] | None], dict[str, Any]]


def _changes(state: State) -> list[tuple[str, str, dict[str, Any], Merger]]:
    """Every changed row: (PartitionKey, RowKey, its entity now, how to merge it into a stored one)."""
    changed: list[tuple[str, str, dict[str, Any], Merger]] = []
    for mailbox, name, value in sorted(state.touched_sightings):
        mine = state.sightings[(mailbox, name, value)]

        def days(
            stored: Mapping[str, Any] | None, mine: Sightings = mine, name: str = name, value: str = value
        ) -> dict[str, Any]:
            combined = Sightings(dict(mine.days))
            if stored is not None:
                combined.merge(_sightings(stored))
            return {"Name": name, "Value": value, "Days": json.dumps(combined.days, sort_keys=True)}

        changed.append((mailbox_partition(mailbox), sighting_key(name, value), days(None), days))
    for alert_key in sorted(state.touched_drafts):
        draft = state.drafts[alert_key]
        partition = mailbox_partition(draft.mailbox) if draft.mailbox else TENANT_PARTITION

        def grown(stored: Mapping[str, Any] | None, mine: Draft = draft) -> dict[str, Any]:
            if stored is not None:
                mine.merge(_draft(stored))
            return _draft_entity(mine)

        changed.append((partition, draft_key(alert_key), _draft_entity(draft), grown))
    for kind, value, start in sorted(state.touched_windows):
        window = state.windows[(kind, value, start)]

        def widened(stored: Mapping[str, Any] | None, mine: MassWindow = window) -> dict[str, Any]:
            if stored is not None:
                mine.merge(_window(stored))
            return _window_entity(mine)

        changed.append((TENANT_PARTITION, window_key(kind, value, start), _window_entity(window), widened))
    return changed


def save_state(table: DetectionBaselineTable, state: State, loaded: Loaded) -> None:
    """Write what the records changed (a row loaded with the very values it would get is left
    alone): per partition in transactions, each row conditional on the ETag it was loaded with (or
    created). Where another writer came first, its rows are read again and merged into (unions and
    min/max) in transactions again; after REWRITES such rounds, row by row. Nothing either wrote is
    lost."""
    by_partition: dict[str, dict[str, tuple[dict[str, Any], Merger]]] = {}
    for partition, row, entity, merger in _changes(state):
        if not loaded.holds(partition, row, entity):
            by_partition.setdefault(partition, {})[row] = (entity, merger)

    def write(partition: str) -> None:
        changes = by_partition[partition]
        rows = [(row, entity, loaded.etag(partition, row)) for row, (entity, _) in changes.items()]
        failed = table.write_batch(partition, rows)
        for _ in range(REWRITES):
            if not failed:
                return
            stored = table.read(partition, failed)
            merged = (_merged(key, changes[key][1], stored.get(key)) for key in failed)
            rows = [again for again in merged if again is not None]
            failed = table.write_batch(partition, rows)
        for key in failed:
            table.merge(partition, key, *changes[key])

    with ThreadPoolExecutor(max_workers=LOAD_WORKERS) as pool:
        list(pool.map(write, sorted(by_partition)))


def _merged(
    row: str, merger: Merger, stored: TableEntity | None
) -> tuple[str, dict[str, Any], str | None] | None:
    """The row to write over what is stored now (created when absent); None when what is stored
    already holds it."""
    entity = merger(stored)
    if stored is None:
        return row, entity, None
    if _holds(stored, entity):
        return None
    return row, entity, str(stored.metadata["etag"])


# --- alerts --------------------------------------------------------------------------------------


def detection_alert(tenant: str, detection: Detection, now: datetime) -> Alert:
    """The alert of one detection: one id per mailbox (or source), context and day."""
    details: dict[str, Any] = {
        "severity": detection.severity,
        "reasons": list(detection.reasons),
        "new": list(detection.new),
        "context": dict(detection.context),
        "sessionId": detection.session_id,
        "firstSeen": iso_z(detection.first_seen),
        "firstRecordId": detection.first_record_id,
        "records": detection.records,
        "messages": detection.messages,
        "folders": list(detection.folders[:FOLDERS_LISTED]),
        "message": _message(detection),
    }
    if detection.type == rules.MASS_ACCESS:
        details["mailboxes"] = list(detection.mailboxes[:MAILBOXES_LISTED])
        details["mailboxCount"] = len(detection.mailboxes)
    return make_alert(
        detection.type,
        tenant=tenant,
        mailbox=detection.mailbox or None,
        subject=detection.key,
        triggered_at=detection.first_seen,
        detected_at=now,
        details=details,
    )


def _message(detection: Detection) -> str:
    context = ", ".join(f"{name} {value}" for name, value in detection.context.items())
    if detection.type == rules.MASS_ACCESS:
        return (
            f"{context} read {len(detection.mailboxes)} mailboxes other than its own from "
            f"{iso_z(detection.first_seen)} ({detection.severity}): {detection.reasons[0]}."
        )
    return (
        f"{detection.mailbox} was read in a new context ({context}) from {iso_z(detection.first_seen)}: "
        f"{detection.records} records, {detection.messages} messages so far ({detection.severity}: "
        f"{'; '.join(detection.reasons)})."
    )


def detect_stored(
    storage: Storage, events: Sequence[AccessEvent], settings: AlertSettings, now: datetime
) -> list[Alert]:
    """Run the rules on a blob's records against the stored state, store what they learnt, and
    raise (or refresh) the alert of every detection they raised or grew; the newly raised ones are
    returned. Redelivered records find their sightings, detections and alerts already there."""
    if not settings.detection.enabled or not events:
        return []
    ordered = rules.ordered(events)
    state, loaded = load_state(storage, ordered, settings.detection)
    detector = Detector(settings.detection, state, ip_lookup(settings.detection.ip_databases))
    for event in ordered:
        detector.observe(event)
    save_state(storage.detection_baseline, state, loaded)
    raised = []
    for alert_key in sorted(state.touched_drafts):
        alert = detection_alert(settings.tenant, state.drafts[alert_key].detection(), now)
        if outbox.raise_or_refresh(storage, alert, now):
            raised.append(alert)
    return raised


def stored_detections(storage: Storage, start: datetime, end: datetime) -> list[Detection]:
    """The detections stored for first records in [start, end), oldest first (`mia detect`)."""
    drafts = [_draft(row) for row in storage.detection_baseline.drafts()]
    found = [draft.detection() for draft in drafts if start <= draft.first_seen < end]
    return sorted(
        found, key=lambda detection: (detection.first_seen, detection.first_record_id, detection.key)
    )

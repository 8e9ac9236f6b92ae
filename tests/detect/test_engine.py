"""Detection over storage (Azurite), as enrich_trace runs it: the same detections as in memory,
alerts in the outbox, nothing new on redelivery, and what a backfill processed later does."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.requests import RequestTally, counted_storage
from shared.alerts import outbox
from shared.alerts import rules as alert_rules
from shared.detect import engine, rules
from shared.ingest import pipeline
from shared.settings import AlertSettings, DetectionSettings
from shared.storage import Storage
from shared.storage.detection_baseline import DetectionBaselineTable, mailbox_partition, sighting_key
from shared.storage.raw_store import RawPointer
from shared.storage.tables import KEYS_PER_QUERY
from tests.detect import scenario as s
from tests.helpers import mia_record

pytestmark = pytest.mark.integration

# A short warm-up keeps the storage tests small: three days of three reads each.
SETTINGS = AlertSettings(
    tenant="contoso-tenant", detection=DetectionSettings(warmup_days=2, warmup_records=6)
)
EVERYTHING = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def history() -> list[dict[str, Any]]:
    return s.routine(days=3, per_day=3)


def process(storage: Storage, records: list[dict[str, Any]], name: str) -> pipeline.ProcessResult:
    imported = pipeline.import_bytes(storage, s.blob(records), name)
    pointer = RawPointer(imported.blob, imported.sha256, imported.format).encode()
    return pipeline.process_pointer(storage, pointer, SETTINGS, clock=lambda: NOW)


def stored_rows(storage: Storage) -> list[dict[str, Any]]:
    return [d.row() for d in engine.stored_detections(storage, *EVERYTHING)]


def detection_alerts(storage: Storage) -> list[dict[str, Any]]:
    rows = outbox.rows(storage)
    return [json.loads(row["Payload"]) for row in rows if row["Type"].startswith(("mailbox.new", "tenant."))]


def days_of(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The records split into one blob per UTC day, in time order."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: r["CreationTime"]):
        by_day.setdefault(record["CreationTime"][:10], []).append(record)
    return list(by_day.values())


def test_blobs_processed_in_time_order_store_the_detections_the_rules_give_in_memory(
    storage: Storage,
) -> None:
    records = history() + s.attack()
    for n, day in enumerate(days_of(records)):
        process(storage, day, f"day-{n}.json")
    expected = [d.row() for d in engine.detect(s.events(records), SETTINGS.detection)]
    assert stored_rows(storage) == expected
    assert [row["type"] for row in expected] == [rules.NEW_CONTEXT]
    assert expected[0]["context"]["country"]  # the embedded IP data names the attacker's country


def test_the_alert_names_the_new_dimensions_the_session_and_what_was_read(storage: Storage) -> None:
    process(storage, history(), "routine.json")
    reads, then_sync = s.attack()[:-1], s.attack()[-1:]
    first = process(storage, reads, "reads.json")
    later = process(storage, then_sync, "sync.json")
    assert [alert.type for alert in first.alerts] == [alert_rules.MAILBOX_NEW_CONTEXT]
    assert later.alerts == []  # the Sync grew the pending alert rather than raising another
    [payload] = detection_alerts(storage)
    details = payload["details"]
    assert payload["mailbox"] == s.ALICE
    assert payload["id"] == first.alerts[0].id
    assert details["new"][:4] == ["app", "client", "ip", "network"]
    assert details["sessionId"] == "s-evil"
    assert details["firstSeen"] == "2026-11-20T10:00:00Z"
    assert (details["records"], details["messages"], details["folders"]) == (5, 4, ["Inbox"])
    assert details["severity"] == "high"
    assert rules.R_SYNC in details["reasons"]
    alert = alert_rules.from_payload(payload)
    teams = json.loads(alert_rules.render(alert, "teams"))
    facts = teams["attachments"][0]["content"]["body"][2]["facts"]
    assert {"title": "context.app", "value": s.EVIL_APP_ID} in facts
    slack = json.loads(alert_rules.render(alert, "slack"))
    assert slack["text"].startswith(
        "Mailbox read in a new context: alice@contoso.com was read in a new context"
    )


def test_a_redelivered_blob_raises_nothing_and_changes_nothing(storage: Storage) -> None:
    process(storage, history(), "routine.json")
    attack = s.attack()
    first = process(storage, attack, "attack.json")
    rows, alerts = stored_rows(storage), detection_alerts(storage)
    again = process(storage, attack, "attack.json")
    assert len(first.alerts) == 1
    assert again.alerts == []
    assert stored_rows(storage) == rows
    assert detection_alerts(storage) == alerts


def test_an_older_blob_processed_later_is_judged_by_the_records_before_it_alone(storage: Storage) -> None:
    # The history arrives after the attack (a backfill of older content): the attack was judged
    # when the mailbox had no stored history, so nothing was raised, and the older records, each
    # judged by what precedes it, raise nothing either; the attack's redelivery is judged again,
    # now warm, and raises what live collection would have.
    attack = s.attack()
    process(storage, attack, "attack.json")
    process(storage, history(), "routine.json")
    assert stored_rows(storage) == []
    process(storage, attack, "attack.json")
    expected = [d.row() for d in engine.detect(s.events(history() + attack), SETTINGS.detection)]
    assert stored_rows(storage) == expected


def test_an_older_blob_processed_later_does_not_make_a_later_context_look_old(storage: Storage) -> None:
    # Alice's history, the attack, then a backfill of the day before the attack in which the
    # attacker's context already read her mail: the raised alert stays (its context was new to
    # everything stored when it was judged), the backfilled read is itself judged new (nothing
    # before it had that context) and is one more detection, on its own day.
    process(storage, history(), "routine.json")
    process(storage, s.attack(), "attack.json")
    earlier = s.graph_read(s.ATTACK_DAY - timedelta(hours=6), "evil-early")
    process(storage, [earlier], "backfill.json")
    rows = stored_rows(storage)
    assert [(row["firstRecordId"], row["firstSeen"]) for row in rows] == [
        ("evil-early", "2026-11-19T18:00:00Z"),
        ("evil-0", "2026-11-20T10:00:00Z"),
    ]
    in_memory = [
        d.row() for d in engine.detect(s.events([*history(), earlier, *s.attack()]), SETTINGS.detection)
    ]
    assert [row["firstRecordId"] for row in in_memory] == ["evil-early"]  # live order: one detection


def test_mass_access_across_blobs_is_one_alert(storage: Storage) -> None:
    start = s.ATTACK_DAY + timedelta(hours=3)
    harvest = [
        s.graph_read(
            start + timedelta(minutes=3 * n),
            f"h-{n}",
            f"user{n}@contoso.com",
            UserId="harvester-sp",
            SessionId="",
        )
        for n in range(12)
    ]
    process(storage, harvest[:6], "first.json")
    process(storage, harvest[6:], "second.json")
    process(storage, harvest[6:], "second.json")
    alerts = [a for a in detection_alerts(storage) if a["type"] == alert_rules.TENANT_MASS_ACCESS]
    assert sorted(a["details"]["new"][0] for a in alerts) == ["actor", "app", "ip"]
    app = next(a for a in alerts if a["details"]["new"] == ["app"])
    assert app["mailbox"] is None
    assert app["details"]["mailboxCount"] == 12
    assert app["details"]["firstRecordId"] == "h-9"
    expected = [d.row() for d in engine.detect(s.events(harvest), SETTINGS.detection)]
    assert stored_rows(storage) == expected


# --- what the baseline costs in requests (counted at the SDK's transport) ----------------------


def test_a_redelivered_blob_writes_no_baseline_row(azurite: str, storage: Storage) -> None:
    process(storage, history(), "routine.json")
    attack = s.attack()
    process(storage, attack, "attack.json")
    tally = RequestTally()
    process(counted_storage(azurite, tally), attack, "attack.json")
    assert DetectionBaselineTable.NAME not in tally.entities_written
    assert DetectionBaselineTable.NAME not in tally.entity_writes_failed
    assert stored_rows(storage) == [
        d.row() for d in engine.detect(s.events(history() + attack), SETTINGS.detection)
    ]


def test_the_tenant_rows_a_blob_touches_are_read_a_few_keys_to_a_query(
    azurite: str, storage: Storage
) -> None:
    start = s.ATTACK_DAY + timedelta(hours=3)
    harvest = [
        s.graph_read(
            start + timedelta(minutes=7 * n),
            f"h-{n}",
            f"user{n}@contoso.com",
            UserId="harvester-sp",
            SessionId=f"s-{n}",
        )
        for n in range(30)
    ]
    events = rules.ordered(s.events(harvest))
    tenant_keys = len(engine._window_ids(events, SETTINGS.detection.mass_window_minutes)) + len(
        engine._mass_alert_keys(events)
    )
    assert tenant_keys > 3 * KEYS_PER_QUERY  # each record names its own session
    tally = RequestTally()
    engine.load_state(counted_storage(azurite, tally), events, SETTINGS.detection)
    queries = tally.breakdown()["table"][DetectionBaselineTable.NAME]
    mailboxes = len({event.mailbox for event in events})  # one partition query each
    assert queries == {"GET": mailboxes + math.ceil(tenant_keys / KEYS_PER_QUERY)}


def test_a_blob_saving_after_another_changed_its_rows_merges_them_in_transactions_and_loses_nothing(
    azurite: str, storage: Storage
) -> None:
    morning = [mia_record(f"2026-11-18T09:{10 * n:02d}:00", f"m-{n}", s.ALICE) for n in range(3)]
    afternoon = [mia_record(f"2026-11-18T15:{10 * n:02d}:00", f"a-{n}", s.ALICE) for n in range(3)]
    events = rules.ordered(s.events(morning))
    state, loaded = engine.load_state(storage, events, SETTINGS.detection)
    process(storage, afternoon, "afternoon.json")  # another blob, meanwhile: the same rows, changed
    detector = rules.Detector(SETTINGS.detection, state, engine.ip_lookup(SETTINGS.detection.ip_databases))
    for event in events:
        detector.observe(event)
    tally = RequestTally()
    engine.save_state(counted_storage(azurite, tally).detection_baseline, state, loaded)

    table = tally.breakdown()["table"][DetectionBaselineTable.NAME]
    assert set(table) == {"POST $batch", "GET"}  # read again and merged in a transaction, not row by row
    stored = storage.detection_baseline.get(mailbox_partition(s.ALICE), sighting_key("ip", "203.0.113.10"))
    assert stored is not None
    assert json.loads(stored["Days"]) == {"20261118": ["090000", "152000"]}  # both blobs' reads

"""Alert rules, the outbox and delivery against real Azurite and a real receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import requests
from azure.data.tables import TableClient, TableServiceClient

from devtools.receiver import WebhookReceiver
from shared.alerts import checks, outbox, rules
from shared.ingest import pipeline
from shared.model import times
from shared.settings import AlertSettings, load_alert_settings
from shared.storage import CONTENT_QUEUE, POISON_QUEUE, RAW_CONTAINER, Storage, raw_store
from tests.records_factory import TENANT, mail_items_accessed, operation_properties

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret"
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


def settings_for(receiver: WebhookReceiver | None, **env: str) -> AlertSettings:
    base = {"TENANT_ID": TENANT, "ALERT_WEBHOOK_SECRET": SECRET}
    if receiver is not None:
        base["ALERT_WEBHOOK_URL"] = receiver.url
    return load_alert_settings({**base, **env})


def lagging(at: datetime = NOW, lag: float = 7) -> rules.Alert:
    return rules.make_alert(
        rules.COLLECTION_LAGGING, tenant=TENANT, triggered_at=at, detected_at=at, details={"lagHours": lag}
    )


def records_for(mailbox: str, count: int, start: datetime, prefix: str = "r", **fields: Any) -> list[Any]:
    return [
        mail_items_accessed(
            Id=f"{prefix}-{mailbox}-{i:05d}",
            MailboxOwnerUPN=mailbox,
            CreationTime=(start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%S"),
            **fields,
        )
        for i in range(count)
    ]


def import_records(storage: Storage, records: list[Any], name: str = "export.jsonl") -> pipeline.ImportResult:
    data = "\n".join(json.dumps(record) for record in records).encode()
    return pipeline.import_bytes(storage, data, name)


def outbox_types(storage: Storage) -> list[str]:
    return sorted(row["Type"] for row in outbox.rows(storage))


# --- delivery -----------------------------------------------------------------------------------


def test_a_delivered_alert_carries_a_signature_that_verifies_with_the_secret(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    alert = lagging()
    assert outbox.raise_alert(storage, alert, NOW)

    result = outbox.deliver_pending(storage, settings_for(receiver), FakeClock(NOW))

    assert result.delivered == [alert.id]
    [request] = receiver.received
    assert request.signature_ok is True
    timestamp = int(request.headers["X-Signature-Timestamp"])
    assert abs(timestamp - datetime.now(UTC).timestamp()) < 60  # signed when sent, not when raised
    assert request.headers["X-Signature-256"] == rules.signature(request.body, SECRET, timestamp)
    assert request.json() == alert.payload()
    [row] = outbox.rows(storage)
    assert row["State"] == "Delivered"
    assert row["Attempts"] == 1


def test_the_receiver_refuses_a_delivered_request_replayed_after_the_tolerance(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    outbox.raise_alert(storage, lagging(), NOW)
    outbox.deliver_pending(storage, settings_for(receiver), FakeClock(NOW))
    [original] = receiver.accepted()
    captured = {k: original.headers[k] for k in ("Content-Type", "X-Signature-256", "X-Signature-Timestamp")}

    fresh = requests.post(receiver.url, data=original.body, headers=captured, timeout=5)
    assert fresh.status_code == 200  # within five minutes the same request still verifies

    stale = datetime.now(UTC) - timedelta(minutes=6)
    replayed = rules.request_headers(original.body, SECRET, stale)  # a capture from 6 minutes ago
    assert requests.post(receiver.url, data=original.body, headers=replayed, timeout=5).status_code == 401
    body_only = {**captured, "X-Signature-256": "sha256=" + hmac.new(SECRET.encode(), original.body,
                                                                     hashlib.sha256).hexdigest()}  # fmt: skip
    assert requests.post(receiver.url, data=original.body, headers=body_only, timeout=5).status_code == 401


@pytest.mark.parametrize("fmt", ["json", "teams", "slack"])
def test_each_format_is_posted_as_its_own_body(storage: Storage, receiver: WebhookReceiver, fmt: str) -> None:
    alert = rules.throttled_alert(TENANT, "alice@contoso.com", NOW, "rec-1", NOW)
    outbox.raise_alert(storage, alert, NOW)

    outbox.deliver_pending(storage, settings_for(receiver, ALERT_WEBHOOK_FORMAT=fmt), FakeClock(NOW))

    [request] = receiver.accepted()
    assert request.body == rules.render(alert, fmt)
    body = request.json()
    if fmt == "json":
        assert body["type"] == "mailbox.throttled"
    elif fmt == "teams":
        assert body["attachments"][0]["content"]["type"] == "AdaptiveCard"
    else:
        assert body["text"].startswith("Mailbox audit throttled")
        assert body["blocks"]


def test_a_receiver_that_fails_then_recovers_gets_the_alert_once_after_backing_off(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    clock = FakeClock(NOW)
    settings = settings_for(receiver)
    alert = lagging()
    outbox.raise_alert(storage, alert, NOW)
    receiver.fail_next = 2

    assert outbox.deliver_pending(storage, settings, clock).failed == [alert.id]
    [row] = outbox.rows(storage)
    assert row["Attempts"] == 1
    assert row["NextAttemptAt"] == "2026-11-18T12:01:00Z"  # one minute
    assert row["LastError"] == "receiver answered HTTP 503"

    clock.advance(seconds=59)
    assert outbox.deliver_pending(storage, settings, clock).as_dict()["failed"] == 0  # not due yet
    assert len(receiver.received) == 1

    clock.advance(seconds=1)
    assert outbox.deliver_pending(storage, settings, clock).failed == [alert.id]
    assert outbox.rows(storage)[0]["NextAttemptAt"] == "2026-11-18T12:03:00Z"  # then two

    clock.advance(minutes=2)
    assert outbox.deliver_pending(storage, settings, clock).delivered == [alert.id]
    clock.advance(hours=2)
    assert outbox.deliver_pending(storage, settings, clock).delivered == []
    assert [r.status for r in receiver.received] == [503, 503, 200]
    assert receiver.accepted()[0].json()["id"] == alert.id


def test_a_receiver_down_for_an_hour_gets_every_alert_afterwards(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    clock = FakeClock(NOW)
    settings = settings_for(receiver)
    raised = [rules.throttled_alert(TENANT, f"user{i}@contoso.com", NOW, f"r{i}", NOW) for i in range(3)]
    for alert in raised:
        outbox.raise_alert(storage, alert, NOW)
    receiver.down = True
    while clock.now < NOW + timedelta(hours=1):  # the deliver_alerts timer, once a minute
        outbox.deliver_pending(storage, settings, clock)
        clock.advance(minutes=1)
    failures = len(receiver.received)
    assert failures <= 3 * 7  # backoff: 1, 2, 4 ... minutes, not 60 tries each
    assert not receiver.accepted()

    receiver.down = False
    for _ in range(61):  # within the one-hour cap, every alert is delivered
        outbox.deliver_pending(storage, settings, clock)
        clock.advance(minutes=1)

    assert sorted(r.json()["id"] for r in receiver.accepted()) == sorted(a.id for a in raised)
    assert all(row["State"] == "Delivered" for row in outbox.rows(storage))


def test_the_stored_error_names_no_url_token_or_secret(storage: Storage) -> None:
    # Nothing listens on this port: the connection is refused.
    with WebhookReceiver(secret=SECRET) as gone:
        url = gone.url + "?token=t0k3n"
    settings = load_alert_settings({"ALERT_WEBHOOK_URL": url, "ALERT_WEBHOOK_SECRET": SECRET})
    outbox.raise_alert(storage, lagging(), NOW)

    outbox.deliver_pending(storage, settings, FakeClock(NOW))

    [row] = outbox.rows(storage)
    assert row["LastError"] == "receiver unreachable: ConnectionError"
    assert "t0k3n" not in json.dumps(row, default=str)
    assert SECRET not in json.dumps(row, default=str)


def test_without_a_webhook_alerts_are_recorded_but_not_delivered(storage: Storage) -> None:
    outbox.raise_alert(storage, lagging(), NOW)

    result = outbox.deliver_pending(storage, settings_for(None), FakeClock(NOW))

    assert result.skipped
    assert [row["State"] for row in outbox.rows(storage)] == ["Pending"]


def test_an_alert_is_raised_once_per_window_and_again_the_next_day(storage: Storage) -> None:
    assert outbox.raise_alert(storage, lagging(NOW), NOW)
    assert not outbox.raise_alert(storage, lagging(NOW + timedelta(hours=11), lag=18), NOW)
    assert outbox.raise_alert(storage, lagging(NOW + timedelta(hours=12)), NOW)  # 00:00Z the next day
    assert len(outbox.rows(storage)) == 2
    first = json.loads(sorted(outbox.rows(storage), key=lambda r: r["DetectedAt"])[0]["Payload"])
    assert first["details"] == {"lagHours": 7}  # the first raise wins; a repeat changes nothing


# --- mailbox rules ------------------------------------------------------------------------------


def test_a_throttled_record_raises_mailbox_throttled_with_its_blind_window(storage: Storage) -> None:
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
    records = records_for("alice@contoso.com", 3, start)
    records.append(
        mail_items_accessed(
            Id="throttled-1",
            MailboxOwnerUPN="carol@contoso.com",
            CreationTime="2026-11-17T10:30:00",
            OperationProperties=operation_properties(throttled="True"),
        )
    )
    import_records(storage, records)

    [result] = pipeline.drain_queue(storage, alert_settings=settings_for(None))

    [alert] = result.alerts
    payload = alert.payload()
    assert payload["type"] == "mailbox.throttled"
    assert payload["mailbox"] == "carol@contoso.com"
    assert payload["tenant"] == TENANT
    assert payload["details"]["recordId"] == "throttled-1"
    assert payload["details"]["blindWindow"] == {"from": "2026-11-17T10:30:00Z", "to": "2026-11-18T10:30:00Z"}
    assert outbox_types(storage) == ["mailbox.throttled"]


def test_near_throttle_is_raised_when_distinct_records_in_24_hours_reach_the_threshold(
    storage: Storage,
) -> None:
    settings = settings_for(None, ALERT_NEAR_THROTTLE_THRESHOLD="5")
    start = datetime(2026, 11, 17, 8, 0, tzinfo=UTC)
    old = records_for("alice@contoso.com", 3, start - timedelta(days=2), prefix="old")  # outside 24 h
    import_records(storage, [*old, *records_for("alice@contoso.com", 4, start)], "first.jsonl")
    pipeline.drain_queue(storage, alert_settings=settings)
    assert outbox_types(storage) == []  # 4 in the trailing 24 hours (7 in all)

    import_records(storage, records_for("alice@contoso.com", 1, start + timedelta(hours=1), prefix="new"))
    [result] = pipeline.drain_queue(storage, alert_settings=settings)

    [alert] = result.alerts
    assert alert.type == "mailbox.near_throttle"
    assert alert.mailbox == "alice@contoso.com"
    assert alert.details["records"] == 5
    assert alert.details["threshold"] == 5
    assert alert.details["window"] == {"from": "2026-11-16T09:00:00Z", "to": "2026-11-17T09:00:00Z"}


def test_redelivery_duplicates_and_reimports_never_inflate_the_count(storage: Storage) -> None:
    settings = settings_for(None, ALERT_NEAR_THROTTLE_THRESHOLD="5")
    records = records_for("alice@contoso.com", 4, datetime(2026, 11, 17, 8, 0, tzinfo=UTC))
    records += records[:2]  # the same records twice in one file
    imported = import_records(storage, records)
    pointer = raw_store.RawPointer(imported.blob, imported.sha256, imported.format).encode()

    pipeline.process_pointer(storage, pointer, settings)
    pipeline.process_pointer(storage, pointer, settings)  # a redelivered message
    import_records(storage, records)  # the same file imported again
    import_records(storage, list(reversed(records)), "reordered.jsonl")  # and re-exported
    pipeline.drain_queue(storage, alert_settings=settings)

    assert checks.distinct_records(storage, "alice@contoso.com", datetime(2026, 11, 17, 9, tzinfo=UTC)) == 4
    assert outbox_types(storage) == []


def test_the_same_throttled_record_processed_again_raises_nothing_new(storage: Storage) -> None:
    records = [mail_items_accessed(OperationProperties=operation_properties(throttled="True"))]
    imported = import_records(storage, records)
    pointer = raw_store.RawPointer(imported.blob, imported.sha256, imported.format).encode()

    first = pipeline.process_pointer(storage, pointer, settings_for(None))
    again = pipeline.process_pointer(storage, pointer, settings_for(None))

    assert [a.type for a in first.alerts] == ["mailbox.throttled"]
    assert again.alerts == []
    assert len(outbox.rows(storage)) == 1


# --- the poison queue ---------------------------------------------------------------------------


def test_a_poison_message_raises_an_alert_stays_parked_and_is_replayed_after_the_fix(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    settings = settings_for(receiver)
    imported = import_records(storage, [mail_items_accessed()])
    blob = storage.blobs.get_blob_client(RAW_CONTAINER, imported.blob)
    evidence = blob.download_blob().readall()
    metadata = blob.get_blob_properties().metadata
    blob.delete_blob()  # the cause: the blob is missing

    assert pipeline.drain_queue(storage, alert_settings=settings) == []  # 5 attempts, then parked

    poison = storage.queues.get_queue_client(POISON_QUEUE)
    [parked] = list(poison.peek_messages())
    assert [r.json()["type"] for r in receiver.accepted()] == ["processing.poison"]
    details = receiver.accepted()[0].json()["details"]
    assert details["messageId"] == parked.id
    assert details["blob"] == imported.blob
    assert checks.scan_poison(storage, settings) == []  # peeked again: no second alert
    assert [m.id for m in poison.peek_messages()] == [parked.id]  # and the message is kept

    blob.upload_blob(evidence, metadata=metadata)  # the fix: the evidence is back
    assert checks.replay_poison(storage) == 1

    assert list(poison.peek_messages()) == []
    [moved] = list(storage.queues.get_queue_client(CONTENT_QUEUE).peek_messages())
    assert moved.content == parked.content  # the same body
    [result] = pipeline.drain_queue(storage, alert_settings=settings)
    assert result.rows == 1


def test_mia_replay_poison_moves_parked_messages_back_and_mia_process_delivers_alerts(
    storage: Storage, azurite: str, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from mia import cli

    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET", SECRET)
    imported = import_records(
        storage, [mail_items_accessed(OperationProperties=operation_properties(throttled="True"))]
    )
    body = raw_store.RawPointer(imported.blob, imported.sha256, imported.format).encode()
    raw_store.content_queue(storage.queues, POISON_QUEUE).send_message(body)
    storage.queues.get_queue_client(CONTENT_QUEUE).clear_messages()

    assert cli.main(["replay-poison"]) == 0
    assert "moved 1 messages" in capsys.readouterr().out
    assert cli.main(["process"]) == 0

    assert "alert mailbox.throttled: alice@contoso.com" in capsys.readouterr().out
    assert [r.json()["type"] for r in receiver.accepted()] == ["mailbox.throttled"]
    assert list(storage.queues.get_queue_client(POISON_QUEUE).peek_messages()) == []


# --- retention and bounded scans ------------------------------------------------------------------


@dataclass
class QuerySpy:
    """Forwards to a real TableClient (Azurite answers every call) and notes which partitions
    each query reads and how many rows it yields. Not a mock."""

    table: TableClient
    partitions: list[str] = field(default_factory=list)
    yielded: int = 0

    def query_entities(self, query_filter: str, **kwargs: Any) -> Iterator[Any]:
        self.partitions.append(str((kwargs.get("parameters") or {}).get("pk", "<no partition key>")))
        for row in self.table.query_entities(query_filter, **kwargs):
            self.yielded += 1
            yield row

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@dataclass
class SpyTables:
    service: TableServiceClient
    spies: list[QuerySpy] = field(default_factory=list)

    def get_table_client(self, name: str) -> Any:
        spy = QuerySpy(self.service.get_table_client(name))
        self.spies.append(spy)
        return spy


def spied(storage: Storage) -> tuple[Storage, SpyTables]:
    tables = SpyTables(storage.tables)
    return Storage(storage.blobs, storage.queues, cast(TableServiceClient, tables)), tables


def delivered_rows_in(storage: Storage, partition: str) -> int:
    client = storage.alert_outbox.client
    rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
    return sum(1 for row in rows if row.get("State") == "Delivered")


def raise_many(storage: Storage, count: int, at: datetime) -> list[rules.Alert]:
    raised = [rules.throttled_alert(TENANT, f"user{i}@contoso.com", at, f"r{i}", at) for i in range(count)]
    for alert in raised:
        assert outbox.raise_alert(storage, alert, at)
    return raised


def test_delivered_alerts_are_kept_for_the_retention_then_removed_and_pending_ones_stay(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    clock = FakeClock(NOW)
    settings = settings_for(receiver, ALERT_RETENTION_DAYS="30")
    raised = raise_many(storage, 3, NOW)
    assert len(outbox.deliver_pending(storage, settings, clock).delivered) == 3

    clock.advance(days=29, hours=23)
    outbox.deliver_pending(storage, settings, clock)
    assert sorted(row["State"] for row in outbox.rows(storage)) == ["Delivered"] * 3
    assert not outbox.raise_alert(storage, raised[0], clock.now)  # still known: not raised again

    clock.advance(hours=2)  # past 30 days since delivery
    receiver.down = True
    stuck = lagging(clock.now)
    outbox.raise_alert(storage, stuck, clock.now)
    outbox.deliver_pending(storage, settings, clock)

    [row] = outbox.rows(storage)  # the delivered three are gone, the undelivered one stays
    assert row["RowKey"] == stuck.id
    assert row["State"] == "Pending"
    assert len(receiver.accepted()) == 3


def test_the_due_scan_and_health_never_read_the_delivered_history(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    clock = FakeClock(NOW)
    settings = settings_for(receiver)
    raise_many(storage, 120, NOW)
    while outbox.deliver_pending(storage, settings, clock, limit=50).delivered:
        pass
    assert len(receiver.accepted()) == 120
    fresh = lagging(NOW)
    outbox.raise_alert(storage, fresh, NOW)
    clock.advance(minutes=1)

    watched, tables = spied(storage)
    result = outbox.deliver_pending(watched, settings, clock)
    summary = outbox.summary(watched)

    assert result.delivered == [fresh.id]
    read = {partition for spy in tables.spies for partition in spy.partitions}
    assert read  # the scans ran, against partitions that hold no delivered alert
    assert all(delivered_rows_in(storage, partition) == 0 for partition in read)
    assert sum(spy.yielded for spy in tables.spies) <= 2
    assert summary["pending"] == 0
    assert summary["lastDelivered"]["id"] == fresh.id


def test_alerts_of_the_one_partition_layout_are_moved_delivered_once_and_never_raised_again(
    storage: Storage, receiver: WebhookReceiver
) -> None:
    client = storage.alert_outbox.client
    old_pending = lagging(NOW)
    old_delivered = rules.throttled_alert(TENANT, "bob@contoso.com", NOW, "r", NOW)
    for alert, state in ((old_pending, "Pending"), (old_delivered, "Delivered")):
        row: dict[str, Any] = {"PartitionKey": "alert", "RowKey": alert.id, "Type": alert.type}
        row["Mailbox"] = alert.mailbox or ""
        row |= {"DetectedAt": times.iso_z(NOW), "Payload": json.dumps(alert.payload()), "State": state}
        row |= {"Attempts": int(state == "Delivered"), "NextAttemptAt": times.iso_z(NOW), "LastError": ""}
        row["DeliveredAt"] = times.iso_z(NOW) if state == "Delivered" else ""
        client.create_entity(row)
    assert not outbox.raise_alert(storage, old_delivered, NOW)  # known before it is moved

    outbox.deliver_pending(storage, settings_for(receiver), FakeClock(NOW))

    assert [r.json()["id"] for r in receiver.accepted()] == [old_pending.id]
    assert sorted((row["PartitionKey"], row["State"]) for row in outbox.rows(storage)) == [
        ("delivered", "Delivered"),
        ("delivered", "Delivered"),
    ]
    assert not outbox.raise_alert(storage, old_delivered, NOW)
    assert not outbox.raise_alert(storage, old_pending, NOW)
    assert outbox.summary(storage)["lastDelivered"]["id"] == old_pending.id  # the newest delivery

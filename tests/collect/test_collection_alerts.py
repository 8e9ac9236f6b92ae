"""Collection alerts against the simulated tenant over HTTPS, delivered to a real local receiver."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from devtools.receiver import WebhookReceiver
from shared.alerts import health, outbox
from shared.clients.auth import AuthFailed
from shared.clients.errors import TransientError
from shared.collect.collector import CollectionState, Collector
from shared.ingest import pipeline
from shared.settings import AlertSettings, load_alert_settings
from shared.storage import RAW_CONTAINER, Storage
from shared.storage.raw_store import RawPointer, content_queue
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.collect.test_collector import client_for, settings_for
from tests.helpers import WITHOUT_DETECTION

pytestmark = pytest.mark.integration

SECRET = "collection-secret"
UNKNOWN_TENANT = "0badc0de-0000-4000-8000-000000000000"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(seed=11, mailboxes=2, days=3, faults=FaultConfig.none())
    with Simulator(config) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


def process_queued_blob(storage: Storage, wanted: Callable[[str], bool]) -> pipeline.ProcessResult:
    """Process the one queued pointer whose blob name is wanted (the rest of the day is not needed)."""
    queue = content_queue(storage.queues)
    messages = list(queue.receive_messages(max_messages=10_000, messages_per_page=32, visibility_timeout=300))
    [message] = [m for m in messages if wanted(RawPointer.decode(m.content).blob)]
    return pipeline.process_pointer(storage, message.content, WITHOUT_DETECTION)


def alert_settings(sim: Simulator, receiver: WebhookReceiver, **env: str) -> AlertSettings:
    return load_alert_settings(
        {"TENANT_ID": sim.tenant_id, "ALERT_WEBHOOK_URL": receiver.url, "ALERT_WEBHOOK_SECRET": SECRET, **env}
    )


def delivered(receiver: WebhookReceiver) -> list[dict[str, object]]:
    assert all(r.signature_ok for r in receiver.received)
    return [r.json() for r in receiver.accepted()]


def test_a_collection_gap_raises_collection_gap_delivered_at_the_end_of_the_run(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    state = CollectionState(storage.collection_state, "Audit.Exchange")
    now = datetime.now(UTC)
    state.save_checkpoint(now - timedelta(days=9), now)

    result = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()

    assert result.gap is not None
    [alert] = [a for a in delivered(receiver) if "from" in a["details"]]  # type: ignore[operator]
    assert alert["type"] == "collection.gap"
    assert alert["tenant"] == sim.tenant_id
    assert alert["mailbox"] is None
    details = alert["details"]
    assert isinstance(details, dict)
    assert (details["from"], details["to"]) == result.gap
    assert details["contentType"] == "Audit.Exchange"


def test_a_checkpoint_more_than_the_lag_setting_behind_raises_collection_lagging(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    state = CollectionState(storage.collection_state, "Audit.Exchange")
    now = datetime.now(UTC)
    state.save_checkpoint(now - timedelta(hours=10), now - timedelta(hours=10))
    spent = iter([0.0, *[float(settings.time_budget_seconds)] * 10_000])  # the budget is gone at once

    result = Collector(
        storage,
        client_for(settings),
        settings,
        monotonic=lambda: next(spent),
        alert_settings=alert_settings(sim, receiver, ALERT_LAG_HOURS="6"),
    ).run()

    assert not result.caught_up
    [alert] = delivered(receiver)
    assert alert["type"] == "collection.lagging"
    details = alert["details"]
    assert isinstance(details, dict)
    assert details["thresholdHours"] == 6
    assert 9.9 < float(str(details["lagHours"])) < 10.5
    # Within the same day, a run that still lags raises nothing new.
    Collector(storage, client_for(settings), settings, monotonic=lambda: next(spent),
              alert_settings=alert_settings(sim, receiver)).run()  # fmt: skip
    assert len(outbox.rows(storage)) == 1


def test_every_blob_listed_but_expired_reaches_the_webhook_as_its_own_collection_gap(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    result = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()
    assert result.caught_up
    expired = {blob.content_id for blob in sim.tenant.blobs if blob.expiration <= datetime.now(UTC)}
    assert len(expired) >= 2  # the simulator serves some content expired (AF20051), on one day
    assert set(result.gone) == expired

    losses = delivered(receiver)  # one alert per lost blob, each naming its own content
    assert len(losses) == len(expired)
    assert all(alert["type"] == "collection.gap" for alert in losses)
    details = [alert["details"] for alert in losses]
    assert all(isinstance(d, dict) and d["reason"] == "AF20051" for d in details)
    assert {d["contentId"] for d in details if isinstance(d, dict)} == expired
    assert len({alert["id"] for alert in losses}) == len(expired)
    again = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()
    assert again.caught_up
    assert len(receiver.received) == len(expired)  # a loss already reported is not reported again


def test_two_gaps_on_one_day_reach_the_webhook_as_two_alerts(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    state = CollectionState(storage.collection_state, "Audit.Exchange")
    gaps = []
    for days in (9, 12):  # the checkpoint is set back twice (a restored table, say)
        now = datetime.now(UTC)
        state.save_checkpoint(now - timedelta(days=days), now)
        run = Collector(storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver))
        gaps.append(run.run().gap)

    reported = [a["details"] for a in delivered(receiver) if a["type"] == "collection.gap"]
    spans = [(d["from"], d["to"]) for d in reported if isinstance(d, dict) and "from" in d]
    assert spans == gaps
    assert len(state.gaps()) == 2


@pytest.mark.parametrize(
    ("override", "fix_names"),
    [
        pytest.param({"CLIENT_SECRET": "not-the-secret"}, ["CLIENT_ID", "admin consent"], id="wrong-secret"),
        pytest.param({"TENANT_ID": UNKNOWN_TENANT}, ["TENANT_ID"], id="unknown-tenant"),
    ],
)
def test_a_refused_token_raises_collection_auth_failed_with_the_fix_then_the_error(
    storage: Storage,
    sim: Simulator,
    receiver: WebhookReceiver,
    override: dict[str, str],
    fix_names: list[str],
) -> None:
    settings = settings_for(sim, **override)

    with pytest.raises(AuthFailed):
        Collector(storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)).run()

    [alert] = delivered(receiver)
    assert alert["type"] == "collection.auth_failed"
    details = alert["details"]
    assert isinstance(details, dict)
    for name in fix_names:
        assert name in str(details["message"])
    assert "not-the-secret" not in json.dumps(alert)


def test_collection_then_processing_of_the_simulated_tenant_reports_the_throttled_mailbox(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    alerts_settings = alert_settings(sim, receiver)
    Collector(storage, client_for(settings), settings, alert_settings=alerts_settings).run()

    pipeline.drain_queue(
        storage, alert_settings=replace(alerts_settings, detection=WITHOUT_DETECTION.detection)
    )

    throttled = [a for a in delivered(receiver) if a["type"] == "mailbox.throttled"]
    assert throttled
    assert {a["mailbox"] for a in throttled} == {sim.throttled_mailbox}


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


def test_an_unreachable_token_endpoint_is_retried_and_never_reported_as_a_permission_problem(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    authority = f"https://127.0.0.1:{_closed_port()}"
    settings = settings_for(sim, LOGIN_AUTHORITY=authority, COLLECT_MAX_ATTEMPTS="3")

    with (
        caplog.at_level(logging.DEBUG, logger="shared.clients.transport"),
        pytest.raises(TransientError) as caught,
    ):
        Collector(storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)).run()

    assert caught.value.code == "token_unavailable"
    assert "token endpoint unreachable" in str(caught.value)
    retries = [r for r in caplog.records if "retrying after" in r.getMessage()]
    assert len(retries) == 2  # three attempts in all, each retry at DEBUG
    assert all("token endpoint unreachable" in r.getMessage() for r in retries)
    assert {r.levelno for r in retries} == {logging.DEBUG}
    [gave_up] = [r for r in caplog.records if r.levelno == logging.WARNING and "giving up" in r.getMessage()]
    assert "after 3 attempts" in gave_up.getMessage()
    assert [row["Type"] for row in outbox.rows(storage)] == []  # no collection.auth_failed
    assert "ActivityFeed.Read" not in caplog.text
    assert sim.stats()["tokens_issued"] == 0


def unparseable_body(original: bytes) -> bytes:
    """The blob's own records, then one that is whole JSON text no strict parser accepts: a lone
    surrogate escape, a number too large for a double, and nesting 2,000 deep."""
    assert original.endswith(b"]")
    deep = b"[" * 2000 + b"]" * 2000
    head = b'{"Id":"damaged","Operation":"MailItemsAccessed","Note":"\\ud800","Size":1e400,"Deep":'
    bad = head + deep + b"}"
    return original[:-1] + b"," + bad + b"]"


def test_a_blob_served_whole_but_not_valid_json_is_stored_as_served_alerted_and_passed(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    now = datetime.now(UTC)
    blob = next(b for b in sim.tenant.blobs if b.expiration > now and not b.late and b.created < now)
    damaged = unparseable_body(blob.body)
    sim.serve_body(blob.content_id, damaged)

    result = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()

    assert result.caught_up
    assert result.unparseable == [blob.content_id]
    state = CollectionState(storage.collection_state, "Audit.Exchange")
    checkpoint = state.checkpoint()
    assert checkpoint is not None
    assert checkpoint > blob.created
    [row] = state.unparseable()
    assert row["ContentId"] == blob.content_id
    assert "invalid JSON" in row["Error"]
    stored = storage.blobs.get_blob_client(RAW_CONTAINER, row["Blob"])
    assert gzip.decompress(stored.download_blob().readall()) == damaged  # byte for byte
    metadata = stored.get_blob_properties().metadata
    assert metadata["parseable"] == "false"
    assert metadata["sha256"] == row["Sha256"] == hashlib.sha256(damaged).hexdigest()
    assert health.collection_state(storage, datetime.now(UTC))["Audit.Exchange"]["unparseable"] == 1

    [alert] = [a for a in delivered(receiver) if a["type"] == "collection.unparseable"]
    details = alert["details"]
    assert isinstance(details, dict)
    assert details["contentId"] == blob.content_id
    assert details["blob"] == row["Blob"]
    again = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()
    assert again.unparseable == []  # passed for good, raised once
    assert again.stored == 0
    assert len([a for a in delivered(receiver) if a["type"] == "collection.unparseable"]) == 1

    salvaged = process_queued_blob(storage, lambda name: name == row["Blob"])
    assert salvaged.stats.malformed == 1  # the damaged record, counted, never silently dropped
    assert salvaged.stats.records == len(blob.record_ids) + 1  # every record before it is kept


def test_a_whole_blob_with_a_lone_surrogate_is_collected_as_parseable_and_read_entirely(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    """Only what no reader can read is unparseable: a lone surrogate escape is repaired text."""
    settings = settings_for(sim)
    now = datetime.now(UTC)
    blob = next(b for b in sim.tenant.blobs if b.expiration > now and not b.late and b.created < now)
    odd = b'{"Id":"odd","Operation":"MailItemsAccessed","Note":"\\ud800"}'
    sim.serve_body(blob.content_id, blob.body[:-1] + b"," + odd + b"]")

    result = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()

    assert result.unparseable == []
    assert [a for a in delivered(receiver) if a["type"] == "collection.unparseable"] == []
    processed = process_queued_blob(storage, lambda name: blob.content_id in name)
    assert processed.stats.records == len(blob.record_ids) + 1
    assert processed.stats.malformed == 1  # the odd record has no CreationTime: counted, not lost

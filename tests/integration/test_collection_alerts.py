"""Collection alerts against the simulated tenant over HTTPS, delivered to a real local receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devtools.receiver import WebhookReceiver
from shared import outbox, pipeline
from shared.auth import AuthFailed
from shared.collector import CollectionState, Collector
from shared.config import AlertSettings, load_alert_settings
from shared.storage import STATE_TABLE, Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.integration.test_collector import client_for, settings_for

SECRET = "collection-secret"
UNKNOWN_TENANT = "0badc0de-0000-4000-8000-000000000000"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(seed=11, mailboxes=8, days=3, faults=FaultConfig.none())
    with Simulator(config) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


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
    state = CollectionState(storage.tables.get_table_client(STATE_TABLE), "Audit.Exchange")
    now = datetime.now(UTC)
    state.save_checkpoint(now - timedelta(days=9), now)

    result = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()

    assert result.gap is not None
    [alert] = delivered(receiver)
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
    state = CollectionState(storage.tables.get_table_client(STATE_TABLE), "Audit.Exchange")
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


def test_content_listed_but_expired_raises_collection_gap_once_a_day(
    storage: Storage, sim: Simulator, receiver: WebhookReceiver
) -> None:
    settings = settings_for(sim)
    result = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()
    assert result.caught_up
    assert len(result.gone) >= 2  # the simulator serves some content expired (AF20051)

    [alert] = delivered(receiver)  # one per day however many are lost
    assert alert["type"] == "collection.gap"
    details = alert["details"]
    assert isinstance(details, dict)
    assert details["contentId"] in result.gone
    assert details["reason"] == "AF20051"
    again = Collector(
        storage, client_for(settings), settings, alert_settings=alert_settings(sim, receiver)
    ).run()
    assert again.caught_up
    assert len(receiver.received) == 1


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

    pipeline.drain_queue(storage, alert_settings=alerts_settings)

    throttled = [a for a in delivered(receiver) if a["type"] == "mailbox.throttled"]
    assert throttled
    assert {a["mailbox"] for a in throttled} == {sim.throttled_mailbox}

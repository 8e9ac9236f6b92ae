"""health_http, deliver_alerts, watch_poison and enrich_trace's alerts, through the real
`app.get_functions()` handlers with real azure.functions objects against Azurite."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from devtools.receiver import WebhookReceiver
from shared import runtime
from shared.alerts import outbox, rules
from shared.collect.collector import CollectionState
from shared.ingest import pipeline
from shared.settings import SettingsError
from shared.storage import POISON_QUEUE, Storage, raw_store
from tests.functions.helpers import registered_functions
from tests.records_factory import TENANT, mail_items_accessed, operation_properties

pytestmark = pytest.mark.functions

SECRET = "functions-secret"


def handler(name: str) -> Callable[..., Any]:
    return registered_functions()[name].get_user_function()


def _bindings(name: str) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = json.loads(registered_functions()[name].get_function_json())["bindings"]
    return bindings


def _timer() -> func.TimerRequest:
    return func.timer.TimerRequest(past_due=False)


def _get_health() -> func.HttpRequest:
    return func.HttpRequest(method="GET", url="/api/health", body=b"", params={}, route_params={})


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def alert_env(function_env: Storage, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Storage:
    monkeypatch.setenv("TENANT_ID", TENANT)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET", SECRET)
    runtime.reset()
    return function_env


def test_the_alert_functions_are_timers_and_health_is_a_function_level_get() -> None:
    assert _bindings("deliver_alerts")[0]["type"] == "timerTrigger"
    assert _bindings("deliver_alerts")[0]["schedule"] == "%DELIVER_SCHEDULE%"  # 50 */5 * * * * by default
    assert _bindings("watch_poison")[0]["type"] == "timerTrigger"
    trigger = next(b for b in _bindings("health_http") if b["type"] == "httpTrigger")
    assert trigger["route"] == "health"
    assert trigger["methods"] == ["GET"]
    assert trigger["authLevel"] == "FUNCTION"


def test_enrich_trace_raises_mailbox_throttled_and_sends_it_signed_at_once(
    alert_env: Storage, receiver: WebhookReceiver
) -> None:
    record = mail_items_accessed(OperationProperties=operation_properties(throttled="True"))
    imported = pipeline.import_bytes(alert_env, json.dumps(record).encode(), "throttled.jsonl")
    body = raw_store.RawPointer(imported.blob, imported.sha256, imported.format).encode().encode()

    handler("enrich_trace")(func.QueueMessage(id="m1", body=body, pop_receipt="r1"))
    # Sent by enrich_trace itself: deliver_alerts runs only every DELIVER_SCHEDULE (5 minutes).
    assert len(receiver.received) == 1
    handler("enrich_trace")(func.QueueMessage(id="m2", body=body, pop_receipt="r2"))  # redelivered
    handler("deliver_alerts")(_timer())

    [request] = receiver.received
    assert request.signature_ok
    payload = request.json()
    assert payload["type"] == "mailbox.throttled"
    assert payload["mailbox"] == "alice@contoso.com"
    assert payload["tenant"] == TENANT


def test_watch_poison_raises_processing_poison_and_leaves_the_message(alert_env: Storage) -> None:
    poison = raw_store.content_queue(alert_env.queues, POISON_QUEUE)
    poison.send_message('{"blob": "import/gone.gz", "sha256": "' + "0" * 64 + '", "format": "jsonl"}')

    handler("watch_poison")(_timer())
    handler("watch_poison")(_timer())

    [row] = outbox.rows(alert_env)
    assert row["Type"] == "processing.poison"
    assert json.loads(row["Payload"])["details"]["blob"] == "import/gone.gz"
    assert len(list(poison.peek_messages())) == 1


def test_health_http_reports_lag_fetch_queues_and_alerts(
    alert_env: Storage, receiver: WebhookReceiver
) -> None:
    now = datetime.now(UTC)
    state = CollectionState(alert_env.collection_state, "Audit.Exchange")
    state.save_checkpoint(now - timedelta(hours=8), now - timedelta(minutes=3))
    raw_store.content_queue(alert_env.queues, POISON_QUEUE).send_message("x")
    delivered = rules.make_alert(
        rules.COLLECTION_LAGGING, tenant=TENANT, triggered_at=now, detected_at=now, details={}
    )
    outbox.raise_alert(alert_env, delivered, now)
    outbox.deliver_pending(alert_env, runtime.settings().alerts)
    pending = rules.throttled_alert(TENANT, "bob@contoso.com", now, "r", now)
    outbox.raise_alert(alert_env, pending, now + timedelta(hours=1))  # not due yet

    response = handler("health_http")(_get_health())

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert body["status"] == "attention"
    exchange = body["collection"]["Audit.Exchange"]
    assert 479 < exchange["lagMinutes"] < 482
    assert body["lastSuccessfulFetch"] == exchange["lastSuccessfulFetch"]
    assert body["queues"] == {"depth": 0, "poisonDepth": 1, "subjectLookupsDepth": 0}
    assert body["alerts"]["pending"] == 1
    assert body["alerts"]["lastDelivered"]["id"] == delivered.id
    assert body["alerts"]["lastDelivered"]["type"] == "collection.lagging"
    assert body["alerts"]["webhookConfigured"] is True
    assert receiver.url not in response.get_body().decode()


def test_health_http_on_an_empty_deployment_says_nothing_is_collected_yet(function_env: Storage) -> None:
    body = json.loads(handler("health_http")(_get_health()).get_body())
    assert body["status"] == "attention"
    [unset, empty] = body["problems"]
    assert unset.startswith("collection is misconfigured: TENANT_ID is required")
    assert empty == "nothing collected yet"
    assert body["settings"]["alerts"] is None
    assert body["lastSuccessfulFetch"] is None
    # Without a tenant collection cannot run: the first function raised that, recorded (no webhook).
    assert body["alerts"] == {"pending": 1, "lastDelivered": None, "webhookConfigured": False}
    [row] = outbox.rows(function_env)
    assert row["Type"] == "collection.misconfigured"
    assert json.loads(row["Payload"])["details"]["error"] == unset.removeprefix(
        "collection is misconfigured: "
    )


SECRET_VALUE = "s3cr3t-client-value"


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        pytest.param({"COLLECT_CONCURRENCY": "lots"}, "COLLECT_CONCURRENCY", id="collection-only"),
        pytest.param({"TENANT_ID": "contoso"}, "TENANT_ID", id="shared-with-graph"),
        pytest.param({"CLIENT_SECRET": SECRET_VALUE}, "CLIENT_ID", id="secret-without-client"),
    ],
)
def test_a_bad_collection_setting_raises_collection_misconfigured_and_health_shows_it(
    alert_env: Storage,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    bad: dict[str, str],
    named: str,
) -> None:
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    fetch_audit = handler("fetch_audit")

    with pytest.raises(SettingsError, match=named):
        fetch_audit(_timer())
    with pytest.raises(SettingsError, match=named):
        fetch_audit(_timer())  # the next tick fails the same way and raises nothing new
    handler("deliver_alerts")(_timer())

    [request] = receiver.received
    assert request.signature_ok
    alert = request.json()
    assert alert["type"] == "collection.misconfigured"
    assert alert["mailbox"] is None
    assert named in alert["details"]["message"]
    assert "fix the function app setting" in alert["details"]["message"]
    response = handler("health_http")(_get_health())
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["status"] == "attention"
    [line] = [p for p in body["problems"] if p.startswith("collection is misconfigured: ")]
    assert named in line
    assert named in body["settings"]["collection"]
    assert body["alerts"]["lastDelivered"]["type"] == "collection.misconfigured"
    assert SECRET_VALUE not in request.body.decode() + response.get_body().decode()


def test_health_http_reports_bad_alert_settings_instead_of_failing(
    alert_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_FORMAT", "email")
    runtime.reset()

    response = handler("health_http")(_get_health())

    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert "ALERT_WEBHOOK_FORMAT" in body["settings"]["alerts"]
    prefix = "alert delivery is misconfigured: ALERT_WEBHOOK_FORMAT"
    assert any(line.startswith(prefix) for line in body["problems"])


def test_health_http_counts_conflicting_copies_of_records_as_a_problem(
    function_env: Storage, tmp_path: Any
) -> None:
    record = mail_items_accessed(Id="r1", CreationTime="2026-11-18T09:00:00")
    rewritten = {**record, "ClientIPAddress": "198.51.100.99"}
    for name, value in (("first.json", record), ("second.json", rewritten)):
        path = tmp_path / name
        path.write_text(json.dumps([value]), encoding="utf-8")
        pipeline.import_file(function_env, path)
        pipeline.drain_queue(function_env)

    body = json.loads(handler("health_http")(_get_health()).get_body())

    assert body["evidence"]["conflicts"] == 1
    assert body["evidence"]["atLeast"] is False
    assert any("1 records have a second copy with different content" in p for p in body["problems"])

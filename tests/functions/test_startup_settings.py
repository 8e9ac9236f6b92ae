"""Every setting is validated by the first function a worker runs, whatever it is: a collection
setting that does not validate raises collection.misconfigured at once, shows in /api/health and
stops fetch_audit alone. Driven through the real handlers with real azure.functions objects,
against Azurite and a real webhook receiver."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from devtools.receiver import WebhookReceiver
from shared import runtime
from shared.alerts import outbox
from shared.ingest import pipeline
from shared.settings import SettingsError
from shared.storage import Storage, raw_store
from tests.functions.helpers import get_request, health, timer_tick, user_function
from tests.records_factory import TENANT, mail_items_accessed

pytestmark = pytest.mark.functions

SECRET = "startup-secret"
MISCONFIGURED = "collection.misconfigured"


def _report_status() -> int:
    request = get_request("/api/reports/alice@contoso.com", {"mailbox": "alice@contoso.com"})
    status: int = user_function("report_http")(request).status_code
    return status


def _misconfigured_rows(storage: Storage) -> list[dict[str, Any]]:
    return [row for row in outbox.rows(storage) if row["Type"] == MISCONFIGURED]


def _startup_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("collection is misconfigured")
    ]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


@pytest.fixture
def host_env(function_env: Storage, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """A deployed app's settings: a tenant (managed identity), a signed webhook."""
    monkeypatch.setenv("TENANT_ID", TENANT)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET", SECRET)
    runtime.reset()
    return function_env


def _set(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    runtime.reset()  # a new worker


def _run_enrich_trace(storage: Storage) -> None:
    imported = pipeline.import_bytes(storage, json.dumps(mail_items_accessed()).encode(), "one.jsonl")
    body = raw_store.RawPointer(imported.blob, imported.sha256, imported.format).encode().encode()
    user_function("enrich_trace")(func.QueueMessage(id="m1", body=body, pop_receipt="r1"))
    assert len(list(storage.mailbox_access.client.list_entities())) == 1


def _run_first(name: str, storage: Storage) -> None:
    """Run `name` as a worker's first function, and check it did its own work."""
    if name == "health_http":
        assert health()["settings"]["collection"] is not None
    elif name == "report_http":
        assert _report_status() == 200
    elif name == "enrich_trace":
        _run_enrich_trace(storage)
    else:
        user_function(name)(timer_tick())


@pytest.mark.parametrize(
    "first",
    ["health_http", "report_http", "enrich_trace", "deliver_alerts", "watch_poison", "resolve_subjects"],
)
def test_the_first_function_of_any_kind_raises_collection_misconfigured_and_still_runs(
    host_env: Storage, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    _set(monkeypatch, {"COLLECT_CONCURRENCY": "lots"})

    _run_first(first, host_env)

    [request] = receiver.received  # delivered at once, not on the next fetch_audit tick
    assert request.signature_ok
    alert = request.json()
    assert alert["type"] == MISCONFIGURED
    assert alert["details"]["error"] == "COLLECT_CONCURRENCY must be an integer, got 'lots'"
    assert alert["tenant"] == TENANT


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param(
            {"COLLECT_CONCURRENCY": "65"}, "COLLECT_CONCURRENCY must be between 1 and 64", id="range"
        ),
        pytest.param(
            {"COLLECT_WINDOW_HOURS": "24"}, "COLLECT_WINDOW_HOURS must be between 1 and 23", id="window"
        ),
        pytest.param({"PUBLISHER_ID": "contoso"}, "PUBLISHER_ID must be a GUID", id="publisher"),
        pytest.param(
            {"MANAGEMENT_API_BASE": "http://manage"}, "MANAGEMENT_API_BASE must be an https://", id="url"
        ),
    ],
)
def test_a_bad_collection_setting_stops_fetch_audit_alone_and_health_shows_it(
    host_env: Storage,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    bad: dict[str, str],
    message: str,
) -> None:
    _set(monkeypatch, bad)

    body = health()
    assert _report_status() == 200
    user_function("watch_poison")(timer_tick())
    with pytest.raises(SettingsError, match="^" + re.escape(message)):
        user_function("fetch_audit")(timer_tick())

    assert body["status"] == "attention"
    assert body["settings"]["collection"].startswith(message)
    assert body["settings"]["alerts"] is None
    assert f"collection is misconfigured: {body['settings']['collection']}" in body["problems"]
    [request] = receiver.received
    assert request.json()["details"]["error"] == body["settings"]["collection"]
    assert len(_misconfigured_rows(host_env)) == 1


def test_the_start_up_check_runs_once_per_worker_and_alerts_once_a_day(
    host_env: Storage,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="shared.collect.collector")
    _set(monkeypatch, {"COLLECT_MAX_ATTEMPTS": "0"})

    health()
    _report_status()
    user_function("deliver_alerts")(timer_tick())
    assert len(_startup_log_lines(caplog)) == 1  # one worker, one check

    runtime.reset()  # a second worker the same day: checked again, nothing raised twice
    health()
    user_function("deliver_alerts")(timer_tick())

    assert len(_startup_log_lines(caplog)) == 2
    assert len(_misconfigured_rows(host_env)) == 1
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        pytest.param({"TENANT_ID": "contoso"}, "TENANT_ID must be a GUID", id="tenant"),
        pytest.param({"CLIENT_SECRET": "s3cr3t-value"}, "CLIENT_ID is required", id="secret-without-client"),
        pytest.param(
            {"M365_CLOUD": "mars"}, "M365_CLOUD must be one of commercial, gcc, gcchigh, dod", id="cloud"
        ),
    ],
)
def test_a_bad_setting_collection_shares_with_graph_is_alerted_at_start_up_too(
    host_env: Storage,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    bad: dict[str, str],
    named: str,
) -> None:
    _set(monkeypatch, bad)

    # Subject resolution needs the same setting, so reports fail as they always have (500, logged).
    assert _report_status() == 500

    [request] = receiver.received
    assert request.json()["type"] == MISCONFIGURED
    assert request.json()["details"]["error"].startswith(named)
    body = health()
    assert body["settings"]["collection"].startswith(named)
    with pytest.raises(SettingsError, match="^" + re.escape(named)):
        user_function("fetch_audit")(timer_tick())
    assert len(receiver.received) == 1
    assert "s3cr3t-value" not in request.body.decode() + json.dumps(body)


def test_valid_collection_settings_raise_nothing_at_start_up(
    host_env: Storage, receiver: WebhookReceiver
) -> None:
    body = health()
    assert _report_status() == 200
    user_function("deliver_alerts")(timer_tick())

    assert body["settings"] == {"collection": None, "alerts": None, "subjects": None}
    assert outbox.rows(host_env) == []
    assert receiver.received == []


def test_with_bad_alert_settings_health_shows_both_problems_and_nothing_is_raised(
    host_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, {"COLLECT_CONCURRENCY": "lots", "ALERT_WEBHOOK_FORMAT": "email"})

    body = health()

    assert body["settings"]["collection"] == "COLLECT_CONCURRENCY must be an integer, got 'lots'"
    assert body["settings"]["alerts"].startswith("ALERT_WEBHOOK_FORMAT must be one of json, teams, slack")
    assert outbox.rows(host_env) == []
    with pytest.raises(SettingsError, match=r"^ALERT_WEBHOOK_FORMAT"):
        user_function("deliver_alerts")(timer_tick())


@pytest.mark.parametrize(
    ("function", "request_"),
    [
        ("report_http", get_request("/api/reports/alice@contoso.com", {"mailbox": "alice@contoso.com"})),
        ("scope_http", get_request("/api/scope?ip=203.0.113.7")),
        ("backfills_http", func.HttpRequest(method="POST", url="/api/backfills", body=b"{}", params={})),
    ],
)
def test_an_endpoint_whose_settings_do_not_load_answers_json_with_the_logged_correlation_id(
    function: str,
    request_: func.HttpRequest,
    function_env: Storage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REPORT_DEFAULT_DAYS", "a week")
    runtime.reset()

    with caplog.at_level(logging.ERROR, logger="shared.access.guard"):
        response = user_function(function)(request_)

    body = json.loads(response.get_body())
    correlation_id = response.headers["X-Correlation-Id"]
    assert response.status_code == 500
    assert body["error"]["code"] == "internal_error"
    assert correlation_id in body["error"]["message"]
    assert "a week" not in response.get_body().decode()
    [logged] = [record for record in caplog.records if "cannot start" in record.getMessage()]
    assert correlation_id in logged.getMessage()
    assert logged.exc_info is not None
    assert "REPORT_DEFAULT_DAYS" in str(logged.exc_info[1])

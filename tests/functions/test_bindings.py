"""The bindings contract the Functions host reads: names, triggers, queues, routes, auth levels."""

from __future__ import annotations

import inspect
import json
from typing import Any

import azure.functions as func
import pytest

from shared.ingest import pipeline
from shared.storage import CONTENT_QUEUE, POISON_QUEUE
from tests.functions.helpers import registered_functions
from tests.helpers import ROOT

pytestmark = pytest.mark.functions


def _function(name: str) -> func.Function:
    return registered_functions()[name]


def _bindings(name: str) -> list[dict[str, Any]]:
    bindings: list[dict[str, Any]] = json.loads(_function(name).get_function_json())["bindings"]
    return bindings


def test_the_design_function_names_are_registered_under_exactly_those_names() -> None:
    # get_functions() itself refuses duplicate names, so indexing succeeding proves uniqueness.
    functions = registered_functions()

    names = {
        "fetch_audit",
        "enrich_trace",
        "report_http",
        "health_http",
        "deliver_alerts",
        "watch_poison",
        "resolve_subjects",
        "scope_http",
        "advance_backfills",
        "backfills_http",
        "backfill_state_http",
    }
    assert functions.keys() == names
    for name in names:
        assert functions[name].get_user_function().__name__ == name


def test_the_app_can_be_indexed_repeatedly() -> None:
    assert registered_functions().keys() == registered_functions().keys()


def test_fetch_audit_is_a_timer_on_the_fetch_schedule_setting_not_run_on_startup() -> None:
    assert _bindings("fetch_audit") == [
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "%FETCH_SCHEDULE%",
            "runOnStartup": False,
            "useMonitor": True,
        }
    ]


def test_enrich_trace_is_a_queue_trigger_on_audit_content_through_azure_web_jobs_storage() -> None:
    bindings = _bindings("enrich_trace")

    assert bindings == [
        {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "message",
            "queueName": "audit-content",
            "connection": "AzureWebJobsStorage",
        }
    ]
    assert CONTENT_QUEUE == "audit-content"
    assert POISON_QUEUE == CONTENT_QUEUE + "-poison"  # what the host names the poison queue
    user_function = _function("enrich_trace").get_user_function()
    assert list(inspect.signature(user_function).parameters) == ["message"]


def test_scope_http_is_a_get_only_function_level_http_trigger_on_scope() -> None:
    bindings = _bindings("scope_http")
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")

    assert trigger == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": ["GET"],
        "authLevel": "FUNCTION",
        "route": "scope",
    }
    assert len(bindings) == 2


@pytest.mark.parametrize(
    ("name", "method", "route"),
    [("backfills_http", "POST", "backfills"), ("backfill_state_http", "GET", "backfills/{id}")],
)
def test_the_backfill_endpoints_are_function_level_http_triggers_one_method_each(
    name: str, method: str, route: str
) -> None:
    bindings = _bindings(name)
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")

    assert trigger == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": [method],
        "authLevel": "FUNCTION",
        "route": route,
    }
    assert len(bindings) == 2


def test_report_http_is_a_get_only_function_level_http_trigger_on_reports_mailbox() -> None:
    bindings = _bindings("report_http")
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")

    assert trigger == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": ["GET"],
        "authLevel": "FUNCTION",
        "route": "reports/{mailbox}",
    }
    assert {"direction": "OUT", "type": "http", "name": "$return"} in bindings
    assert len(bindings) == 2
    raw = _function("report_http").get_bindings_dict()["bindings"][0]
    assert raw["authLevel"] == func.AuthLevel.FUNCTION
    user_function = _function("report_http").get_user_function()
    assert list(inspect.signature(user_function).parameters) == ["req"]


@pytest.mark.parametrize("name", ["enrich_trace", "report_http"])
def test_functions_live_in_function_app_py_as_the_v2_model_requires(name: str) -> None:
    assert json.loads(_function(name).get_function_json())["scriptFile"] == "function_app.py"


def test_host_json_queue_settings_match_what_producers_and_drain_queue_assume() -> None:
    queues = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"]

    assert queues["maxDequeueCount"] == pipeline.MAX_DEQUEUE_COUNT
    # Producers write base64 (raw_store.content_queue; proven on the wire in test_raw_store).
    assert queues.get("messageEncoding", "base64") == "base64"


@pytest.mark.parametrize(
    ("name", "setting"),
    [
        ("deliver_alerts", "DELIVER_SCHEDULE"),
        ("watch_poison", "POISON_SCHEDULE"),
        ("resolve_subjects", "RESOLVE_SCHEDULE"),
        ("advance_backfills", "BACKFILL_SCHEDULE"),
    ],
)
def test_every_other_timer_runs_on_its_schedule_setting_not_run_on_startup(name: str, setting: str) -> None:
    # The host resolves %NAME% from the app settings
    # (https://learn.microsoft.com/azure/azure-functions/functions-bindings-expressions-patterns).
    [binding] = _bindings(name)
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == f"%{setting}%"
    assert binding["runOnStartup"] is False

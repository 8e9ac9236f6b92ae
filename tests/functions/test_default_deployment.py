"""A deployment with the template's defaults calls no Microsoft Graph: the default grant
(infra/grant-permissions.sh without --all-graph) gives the identity no Graph permission, so any
lookup would get 401/403 on every timer tick. The handlers run with the app settings the default
deployment of infra/main.bicep sets (tests/infra/deployment.py), against the simulator and Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from shared import runtime
from shared.model.message_info import Observed
from shared.storage import Storage
from shared.subjects import lookup_queue
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.functions.helpers import user_function
from tests.functions.test_report_http import request
from tests.functions.test_subject_resolution import queue_message
from tests.helpers import busiest_blobs
from tests.infra.deployment import deploy

pytestmark = pytest.mark.functions


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=7, mailboxes=3, days=2, faults=FaultConfig.none())) as simulator:
        yield simulator


def default_subject_settings() -> dict[str, str]:
    """RESOLVE_* as the default deployment sets them (ARM writes a bool as True/False)."""
    site = deploy().one("Microsoft.Web/sites")
    settings = {s["name"]: str(s["value"]) for s in site.properties["siteConfig"]["appSettings"]}
    return {name: value for name, value in settings.items() if name.startswith("RESOLVE_")}


def test_the_default_deployment_leaves_subjects_and_on_demand_lookups_off() -> None:
    settings = default_subject_settings()
    assert settings["RESOLVE_SUBJECTS"] == "off"
    assert settings["RESOLVE_ON_DEMAND"].lower() == "false"


def test_a_default_deployment_sends_no_request_to_graph_from_any_handler(
    function_env: Storage, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**sim.settings_env(), **default_subject_settings()}.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    mailbox = sim.attacker_mailbox
    # A lookup left on the queue from when subjects were on: the timer must not ask Graph for it.
    lookup_queue.enqueue(function_env, {mailbox: {"<left-over@contoso.com>": Observed()}})
    before: dict[str, Any] = sim.stats()["requests"]

    for blob in busiest_blobs(sim.tenant, mailbox, 3):
        user_function("enrich_trace")(queue_message(function_env, blob))
    user_function("resolve_subjects")(func.timer.TimerRequest(past_due=False))
    response = user_function("report_http")(
        request(mailbox, view="exposure", format="json", **{"from": "2026-01-01"})
    )

    assert response.status_code == 200, response.get_body()
    assert b"unresolved:not-looked-up" in response.get_body()  # what Graph would have answered
    assert sim.stats()["requests"] == before  # no Graph, no message trace, no token request

"""fetch_audit driven with a real TimerRequest against the simulator and Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.functions.timer import TimerRequest

from shared.ingest import pipeline
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.functions.helpers import user_function
from tests.helpers import WITHOUT_DETECTION

pytestmark = pytest.mark.functions


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=5, mailboxes=1, days=1, faults=FaultConfig.none())) as running:
        yield running


def test_a_timer_tick_collects_new_content_and_the_queue_it_fills_gives_the_served_rows(
    function_env: Storage, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**sim.settings_env("certificate"), "COLLECT_INITIAL_LOOKBACK_HOURS": "48"}.items():
        monkeypatch.setenv(name, value)
    fetch_audit = user_function("fetch_audit")
    sim.release_late_content()

    fetch_audit(TimerRequest(past_due=False))
    fetch_audit(TimerRequest(past_due=True))  # a second tick finds nothing new
    pipeline.drain_queue(function_env, alert_settings=WITHOUT_DETECTION)

    table = function_env.mailbox_access.client
    ids = [row["RecordId"] for row in table.list_entities(select=["RecordId"])]
    assert sorted(ids) == sim.ground_truth()["served"] == sim.ground_truth()["available"]


def test_a_tick_without_a_tenant_fails_naming_the_setting(function_env: Storage) -> None:
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="TENANT_ID"):
        user_function("fetch_audit")(TimerRequest(past_due=False))

"""advance_backfills driven as the host runs it (a real TimerRequest) against the simulator and
Azurite: the first run starts the BACKFILL_INITIAL_DAYS job, later runs resume it to the end, and
they run the jobs POST /api/backfills starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared import runtime
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.functions.helpers import timer_tick, user_function
from tests.functions.test_backfills_http import answer, get, post

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]


def test_the_first_run_starts_the_initial_job_and_later_runs_finish_it(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(seed=3, mailboxes=1, days=1, history_days=2, faults=FaultConfig.none())
    with Simulator(config) as sim:
        for name, value in {**sim.settings_env(), "BACKFILL_INITIAL_DAYS": "2"}.items():
            monkeypatch.setenv(name, value)
        advance = user_function("advance_backfills")
        advance(timer_tick())
        [job_id] = function_env.backfill_jobs.job_ids(("pending", "running", "done", "failed"))

        def state() -> str:
            job = function_env.backfill_jobs.job(job_id)
            return job.state if job is not None else "missing"

        for _ in range(5):
            if state() == "done":
                break
            advance(timer_tick())
        job = function_env.backfill_jobs.job(job_id)
        assert job is not None
        assert job.state == "done"
        assert job.as_dict()["records"] > 0
        advance(timer_tick())  # a job was created once: no second initial job
        assert function_env.backfill_jobs.job_ids(("pending", "running", "done", "failed")) == [job_id]


def test_without_the_api_in_the_cloud_the_timer_does_nothing(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("M365_CLOUD", "gcchigh")
    monkeypatch.setenv("TENANT_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("BACKFILL_INITIAL_DAYS", "30")
    user_function("advance_backfills")(timer_tick())
    assert function_env.backfill_jobs.job_ids(("pending", "running", "done", "failed")) == []


def test_a_posted_job_is_run_by_the_timer_and_get_then_answers_it_done_with_its_pages(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(seed=3, mailboxes=1, days=1, history_days=2, faults=FaultConfig.none())
    with Simulator(config) as sim:
        for name, value in sim.settings_env().items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        now = datetime.now(UTC).replace(microsecond=0)
        asked = {"from": (now - timedelta(days=2)).isoformat(), "to": now.isoformat()}
        job = answer(post(asked))
        advance = user_function("advance_backfills")
        for _ in range(5):
            advance(timer_tick())
            state = get(job["id"])
            if answer(state)["state"] == "done":
                break

    final = answer(state)
    assert final["state"] == "done"
    assert "Retry-After" not in state.headers
    assert final["pagesStored"] > 0
    assert final["records"] > 0
    assert final["queryIds"], "the state names the Graph queries that covered the windows"


def test_a_posted_workspace_job_is_run_by_the_timer_from_log_analytics(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimulatorConfig(seed=3, mailboxes=1, days=1, history_days=2, faults=FaultConfig.none())
    with Simulator(config) as sim:
        for name, value in {**sim.settings_env(), "LOG_ANALYTICS_ENDPOINT": sim.base_url}.items():
            monkeypatch.setenv(name, value)
        runtime.reset()
        now = datetime.now(UTC).replace(microsecond=0)
        window_start = now - timedelta(days=1)
        asked = {
            "from": (window_start - timedelta(days=3)).isoformat(),
            "to": window_start.isoformat(),
            "source": "sentinel",
            "workspace": sim.log_analytics_workspace_id,
        }
        job = answer(post(asked))
        user_function("advance_backfills")(timer_tick())
        state = answer(get(job["id"]))

    assert state["state"] == "done"
    assert state["records"] == len(sim.ground_truth()["history"]) > 0
    assert function_env.backfill_jobs.job_ids(("pending", "running", "done", "failed")) == [job["id"]]

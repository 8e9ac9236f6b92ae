"""Collection from the simulated Management Activity API into Azurite, end to end over HTTPS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.clients.activity_api import ActivityClient
from shared.clients.auth import MsalTokenProvider, token_provider
from shared.clients.errors import TransientError
from shared.collect.collector import CollectionState, Collector
from shared.ingest import pipeline
from shared.settings import CollectionSettings, load_collection_settings
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.helpers import WITHOUT_DETECTION, blob_names

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST_RETRIES = {
    "COLLECT_INITIAL_LOOKBACK_HOURS": "167",
    "COLLECT_MAX_BACKOFF_SECONDS": "1",
    "COLLECT_REQUEST_TIMEOUT_SECONDS": "2",
    "COLLECT_MAX_ATTEMPTS": "12",
    "COLLECT_MAX_REQUESTS_PER_MINUTE": "2000",
}


def settings_for(sim: Simulator, mode: str = "secret", **overrides: str) -> CollectionSettings:
    return load_collection_settings({**sim.settings_env(mode), **FAST_RETRIES, **overrides})


def client_for(settings: CollectionSettings) -> ActivityClient:
    return ActivityClient(settings, token_provider(settings.auth))


def stored_record_ids(storage: Storage) -> list[str]:
    table = storage.mailbox_access.client
    return [row["RecordId"] for row in table.list_entities(select=["RecordId"])]


def collect_until_caught_up(storage: Storage, settings: CollectionSettings, runs: int = 5) -> None:
    for _ in range(runs):
        if Collector(storage, client_for(settings), settings).run().caught_up:
            return
    pytest.fail(f"collection did not catch up in {runs} runs")


@pytest.fixture
def quiet_sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=11, mailboxes=2, days=3, faults=FaultConfig.none())) as sim:
        yield sim


def test_collection_stores_every_served_mailitemsaccessed_record_exactly_once(
    storage: Storage, quiet_sim: Simulator
) -> None:
    settings = settings_for(quiet_sim)
    collect_until_caught_up(storage, settings)
    quiet_sim.release_late_content()
    collect_until_caught_up(storage, settings)
    pipeline.drain_queue(storage, alert_settings=WITHOUT_DETECTION)

    ids = stored_record_ids(storage)
    truth = quiet_sim.ground_truth()
    assert len(ids) == len(set(ids))
    assert sorted(ids) == truth["served"]
    assert sorted(ids) == truth["available"]
    assert quiet_sim.stats()["requests_without_publisher_identifier"] == 0


def test_late_content_in_an_already_collected_window_is_picked_up_by_the_overlap(
    storage: Storage, quiet_sim: Simulator
) -> None:
    settings = settings_for(quiet_sim)
    first = Collector(storage, client_for(settings), settings).run()
    assert first.caught_up
    assert first.stored > 0
    quiet_sim.release_late_content()
    second = Collector(storage, client_for(settings), settings).run()
    late = [blob for blob in quiet_sim.tenant.blobs if blob.late]
    assert late
    assert second.stored == len(late)  # exactly the late blobs, listed in windows collected before
    third = Collector(storage, client_for(settings), settings).run()
    assert third.stored == 0
    assert third.listed == third.already_stored


def test_a_missing_subscription_is_started_and_a_repeated_start_is_success(
    storage: Storage, quiet_sim: Simulator
) -> None:
    settings = settings_for(quiet_sim)
    client = client_for(settings)
    assert client.ensure_subscription("Audit.Exchange") is True
    assert client.ensure_subscription("Audit.Exchange") is False
    client.start_subscription("Audit.Exchange")  # AF20024 from the service: already enabled


@pytest.mark.parametrize("mode", ["secret", "certificate"])
def test_tokens_come_from_msal_over_https_with_the_ca_bundle(quiet_sim: Simulator, mode: str) -> None:
    settings = settings_for(quiet_sim, mode)
    provider = MsalTokenProvider(settings.auth)
    token = provider.token(settings.management_scope)
    assert token.count(".") == 2  # a JWT
    assert provider.token(settings.management_scope) == token  # served from MSAL's cache


def test_a_backlog_older_than_seven_days_is_recorded_as_a_gap(storage: Storage, quiet_sim: Simulator) -> None:
    settings = settings_for(quiet_sim)
    state = CollectionState(storage.collection_state, "Audit.Exchange")
    now = datetime.now(UTC)
    state.save_checkpoint(now - timedelta(days=9), now)
    result = Collector(storage, client_for(settings), settings).run()
    assert result.gap is not None
    gaps = state.gaps()
    assert len(gaps) == 1
    gap_start = datetime.fromisoformat(gaps[0]["From"].replace("Z", "+00:00"))
    gap_end = datetime.fromisoformat(gaps[0]["To"].replace("Z", "+00:00"))
    assert abs(gap_start - (now - timedelta(days=9))) < timedelta(seconds=2)
    assert timedelta(days=6, hours=23) < now - gap_end < timedelta(days=7)
    assert result.caught_up  # and collection still covered everything the API still has


def test_a_run_that_spends_its_time_budget_keeps_its_checkpoint_and_the_next_run_finishes(
    storage: Storage, quiet_sim: Simulator
) -> None:
    settings = settings_for(quiet_sim, COLLECT_WINDOW_HOURS="6")
    ticks = iter(range(10_000))
    budget_clock = lambda: float(next(ticks)) * settings.time_budget_seconds / 3  # noqa: E731
    first = Collector(storage, client_for(settings), settings, monotonic=budget_clock).run()
    assert not first.caught_up
    state = CollectionState(storage.collection_state, "Audit.Exchange")
    saved = state.checkpoint()
    assert saved is not None
    assert saved < datetime.now(UTC) - timedelta(hours=1)
    collect_until_caught_up(storage, settings)
    quiet_sim.release_late_content()
    collect_until_caught_up(storage, settings)
    pipeline.drain_queue(storage, alert_settings=WITHOUT_DETECTION)
    assert sorted(stored_record_ids(storage)) == quiet_sim.ground_truth()["available"]


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_chaos_every_fault_and_a_killed_collector_still_store_the_ground_truth_exactly_once(
    storage: Storage, azurite: str
) -> None:
    config = SimulatorConfig(seed=23, mailboxes=3, days=3, faults=FaultConfig.all())
    with Simulator(config) as sim:
        env = {**os.environ, **sim.settings_env("secret"), **FAST_RETRIES, "AzureWebJobsStorage": azurite}
        env["COLLECT_CONCURRENCY"] = "4"
        mia = [sys.executable, "-m", "mia.cli", "collect"]
        victim = subprocess.Popen(mia, env=env, cwd=ROOT, start_new_session=True)
        assert _wait_for(lambda: sim.stats().get("blob_gets", 0) >= 10, timeout=60), "no blob fetched"
        os.killpg(victim.pid, signal.SIGKILL)  # a real kill, part-way through
        victim.wait()
        assert victim.returncode == -signal.SIGKILL

        for _ in range(6):
            if subprocess.run(mia, env=env, cwd=ROOT, check=False).returncode == 0:
                break
        else:
            pytest.fail("collection never caught up after the kill")
        sim.release_late_content()
        assert subprocess.run(mia, env=env, cwd=ROOT, check=False).returncode == 0
        pipeline.drain_queue(storage, alert_settings=WITHOUT_DETECTION)

        ids = stored_record_ids(storage)
        truth = sim.ground_truth()
        assert len(ids) == len(set(ids)), "a record was stored twice"
        assert sorted(ids) == truth["served"]
        assert set(truth["available"]) <= set(ids)
        stats = sim.stats()
        assert stats["requests_without_publisher_identifier"] == 0


def test_a_body_cut_short_differently_each_time_is_retried_never_stored_as_unparseable(
    storage: Storage,
) -> None:
    faults = FaultConfig(truncated_blob=1.0, expired_blobs=0, late_blobs=0)
    with Simulator(SimulatorConfig(seed=3, mailboxes=2, days=1, faults=faults)) as sim:
        settings = settings_for(
            sim, COLLECT_MAX_ATTEMPTS="3", COLLECT_INITIAL_LOOKBACK_HOURS="24", COLLECT_WINDOW_HOURS="1"
        )

        with pytest.raises(TransientError, match="truncated"):
            Collector(storage, client_for(settings), settings).run()

        state = CollectionState(storage.collection_state, "Audit.Exchange")
        checkpoint = state.checkpoint()
        first = min(blob.created for blob in sim.tenant.blobs)
        assert checkpoint is None or checkpoint <= first  # that window is retried, never passed
        assert state.unparseable() == []
        assert blob_names(storage) == []
        assert sim.stats()["faults"]["truncated_blob"] >= 3

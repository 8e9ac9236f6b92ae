"""Backfill from the simulated Log Analytics workspace (Sentinel's OfficeActivity) into Azurite, end
to end over HTTPS: every record once as a row, pages kept with their query, a stopped job resumed,
a refused workspace reported, and overlap with the Graph audit-log query backfill."""

from __future__ import annotations

import base64
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.backfill import sentinel
from shared.backfill.auditquery import AuditQueryBackfill
from shared.backfill.auditquery import start_job as start_audit_job
from shared.clients.audit_query import AuditQueryClient
from shared.clients.auth import token_provider
from shared.ingest import pipeline
from shared.parse import readers
from shared.settings import load_backfill_settings, load_sentinel_settings
from shared.storage import RAW_CONTAINER, Storage
from simulator import FaultConfig, Simulator, SimulatorConfig

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# The history (3 days before the Management API's 1-day window, NOW - 1 day) and no more: small.
START, END = NOW - timedelta(days=5), NOW - timedelta(days=1)
MAX_ROWS = 25  # the simulated workspace's result limit: a history day holds more, and is split


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        seed=3,
        mailboxes=1,
        days=1,
        history_days=3,
        now=NOW,
        faults=FaultConfig.none(),
        log_analytics_max_rows=MAX_ROWS,
    )
    with Simulator(config) as running:
        yield running


def runner(
    sim: Simulator, storage: Storage, monotonic: Callable[[], float] = time.monotonic
) -> sentinel.SentinelBackfill:
    settings = load_sentinel_settings({**sim.settings_env(), "LOG_ANALYTICS_ENDPOINT": sim.base_url})
    return sentinel.SentinelBackfill(storage, sentinel.client_for(settings), monotonic=monotonic)


def every_record_id(sim: Simulator) -> set[str]:
    """The MailItemsAccessed records of [START, END): the tenant's history."""
    history = set(sim.ground_truth()["history"])
    assert history
    return history


def stored_ids(storage: Storage) -> Counter[str]:
    return Counter(storage.mailbox_access.record_ids())


def test_a_job_stores_every_workspace_record_once_and_each_page_with_its_query(
    sim: Simulator, storage: Storage
) -> None:
    job, created = sentinel.start_job(
        storage.backfill_jobs, sim.log_analytics_workspace_id, START, END, now=NOW
    )
    progress = runner(sim, storage).advance(job.id)
    pipeline.drain_queue(storage)

    assert created
    assert progress.finished
    done = storage.backfill_jobs.job(job.id)
    assert done is not None
    assert (done.state, done.workspace, done.error_count) == ("done", sim.log_analytics_workspace_id, 0)
    ids = stored_ids(storage)
    assert set(ids) == every_record_id(sim)
    assert max(ids.values()) == 1, "no record is two rows"
    assert done.as_dict()["records"] == len(ids)
    container = storage.blobs.get_container_client(RAW_CONTAINER)
    blobs = list(
        container.list_blobs(name_starts_with=f"{sentinel.RAW_PREFIX}/{job.id}/", include=["metadata"])
    )
    assert len(blobs) == done.as_dict()["pagesStored"] > len(done.windows), "a day over the limit was split"
    for blob in blobs:
        assert blob.metadata["format"] == readers.SENTINEL_JSON
        query = base64.b64decode(blob.metadata["queryBase64"]).decode()
        assert query.startswith("OfficeActivity\n")
        assert blob.metadata["pageFrom"] in query.replace(".000000Z", "Z")


def test_the_same_request_is_the_same_job_and_another_workspace_is_another(storage: Storage) -> None:
    first, _ = sentinel.start_job(storage.backfill_jobs, "5D2C8A1E-6F3B-4C7D-9E0A-1B2C3D4E5F60", START, END)
    again, created = sentinel.start_job(
        storage.backfill_jobs, "5d2c8a1e-6f3b-4c7d-9e0a-1b2c3d4e5f60", START, END
    )
    other, _ = sentinel.start_job(storage.backfill_jobs, "11111111-6f3b-4c7d-9e0a-1b2c3d4e5f60", START, END)

    assert (again.id, created) == (first.id, False)
    assert other.id != first.id
    assert first.id.startswith("sentinel-")


def test_a_job_stopped_part_way_resumes_and_stores_every_record_once(
    sim: Simulator, storage: Storage
) -> None:
    job, _ = sentinel.start_job(storage.backfill_jobs, sim.log_analytics_workspace_id, START, END, now=NOW)
    # One tick a clock reading: the budget of 2.5 ticks lets two windows start, then the run stops.
    ticks = itertools.count()
    stopped = runner(sim, storage, lambda: float(next(ticks))).advance(job.id, budget_seconds=2.5)
    partial = storage.backfill_jobs.job(job.id)
    assert partial is not None
    assert stopped.stopped == "time budget spent"
    assert not stopped.finished
    assert partial.state == "running"
    assert sum(1 for w in partial.windows if w.state == "done") == 2

    resumed = runner(sim, storage).advance(job.id)
    pipeline.drain_queue(storage)

    assert resumed.finished
    ids = stored_ids(storage)
    assert set(ids) == every_record_id(sim)
    assert max(ids.values()) == 1


def test_a_workspace_the_service_does_not_know_fails_every_window_with_its_words(
    sim: Simulator, storage: Storage
) -> None:
    job, _ = sentinel.start_job(
        storage.backfill_jobs, "00000000-0000-0000-0000-000000000000", NOW - timedelta(days=2), NOW
    )
    progress = runner(sim, storage).advance(job.id)

    failed = storage.backfill_jobs.job(job.id)
    assert failed is not None
    assert progress.finished
    assert progress.failed_windows == 2
    assert failed.state == "failed"
    assert all(w.state == "failed" for w in failed.windows)
    assert failed.error_count == 2
    assert "WorkspaceNotFoundError" in failed.errors[0]
    assert storage.mailbox_access.record_ids() == []


def test_sentinel_and_audit_query_backfills_of_the_same_history_give_one_row_a_record(
    sim: Simulator, storage: Storage
) -> None:
    job, _ = sentinel.start_job(storage.backfill_jobs, sim.log_analytics_workspace_id, START, END, now=NOW)
    runner(sim, storage).advance(job.id)
    settings = load_backfill_settings(sim.settings_env())
    client = AuditQueryClient(settings.graph, token_provider(settings.graph.auth), page_size=100)
    audit, _ = start_audit_job(storage.backfill_jobs, START, END, window=timedelta(days=2))
    AuditQueryBackfill(storage, client, poll_seconds=0.05).advance(audit.id)
    pipeline.drain_queue(storage)

    ids = stored_ids(storage)
    assert set(ids) == every_record_id(sim)
    assert max(ids.values()) == 1, "a record both sources bring is one row"

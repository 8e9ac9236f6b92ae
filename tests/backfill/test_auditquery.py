"""Backfill from the simulated Graph audit-log query API into Azurite, end to end over HTTPS: resume
after a stop part-way, the record-count limit, failed queries, and overlap with collection."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.backfill.auditquery import AuditQueryBackfill, Progress, start_job
from shared.clients.audit_query import AuditQueryClient
from shared.clients.auth import token_provider
from shared.collect.collector import Collector
from shared.ingest import pipeline
from shared.settings import SettingsError, load_backfill_settings
from shared.storage import RAW_CONTAINER, Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.collect.test_collector import client_for, settings_for, stored_record_ids

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# The history (older than the simulated Management API window, NOW - 2 days) and no more: small.
START, END = NOW - timedelta(days=6), NOW - timedelta(days=2)


def sim_config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "seed": 3,
        "mailboxes": 1,
        "days": 2,
        "history_days": 3,
        "now": NOW,
        "faults": FaultConfig(expired_blobs=0, late_blobs=0, duplicate_rate=0.0),
    }
    return SimulatorConfig(**{**values, **overrides})


def backfill_for(sim: Simulator, storage: Storage, notes: list[str] | None = None) -> AuditQueryBackfill:
    settings = load_backfill_settings(sim.settings_env())
    client = AuditQueryClient(settings.graph, token_provider(settings.graph.auth), page_size=30)
    return AuditQueryBackfill(storage, client, poll_seconds=0.05, notify=(notes or []).append)


def run(
    sim: Simulator, storage: Storage, start: datetime = START, end: datetime = END, **limits: Any
) -> tuple[str, Progress]:
    job, _ = start_job(storage.backfill_jobs, start, end, window=timedelta(days=2))
    return job.id, backfill_for(sim, storage).advance(job.id, **limits)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config()) as running:
        yield running


def test_a_backfill_stopped_part_way_and_resumed_stores_every_record_once(
    sim: Simulator, storage: Storage
) -> None:
    _, spent = run(sim, storage, budget_seconds=0)
    assert spent.stopped == "time budget spent"
    assert spent.queries_created == 0
    job_id, first = run(sim, storage, max_pages=2)
    assert first.pages == 2
    assert not first.finished
    assert first.stopped
    job_id_again, second = run(sim, storage)  # the same request resumes the same job
    assert job_id_again == job_id
    assert second.finished
    pipeline.drain(storage)

    ids = stored_record_ids(storage)
    expected = sim.audit_log_ids(START, END)
    assert len(ids) == len(set(ids))
    assert sorted(ids) == expected
    assert set(sim.ground_truth()["history"]) <= set(ids)  # older than the Management API's window
    job = storage.backfill_jobs.job(job_id)
    assert job is not None
    assert job.state == "done"
    assert job.as_dict()["pagesStored"] == first.pages + second.pages


def test_pages_are_stored_byte_for_byte_under_the_backfill_prefix(sim: Simulator, storage: Storage) -> None:
    job_id, progress = run(sim, storage)
    assert progress.finished
    container = storage.blobs.get_container_client(RAW_CONTAINER)
    blobs = list(
        container.list_blobs(name_starts_with=f"backfill/auditquery/{job_id}/", include=["metadata"])
    )
    assert len(blobs) == progress.pages
    for blob in blobs:
        data = gzip.decompress(container.download_blob(blob.name).readall())
        assert hashlib.sha256(data).hexdigest() == blob.metadata["sha256"]
        assert blob.metadata["format"] == "graph-audit-query"
        assert blob.metadata["queryId"]


def test_the_record_count_limit_splits_the_window_until_every_record_is_stored(storage: Storage) -> None:
    with Simulator(sim_config(audit_query_record_limit=40)) as sim:
        job_id, progress = run(sim, storage)
        assert progress.finished
        assert progress.splits >= 2
        pipeline.drain(storage)
        assert sorted(stored_record_ids(storage)) == sim.audit_log_ids(START, END)
        job = storage.backfill_jobs.job(job_id)
        assert job is not None
        assert job.state == "done"
        assert all(w.records <= 40 for w in job.windows)


def test_a_failed_query_is_created_again(storage: Storage) -> None:
    with Simulator(sim_config(audit_query_failures=1, audit_query_throttle_burst=2)) as sim:
        job_id, progress = run(sim, storage)
        assert progress.finished
        assert progress.requeried == 1
        job = storage.backfill_jobs.job(job_id)
        assert job is not None
        assert job.state == "done"
        assert any("ended failed; creating it again" in error for error in job.errors)


def test_a_query_that_keeps_failing_is_reported_and_the_job_fails(storage: Storage) -> None:
    with Simulator(sim_config(audit_query_failures=100)) as sim:
        job_id, progress = run(sim, storage)
        assert progress.finished
        job = storage.backfill_jobs.job(job_id)
        assert job is not None
        assert job.state == "failed"
        failed = [w for w in job.windows if w.state == "failed"]
        assert failed
        assert all(w.attempts == 3 for w in failed)
        assert "gave up after 3 queries" in job.as_dict()["errors"][-1]


def test_backfill_and_collection_over_the_same_days_give_no_duplicates(
    sim: Simulator, storage: Storage
) -> None:
    settings = settings_for(sim)
    storage.collection_state.save_checkpoint(settings.content_type, NOW - timedelta(hours=6), NOW)
    assert Collector(storage, client_for(settings), settings, clock=lambda: NOW).run().caught_up
    run(sim, storage, NOW - timedelta(days=1), NOW)
    pipeline.drain(storage)

    ids = stored_record_ids(storage)
    truth = sim.ground_truth()
    assert truth["served"]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(set(truth["served"]) | set(truth["audit_query_served"]))
    assert not list(storage.record_conflicts.client.list_entities())


def test_gcc_high_and_dod_have_no_audit_query_api_and_the_error_names_the_other_sources() -> None:
    for cloud in ("gcchigh", "dod"):
        with pytest.raises(SettingsError, match="Sentinel"):
            load_backfill_settings(
                {"M365_CLOUD": cloud, "TENANT_ID": "0" * 8 + "-0000-0000-0000-" + "0" * 12}
            )


def test_a_tenant_whose_v1_endpoint_is_missing_is_backfilled_through_beta(storage: Storage) -> None:
    with Simulator(sim_config(audit_query_v1_missing=True)) as sim:
        job_id, progress = run(sim, storage, NOW - timedelta(days=4), NOW - timedelta(days=3))
        assert progress.finished
        job = storage.backfill_jobs.job(job_id)
        assert job is not None
        assert job.state == "done"
        assert {w.version for w in job.windows} == {"beta"}
        pipeline.drain(storage)
        assert sorted(stored_record_ids(storage)) == sim.audit_log_ids(
            NOW - timedelta(days=4), NOW - timedelta(days=3)
        )

"""shared/backfill/schedule.py, the timer's run of every source, against the simulator and
Azurite: a source that fails does not keep the other from its turn, and its failure is raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.backfill import schedule, sentinel
from shared.backfill.auditquery import start_job as start_audit_job
from shared.clients.errors import ApiAuthError
from shared.ingest import pipeline
from shared.settings import load_backfill_settings, load_sentinel_settings
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START, END = NOW - timedelta(days=4), NOW - timedelta(days=1)


def test_graph_refusing_the_audit_query_permission_leaves_the_workspace_jobs_their_turn(
    storage: Storage,
) -> None:
    config = SimulatorConfig(
        seed=3,
        mailboxes=1,
        days=1,
        history_days=3,
        now=NOW,
        faults=FaultConfig.none(),
        graph_roles=("Mail.ReadBasic.All",),  # no AuditLogsQuery-Exchange.Read.All: Graph says 403
    )
    with Simulator(config) as sim:
        env = {**sim.settings_env(), "LOG_ANALYTICS_ENDPOINT": sim.base_url}
        audit_job, _ = start_audit_job(storage.backfill_jobs, START, END, now=NOW)
        workspace_job, _ = sentinel.start_job(
            storage.backfill_jobs, sim.log_analytics_workspace_id, START, END, now=NOW
        )

        with pytest.raises(ApiAuthError):
            schedule.advance_all(storage, load_backfill_settings(env), load_sentinel_settings(env))
        pipeline.drain_queue(storage)

    done = storage.backfill_jobs.job(workspace_job.id)
    waiting = storage.backfill_jobs.job(audit_job.id)
    assert done is not None
    assert waiting is not None
    assert done.state == "done"
    assert done.as_dict()["records"] > 0
    assert waiting.state != "done"
    assert storage.mailbox_access.record_ids()

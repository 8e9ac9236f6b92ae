"""The simulator's Graph audit-log query API over real HTTPS: life cycle, filters, paging, the
record-count limit, concurrency and throttling, failed queries, and the tenant's history older than
the Management API's 7 days (docs/mailitemsaccessed.md#graph-audit-log-query)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from simulator import FaultConfig, Simulator, SimulatorConfig
from simulator.auditquery import audit_log_record
from simulator.tenant import TenantSpec, build_tenant
from tests.simulator.test_graph import token_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]

FIXTURE = Path(__file__).resolve().parents[2] / "simulator" / "fixtures" / "graph_audit_query_published.json"
NOW = datetime.fromisoformat("2026-11-20T12:00:00+00:00")


def config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "seed": 5,
        "mailboxes": 2,
        "days": 2,
        "history_days": 3,
        "now": NOW,
        "faults": FaultConfig.none(),
    }
    return SimulatorConfig(**{**values, **overrides})


class Queries:
    def __init__(self, sim: Simulator, version: str = "v1.0") -> None:
        self.sim = sim
        self.root = f"{sim.base_url}/{version}/security/auditLog/queries"
        self.headers = {"Authorization": f"Bearer {token_for(sim)}"}

    def create(self, start: datetime, end: datetime, **filters: Any) -> requests.Response:
        body = {
            "displayName": "test",
            "filterStartDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "filterEndDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recordTypeFilters": ["exchangeItemAggregated", "exchangeItem"],
            "operationFilters": ["MailItemsAccessed"],
            **filters,
        }
        return requests.post(
            self.root, json=body, headers=self.headers, verify=self.sim.ca_bundle, timeout=10
        )

    def get(self, url: str) -> requests.Response:
        return requests.get(url, headers=self.headers, verify=self.sim.ca_bundle, timeout=10)

    def wait(self, query_id: str) -> dict[str, Any]:
        for _ in range(100):
            body: dict[str, Any] = self.get(f"{self.root}/{query_id}").json()
            if body["status"] not in ("notStarted", "running"):
                return body
            time.sleep(0.05)
        raise AssertionError("the query never finished")

    def records(self, query_id: str) -> Iterator[dict[str, Any]]:
        url: str | None = f"{self.root}/{query_id}/records?$top=40"
        while url:
            page = self.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            yield from body["value"]
            url = body.get("@odata.nextLink")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(config()) as running:
        yield running


def test_history_leaves_the_management_api_window_unchanged_and_holds_the_attackers_first_access() -> None:
    spec = TenantSpec(seed=5, mailboxes=2, days=2, now=NOW)
    plain, with_history = build_tenant(spec), build_tenant(TenantSpec(**{**spec.__dict__, "history_days": 3}))
    assert plain.blobs == with_history.blobs
    assert plain.records == with_history.records
    assert plain.history == ()
    assert len(with_history.history) > 50
    window_start = NOW - timedelta(days=2)
    assert all(r["CreationTime"] < window_start.strftime("%Y-%m-%dT%H:%M:%S") for r in with_history.history)
    first = with_history.story.attacker_first_access
    assert first is not None
    assert first < window_start
    attacker_reads = [
        r for r in with_history.history if r["ClientIPAddress"].startswith(with_history.story.attacker_ip)
    ]
    assert attacker_reads
    assert all(r["MailboxOwnerUPN"] == with_history.story.attacker_mailbox for r in attacker_reads)


def test_a_query_runs_notstarted_running_succeeded_and_pages_every_matching_record_once(
    sim: Simulator,
) -> None:
    queries = Queries(sim)
    start, end = NOW - timedelta(days=6), NOW
    created = queries.create(start, end)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "notStarted"
    done = queries.wait(created.json()["id"])
    assert done["status"] == "succeeded"
    assert done["isRecordCountLimitExceeded"] is False
    records = list(queries.records(done["id"]))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == done["approximateReturnedRecordCount"]
    assert sorted(ids) == sim.audit_log_ids(start, end)
    truth = sim.ground_truth()
    assert set(truth["history"]) <= set(ids)
    assert truth["history"]
    assert set(truth["available"]) <= set(ids)  # what collection can fetch is in the audit log too
    assert eventually(lambda: set(ids) <= set(sim.ground_truth()["audit_query_served"]))
    assert sim.stats()["audit_query_mailitemsaccessed_served"] >= len(ids)
    assert {r["auditLogRecordType"] for r in records} <= {"ExchangeItemAggregated", "ExchangeItem"}
    assert all(r["auditData"]["Id"] == r["id"] for r in records)


def eventually(check: Any) -> bool:
    for _ in range(50):
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def test_user_principal_name_filters_match_the_acting_user_not_the_mailbox(sim: Simulator) -> None:
    queries = Queries(sim)
    story = sim.tenant.story
    created = queries.create(NOW - timedelta(days=6), NOW, userPrincipalNameFilters=[story.attacker_mailbox])
    records = list(queries.records(queries.wait(created.json()["id"])["id"]))
    assert records
    assert all(r["userPrincipalName"] == story.attacker_mailbox for r in records)
    delegate_reads = [
        r
        for r in sim.tenant.records
        if r["MailboxOwnerUPN"] == story.attacker_mailbox and r["UserId"] == story.delegate
    ]
    assert delegate_reads
    assert not {r["Id"] for r in delegate_reads} & {r["id"] for r in records}


def test_records_before_success_are_refused_and_a_bad_skiptoken_is_400(sim: Simulator) -> None:
    queries = Queries(sim)
    created = queries.create(NOW - timedelta(days=1), NOW).json()
    queries.wait(created["id"])
    assert queries.get(f"{queries.root}/{created['id']}/records?$skiptoken=forged.x").status_code == 400
    with Simulator(config(history_days=0, audit_query_start_s=30)) as slow:
        waiting = Queries(slow)
        pending = waiting.create(NOW - timedelta(days=1), NOW).json()
        assert waiting.get(f"{waiting.root}/{pending['id']}/records").status_code == 400


def test_the_record_count_limit_truncates_a_query_that_still_succeeds() -> None:
    with Simulator(config(audit_query_record_limit=25)) as sim:
        queries = Queries(sim)
        done = queries.wait(queries.create(NOW - timedelta(days=6), NOW).json()["id"])
        assert done["status"] == "succeeded"
        assert done["isRecordCountLimitExceeded"] is True
        assert done["approximateReturnedRecordCount"] > done["recordCountLimit"] == 25
        assert len(list(queries.records(done["id"]))) == 25


def test_concurrency_limit_throttle_burst_failed_queries_and_a_missing_v1() -> None:
    overrides = {
        "audit_query_concurrency": 1,
        "audit_query_throttle_burst": 1,
        "audit_query_failures": 1,
        "audit_query_run_s": 0.5,
        "audit_query_v1_missing": True,
    }
    with Simulator(config(**overrides)) as sim:
        assert Queries(sim).create(NOW - timedelta(days=1), NOW).status_code == 404
        queries = Queries(sim, "beta")
        burst = queries.create(NOW - timedelta(days=1), NOW)
        assert burst.status_code == 429
        assert burst.headers["Retry-After"] == "1"
        first = queries.create(NOW - timedelta(days=1), NOW)
        assert first.status_code == 201
        busy = queries.create(NOW - timedelta(days=1), NOW)
        assert busy.status_code == 429
        assert int(busy.headers["Retry-After"]) >= 1
        assert queries.wait(first.json()["id"])["status"] == "failed"
        second = queries.create(NOW - timedelta(days=1), NOW)
        assert second.status_code == 201
        assert queries.wait(second.json()["id"])["status"] == "succeeded"


def test_a_token_without_an_audit_log_role_is_403() -> None:
    with Simulator(config(graph_roles=("Mail.ReadBasic.All",))) as sim:
        assert Queries(sim).create(NOW - timedelta(days=1), NOW).status_code == 403


def test_queries_and_records_carry_every_published_key(sim: Simulator) -> None:
    published = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert set(published["records"]["value"][0]) <= set(audit_log_record(sim.tenant.records[0]))
    optional = {"keywordFilter", "serviceFilter"}  # echoed only when sent
    created = Queries(sim).create(NOW - timedelta(hours=1), NOW).json()
    assert set(published["query"]) - optional <= set(created)

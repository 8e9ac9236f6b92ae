"""The Log Analytics OfficeActivity window query, against the simulator's query API over HTTPS:
pages kept as received, split at the row limit, and read into the same events as the Management
API's copies of the same records."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests

from shared.clients.auth import MsalTokenProvider
from shared.clients.log_analytics import (
    SCOPE,
    LogAnalyticsClient,
    LogAnalyticsError,
    ProviderCredential,
    WindowPage,
    window_query,
)
from shared.ingest import pipeline
from shared.model.event import AccessEvent
from shared.parse import readers
from shared.parse.events import events_from_bytes
from shared.settings import load_collection_settings
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.helpers import full_scan

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]

MAX_ROWS = 400
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HISTORY_START = NOW - timedelta(days=2)


def _client(sim: Simulator) -> LogAnalyticsClient:
    provider = MsalTokenProvider(load_collection_settings(sim.settings_env()).auth)
    return LogAnalyticsClient(ProviderCredential(provider), endpoint=sim.base_url, ca_bundle=sim.ca_bundle)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(
        seed=11, mailboxes=1, days=1, faults=FaultConfig.none(), log_analytics_max_rows=MAX_ROWS, now=NOW
    )
    with Simulator(config) as running:
        yield running


@pytest.fixture(scope="module")
def history(sim: Simulator) -> list[WindowPage]:
    """Every page of the simulated tenant's whole history, queried once for the module."""
    end = sim.tenant.now + timedelta(seconds=1)
    client = _client(sim)
    try:
        return list(client.query_window(sim.log_analytics_workspace_id, HISTORY_START, end))
    finally:
        client.close()


def _events(data: bytes) -> list[AccessEvent]:
    return [
        replace(e, source_blob="", source_sha256="", source_index=None) for e in events_from_bytes(data, "x")
    ]


def test_the_pages_hold_the_same_events_as_the_management_api_records_but_the_missing_count(
    sim: Simulator, history: list[WindowPage]
) -> None:
    from_api = {e.record_id: e for e in _events(orjson.dumps(list(sim.tenant.records)))}
    from_workspace: dict[str, AccessEvent] = {}
    for page in history:
        assert readers.detect_format(page.body) == readers.SENTINEL_JSON
        for event in _events(page.body):
            assert event.record_id not in from_workspace  # no record twice across pages
            from_workspace[event.record_id] = event

    assert from_workspace.keys() == from_api.keys()
    for record_id, event in from_workspace.items():
        assert event.operation_count is None  # OfficeActivity has no column for it: left empty
        assert event == replace(from_api[record_id], operation_count=None)
    assert sim.stats()["log_analytics_rows"] >= len(from_workspace)


def test_a_window_over_the_row_limit_is_queried_in_halves_until_each_page_is_whole(
    sim: Simulator, history: list[WindowPage]
) -> None:
    assert len(history) > 1
    assert sim.stats()["errors"].get("PartialError", 0) >= 1
    assert (history[0].start, history[-1].end) == (HISTORY_START, sim.tenant.now + timedelta(seconds=1))
    for before, after in itertools.pairwise(history):
        assert before.end == after.start  # contiguous, in time order, nothing between
    for page in history:
        assert page.rows <= MAX_ROWS
        assert b'"error"' not in page.body  # only whole results are yielded
        assert page.query == window_query(page.start, page.end)


def test_a_page_stored_as_evidence_becomes_rows_with_its_query_in_the_blob_metadata(
    storage: Storage, history: list[WindowPage]
) -> None:
    page = min((page for page in history if page.rows), key=lambda page: page.rows)
    imported = pipeline.import_bytes(
        storage, page.body, f"log-analytics {page.workspace}", {"query": page.query}
    )
    [result] = pipeline.drain_queue(storage)

    assert imported.format == readers.SENTINEL_JSON
    assert (result.stats.events, result.inserted, result.stats.malformed) == (page.rows, page.rows, 0)
    blob = storage.blobs.get_blob_client("audit-raw", imported.blob).get_blob_properties()
    assert "OfficeActivity" in blob.metadata["query"]
    assert len(full_scan(storage.mailbox_access)) == page.rows


def test_only_our_query_with_a_log_analytics_token_is_answered(sim: Simulator) -> None:
    url = f"{sim.base_url}/v1/workspaces/{sim.log_analytics_workspace_id}/query"
    provider = MsalTokenProvider(load_collection_settings(sim.settings_env()).auth)
    good = {"Authorization": f"Bearer {provider.token(SCOPE)}"}
    graph = {"Authorization": f"Bearer {provider.token('https://graph.microsoft.com/.default')}"}

    other = requests.post(
        url, json={"query": "OfficeActivity | take 10"}, headers=good, verify=sim.ca_bundle, timeout=10
    )
    wrong_audience = requests.post(url, json={"query": "x"}, headers=graph, verify=sim.ca_bundle, timeout=10)
    elsewhere = requests.post(
        url.replace(sim.log_analytics_workspace_id, "00000000-0000-0000-0000-000000000000"),
        json={"query": "x"},
        headers=good,
        verify=sim.ca_bundle,
        timeout=10,
    )

    assert (other.status_code, other.json()["error"]["code"]) == (400, "BadArgumentError")
    assert (wrong_audience.status_code, wrong_audience.json()["error"]["code"]) == (401, "InvalidTokenError")
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (404, "WorkspaceNotFoundError")


def test_a_refused_query_raises_naming_what_the_service_said(sim: Simulator) -> None:
    client = _client(sim)
    start = sim.tenant.now - timedelta(hours=1)
    with pytest.raises(LogAnalyticsError, match="WorkspaceNotFound"):
        list(client.query_window("00000000-0000-0000-0000-000000000000", start, sim.tenant.now))
    client.close()


def test_a_throttled_query_is_retried_after_the_wait_the_service_gives() -> None:
    config = SimulatorConfig(
        seed=3,
        mailboxes=1,
        days=1,
        faults=FaultConfig.none(),
        log_analytics_requests_per_window=1,
        log_analytics_window_s=1.0,
    )
    with Simulator(config) as throttling:
        client = _client(throttling)
        end = throttling.tenant.now
        pages = [
            list(client.query_window(throttling.log_analytics_workspace_id, end - timedelta(hours=2), end))
            for _ in range(2)
        ]
        client.close()
        stats = throttling.stats()

    assert [len(found) for found in pages] == [1, 1]
    assert pages[0][0].body == pages[1][0].body
    assert stats["errors"]["ThrottledError"] >= 1
    assert stats["log_analytics_queries"] == 2

"""A collection run against the simulator and processing on Azurite, with the SDK's in-memory
reader and exporter as the providers: the counters the contract names, the span tree from
fetch_audit to enrich_trace through the pointer's traceparent, and no personal data in any
attribute."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from shared.alerts import checks
from shared.clients.activity_api import ActivityClient
from shared.clients.auth import token_provider
from shared.collect.collector import Collector, CollectResult
from shared.ingest import pipeline
from shared.settings import AlertSettings, load_collection_settings
from shared.storage import POISON_QUEUE, Storage
from shared.storage.raw_store import RawPointer, content_queue
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.telemetry.conftest import Attributes, Captured

pytestmark = pytest.mark.integration

# A day of one mailbox: a few blobs, each its own trace.
FAST = {"COLLECT_INITIAL_LOOKBACK_HOURS": "11", "COLLECT_MAX_BACKOFF_SECONDS": "1"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=5, mailboxes=1, days=1, faults=FaultConfig.none())) as running:
        yield running


def collect(storage: Storage, sim: Simulator) -> CollectResult:
    settings = load_collection_settings({**sim.settings_env("secret"), **FAST})
    return Collector(storage, ActivityClient(settings, token_provider(settings.auth)), settings).run()


def totals(points: list[tuple[Attributes, float]], key: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for attributes, value in points:
        found[str(attributes[key])] = found.get(str(attributes[key]), 0) + value
    return found


def test_a_run_records_the_contract_counters_and_one_trace_per_content_blob(
    storage: Storage, sim: Simulator, captured: Captured
) -> None:
    result = collect(storage, sim)
    queue = content_queue(storage.queues)
    queued_count = queue.get_queue_properties().approximate_message_count
    # A peek shows at most 32 messages (the Queue service's limit): their pointers stand for all.
    peeked = [RawPointer.decode(m.content) for m in queue.peek_messages(max_messages=32)]
    processed = pipeline.drain_queue(storage)
    checks.scan_poison(storage, AlertSettings())
    points = captured.points()

    assert result.caught_up
    assert result.stored > 0
    assert points["mia.collection.runs"] == [({"outcome": "success"}, 1)]
    fetched = {outcome: count for outcome, count in result.fetched().items() if count}
    assert totals(points["mia.content.fetched"], "outcome") == fetched
    assert points["mia.records.collected"] == [({"content_type": "Audit.Exchange"}, result.records)]
    [(lag_attributes, lag)] = points["mia.collection.lag"]
    assert lag_attributes == {"content_type": "Audit.Exchange"}
    assert 0 <= lag < 3600
    inserted = sum(one.inserted for one in processed)
    assert inserted > 0
    assert totals(points["mia.records.processed"], "outcome")["inserted"] == inserted
    requests = totals(points["mia.api.requests"], "api")
    assert set(requests) == {"management", "token"}
    assert requests["token"] >= 1  # MSAL's requests to the simulated login host
    assert requests["management"] >= result.stored + 1
    depths = {str(attributes["queue"]): value for attributes, value in points["mia.queue.depth"]}
    assert depths[POISON_QUEUE] == 0
    assert depths["audit-content"] == 0

    # fetch_audit > collect.window > content.store, and enrich_trace continuing each blob's trace.
    (run,) = captured.spans("fetch_audit")
    windows = captured.spans("collect.window")
    stores = captured.spans("content.store")
    enriched = captured.spans("enrich_trace")
    assert run.parent is None
    assert dict(run.attributes or {})["outcome"] == "success"
    assert windows
    assert all(w.parent is not None and w.parent.span_id == run.context.span_id for w in windows)
    window_ids = {w.context.span_id for w in windows}
    assert len(stores) == sum(fetched.values()) - fetched.get("already_stored", 0)
    assert all(s.parent is not None and s.parent.span_id in window_ids for s in stores)
    assert all(s.context.trace_id == run.context.trace_id for s in stores)
    assert queued_count == result.stored
    assert len(peeked) == min(32, result.stored)
    assert all(p.traceparent for p in peeked)
    store_ids = {s.context.span_id for s in stores if dict(s.attributes or {})["outcome"] == "stored"}
    assert len(store_ids) == result.stored
    assert len(enriched) == len(store_ids)
    assert {e.parent.span_id for e in enriched if e.parent is not None} == store_ids
    assert all(e.context.trace_id == run.context.trace_id for e in enriched)

    personal = personal_values(storage)
    assert personal  # a floor: the rows do hold mailboxes and IPs
    for value in attribute_values(captured, points):
        assert "@" not in value, value
        assert value not in personal, value
        assert not is_ip(value), value


def test_an_old_pointer_without_a_trace_context_is_processed_in_a_trace_of_its_own(
    storage: Storage, sim: Simulator, captured: Captured
) -> None:
    collect(storage, sim)
    queue = content_queue(storage.queues)
    pointers = [RawPointer.decode(m.content) for m in queue.receive_messages(max_messages=1)]
    old = pointers[0]
    body = RawPointer(old.blob, old.sha256, old.format).encode()
    assert "traceparent" not in body
    captured.reset()
    pipeline.process_pointer(storage, body)
    (enriched,) = captured.spans("enrich_trace")
    assert enriched.parent is None


def personal_values(storage: Storage) -> set[str]:
    rows = storage.mailbox_access.client.list_entities(select=["Mailbox", "ClientIP"])
    return {str(row[name]) for row in rows for name in ("Mailbox", "ClientIP") if row.get(name)}


def attribute_values(captured: Captured, points: dict[str, list[tuple[Attributes, float]]]) -> list[str]:
    values = [str(value) for span in captured.spans() for value in (span.attributes or {}).values()]
    values += [
        str(value) for found in points.values() for attributes, _ in found for value in attributes.values()
    ]
    assert values
    return values


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True

"""Subjects through the handlers: enrich_trace resolves as records arrive (RESOLVE_SUBJECTS), and
report_http looks up on demand what is missing, within its bounds. Simulator Graph + Azurite."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest

from shared import runtime
from shared.storage import LOOKUP_QUEUE, Storage, raw_store
from simulator import FaultConfig, Simulator, SimulatorConfig
from simulator.tenant import Blob
from tests.functions.helpers import user_function
from tests.functions.test_report_http import request
from tests.helpers import busiest_blobs, full_scan, stored_pointer

pytestmark = pytest.mark.functions

Handler = Callable[..., Any]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=5, mailboxes=3, days=2, faults=FaultConfig.none())) as simulator:
        yield simulator


def with_tenant(monkeypatch: pytest.MonkeyPatch, sim: Simulator, **settings: str) -> None:
    for name, value in {**sim.settings_env(), **settings}.items():
        monkeypatch.setenv(name, value)
    runtime.reset()


def queue_message(storage: Storage, blob: Blob) -> func.QueueMessage:
    return func.QueueMessage(id=blob.content_id, body=stored_pointer(storage, blob).encode(), pop_receipt="r")


def graph_calls(sim: Simulator) -> int:
    return int(sim.stats()["graph_requests"])


def concurrency_refusals(sim: Simulator) -> int:
    """Graph requests the simulator refused for a mailbox's concurrency limit, so far."""
    return int(sim.stats().get("faults", {}).get("graph_concurrency", 0))


def test_enrich_trace_queues_what_the_records_lack_and_resolve_subjects_answers_it_once(
    function_env: Storage, enrich_trace: Handler, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_tenant(monkeypatch, sim)
    resolve_subjects = user_function("resolve_subjects")
    messages = [
        queue_message(function_env, blob) for blob in busiest_blobs(sim.tenant, sim.attacker_mailbox, 3)
    ]
    calls, refusals = graph_calls(sim), concurrency_refusals(sim)

    for message in messages:
        enrich_trace(message)
    audit_only = full_scan(function_env.message_index)
    assert graph_calls(sim) == calls  # ingestion never waits on Graph
    resolve_subjects(func.timer.TimerRequest(past_due=False))
    index = full_scan(function_env.message_index)
    after, refused = graph_calls(sim), concurrency_refusals(sim) - refusals
    for message in messages:
        enrich_trace(message)  # redelivered
    resolve_subjects(func.timer.TimerRequest(past_due=False))

    assert {row["Source"] for row in audit_only} == {"audit"}
    assert {"audit", "graph"} <= {row["Source"] for row in index}
    looked_up = [row for row in index if row["Source"] != "audit"]
    # Batches of 20 across the three blobs. The simulator, like Graph, runs a batch's items at once
    # and refuses a mailbox's fifth concurrent one (429); each refused item may cost one more
    # request, so under load the count may exceed the batches by at most the refusals.
    batches = -(-len(looked_up) // 20)
    assert batches <= after - calls <= batches + refused
    assert refused or after - calls == batches
    for row in looked_up:
        meta = sim.message_meta(row["Mailbox"], row["InternetMessageId"])
        assert meta is not None
        assert row["Source"] in ("graph", "trace")
        assert (row["Subject"], row["Sender"]) == (meta.subject, meta.sender)
    assert graph_calls(sim) == after  # nothing looked up twice
    assert full_scan(function_env.message_index) == index
    assert raw_store.content_queue(function_env.queues, LOOKUP_QUEUE).peek_messages() == []


def exposure(report_http: Handler, mailbox: str) -> list[dict[str, Any]]:
    response = report_http(request(mailbox, view="exposure", format="json", **{"from": "2026-01-01"}))
    assert response.status_code == 200, response.get_body()
    rows: list[dict[str, Any]] = json.loads(response.get_body())
    return [row for row in rows if row["Kind"] == "Message"]


def test_a_report_resolves_on_demand_what_ingestion_left_and_stays_within_its_bounds(
    function_env: Storage,
    enrich_trace: Handler,
    report_http: Handler,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox = sim.attacker_mailbox
    with_tenant(monkeypatch, sim, RESOLVE_SUBJECTS="off", RESOLVE_ON_DEMAND="false")
    for blob in busiest_blobs(sim.tenant, mailbox, 12):
        enrich_trace(queue_message(function_env, blob))
    before = [r["SubjectSource"] for r in exposure(report_http, mailbox) if r["SubjectSource"] != "audit"]
    assert set(before) == {"unresolved:not-looked-up"}
    assert len(before) > 20, "the blob names more than one batch of messages without a subject"

    with_tenant(
        monkeypatch, sim, RESOLVE_SUBJECTS="off", RESOLVE_ON_DEMAND="true", RESOLVE_ON_DEMAND_MAX_REQUESTS="1"
    )
    calls = graph_calls(sim)
    first = exposure(report_http, mailbox)
    first_calls = graph_calls(sim) - calls
    second = exposure(report_http, mailbox)

    sources = [r["SubjectSource"] for r in first if r["SubjectSource"] != "audit"]
    assert first_calls == 1  # one $batch: the request bound
    assert set(sources) <= {"graph", "unresolved:deferred"}
    assert 0 < sources.count("graph") <= 20
    assert sources.count("unresolved:deferred") == len(before) - sources.count("graph")
    resolved_later = [r["SubjectSource"] for r in second].count("graph")
    assert resolved_later > sources.count("graph")  # the index kept the first answers
    for row in second:
        if row["SubjectSource"] == "graph":
            meta = sim.message_meta(mailbox, row["InternetMessageId"])
            assert meta is not None
            assert (row["Subject"], row["Sender"]) == (meta.subject, meta.sender)


def test_a_report_on_a_stalled_graph_returns_at_its_deadline_with_the_lookups_deferred(
    function_env: Storage, enrich_trace: Handler, report_http: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = FaultConfig(graph_batch_stall_s=120)  # every $batch answers two minutes late
    with Simulator(SimulatorConfig(seed=5, mailboxes=3, days=2, faults=stalled)) as slow:
        mailbox = slow.attacker_mailbox
        with_tenant(monkeypatch, slow, RESOLVE_SUBJECTS="off", RESOLVE_ON_DEMAND="false")
        for blob in busiest_blobs(slow.tenant, mailbox, 3):
            enrich_trace(queue_message(function_env, blob))
        with_tenant(
            monkeypatch, slow, RESOLVE_SUBJECTS="off", RESOLVE_ON_DEMAND="true", RESOLVE_ON_DEMAND_SECONDS="2"
        )
        started = time.monotonic()
        rows = exposure(report_http, mailbox)
        elapsed = time.monotonic() - started
        stats = slow.stats()

    # A behavioural check, not a performance one: before the deadline was honoured, one stalled
    # batch was retried for minutes (30 s timeouts, five attempts). 2 s of budget plus the report's
    # own work fits in 15 s with a wide margin on a slow machine.
    assert elapsed < 15.0
    assert stats["faults"]["graph_batch_stall"] == 1  # no batch started after the deadline
    sources = [row["SubjectSource"] for row in rows if row["SubjectSource"] != "audit"]
    assert sources
    assert set(sources) == {"unresolved:deferred"}
    assert [row for row in full_scan(function_env.message_index) if row["Source"] != "audit"] == []

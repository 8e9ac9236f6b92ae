"""Subject resolution against the simulator's Graph (HTTPS on loopback) and Azurite's MessageIndex:
the chain's order, batching, throttling, the trace's window rules, negative caching, and no
duplicate lookups under redelivery."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.alerts import outbox
from shared.clients.auth import token_provider
from shared.clients.graph_api import GraphClient
from shared.ingest import pipeline
from shared.model.event import AccessEvent, MessageRef
from shared.model.message_info import MessageInfo, Observed, observe
from shared.runtime import build_resolver
from shared.settings import ResolutionSettings, load_resolution_settings
from shared.storage import Storage
from shared.subjects import lookup_queue
from shared.subjects.resolver import MAX_ITEM_ATTEMPTS, SHORT_RETRY, Budget, ResolveStats, SubjectResolver
from shared.subjects.trace_search import TRACE_MARGIN, TRACE_RETENTION, TRACE_WINDOW, grid_windows
from simulator import FaultConfig, Simulator, SimulatorConfig
from simulator.records import MessageMeta
from tests.helpers import busiest_blobs, make_event, stored_pointer

pytestmark = pytest.mark.integration

ALICE = "alice@contoso.com"


def sim_config(**overrides: Any) -> SimulatorConfig:
    base: dict[str, Any] = {"seed": 5, "mailboxes": 3, "days": 2, "faults": FaultConfig.none()}
    return SimulatorConfig(**{**base, **overrides})


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(sim_config()) as simulator:
        yield simulator


def settings_for(sim: Simulator, **env: str) -> ResolutionSettings:
    return load_resolution_settings({**sim.settings_env(), **env})


def resolver_for(sim: Simulator, storage: Storage, **env: str) -> SubjectResolver:
    return build_resolver(storage, settings_for(sim, **env))


def messages(sim: Simulator, mailbox: str = ALICE, **wanted: Any) -> list[MessageMeta]:
    """The mailbox's messages with the given MessageMeta fields, in a stable order."""
    found = [
        meta
        for meta in sim.tenant.messages[mailbox].values()
        if all(getattr(meta, name) == value for name, value in wanted.items())
    ]
    return sorted(found, key=lambda meta: meta.internet_message_id)


def observed(metas: list[MessageMeta], accessed: datetime | None = None) -> dict[str, Observed]:
    return {meta.internet_message_id: Observed(size=meta.size, first_access=accessed) for meta in metas}


def graph_stats(sim: Simulator) -> dict[str, int]:
    stats = sim.stats()
    return {
        name: int(stats.get(name, 0)) for name in ("graph_requests", "graph_batch_items", "trace_requests")
    }


def index_of(storage: Storage, mailbox: str, ids: list[str]) -> dict[str, MessageInfo]:
    return storage.message_index.read(mailbox, ids)


def everything(mailbox: str) -> bool:
    return True


def test_graph_answers_in_batches_of_twenty_and_the_index_keeps_subject_sender_and_received(
    sim: Simulator, storage: Storage
) -> None:
    found = messages(sim, purged=False)[:45]
    resolver = resolver_for(sim, storage)

    answers = resolver.resolve({ALICE: observed(found)}, Budget(100, 60), everything)

    assert graph_stats(sim) == {"graph_requests": 3, "graph_batch_items": 45, "trace_requests": 0}
    for meta in found:
        info = answers[(ALICE, meta.internet_message_id)]
        assert (info.subject, info.sender, info.received, info.source) == (
            meta.subject,
            meta.sender,
            meta.received,
            "graph",
        )
        assert info.copies == meta.copies
    assert index_of(storage, ALICE, [m.internet_message_id for m in found]) == {
        m.internet_message_id: answers[(ALICE, m.internet_message_id)] for m in found
    }


def test_ids_with_plus_slash_and_equals_are_found(sim: Simulator, storage: Storage) -> None:
    awkward = [m for m in messages(sim, purged=False) if "+" in m.internet_message_id][:5]
    assert awkward, "the simulator gives some messages external-mail ids with '+'"

    answers = resolver_for(sim, storage).resolve({ALICE: observed(awkward)}, Budget(10, 30), everything)

    assert {info.source for info in answers.values()} == {"graph"}


def test_a_batch_mixes_mailboxes_and_the_chain_stops_at_the_first_answer(
    sim: Simulator, storage: Storage
) -> None:
    mailboxes = sorted(sim.tenant.messages)[:3]
    wanted = {mailbox: observed(messages(sim, mailbox, purged=False)[:6]) for mailbox in mailboxes}
    with_subject = next(iter(wanted[mailboxes[0]]))
    wanted[mailboxes[0]][with_subject] = Observed(subject="From the record", size=1)

    answers = resolver_for(sim, storage).resolve(wanted, Budget(10, 30), everything)

    assert graph_stats(sim)["graph_requests"] == 1  # 17 lookups over three mailboxes: one batch
    assert graph_stats(sim)["graph_batch_items"] == 17
    assert answers[(mailboxes[0], with_subject)].source == "audit"
    assert answers[(mailboxes[0], with_subject)].subject == "From the record"
    assert index_of(storage, mailboxes[0], [with_subject])[with_subject].source == "audit"


def test_lookups_queued_by_several_blobs_are_batched_together_and_never_repeated(
    sim: Simulator, storage: Storage
) -> None:
    bodies = [stored_pointer(storage, blob) for blob in busiest_blobs(sim.tenant, ALICE, 4)]
    resolver = resolver_for(sim, storage)

    first = [pipeline.process_pointer(storage, body, resolver=resolver) for body in bodies]
    redelivered = [pipeline.process_pointer(storage, body, resolver=resolver) for body in bodies]
    waiting = lookup_queue.lookup_queue(storage).get_queue_properties().approximate_message_count
    drained = lookup_queue.drain(storage, resolver)
    after_drain = graph_stats(sim)
    again = [pipeline.process_pointer(storage, body, resolver=resolver) for body in bodies]
    second_drain = lookup_queue.drain(storage, resolver)

    queued = sum(result.lookups_queued for result in first)
    distinct = drained.stats.graph + drained.stats.trace + drained.stats.unresolved
    # Ingestion reads nothing: a redelivered blob queues its ids again, and the pass answers them
    # from the index (or, not answered yet, looks each up once).
    assert sum(result.lookups_queued for result in redelivered) == queued
    assert sum(result.lookups_queued for result in again) == queued
    assert (drained.queue_messages, drained.left_queued) == (waiting, 0)
    assert distinct <= queued
    assert after_drain["graph_batch_items"] == distinct  # each message looked up once
    assert drained.stats.graph_requests == -(-distinct // 20)  # full batches across the blobs
    assert second_drain.stats.cached == second_drain.stats.messages >= distinct  # all from the index
    assert graph_stats(sim) == after_drain  # and Graph is asked nothing


def resolver_at(sim: Simulator, storage: Storage, now: datetime, **env: str) -> SubjectResolver:
    """A resolver whose clock stands still at `now`: the trace grid is then known to the test."""
    return resolver_on_clock(sim, storage, lambda: now, **env)


def resolver_on_clock(
    sim: Simulator, storage: Storage, clock: Callable[[], datetime], **env: str
) -> SubjectResolver:
    settings = settings_for(sim, **env)
    assert settings.graph is not None
    graph = GraphClient(settings.graph, token_provider(settings.graph.auth))
    return SubjectResolver(storage.message_index, settings, graph, clock)


def window_number(now: datetime, accessed: datetime, received: datetime) -> int:
    """1 for the grid window holding the first access, 2 for the one before, ..."""
    for number, (start, end) in enumerate(grid_windows(now, accessed), start=1):
        if start <= received <= end:
            return number
    raise AssertionError("received outside the trace's 90 days")


def test_a_purged_message_is_found_by_message_trace_one_window_per_request(
    sim: Simulator, storage: Storage
) -> None:
    now = datetime.now(UTC)
    accessed = sim.tenant.now - timedelta(hours=30)
    purged = [m for m in messages(sim, purged=True) if m.received > accessed - TRACE_WINDOW][:1]
    assert purged, "seed 5 has a purged message received within 10 days of the access"

    resolver = resolver_at(sim, storage, now)
    answers = resolver.resolve({ALICE: observed(purged, accessed)}, Budget(20, 30), everything)

    info = answers[(ALICE, purged[0].internet_message_id)]
    assert (info.source, info.subject, info.sender, info.received) == (
        "trace",
        purged[0].subject,
        purged[0].sender,
        purged[0].received,
    )
    # One message: asked for by id, newest window first, until the one it was received in.
    assert graph_stats(sim)["trace_requests"] == window_number(now, accessed, purged[0].received)


def test_trace_walks_back_ten_days_at_a_time_to_an_older_message(sim: Simulator, storage: Storage) -> None:
    now = datetime.now(UTC)
    accessed = sim.tenant.now - timedelta(hours=30)
    old_purged = [
        (mailbox, meta)
        for mailbox in sorted(sim.tenant.messages)
        for meta in messages(sim, mailbox, purged=True)
        if accessed - timedelta(days=60) < meta.received < accessed - TRACE_WINDOW
    ]
    assert old_purged, "seed 5 has a purged message received 10 to 60 days before the access"
    mailbox, meta = old_purged[0]

    resolver = resolver_at(sim, storage, now)
    answers = resolver.resolve({mailbox: observed([meta], accessed)}, Budget(50, 60), everything)

    assert answers[(mailbox, meta.internet_message_id)].source == "trace"
    assert graph_stats(sim)["trace_requests"] == window_number(now, accessed, meta.received) >= 2


def test_trace_gives_up_at_ninety_days_and_caches_not_found(sim: Simulator, storage: Storage) -> None:
    now = datetime.now(UTC)
    accessed = sim.tenant.now - timedelta(hours=30)
    ghost = "<gone@nowhere.example>"

    answers = resolver_at(sim, storage, now).resolve(
        {ALICE: {ghost: Observed(size=1, first_access=accessed)}}, Budget(50, 60), everything
    )

    gone = answers[(ALICE, ghost)]
    assert (gone.source, gone.attempts) == ("unresolved:not-found", 1)
    assert gone.retry_at is not None
    windows = grid_windows(now, accessed)
    assert windows[-1][0] == now - TRACE_RETENTION + TRACE_MARGIN  # never before the 90 days
    assert all(end - start <= TRACE_WINDOW for start, end in windows)
    assert graph_stats(sim)["trace_requests"] == len(windows) == 9
    assert index_of(storage, ALICE, [ghost]) == {ghost: gone}


def test_messages_sharing_a_window_are_found_by_listing_it_once(sim: Simulator, storage: Storage) -> None:
    now = datetime.now(UTC)
    accessed = sim.tenant.now - timedelta(hours=30)
    newest = grid_windows(now, accessed)[0]
    purged = [
        (mailbox, meta)
        for mailbox in sorted(sim.tenant.messages)
        for meta in messages(sim, mailbox, purged=True)
        if newest[0] <= meta.received <= newest[1]
    ]
    assert len(purged) >= 3, "seed 5 has several purged messages received in the newest window"
    wanted: dict[str, dict[str, Observed]] = {}
    for mailbox, meta in purged:
        wanted.setdefault(mailbox, {})[meta.internet_message_id] = Observed(first_access=accessed)

    answers = resolver_at(sim, storage, now).resolve(wanted, Budget(50, 60), everything)

    assert {answers[(mailbox, meta.internet_message_id)].source for mailbox, meta in purged} == {"trace"}
    # The simulated tenant's trace for ten days fits in one page of 5,000 rows.
    assert graph_stats(sim)["trace_requests"] == 1


def test_a_negative_answer_is_cached_until_its_retry_time(sim: Simulator, storage: Storage) -> None:
    now = [datetime.now(UTC)]
    resolver = resolver_on_clock(sim, storage, lambda: now[0], RESOLVE_MESSAGE_TRACE="false")
    unknown = {"<unknown@nowhere.example>": Observed(size=3)}

    first = resolver.resolve({ALICE: unknown}, Budget(5, 30), everything)
    again = resolver.resolve({ALICE: unknown}, Budget(5, 30), everything)
    requests_before_retry = graph_stats(sim)["graph_requests"]
    now[0] = first[(ALICE, "<unknown@nowhere.example>")].retry_at or now[0]
    retried = resolver.resolve({ALICE: unknown}, Budget(5, 30), everything)

    assert first == again
    assert requests_before_retry == 1
    assert graph_stats(sim)["graph_requests"] == 2
    info = retried[(ALICE, "<unknown@nowhere.example>")]
    assert (info.source, info.attempts) == ("unresolved:not-found", 2)
    assert info.retry_at is not None
    assert info.retry_at - now[0] == timedelta(hours=2 * resolver.settings.retry_hours)  # doubled


def test_throttled_items_are_sent_again_after_retry_after_until_all_are_answered(
    storage: Storage,
) -> None:
    with Simulator(sim_config(faults=FaultConfig(graph_throttle=0.3))) as sim:
        found = messages(sim, purged=False)[:40]
        answers = resolver_for(sim, storage).resolve({ALICE: observed(found)}, Budget(40, 60), everything)
        stats = sim.stats()

    assert {info.source for info in answers.values()} == {"graph"}
    assert stats["faults"]["graph_throttle"] > 0
    assert stats["graph_batch_items"] == 40 + stats["faults"]["graph_throttle"]


def test_concurrent_resolvers_never_exceed_four_requests_in_one_mailbox(storage: Storage) -> None:
    with Simulator(sim_config(graph_latency_s=0.05)) as sim:
        found = messages(sim, purged=False)[:160]
        resolver = resolver_for(sim, storage)
        parts = [found[n::4] for n in range(4)]
        threads = [
            threading.Thread(
                target=resolver.resolve, args=({ALICE: observed(part)}, Budget(10, 60), everything)
            )
            for part in parts
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        stats = sim.stats()

    assert stats["faults"].get("graph_concurrency", 0) == 0
    assert stats["graph_batch_items"] == 160
    assert len(index_of(storage, ALICE, [m.internet_message_id for m in found])) == 160


def test_a_mailbox_outside_the_apps_scope_falls_back_to_the_trace(storage: Storage) -> None:
    with Simulator(sim_config(graph_denied_mailboxes=(ALICE,))) as sim:
        accessed = sim.tenant.now - timedelta(hours=30)
        recent = [m for m in messages(sim) if m.received > accessed - TRACE_WINDOW][:2]
        with_trace = resolver_for(sim, storage).resolve(
            {ALICE: observed(recent, accessed)}, Budget(10, 30), everything
        )
        without = resolver_for(sim, storage, RESOLVE_MESSAGE_TRACE="false").resolve(
            {ALICE: observed(messages(sim)[-2:], accessed)}, Budget(10, 30), everything
        )

    assert {info.source for info in with_trace.values()} == {"trace"}
    assert {info.source for info in without.values()} == {"unresolved:access-denied"}


def test_without_the_graph_permissions_lookups_are_denied_and_retried_a_day_later(
    storage: Storage,
) -> None:
    # Graph answers a missing Mail.ReadBasic.All exactly as a mailbox outside the app's RBAC scope:
    # 403 ErrorAccessDenied per item; the trace then refuses too (no ExchangeMessageTrace.Read.All).
    with Simulator(sim_config(graph_roles=())) as sim:
        answers = resolver_for(sim, storage).resolve(
            {ALICE: observed(messages(sim)[:3])}, Budget(10, 30), everything
        )

    assert {info.source for info in answers.values()} == {"unresolved:access-denied"}
    for info in answers.values():
        assert info.retry_at is not None
        assert timedelta(hours=23) < info.retry_at - datetime.now(UTC) <= timedelta(hours=24)


def test_a_spent_budget_defers_what_is_left_and_writes_nothing_for_it(
    sim: Simulator, storage: Storage
) -> None:
    found = messages(sim, purged=False)[:50]

    answers = resolver_for(sim, storage).resolve({ALICE: observed(found)}, Budget(1, 30), everything)

    sources = [answers[(ALICE, m.internet_message_id)].source for m in found]
    assert sources.count("graph") == 20
    assert sources.count("unresolved:deferred") == 30
    assert len(index_of(storage, ALICE, [m.internet_message_id for m in found])) == 20


def test_the_trace_budget_of_the_tenant_defers_instead_of_waiting(storage: Storage) -> None:
    with Simulator(sim_config(trace_requests_per_window=2, trace_window_s=300)) as sim:
        accessed = sim.tenant.now - timedelta(hours=30)
        ghosts = {f"<ghost-{n}@nowhere.example>": Observed(size=1, first_access=accessed) for n in range(2)}
        settings = settings_for(sim)
        assert settings.graph is not None
        tight = replace(settings, graph=replace(settings.graph, trace_requests_per_window=2))
        answers = build_resolver(storage, tight).resolve({ALICE: ghosts}, Budget(50, 5), everything)
        stats = sim.stats()

    assert stats["trace_requests"] == 2  # then no slot within the 5 s the run may wait
    assert stats["faults"].get("trace_throttle", 0) == 0  # our limiter kept below the service's
    assert {info.source for info in answers.values()} == {"unresolved:deferred"}
    assert index_of(storage, ALICE, list(ghosts)) == {}


def test_policy_watchlist_resolves_only_listed_mailboxes_as_records_arrive(
    sim: Simulator, storage: Storage
) -> None:
    other = next(m for m in sorted(sim.tenant.messages) if m != ALICE)
    events: list[AccessEvent] = [
        make_event(
            mailbox=mailbox, record_id=f"r-{mailbox}", items=(MessageRef(meta.internet_message_id, "Inbox"),)
        )
        for mailbox in (ALICE, other)
        for meta in messages(sim, mailbox, purged=False)[:1]
    ]
    resolver = resolver_for(sim, storage, RESOLVE_SUBJECTS="watchlist", RESOLVE_WATCHLIST=ALICE)

    pending = resolver.record_arrivals(observe(events), ResolveStats())
    lookup_queue.enqueue(storage, pending)
    drained = lookup_queue.drain(storage, resolver)

    assert list(pending) == [ALICE]
    assert (drained.stats.graph, drained.stats.messages) == (1, 1)
    assert len(index_of(storage, other, [events[1].items[0].internet_message_id])) == 0


def test_an_id_no_real_header_could_hold_is_not_looked_up_or_queued(sim: Simulator, storage: Storage) -> None:
    huge = "<" + "x" * 5000 + "@example.com>"
    resolver = resolver_for(sim, storage)

    pending = resolver.record_arrivals({ALICE: {huge: Observed(size=1)}}, ResolveStats())

    assert pending == {}
    assert index_of(storage, ALICE, [huge])[huge].source == "unresolved:invalid-id"
    assert graph_stats(sim)["graph_requests"] == 0


def queue_and_drain(sim: Simulator, storage: Storage, metas: list[MessageMeta], accessed: datetime) -> None:
    lookup_queue.enqueue(storage, {ALICE: observed(metas, accessed)})
    lookup_queue.drain(storage, resolver_for(sim, storage), sim.tenant_id)


def test_refused_lookups_raise_one_lookup_failed_alert_a_day_naming_the_permission(storage: Storage) -> None:
    with Simulator(sim_config(graph_roles=())) as sim:
        accessed = sim.tenant.now - timedelta(hours=30)
        queue_and_drain(sim, storage, messages(sim)[:3], accessed)
        queue_and_drain(sim, storage, messages(sim)[3:6], accessed)

    [row] = outbox.rows(storage)
    details = json.loads(row["Payload"])["details"]
    assert row["Type"] == "subjects.lookup_failed"
    assert "Mail.ReadBasic.All" in details["message"]
    assert details["messagesDenied"] == 3


def test_a_trace_without_its_service_principal_raises_lookup_failed(storage: Storage) -> None:
    with Simulator(sim_config(trace_missing_service_principal=True)) as sim:
        accessed = sim.tenant.now - timedelta(hours=30)
        queue_and_drain(sim, storage, messages(sim, purged=True)[:1], accessed)

    [row] = outbox.rows(storage)
    assert row["Type"] == "subjects.lookup_failed"
    assert "8bd644d1-64a1-4d4b-ae52-2e0cbf64e373" in json.loads(row["Payload"])["details"]["message"]


def test_lookups_that_succeed_raise_no_alert(sim: Simulator, storage: Storage) -> None:
    queue_and_drain(sim, storage, messages(sim, purged=False)[:5], sim.tenant.now)

    assert outbox.rows(storage) == []


def test_lookups_graph_keeps_throttling_come_back_after_the_retry_time(storage: Storage) -> None:
    with Simulator(sim_config(faults=FaultConfig(graph_throttle=1.0))) as sim:
        found = messages(sim, purged=False)[:3]
        lookup_queue.enqueue(storage, {ALICE: observed(found)})
        drained = lookup_queue.drain(storage, resolver_for(sim, storage))
        throttled = sim.stats()["faults"]["graph_throttle"]

    queue = lookup_queue.lookup_queue(storage)
    assert throttled == 3 * MAX_ITEM_ATTEMPTS  # each item sent again after each Retry-After
    assert (drained.retry_later, drained.queue_messages) == (1, 0)
    assert queue.get_queue_properties().approximate_message_count == 1  # hidden until the retry time
    assert list(queue.peek_messages()) == []
    rows = index_of(storage, ALICE, [m.internet_message_id for m in found])
    assert {info.source for info in rows.values()} == {"unresolved:throttled"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_token_endpoint_is_retried_later_and_never_called_a_missing_permission(
    sim: Simulator, storage: Storage
) -> None:
    found = messages(sim, purged=False)[:45]  # three batches: the first one's failure stands for all
    lookup_queue.enqueue(storage, {ALICE: observed(found)})
    resolver = resolver_for(sim, storage, LOGIN_AUTHORITY=f"https://127.0.0.1:{closed_port()}")

    drained = lookup_queue.drain(storage, resolver, sim.tenant_id)

    rows = index_of(storage, ALICE, [m.internet_message_id for m in found])
    assert {info.source for info in rows.values()} == {"unresolved:graph-error"}
    assert len(rows) == len(found)
    for info in rows.values():  # the short retry of a transient failure, not a day later
        assert info.retry_at is not None
        assert timedelta(0) < info.retry_at - datetime.now(UTC) <= SHORT_RETRY
    assert drained.stats.problem == ""
    assert outbox.rows(storage) == []  # no subjects.lookup_failed telling anyone to grant anything
    assert (drained.retry_later, drained.queue_messages, drained.dropped) == (1, 0, 0)
    queue = lookup_queue.lookup_queue(storage)
    assert queue.get_queue_properties().approximate_message_count == 1  # kept for the retry time
    assert graph_stats(sim)["graph_requests"] == 0  # no token, so nothing was sent to Graph


# The deadline tests below time the call. That is a behavioural check, not a performance one: the
# simulator stalls or fails every request far longer than the budget (the old code retried for
# minutes), so finishing within the 2-3 s budget plus one short request proves the deadline is
# honoured. The 15 s bound is deliberately generous for a slow, shared machine.
GENEROUS_BOUND_S = 15.0


def test_a_stalled_batch_is_cut_at_the_budgets_deadline_and_its_lookups_deferred(storage: Storage) -> None:
    with Simulator(sim_config(faults=FaultConfig(graph_batch_stall_s=120))) as sim:
        found = messages(sim, purged=False)[:45]
        resolver = resolver_for(sim, storage)
        started = time.monotonic()
        answers = resolver.resolve({ALICE: observed(found)}, Budget(100, 2), everything)
        elapsed = time.monotonic() - started
        stats = sim.stats()

    assert elapsed < GENEROUS_BOUND_S
    assert stats["faults"]["graph_batch_stall"] == 1  # no second batch started after the deadline
    assert {info.source for info in answers.values()} == {"unresolved:deferred"}
    assert index_of(storage, ALICE, [m.internet_message_id for m in found]) == {}  # deferred, not failed


def test_retries_of_a_failing_batch_stop_at_the_deadline_and_defer(storage: Storage) -> None:
    with Simulator(sim_config(faults=FaultConfig(graph_batch_error=1.0))) as sim:
        found = messages(sim, purged=False)[:5]
        settings = settings_for(sim)
        assert settings.graph is not None
        # Twelve attempts would back off for about five minutes: only the deadline can stop them.
        patient = replace(settings, graph=replace(settings.graph, max_attempts=12))
        started = time.monotonic()
        resolver = build_resolver(storage, patient)
        answers = resolver.resolve({ALICE: observed(found)}, Budget(100, 2), everything)
        elapsed = time.monotonic() - started
        stats = sim.stats()

    assert elapsed < GENEROUS_BOUND_S
    assert 1 <= stats["faults"]["graph_batch_error"] < 12
    assert {info.source for info in answers.values()} == {"unresolved:deferred"}
    assert index_of(storage, ALICE, [m.internet_message_id for m in found]) == {}


def test_a_stalled_message_trace_is_cut_at_the_deadline_and_defers(storage: Storage) -> None:
    with Simulator(sim_config(faults=FaultConfig(trace_stall_s=120))) as sim:
        ghost = "<gone@nowhere.example>"
        accessed = sim.tenant.now - timedelta(hours=30)
        started = time.monotonic()
        answers = resolver_for(sim, storage).resolve(
            {ALICE: {ghost: Observed(size=1, first_access=accessed)}}, Budget(100, 3), everything
        )
        elapsed = time.monotonic() - started
        stats = sim.stats()

    assert elapsed < GENEROUS_BOUND_S
    assert stats["graph_batch_items"] == 1  # Graph answered "not found" in time
    assert stats["faults"]["trace_stall"] == 1
    assert answers[(ALICE, ghost)].source == "unresolved:deferred"
    assert index_of(storage, ALICE, [ghost]) == {}


def test_lookups_deferred_pass_after_pass_stay_queued_until_a_pass_can_answer_them(storage: Storage) -> None:
    # Graph throttles every lookup with a Retry-After longer than a whole run: each pass sends one
    # batch, cannot wait, and defers everything. That is not a failure, so no dequeue count runs out.
    slow = sim_config(faults=FaultConfig(graph_throttle=1.0), graph_retry_after_s=600)
    with Simulator(slow) as sim:
        found = messages(sim, purged=False)[:30]
        lookup_queue.enqueue(storage, {ALICE: observed(found)})
        passes = [lookup_queue.drain(storage, resolver_for(sim, storage)) for _ in range(7)]

    assert [(p.left_queued, p.dropped, p.stats.deferred) for p in passes] == [(1, 0, 30)] * 7
    assert index_of(storage, ALICE, [m.internet_message_id for m in found]) == {}
    with Simulator(sim_config()) as sim:  # the same tenant, no longer throttling
        answered = lookup_queue.drain(storage, resolver_for(sim, storage))

    assert (answered.stats.graph, answered.dropped, answered.left_queued) == (30, 0, 0)
    rows = index_of(storage, ALICE, [m.internet_message_id for m in found])
    assert {info.source for info in rows.values()} == {"graph"}
    assert len(rows) == 30
    assert lookup_queue.lookup_queue(storage).peek_messages() == []


def test_ids_dropped_after_repeated_failures_are_counted_and_left_visible_in_the_index(
    sim: Simulator, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    found = messages(sim, purged=False)[:4]
    lookup_queue.enqueue(storage, {ALICE: observed(found)})
    queue = lookup_queue.lookup_queue(storage)
    for _ in range(lookup_queue.MAX_DEQUEUE_COUNT):  # five passes that died before answering
        [message] = queue.receive_messages(visibility_timeout=30)
        queue.update_message(message, visibility_timeout=0)

    with caplog.at_level(logging.INFO):
        drained = lookup_queue.drain(storage, resolver_for(sim, storage))

    assert (drained.dropped, drained.dropped_ids) == (1, 4)
    assert graph_stats(sim)["graph_requests"] == 0
    rows = index_of(storage, ALICE, [m.internet_message_id for m in found])
    assert {info.source for info in rows.values()} == {"unresolved:graph-error"}
    assert len(rows) == 4
    assert all(info.retry_at is not None for info in rows.values())  # a report may ask again
    ours = [record for record in caplog.records if record.name.startswith("shared.")]
    assert any("4 ids" in r.getMessage() for r in ours if r.levelno >= logging.WARNING)
    assert not any("@" in r.getMessage() for r in ours)  # counts, never a mailbox or message id

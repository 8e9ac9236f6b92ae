"""shared/telemetry/context.py and tracing.py: the W3C trace context written into a message and the
span that continues it on the other side."""

from __future__ import annotations

import pytest

from shared.telemetry import TraceCarrier, current_carrier, linked_context, remote_context, span
from tests.telemetry.conftest import Captured

pytestmark = pytest.mark.unit


def test_without_a_current_span_there_is_nothing_to_carry(captured: Captured) -> None:
    assert current_carrier() == TraceCarrier()
    assert TraceCarrier().as_headers() == {}


def test_a_span_started_in_the_carried_context_continues_the_senders_trace(captured: Captured) -> None:
    with span("content.store"):
        carried = current_carrier()
    assert carried.traceparent.startswith("00-")
    with span("enrich_trace", parent=remote_context(carried)):
        pass
    sender, receiver = captured.spans("content.store")[0], captured.spans("enrich_trace")[0]
    assert receiver.context.trace_id == sender.context.trace_id
    assert receiver.parent is not None
    assert receiver.parent.span_id == sender.context.span_id
    assert carried.traceparent.startswith(f"00-{sender.context.trace_id:032x}-{sender.context.span_id:016x}-")


@pytest.mark.parametrize("traceparent", ["", "not a traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_an_absent_or_malformed_traceparent_starts_a_new_trace(captured: Captured, traceparent: str) -> None:
    assert remote_context(TraceCarrier(traceparent)) is None
    with span("enrich_trace", parent=remote_context(TraceCarrier(traceparent))):
        pass
    assert captured.spans("enrich_trace")[0].parent is None


def test_links_point_at_each_distinct_carried_trace_once(captured: Captured) -> None:
    carriers = []
    for _ in range(2):
        with span("enrich_trace"):
            carriers.append(current_carrier())
    contexts = linked_context([carriers[0], carriers[1], carriers[0], TraceCarrier("garbage")])
    with span("subjects.lookup", links=contexts):
        pass
    lookup = captured.spans("subjects.lookup")[0]
    linked = {link.context.span_id for link in lookup.links}
    assert linked == {found.context.span_id for found in captured.spans("enrich_trace")}


def test_an_exception_is_recorded_on_the_span_and_propagates(captured: Captured) -> None:
    with pytest.raises(RuntimeError, match="boom"), span("fetch_audit"):
        raise RuntimeError("boom")
    (failed,) = captured.spans("fetch_audit")
    assert not failed.status.is_ok
    assert [event.name for event in failed.events] == ["exception"]

"""shared/telemetry/metrics.py: each recording function adds what the contract names, with its
attributes and nothing for a zero count."""

from __future__ import annotations

import pytest

from shared.telemetry import (
    record_alert,
    record_api_response,
    record_collection,
    record_detections,
    record_processed,
    record_queue_depth,
    record_subject_lookups,
)
from shared.telemetry.metrics import status_class
from tests.telemetry.conftest import Captured

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (204, "2xx"), (429, "4xx"), (503, "5xx"), (None, "error"), (0, "error")],
)
def test_a_status_is_counted_by_its_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_requests_are_counted_by_api_and_status_class_and_429s_as_throttled(captured: Captured) -> None:
    for status in (200, 200, 429, None):
        record_api_response("graph", status)
    record_api_response("management", 503)
    points = captured.points()
    assert sorted(points["mia.api.requests"], key=str) == sorted(
        [
            ({"api": "graph", "status_class": "2xx"}, 2),
            ({"api": "graph", "status_class": "4xx"}, 1),
            ({"api": "graph", "status_class": "error"}, 1),
            ({"api": "management", "status_class": "5xx"}, 1),
        ],
        key=str,
    )
    assert points["mia.api.throttled"] == [({"api": "graph"}, 1)]


def test_a_collection_run_records_its_outcome_blobs_records_and_lag(captured: Captured) -> None:
    fetched = {"stored": 3, "already_stored": 2, "unparseable": 0, "gone": 1}
    record_collection("partial", "Audit.Exchange", fetched, 120, 42.5)
    points = captured.points()
    assert points["mia.collection.runs"] == [({"outcome": "partial"}, 1)]
    assert sorted(points["mia.content.fetched"], key=str) == sorted(
        [({"outcome": "stored"}, 3), ({"outcome": "already_stored"}, 2), ({"outcome": "gone"}, 1)], key=str
    )
    assert points["mia.records.collected"] == [({"content_type": "Audit.Exchange"}, 120)]
    assert ({"content_type": "Audit.Exchange"}, 42.5) in points["mia.collection.lag"]


def test_processed_records_lookups_and_queue_depths_carry_only_their_outcome_or_queue(
    captured: Captured,
) -> None:
    record_processed({"inserted": 5, "duplicate": 2, "conflict": 0, "malformed": 1, "other_operation": 0})
    record_subject_lookups({"graph": 4, "trace": 0, "error": 1})
    record_queue_depth("audit-content-poison", 7)
    record_queue_depth("audit-content", None)  # the service gave no count: nothing recorded
    points = captured.points()
    assert sorted(points["mia.records.processed"], key=str) == sorted(
        [({"outcome": "inserted"}, 5), ({"outcome": "duplicate"}, 2), ({"outcome": "malformed"}, 1)], key=str
    )
    assert sorted(points["mia.subjects.lookups"], key=str) == [
        ({"outcome": "error"}, 1),
        ({"outcome": "graph"}, 4),
    ]
    depths = dict((str(attributes["queue"]), value) for attributes, value in points["mia.queue.depth"])
    assert depths["audit-content-poison"] == 7
    assert "audit-content" not in depths or depths["audit-content"] != 7


def test_detections_count_by_type_and_a_throttled_mailbox_once_per_alert(captured: Captured) -> None:
    record_detections(["mailbox.throttled", "mailbox.near_throttle", "mailbox.throttled"])
    record_alert("mailbox.throttled", "raised")
    record_alert("mailbox.throttled", "failed")
    points = captured.points()
    assert sorted(points["mia.detections"], key=str) == [
        ({"type": "mailbox.near_throttle"}, 1),
        ({"type": "mailbox.throttled"}, 2),
    ]
    assert points["mia.mailboxes.throttled"] == [({}, 2)]
    assert sorted(points["mia.alerts"], key=str) == [
        ({"stage": "failed", "type": "mailbox.throttled"}, 1),
        ({"stage": "raised", "type": "mailbox.throttled"}, 1),
    ]

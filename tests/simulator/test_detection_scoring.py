"""Scoring of the detection-quality bench (bench/detection.py) on hand-made truths and detection
lists: hits, misses, false alerts by kind, latency in records, the warm-up and the severity floor;
and the whole path (generate, parse, detect, score) on a test seed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.detection import (
    BENCH_SEEDS,
    DETECTION_FIGURES,
    TEST_SEEDS,
    bench_detection_quality,
    events_of,
    score,
)
from shared.model.event import AccessEvent
from simulator.behaviour import AttackerSession, BehaviourSpec, BenignNovelty, Truth, generate

pytestmark = pytest.mark.unit

START = datetime(2026, 9, 7, tzinfo=UTC)
WARMUP_END = START + timedelta(days=14)
ATTACK_AT = WARMUP_END + timedelta(days=3, hours=2)


@dataclass(frozen=True)
class Found:
    """The fields of shared.detect.rules.Detection the scoring reads."""

    first_record_id: str
    mailbox: str = "alice@contoso.com"
    session_id: str = ""
    severity: str = "medium"
    first_seen: datetime = ATTACK_AT
    type: str = "mailbox.new_context"


def session(label: str, pattern: str, mailboxes: tuple[str, ...], records: int) -> AttackerSession:
    return AttackerSession(
        label=label,
        pattern=pattern,
        mailboxes=mailboxes,
        session_ids=tuple(f"{label}-s{n}" for n in range(len(mailboxes))),
        record_ids=tuple(f"{label}-r{n}" for n in range(records)),
        times=tuple(ATTACK_AT + timedelta(minutes=3 * n) for n in range(records)),
        ip="185.220.101.45",
        country="DE",
    )


GRAPH = session("attack-0-graph_unknown_app", "graph_unknown_app", ("alice@contoso.com",), 5)
IMAP = session("attack-1-imap_hosting", "imap_hosting", ("bob@contoso.com",), 4)
MASS = session(
    "attack-5-app_many_mailboxes",
    "app_many_mailboxes",
    ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"),
    3,
)
TRIP = BenignNovelty(
    "novelty-000-travel", "travel", "carol@contoso.com", ("trip-r0", "trip-r1"), "hotel Wi-Fi"
)
TRUTH = Truth(
    seed=0,
    start=START,
    days=45,
    warmup_end=WARMUP_END,
    mailboxes=("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"),
    attacks=(GRAPH, IMAP, MASS),
    novelties=(TRIP,),
    mailbox_days=120,
    evaluated_mailbox_days=50,
)


def measurements(figures: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = figures[name]["measurements"]
    return result


def test_a_hit_on_the_first_record_is_recall_with_no_latency() -> None:
    figures = score(TRUTH, [Found(GRAPH.record_ids[0])])
    assert figures["detection_recall"]["value"] == round(1 / 3, 3)
    assert measurements(figures, "detection_recall")["per_pattern_recall"] == {
        "graph_unknown_app": 1.0,
        "imap_hosting": 0.0,
        "app_many_mailboxes": 0.0,
    }
    assert measurements(figures, "detection_latency_records")["latencies"] == [0]
    assert figures["detection_latency_records"]["met"] is True


def test_missed_sessions_are_listed_and_have_no_latency() -> None:
    figures = score(TRUTH, [Found(GRAPH.record_ids[0])])
    assert measurements(figures, "detection_recall")["missed"] == [
        "0/attack-1-imap_hosting",
        "0/attack-5-app_many_mailboxes",
    ]
    assert figures["detection_recall"]["met"] is False
    assert measurements(figures, "detection_latency_records")["flagged"] == 1


def test_latency_counts_the_session_records_before_the_first_detection() -> None:
    detections = [
        Found(IMAP.record_ids[3], mailbox="bob@contoso.com"),
        Found(IMAP.record_ids[2], mailbox="bob@contoso.com"),  # the earlier one counts
        Found(MASS.record_ids[2], mailbox=""),  # a tenant-wide detection names no mailbox
    ]
    figures = score(TRUTH, detections)
    latency = measurements(figures, "detection_latency_records")
    assert sorted(latency["latencies"]) == [2, 2]
    assert (figures["detection_latency_records"]["value"], latency["median"]) == (2, 2)
    assert figures["detection_latency_records"]["met"] is False
    assert measurements(figures, "detection_recall")["attacker_detections"] == 3


def test_a_detection_naming_the_session_but_another_record_is_timed_by_first_seen() -> None:
    later = Found("not-a-known-record", session_id=GRAPH.session_ids[0], first_seen=GRAPH.times[3])
    figures = score(TRUTH, [later])
    assert measurements(figures, "detection_latency_records")["latencies"] == [3]
    assert measurements(figures, "false_alerts_per_100_mailbox_days")["false_alerts"] == 0


def test_false_alerts_are_charged_to_their_novelty_kind_or_to_routine() -> None:
    detections = [
        Found(TRIP.record_ids[1], mailbox="carol@contoso.com"),
        Found("a-routine-record", mailbox="carol@contoso.com", type="tenant.mass_access", severity="high"),
    ]
    figures = score(TRUTH, detections)
    assert figures["false_alerts_per_100_mailbox_days"]["value"] == 4.0  # 2 per 50 mailbox-days
    assert figures["false_alerts_per_100_mailbox_days"]["met"] is False
    false = measurements(figures, "false_alerts_per_100_mailbox_days")
    assert false["false_alerts_by_kind"] == {
        "new_phone": 0,
        "travel": 1,
        "home_ip_change": 0,
        "new_first_party_app": 0,
        "routine": 1,
    }
    assert false["false_alerts_by_type"] == {"mailbox.new_context": 1, "tenant.mass_access": 1}
    assert false["novelties_alerted_by_kind"]["travel"] == 1
    assert figures["detection_recall"]["value"] == 0.0


def test_alerts_in_the_warmup_are_counted_apart() -> None:
    early = Found("a-routine-record", first_seen=WARMUP_END - timedelta(seconds=1))
    figures = score(TRUTH, [early])
    false = measurements(figures, "false_alerts_per_100_mailbox_days")
    assert (false["false_alerts"], false["false_alerts_in_warmup"]) == (0, 1)
    assert figures["false_alerts_per_100_mailbox_days"]["met"] is True


def test_detections_below_the_severity_floor_are_not_alerts() -> None:
    detections = [Found(GRAPH.record_ids[0], severity="low"), Found("a-routine-record", severity="low")]
    counted, floored = score(TRUTH, detections), score(TRUTH, detections, min_severity="medium")
    assert measurements(counted, "detection_recall")["flagged"] == 1
    assert measurements(counted, "false_alerts_per_100_mailbox_days")["false_alerts"] == 1
    assert measurements(floored, "detection_recall")["flagged"] == 0
    assert measurements(floored, "false_alerts_per_100_mailbox_days")["false_alerts"] == 0


def test_the_test_and_bench_seeds_are_disjoint() -> None:
    assert TEST_SEEDS
    assert len(BENCH_SEEDS) >= 2 * len(TEST_SEEDS)
    assert set(TEST_SEEDS).isdisjoint(BENCH_SEEDS)


# The whole path on one test seed: generation, the real parser, a detector, the scoring.


def small(seed: int) -> BehaviourSpec:
    return BehaviourSpec(seed=seed, mailboxes=6, days=18, warmup_days=10, mass_access_mailboxes=4)


def everything(events: list[AccessEvent]) -> list[Found]:
    """A detector alerting on every record: all sessions at once, and every benign record."""
    return [Found(e.record_id, e.mailbox, e.session_id, "low", e.timestamp) for e in events]


def test_the_bench_path_scores_a_detector_on_parsed_events() -> None:
    tenant = generate(small(TEST_SEEDS[0]))
    events = events_of(tenant)
    attacker = {rid for a in tenant.truth.attacks for rid in a.record_ids}
    benign_after = sum(
        1 for e in events if e.record_id not in attacker and e.timestamp >= tenant.truth.warmup_end
    )
    figures = bench_detection_quality(everything, seeds=TEST_SEEDS[:1], spec=small)
    assert tuple(figures) == DETECTION_FIGURES
    assert figures["detection_recall"]["value"] == 1.0
    assert figures["detection_latency_records"]["value"] == 0
    false = measurements(figures, "false_alerts_per_100_mailbox_days")
    assert false["false_alerts"] == benign_after
    assert false["evaluated_mailbox_days"] == tenant.truth.evaluated_mailbox_days
    assert false["seeds"] == [TEST_SEEDS[0]]


def test_a_detector_that_finds_nothing_misses_every_session() -> None:
    figures = bench_detection_quality(lambda events: [], seeds=TEST_SEEDS[:1], spec=small)
    assert figures["detection_recall"]["value"] == 0.0
    assert len(measurements(figures, "detection_recall")["missed"]) == 6
    assert figures["detection_latency_records"]["value"] is None
    assert figures["detection_latency_records"]["met"] is False
    assert figures["false_alerts_per_100_mailbox_days"]["value"] == 0.0

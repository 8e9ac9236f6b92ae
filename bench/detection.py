"""Detection quality: labelled tenants (simulator/behaviour.py) through the real parser and a
detector, scored against their ground truth. Pure apart from the detector it is given.

Figures (issue 14, item 8):
- `detection_recall`: attacker sessions with at least one detection / attacker sessions (goal 1.0).
- `false_alerts_per_100_mailbox_days`: detections on benign activity after the warm-up, per 100
  mailbox-days of benign activity after the warm-up (goal at most 1.0). Detections during the
  warm-up are counted in the measurements too.
- `detection_latency_records`: for each flagged attacker session, how many of its records came
  before the one its first detection names (0: the first attacker record raised it); median and
  max. A missed session is counted as missed, never as a latency (goal 0).

A detection belongs to an attacker session when its `first_record_id` is one of the session's
records, or, failing that, when its (mailbox, session_id) is one of the session's; every other
detection is a false alert, charged to the benign novelty whose record it names, else to
`routine`.

`TEST_SEEDS` are for the tests; `BENCH_SEEDS` (disjoint) only for `make bench`, so the rules are
not tuned to the tenants they are measured on.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from shared.model.event import AccessEvent
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from simulator.behaviour import NOVELTY_KINDS, PATTERNS, BehaviourSpec, LabelledTenant, Truth, generate

TEST_SEEDS: tuple[int, ...] = (11, 12, 13)
BENCH_SEEDS: tuple[int, ...] = tuple(range(9001, 9011))
SEVERITIES = ("low", "medium", "high")
ROUTINE = "routine"
# The figures bench_detection_quality returns, in the order bench/run.py should print them.
DETECTION_FIGURES = ("detection_recall", "false_alerts_per_100_mailbox_days", "detection_latency_records")
RECALL_GOAL_MIN = 1.0
FALSE_ALERTS_GOAL_MAX = 1.0
LATENCY_GOAL_MAX = 0


class DetectionLike(Protocol):
    """The fields of `shared.detect.rules.Detection` the scoring reads."""

    @property
    def type(self) -> str: ...
    @property
    def mailbox(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def first_seen(self) -> datetime: ...
    @property
    def first_record_id(self) -> str: ...


Detector = Callable[[list[AccessEvent]], Sequence[DetectionLike]]


def events_of(tenant: LabelledTenant, stats: ParseStats | None = None) -> list[AccessEvent]:
    """The tenant's records as one Management API content blob (a JSON array), through the
    parser collection uses. Raises if any record is unreadable: the bench's data must be whole."""
    stats = stats if stats is not None else ParseStats()
    data = orjson.dumps(tenant.records)
    events = list(events_from_bytes(data, f"behaviour-seed-{tenant.truth.seed}", stats=stats))
    if stats.malformed or stats.events != len(tenant.records):
        raise RuntimeError(f"behaviour tenant {tenant.truth.seed} did not parse whole: {stats.as_dict()}")
    return events


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass
class Tally:
    """What one or more tenants' detections came to; `merge` adds tenants together."""

    sessions: Counter[str] = field(default_factory=Counter)  # per pattern
    flagged: Counter[str] = field(default_factory=Counter)  # per pattern
    latencies: list[int] = field(default_factory=list)  # one per flagged session
    missed: list[str] = field(default_factory=list)  # "seed/label"
    attacker_detections: int = 0
    false_alerts: Counter[str] = field(default_factory=Counter)  # per novelty kind or routine, after warm-up
    false_alerts_warmup: int = 0
    false_alerts_by_type: Counter[str] = field(default_factory=Counter)
    false_alerts_by_severity: Counter[str] = field(default_factory=Counter)
    novelties: Counter[str] = field(default_factory=Counter)  # per kind
    novelties_alerted: Counter[str] = field(default_factory=Counter)  # per kind
    mailbox_days: int = 0
    evaluated_mailbox_days: int = 0
    seeds: list[int] = field(default_factory=list)

    def merge(self, other: Tally) -> Tally:
        for name in ("sessions", "flagged", "false_alerts", "false_alerts_by_type"):
            getattr(self, name).update(getattr(other, name))
        for name in ("false_alerts_by_severity", "novelties", "novelties_alerted"):
            getattr(self, name).update(getattr(other, name))
        self.latencies += other.latencies
        self.missed += other.missed
        self.seeds += other.seeds
        self.attacker_detections += other.attacker_detections
        self.false_alerts_warmup += other.false_alerts_warmup
        self.mailbox_days += other.mailbox_days
        self.evaluated_mailbox_days += other.evaluated_mailbox_days
        return self


def _counted(detections: Iterable[DetectionLike], min_severity: str) -> list[DetectionLike]:
    floor = SEVERITIES.index(min_severity)
    return [d for d in detections if d.severity not in SEVERITIES or SEVERITIES.index(d.severity) >= floor]


def tally(truth: Truth, detections: Iterable[DetectionLike], min_severity: str = "low") -> Tally:
    """Score one tenant's detections against its truth. Detections below `min_severity` are not
    alerts for this count (an unknown severity always counts)."""
    by_record = {rid: (a.label, n) for a in truth.attacks for n, rid in enumerate(a.record_ids)}
    by_session = {
        (m.lower(), s): a.label
        for a in truth.attacks
        for m, s in zip(a.mailboxes, a.session_ids, strict=True)
    }
    attacks = {a.label: a for a in truth.attacks}
    novelty_of = {rid: n for n in truth.novelties for rid in n.record_ids}
    first_latency: dict[str, int] = {}
    result = Tally(mailbox_days=truth.mailbox_days, evaluated_mailbox_days=truth.evaluated_mailbox_days)
    result.seeds.append(truth.seed)
    alerted_novelties: set[str] = set()
    for detection in _counted(detections, min_severity):
        label, latency = _attack_of(detection, by_record, by_session, attacks)
        if label:
            result.attacker_detections += 1
            first_latency[label] = min(latency, first_latency.get(label, latency))
            continue
        if detection.first_seen < truth.warmup_end:
            result.false_alerts_warmup += 1
            continue
        novelty = novelty_of.get(detection.first_record_id)
        result.false_alerts[novelty.kind if novelty else ROUTINE] += 1
        result.false_alerts_by_type[detection.type] += 1
        result.false_alerts_by_severity[detection.severity] += 1
        if novelty:
            alerted_novelties.add(novelty.label)
    for attack in truth.attacks:
        result.sessions[attack.pattern] += 1
        if attack.label in first_latency:
            result.flagged[attack.pattern] += 1
            result.latencies.append(first_latency[attack.label])
        else:
            result.missed.append(f"{truth.seed}/{attack.label}")
    for novelty in truth.novelties:
        result.novelties[novelty.kind] += 1
        result.novelties_alerted[novelty.kind] += novelty.label in alerted_novelties
    return result


def _attack_of(
    detection: DetectionLike,
    by_record: dict[str, tuple[str, int]],
    by_session: dict[tuple[str, str], str],
    attacks: dict[str, Any],
) -> tuple[str, int]:
    """(attacker session label, records of it before the detection), or ("", 0) for none."""
    if detection.first_record_id in by_record:
        return by_record[detection.first_record_id]
    label = by_session.get((detection.mailbox.lower(), detection.session_id), "")
    if not label:
        return "", 0
    before = sum(1 for when in attacks[label].times if when < detection.first_seen)
    return label, before


def figures(result: Tally) -> dict[str, dict[str, Any]]:
    """The three bench figures (value, goal, met, measurements), as bench/run.py records them."""
    total = sum(result.sessions.values())
    flagged = sum(result.flagged.values())
    recall = flagged / total if total else 0.0
    false_alerts = sum(result.false_alerts.values())
    per_100 = 100 * false_alerts / result.evaluated_mailbox_days if result.evaluated_mailbox_days else 0.0
    latency_median = statistics.median(result.latencies) if result.latencies else None
    latency_max = max(result.latencies) if result.latencies else None
    shared = {"seeds": result.seeds, "attacker_sessions": total, "flagged": flagged}
    return {
        "detection_recall": {
            "value": round(recall, 3),
            "goal": {"at_least": RECALL_GOAL_MIN},
            "met": recall >= RECALL_GOAL_MIN,
            "measurements": {
                **shared,
                "missed": result.missed,
                "per_pattern_recall": {
                    p: round(result.flagged[p] / result.sessions[p], 3)
                    for p in PATTERNS
                    if result.sessions[p]
                },
                "attacker_detections": result.attacker_detections,
            },
        },
        "false_alerts_per_100_mailbox_days": {
            "value": round(per_100, 3),
            "goal": {"at_most": FALSE_ALERTS_GOAL_MAX},
            "met": per_100 <= FALSE_ALERTS_GOAL_MAX,
            "measurements": {
                "seeds": result.seeds,
                "false_alerts": false_alerts,
                "evaluated_mailbox_days": result.evaluated_mailbox_days,
                "mailbox_days": result.mailbox_days,
                "false_alerts_in_warmup": result.false_alerts_warmup,
                "false_alerts_by_kind": {k: result.false_alerts[k] for k in (*NOVELTY_KINDS, ROUTINE)},
                "false_alerts_by_type": dict(sorted(result.false_alerts_by_type.items())),
                "false_alerts_by_severity": dict(sorted(result.false_alerts_by_severity.items())),
                "novelties_by_kind": {k: result.novelties[k] for k in NOVELTY_KINDS},
                "novelties_alerted_by_kind": {k: result.novelties_alerted[k] for k in NOVELTY_KINDS},
            },
        },
        "detection_latency_records": {  # the worst session: the goal is that none needs a second record
            "value": latency_max,
            "goal": {"at_most": LATENCY_GOAL_MAX},
            "met": latency_max is not None and latency_max <= LATENCY_GOAL_MAX,
            "measurements": {
                **shared,
                "median": latency_median,
                "max": latency_max,
                "latencies": result.latencies,
            },
        },
    }


def score(truth: Truth, detections: Iterable[DetectionLike], min_severity: str = "low") -> dict[str, Any]:
    """One tenant's figures: {"detection_recall": ..., "false_alerts_per_100_mailbox_days": ...,
    "detection_latency_records": ...}, each with its value, goal, whether met and measurements."""
    return figures(tally(truth, detections, min_severity))


def bench_detection_quality(
    detect: Detector,
    seeds: Sequence[int] = BENCH_SEEDS,
    spec: Callable[[int], BehaviourSpec] = BehaviourSpec,
    min_severity: str = "low",
) -> dict[str, dict[str, Any]]:
    """Generate each seed's tenant, parse it, run `detect` on its events and score all together."""
    result = Tally()
    for seed in seeds:
        tenant = generate(spec(seed))
        result.merge(tally(tenant.truth, detect(events_of(tenant)), min_severity))
    return figures(result)

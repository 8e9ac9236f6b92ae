"""Collection figures: the simulator's tenant to rows in Azurite, end to end, and concurrent vs
sequential blob fetching with realistic API latency."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from devtools.azurite import fresh_storage
from shared.clients.activity_api import ActivityClient
from shared.clients.auth import token_provider
from shared.collect.collector import Collector, CollectResult
from shared.ingest import pipeline
from shared.settings import load_collection_settings
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig

CONCURRENCY = 8
LATENCY_S = 0.05  # per API call: loopback has none, the real service has tens of milliseconds
CONCURRENCY_GOAL_MIN = 3.0


def collect_once(storage: Storage, sim: Simulator, concurrency: int) -> CollectResult:
    settings = load_collection_settings(
        {
            **sim.settings_env("secret"),
            "COLLECT_INITIAL_LOOKBACK_HOURS": "167",
            "COLLECT_CONCURRENCY": str(concurrency),
            "COLLECT_MAX_REQUESTS_PER_MINUTE": "2000",
        }
    )
    sim.release_late_content()
    return Collector(storage, ActivityClient(settings, token_provider(settings.auth)), settings).run()


def bench_collect_throughput(connection_string: str) -> dict[str, Any]:
    """Records per second from the simulated API into MailboxAccess/ActorAccess rows."""
    # Two days of 30 mailboxes (232 blobs, 2,066 rows), to keep the bench under ten minutes: five
    # days took three of them. Not comparable with runs over five days, which were slower per blob
    # (0.37 s against 0.24 s; the detection state read and written per blob grows with the days,
    # a likely cause, not measured apart).
    config = SimulatorConfig(seed=31, mailboxes=30, days=2, faults=FaultConfig.none())
    with Simulator(config) as sim:
        storage = fresh_storage(connection_string)
        began = time.perf_counter()
        collected = collect_once(storage, sim, CONCURRENCY)
        collect_seconds = time.perf_counter() - began
        processed = pipeline.drain_queue(storage)
        total_seconds = time.perf_counter() - began
        rows = len(storage.mailbox_access.record_ids())
        served = len(sim.ground_truth()["served"])
    if rows != served:
        raise SystemExit(f"bench: {rows} rows stored but the simulator served {served}")
    return {
        "value": round(rows / total_seconds, 1),
        "goal": None,  # none set: a figure to follow from run to run
        "met": None,
        "measurements": {
            "blobs_stored": collected.stored,
            "records_in_blobs": collected.records,
            "mailitemsaccessed_rows": rows,
            "blobs_processed": len(processed),
            "collect_seconds": round(collect_seconds, 3),
            "collect_and_process_seconds": round(total_seconds, 3),
            "concurrency": CONCURRENCY,
        },
    }


def bench_collect_concurrency(connection_string: str) -> dict[str, Any]:
    """Collection time with one blob fetch at a time over the time with CONCURRENCY at once."""
    faults = dataclasses.replace(FaultConfig.none(), latency_s=LATENCY_S)
    # One simulated start time for both runs: the tenant is generated relative to it (working
    # hours are clock hours), so two runs started half a minute apart on the real clock were two
    # different tenants (281 blobs against 288 in one bench).
    start = datetime.now(UTC)
    config = SimulatorConfig(seed=37, mailboxes=12, days=3, faults=faults, now=start)
    times: dict[int, float] = {}
    blobs: dict[int, int] = {}
    for concurrency in (1, CONCURRENCY):
        with Simulator(config) as sim:
            storage = fresh_storage(connection_string)
            began = time.perf_counter()
            blobs[concurrency] = collect_once(storage, sim, concurrency).stored
            times[concurrency] = time.perf_counter() - began
    if blobs[1] != blobs[CONCURRENCY]:
        raise SystemExit(f"bench: sequential stored {blobs[1]} blobs, concurrent {blobs[CONCURRENCY]}")
    ratio = times[1] / times[CONCURRENCY]
    return {
        "value": round(ratio, 3),
        "goal": {"at_least": CONCURRENCY_GOAL_MIN},
        "met": ratio >= CONCURRENCY_GOAL_MIN,
        "measurements": {
            "blobs": blobs[1],
            "latency_s_per_call": LATENCY_S,
            "sequential_seconds": round(times[1], 3),
            f"concurrency_{CONCURRENCY}_seconds": round(times[CONCURRENCY], 3),
        },
    }

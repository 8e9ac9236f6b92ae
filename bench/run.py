"""`make bench`: thirteen figures measured in one run, written to bench/results.json.

1. parse_ratio_to_raw_decode: our parse + normalize of a Management API content blob
   (`shared.parse.events.events_from_bytes`, fully consumed) over plain `orjson.loads` of the same
   bytes, the median of the ratios of interleaved pairs.
2. report_overhead_ratio: the exposure view (CSV) of a 30,000-row mailbox over just paging those
   rows (`MailboxAccessTable.query_events`), served by bench/table_replay.py; median of pair
   ratios (bench/report_overhead.py).
3. files_report_vs_duckdb: wall time of `mia report --input EXPORT --view sessions` over DuckDB's
   computing the same sessions from the same Purview CSV on all cores (bench/duckdb_sessions.py);
   median of pair ratios, the answers compared session by session (bench/files.py).
4. ingest_batch_speedup: one `create_entity` per row over `shared.storage.tables.insert_rows` (what
   ingestion does: entity-group transactions of 100 inserts, first copy wins), same rows, fresh
   Azurite tables for each side; median of pair ratios (it was a ratio of minima).
5. report_rss_growth_mb_100k: peak RSS growth of a child process writing the CSV events report of
   one mailbox with 100,000 stored rows (`events_from_table` + `render_report`, as `mia report -o`).
   The same child also runs against real Azurite holding as many rows of one mailbox as Azurite
   can take in the time budget (see bench/table_replay.py for why not 100,000).
6. import_peak_rss_mb: the larger peak RSS of `mia import` (to Azurite) and `mia report --input`
   on a generated Purview export of at least 500 MiB (bench/export.py), each measured by the
   bench/peak_rss.py launcher; the import's blob and the report's sessions checked (bench/files.py).
6b. storage_requests_per_1000_records: table and blob requests counted at the SDKs' transport
   while `pipeline.drain` processes six 1,000-record content blobs and then every pointer again,
   per 1,000 MailItemsAccessed records, beside one request per entity (bench/requests.py); goal
   at most half of main's before the change, measured the same way.
7. collect_records_per_s: MailItemsAccessed rows per second from the simulator's API to
   MailboxAccess/ActorAccess on Azurite, collection and processing together (bench/collect.py).
8. collect_concurrency_speedup: collection time fetching one blob at a time over the time with 8
   at once, the simulator adding 50 ms to every API call.
9. graph_requests_per_1000_messages: requests to Microsoft Graph (the simulator's) to resolve 1,000
   distinct messages of many mailboxes, cold cache, beside one request per message (bench/graph.py).
10-12. detection_recall, false_alerts_per_100_mailbox_days, detection_latency_records: the detection
   rules (`shared.detect.engine.detect`, default settings) over the labelled tenants of
   `simulator/behaviour.py` for the held-out `bench.detection.BENCH_SEEDS` (bench/detection.py).

Figures are ratios or growths within one run on one machine; no absolute timing is asserted
anywhere. Storage is a private in-memory Azurite (devtools.azurite.running_azurite).
`python -m bench.run --only NAME[,NAME]` measures only those figures (or the section
`detection_quality`) and merges them into the existing results.json.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psutil  # type: ignore[import-untyped]  # no stubs in requirements-dev
from azure.data.tables import TableClient, TableServiceClient

from bench.collect import bench_collect_concurrency, bench_collect_throughput
from bench.data import START, RecordFactory, mailbox_events
from bench.detection import DETECTION_FIGURES, bench_detection_quality
from bench.files import bench_files_vs_duckdb, bench_import_peak
from bench.graph import bench_graph_requests
from bench.measure import MIB, goal_at_least, goal_at_most, paired_ratios, require, rounded, timed
from bench.report_overhead import bench_report_overhead
from bench.requests import bench_storage_requests
from bench.table_replay import TableReplay, serving
from devtools import azurite
from shared.detect.engine import detect
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from shared.reports.assemble import events_from_table, render_report
from shared.reports.request import ReportQuery
from shared.settings import DetectionSettings
from shared.storage import tables
from shared.storage.tables import MailboxAccessTable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().with_name("results.json")
STORAGE_ENV = "BENCH_STORAGE_CONNECTION_STRING"  # how the report child finds the table endpoint
REPORT_MAILBOX = "alice@contoso.com"

# Sizes and goals.
PARSE_RECORDS = 20_000
PARSE_REPEATS = 7
PARSE_GOAL_MAX = 2.0
INGEST_ROWS = 2_000
INGEST_MAILBOXES = 5
# Pairs, each side first in half of them: single runs of either side varied by half on this VM.
INGEST_PAIRS = 4
INGEST_GOAL_MIN = 4.0
REPORT_ROWS = 100_000
AZURITE_REPORT_ROWS = 5_000  # Azurite's per-partition upsert is O(rows already there)
AZURITE_LOAD_CHUNK = 1_000
REPORT_PAGE_ROWS = 1_000  # AccessTable.query_events' page size
REPORT_GOAL_MAX_MB = 100.0
RSS_SAMPLE_SECONDS = 0.02

# ---------------------------------------------------------------------------------------------
# Measurement helpers


def fresh_table(service: TableServiceClient, name: str) -> TableClient:
    service.delete_table(name)  # no error when absent
    return service.create_table(name)


def count_rows(table: TableClient) -> int:
    return sum(1 for _ in table.list_entities(select=["RowKey"], results_per_page=1000))


# ---------------------------------------------------------------------------------------------
# 1. Parse + normalize vs raw decode


def consume_events(data: bytes) -> ParseStats:
    stats = ParseStats()
    for _ in events_from_bytes(data, "bench", stats=stats):
        pass
    return stats


def bench_parse() -> dict[str, Any]:
    data = orjson.dumps(RecordFactory(seed=1).records(PARSE_RECORDS))
    stats: list[ParseStats] = []

    def parse() -> float:
        elapsed, parsed = timed(consume_events, data)
        stats.append(parsed)
        return elapsed

    pairs = paired_ratios(parse, lambda: timed(orjson.loads, data)[0], PARSE_REPEATS)
    for parsed in stats:
        require(parsed.malformed == 0 and parsed.records == PARSE_RECORDS, f"parse stats {parsed.as_dict()}")
    figure = goal_at_most(pairs["median_ratio"], PARSE_GOAL_MAX)
    figure["measurements"] = {
        "records": PARSE_RECORDS,
        "bytes": len(data),
        "bytes_per_record": round(len(data) / PARSE_RECORDS),
        "numerator": "events_from_bytes (parse + normalize), every event consumed, seconds",
        "denominator": "orjson.loads of the same bytes, seconds",
        **pairs,
        "parse_stats": stats[-1].as_dict(),
    }
    return figure


# ---------------------------------------------------------------------------------------------
# 2. Batched vs one-by-one ingest


def ingest_entities() -> list[dict[str, Any]]:
    """INGEST_ROWS realistic rows (parsed from generated records) over INGEST_MAILBOXES mailboxes."""
    factory = RecordFactory(seed=2)
    records = [factory.mail_items_accessed(START + timedelta(seconds=i), "Bind") for i in range(INGEST_ROWS)]
    events = list(events_from_bytes(orjson.dumps(records), "bench-ingest"))
    require(len({event.mailbox for event in events}) == INGEST_MAILBOXES, "ingest rows span every mailbox")
    return [MailboxAccessTable.to_entity(event) for event in events]


def insert_one_by_one(table: TableClient, entities: list[dict[str, Any]]) -> int:
    for entity in entities:
        table.create_entity(entity)
    return len(entities)


def insert_batched(table: TableClient, entities: list[dict[str, Any]]) -> int:
    return tables.insert_rows(table, entities).inserted


def bench_ingest(service: TableServiceClient) -> dict[str, Any]:
    entities = ingest_entities()
    warmup = fresh_table(service, "benchwarmup")  # connection pool and both code paths, untimed
    insert_one_by_one(warmup, entities[:10])
    insert_batched(warmup, entities[10:110])
    single_rows: list[int] = []
    batched_rows: list[int] = []

    def side(name: str, insert: Callable[[TableClient, list[dict[str, Any]]], int], rows: list[int]) -> float:
        table = fresh_table(service, f"{name}{len(rows)}")
        seconds = timed(insert, table, entities)[0]
        rows.append(count_rows(table))
        return seconds

    pairs = paired_ratios(
        lambda: side("benchsingle", insert_one_by_one, single_rows),
        lambda: side("benchbatched", insert_batched, batched_rows),
        INGEST_PAIRS,
    )
    expected = [INGEST_ROWS] * INGEST_PAIRS
    require(single_rows == batched_rows == expected, f"rows stored: {single_rows}, {batched_rows}")
    figure = goal_at_least(pairs["median_ratio"], INGEST_GOAL_MIN)
    figure["measurements"] = {
        "rows": INGEST_ROWS,
        "mailboxes": INGEST_MAILBOXES,
        "batch_size": tables.MAX_BATCH,
        "entity_bytes_avg": round(sum(tables.entity_bytes(e) for e in entities) / len(entities)),
        "numerator": "one create_entity per row, wall seconds",
        "denominator": "tables.insert_rows, wall seconds",
        **pairs,
        "rows_in_table_one_by_one": single_rows,
        "rows_in_table_batched": batched_rows,
    }
    return figure


# ---------------------------------------------------------------------------------------------
# 3. Report memory, measured in a child process


def report_query(mailbox: str) -> ReportQuery:
    end = START + timedelta(days=60)  # covers REPORT_ROWS rows 20 s apart
    return ReportQuery(subject=mailbox, by="mailbox", view="events", fmt="csv", start=START, end=end)


class PeakSampler(threading.Thread):
    """Samples this process's RSS every RSS_SAMPLE_SECONDS and keeps the peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def peak_rss_bytes() -> int:
    """VmHWM, the peak RSS of this address space. (ru_maxrss is no use here: on Linux a child
    inherits its parent's high-water mark across fork and exec.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> bool:
    """Lower VmHWM to the current RSS (Linux >= 4.0); without it the peak may include imports."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_child(mailbox: str, out_path: str) -> dict[str, Any]:
    """In the child, everything already imported: RSS baseline, then the report as `mia report -o`
    writes it, with the peak sampled meanwhile and read from VmHWM afterwards."""
    table = MailboxAccessTable.of(TableServiceClient.from_connection_string(os.environ[STORAGE_ENV]))
    query = report_query(mailbox)
    gc.collect()
    baseline = psutil.Process().memory_info().rss
    peak_reset = reset_peak_rss()
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    with open(out_path, "w", encoding="utf-8", newline="") as out:
        rows = render_report(query, events_from_table(table, query), out)
    elapsed = time.perf_counter() - started
    sampler.stop()
    return {
        "rows_rendered": rows,
        "report_seconds": round(elapsed, 2),
        "baseline_rss_bytes": baseline,
        "peak_rss_sampled_bytes": sampler.peak,
        "rss_samples": sampler.samples,
        "peak_rss_vmhwm_bytes": peak_rss_bytes(),
        "vmhwm_reset_at_baseline": peak_reset,
    }


def run_rss_child(connection_string: str, mailbox: str, out_path: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.run", "--rss-child", mailbox, str(out_path)]
    env = {**os.environ, STORAGE_ENV: connection_string}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"report child failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def csv_line_counts(path: Path) -> tuple[int, int]:
    """(physical lines, CSV records) of the report file."""
    with path.open("rb") as raw:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: raw.read(MIB), b""))
    with path.open(encoding="utf-8", newline="") as text:
        records = sum(1 for _ in csv.reader(text))
    return lines, records


def measure_report(connection_string: str, rows: int) -> dict[str, Any]:
    """Run the report child against a table endpoint holding `rows` rows of REPORT_MAILBOX."""
    with tempfile.TemporaryDirectory(prefix="mia-bench-") as work:
        out_path = Path(work) / "report.csv"
        child = run_rss_child(connection_string, REPORT_MAILBOX, out_path)
        lines, records = csv_line_counts(out_path)
        size = out_path.stat().st_size
    peak = max(child["peak_rss_sampled_bytes"], child["peak_rss_vmhwm_bytes"])
    return {
        "rss_growth_mb": round((peak - child["baseline_rss_bytes"]) / MIB, 2),
        **child,
        "csv_bytes": size,
        "csv_lines_expected": rows + 1,
        "csv_lines": lines,
        "csv_records": records,
        "csv_lines_ok": lines == records == rows + 1,
    }


def load_azurite_rows(connection_string: str, rows: int) -> dict[str, Any]:
    """`rows` rows of REPORT_MAILBOX into MailboxAccess, batched, timing each chunk: the growth of
    the per-chunk time is Azurite's partition scan."""
    table = MailboxAccessTable.of(TableServiceClient.from_connection_string(connection_string))
    events = mailbox_events(REPORT_MAILBOX, rows, seed=3)
    entities = [table.to_entity(event) for event in events]
    chunk_seconds = []
    for start in range(0, rows, AZURITE_LOAD_CHUNK):
        chunk = entities[start : start + AZURITE_LOAD_CHUNK]
        chunk_seconds.append(timed(tables.upsert_entities, table.client, chunk)[0])
    require(count_rows(table.client) == rows, f"{rows} rows stored in Azurite")
    return {
        "rows_loaded": rows,
        "load_chunk_rows": AZURITE_LOAD_CHUNK,
        "load_chunk_seconds": rounded(chunk_seconds),
    }


def report_in_azurite(connection_string: str) -> dict[str, Any]:
    service = TableServiceClient.from_connection_string(connection_string)
    service.create_table_if_not_exists(MailboxAccessTable.NAME)
    load = load_azurite_rows(connection_string, AZURITE_REPORT_ROWS)
    return {"rows_served_by": "Azurite", **load, **measure_report(connection_string, AZURITE_REPORT_ROWS)}


def report_from_replay() -> dict[str, Any]:
    events = mailbox_events(REPORT_MAILBOX, REPORT_ROWS, seed=4)
    entities = [MailboxAccessTable.to_entity(event) for event in events]
    partition = entities[0]["PartitionKey"]  # every event is REPORT_MAILBOX's
    replay = TableReplay(MailboxAccessTable.NAME, partition, entities, REPORT_PAGE_ROWS)
    del entities
    with serving(replay) as port:
        measured = measure_report(azurite.connection_string(port, port, port), REPORT_ROWS)
    served = {"requests": replay.requests, "bytes_served": replay.bytes_served}
    return {"rows_served_by": "bench.table_replay (Table query protocol over HTTP)", **served, **measured}


def bench_report(connection_string: str) -> dict[str, Any]:
    in_azurite = report_in_azurite(connection_string)
    replayed = report_from_replay()
    figure = goal_at_most(replayed["rss_growth_mb"], REPORT_GOAL_MAX_MB)
    # Met only if the CSV is complete and the same report from real Azurite also stays in budget.
    cross_check_ok = in_azurite["csv_lines_ok"] and in_azurite["rss_growth_mb"] <= REPORT_GOAL_MAX_MB
    figure["met"] = figure["met"] and replayed["csv_lines_ok"] and cross_check_ok
    figure["measurements"] = {
        "growth_rule": "max(sampled peak RSS, VmHWM) - RSS after imports, MiB",
        "rows": REPORT_ROWS,
        "why_not_azurite": (
            "Azurite 3.35 finds an entity by its PartitionKey index, then scans every row of the "
            "partition for the RowKey, on each insert or upsert: loading one mailbox is quadratic "
            "(see azurite_cross_check.load_chunk_seconds) and 100,000 rows would take hours"
        ),
        **replayed,
        "azurite_cross_check": in_azurite,
    }
    return figure


# ---------------------------------------------------------------------------------------------
# Run


def commit() -> dict[str, Any]:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: git status must not touch the index
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes": None}
    return {"commit": head, "uncommitted_changes": bool(status.strip())}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_total_bytes": psutil.virtual_memory().total,
        "orjson": orjson.__version__,
    }


@dataclass(frozen=True)
class Section:
    """One part of the run: the figures it writes, whether it needs the bench's Azurite, and how
    (given Azurite's connection string, or "" when it needs none) it measures them."""

    name: str
    figures: tuple[str, ...]
    needs_azurite: bool
    measure: Callable[[str], dict[str, Any]]


def _one(name: str, action: Callable[[str], dict[str, Any]], needs_azurite: bool = True) -> Section:
    return Section(name, (name,), needs_azurite, lambda connection: {name: action(connection)})


def _detection(_: str) -> dict[str, Any]:
    # The held-out BENCH_SEEDS, never used by the tests, through the rules as enrich_trace runs them.
    return bench_detection_quality(lambda events: detect(events, DetectionSettings()))


def _ingest(connection_string: str) -> dict[str, Any]:
    return bench_ingest(TableServiceClient.from_connection_string(connection_string))


# In the order they run.
SECTIONS = (
    _one("parse_ratio_to_raw_decode", lambda _: bench_parse(), needs_azurite=False),
    _one("report_overhead_ratio", lambda _: bench_report_overhead(), needs_azurite=False),
    _one("files_report_vs_duckdb", lambda _: bench_files_vs_duckdb(), needs_azurite=False),
    _one("ingest_batch_speedup", _ingest),
    _one("report_rss_growth_mb_100k", bench_report),
    _one("import_peak_rss_mb", bench_import_peak),
    _one("storage_requests_per_1000_records", bench_storage_requests),
    _one("collect_records_per_s", bench_collect_throughput),
    _one("collect_concurrency_speedup", bench_collect_concurrency),
    _one("graph_requests_per_1000_messages", bench_graph_requests),
    Section("detection_quality", DETECTION_FIGURES, False, _detection),
)
FIGURES = tuple(figure for section in SECTIONS for figure in section.figures)


def print_table(results: dict[str, Any], seconds: dict[str, float], elapsed: float) -> None:
    """The figures in the file, then how long this run's sections took."""
    print(f"{'figure':<34} {'value':>9}  {'goal':<8} met")
    for name in FIGURES:
        figure = results.get(name)
        if figure is None:  # not measured yet: a run with --only before any full run
            continue
        value = "-" if figure["value"] is None else f"{figure['value']:.3f}"  # latency: nothing flagged
        if figure["goal"] is None:
            print(f"{name:<34} {value:>9}  {'-':<8} -")
            continue
        ((kind, limit),) = figure["goal"].items()
        goal = f"{'<=' if kind == 'at_most' else '>='} {limit:g}"
        print(f"{name:<34} {value:>9}  {goal:<8} {'yes' if figure['met'] else 'NO'}")
    sections = ", ".join(f"{name} {took:.0f} s" for name, took in seconds.items())
    print(f"total {elapsed:.0f} s ({sections}); written to {RESULTS.relative_to(ROOT)}")


def chosen_sections(only: list[str] | None) -> tuple[Section, ...]:
    """Every section, or those naming (or writing a figure named) in `only`."""
    if only is None:
        return SECTIONS
    known = {section.name for section in SECTIONS} | set(FIGURES)
    unknown = sorted(set(only) - known)
    if unknown:
        raise SystemExit(f"bench: unknown figure {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return tuple(s for s in SECTIONS if s.name in only or any(figure in only for figure in s.figures))


def run_sections(sections: tuple[Section, ...]) -> tuple[dict[str, Any], dict[str, float]]:
    figures: dict[str, Any] = {}
    seconds: dict[str, float] = {}

    def run(section: Section, connection_string: str) -> None:
        begun = time.perf_counter()
        figures.update(section.measure(connection_string))
        seconds[section.name] = round(time.perf_counter() - begun, 1)

    if not any(section.needs_azurite for section in sections):
        for section in sections:
            run(section, "")
        return figures, seconds
    with azurite.running_azurite() as connection_string:
        for section in sections:
            run(section, connection_string if section.needs_azurite else "")
    return figures, seconds


def run_header() -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        **commit(),
    }


def main(only: list[str] | None = None) -> None:
    """Measure the chosen figures and write bench/results.json: all of them afresh, or (with
    `only`) those merged into the file's earlier results, the run that measured them named."""
    started = time.perf_counter()
    sections = chosen_sections(only)
    figures, seconds = run_sections(sections)
    elapsed = round(time.perf_counter() - started, 1)
    if only is None:
        results = {**run_header(), **figures, "section_seconds": seconds, "total_seconds": elapsed}
    else:
        results = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
        results.setdefault("section_seconds", {}).update(seconds)
        results.setdefault("total_seconds", None)
        results.update(figures)
        partial = {**run_header(), "sections": [s.name for s in sections], "seconds": elapsed}
        results.setdefault("partial_runs", []).append(partial)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_table(results, seconds, elapsed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Write bench/results.json.")
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        metavar="NAME[,NAME]",
        help="measure only these figures (or sections, e.g. detection_quality) and merge them into "
        "the existing bench/results.json",
    )
    parser.add_argument("--rss-child", nargs=2, metavar=("MAILBOX", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    if args.rss_child:
        print(json.dumps(rss_child(*args.rss_child)))
    else:
        main(args.only)

"""Figures of what a responder does with an export file, each tool a process of its own:

- `import_peak_rss_mb`: the larger peak RSS of `mia import` (to Azurite) and of `mia report
  --input --view sessions` on a generated Purview export of at least IMPORT_EXPORT_BYTES;
- `files_report_vs_duckdb`: the wall time of that report over DuckDB's computing the same sessions
  from the same CSV (bench/duckdb_sessions.py), on a DUCKDB_EXPORT_BYTES export.

Each tool's answer is checked: the import's blob must say it holds every row written, and the
report must have the sessions DuckDB finds, with the same counts and times.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from bench.export import ExportSummary, write_export
from bench.measure import MIB, goal_at_most, paired_ratios, require
from devtools.azurite import fresh_storage
from shared.storage import RAW_CONTAINER
from shared.storage.raw_store import import_blob_name

ROOT = Path(__file__).resolve().parent.parent
STORAGE_SETTING = "AzureWebJobsStorage"  # where `mia` finds its storage (README: storage)

IMPORT_EXPORT_BYTES = 500 * MIB
IMPORT_EXPORT_SEED = 41
IMPORT_GOAL_MAX_MB = 250.0
DUCKDB_EXPORT_BYTES = 150 * MIB  # smaller than the import's: a warm-up and four pairs fit the budget
DUCKDB_EXPORT_SEED = 43
# An even number, so that each side runs first in as many pairs as the other (the second run of a
# pair was measured slower on this VM, whichever it was).
DUCKDB_PAIRS = 4
DUCKDB_GOAL_MAX = 1.5
DUCKDB_THREADS = os.cpu_count() or 1

# The sessions view's columns that DuckDB computes too: compared as they are...
SAME_VALUE_COLUMNS = (
    "FirstSeen",
    "LastSeen",
    "Records",
    "Operations",
    "BindRecords",
    "SyncRecords",
    "DistinctMessages",
)
# ...and the view's lists ("; "-separated), compared by their number of entries.
COUNTED_COLUMNS = ("Folders", "ClientIPs", "LogonTypes", "Users")


def mia(*args: str) -> list[str]:
    """A `mia` command run from this checkout (python -m, so the working tree's code is run)."""
    return [sys.executable, "-m", "mia", *args]


def tail(path: Path, limit: int = 2000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-limit:]


def peak_of(
    command: Sequence[str], work: Path, name: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The peak memory of `command`, measured by the bench.peak_rss launcher: the largest of the
    sampled RSS, the sampled VmHWM, the kernel's ru_maxrss and the sampled PSS of the command and
    its children together."""
    stdout, stderr = work / f"{name}.stdout", work / f"{name}.stderr"
    launcher = [sys.executable, "-m", "bench.peak_rss", "--stdout", str(stdout), "--stderr", str(stderr)]
    done = subprocess.run(
        [*launcher, "--", *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    require(done.returncode == 0, f"peak_rss launcher for {name}: {done.stderr[-2000:]}")
    measured: dict[str, Any] = json.loads(done.stdout)
    require(measured["returncode"] == 0, f"{name} exited {measured['returncode']}: {tail(stderr)}")
    # The tree's PSS counts the pool's processes of `mia report --input` (their shared pages once).
    peak = max(
        measured["peak_rss_sampled_bytes"],
        measured["vmhwm_sampled_bytes"],
        measured["ru_maxrss_bytes"],
        measured["tree_peak_pss_sampled_bytes"],
    )
    return {
        "command": " ".join(["python", *command[1:]]),
        "peak_mb": round(peak / MIB, 1),
        **measured,
        "summary": tail(stdout, 500).strip() or tail(stderr, 500).strip(),
    }


def stored_record_count(connection_string: str, export: ExportSummary) -> int:
    """The `recordCount` metadata of the blob `mia import` stored for `export`."""
    blobs = BlobServiceClient.from_connection_string(connection_string)
    blob = blobs.get_blob_client(RAW_CONTAINER, import_blob_name(export.sha256))
    return int(blob.get_blob_properties().metadata["recordCount"])


def run_duckdb(export: Path, out: Path) -> float:
    """Wall seconds of bench.duckdb_sessions writing the sessions of `export` to `out`."""
    command = [sys.executable, "-m", "bench.duckdb_sessions", str(export), str(out)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--threads", str(DUCKDB_THREADS)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    require(done.returncode == 0, f"duckdb sessions: {done.stderr[-2000:]}")
    return elapsed


def run_report(export: Path, out: Path) -> float:
    """Wall seconds of `mia report --input export --view sessions -o out`."""
    started = time.perf_counter()
    done = subprocess.run(
        mia("report", "--input", str(export), "--view", "sessions", "-o", str(out)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    require(done.returncode == 0, f"mia report --input: {done.stderr[-2000:]}")
    return elapsed


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as text:
        return list(csv.DictReader(text))


def entries(cell: str) -> int:
    return len(cell.split("; ")) if cell else 0


def compare_sessions(ours_path: Path, duckdb_path: Path) -> dict[str, Any]:
    """Require the report's sessions to be DuckDB's: the same SessionIds in the same order, and
    per session the same SAME_VALUE_COLUMNS, entry counts of COUNTED_COLUMNS and Throttled."""
    ours, theirs = csv_rows(ours_path), csv_rows(duckdb_path)
    require(
        [row["SessionId"] for row in ours] == [row["SessionId"] for row in theirs],
        f"sessions: mia report has {len(ours)}, DuckDB {len(theirs)} (or in another order)",
    )
    for mine, reference in zip(ours, theirs, strict=True):
        for column in SAME_VALUE_COLUMNS:
            require(
                mine[column] == reference[column],
                f"session {mine['SessionId']} {column}: "
                f"mia report {mine[column]!r}, DuckDB {reference[column]!r}",
            )
        for column in COUNTED_COLUMNS:
            require(
                entries(mine[column]) == int(reference[column]),
                f"session {mine['SessionId']} "
                f"{column}: mia report {mine[column]!r}, DuckDB {reference[column]} entries",
            )
        require(mine["Throttled"].lower() == reference["Throttled"].lower(), f"{mine['SessionId']} Throttled")
    return {
        "sessions": len(ours),
        "records": sum(int(row["Records"]) for row in ours),
        "columns_compared": [
            *SAME_VALUE_COLUMNS,
            *(f"{column} (entries)" for column in COUNTED_COLUMNS),
            "Throttled",
        ],
    }


def check_against_export(agreed: dict[str, Any], export: ExportSummary) -> None:
    require(
        agreed["sessions"] == export.sessions, f"{agreed['sessions']} sessions, {export.sessions} written"
    )
    require(
        agreed["records"] == export.mail_items_accessed,
        f"{agreed['records']} records in sessions, {export.mail_items_accessed} MailItemsAccessed written",
    )


def bench_import_peak(connection_string: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mia-bench-import-") as folder:
        work = Path(folder)
        export_path = work / "purview-export.csv"
        generated_at = time.perf_counter()
        export = write_export(export_path, IMPORT_EXPORT_BYTES, IMPORT_EXPORT_SEED)
        generate_seconds = time.perf_counter() - generated_at
        fresh_storage(connection_string)
        imported = peak_of(
            mia("import", str(export_path)), work, "import", {STORAGE_SETTING: connection_string}
        )
        stored = stored_record_count(connection_string, export)
        require(
            stored == export.rows, f"the imported blob's recordCount {stored}, rows written {export.rows}"
        )
        report = peak_of(
            mia(
                "report", "--input", str(export_path), "--view", "sessions", "-o", str(work / "sessions.csv")
            ),
            work,
            "report",
        )
        duckdb_seconds = run_duckdb(export_path, work / "duckdb-sessions.csv")
        agreed = compare_sessions(work / "sessions.csv", work / "duckdb-sessions.csv")
        check_against_export(agreed, export)
    figure = goal_at_most(max(imported["peak_mb"], report["peak_mb"]), IMPORT_GOAL_MAX_MB)
    figure["measurements"] = {
        "peak_rule": "per process max(sampled RSS, sampled VmHWM, ru_maxrss), MiB; the figure is the larger",
        **export.as_dict(),
        "generate_seconds": round(generate_seconds, 1),
        "import": {**imported, "blob_record_count": stored},
        "report": report,
        "sessions_agree_with_duckdb": agreed,
        "duckdb_check_seconds": round(duckdb_seconds, 2),
    }
    return figure


def bench_files_vs_duckdb() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mia-bench-duckdb-") as folder:
        work = Path(folder)
        export_path = work / "purview-export.csv"
        export = write_export(export_path, DUCKDB_EXPORT_BYTES, DUCKDB_EXPORT_SEED)
        ours_out, duckdb_out = work / "sessions.csv", work / "duckdb-sessions.csv"
        pairs = paired_ratios(
            lambda: run_report(export_path, ours_out),
            lambda: run_duckdb(export_path, duckdb_out),
            DUCKDB_PAIRS,
            warm_up=True,
        )
        agreed = compare_sessions(ours_out, duckdb_out)
        check_against_export(agreed, export)
    figure = goal_at_most(pairs["median_ratio"], DUCKDB_GOAL_MAX)
    figure["measurements"] = {
        **export.as_dict(),
        "mia_report": "python -m mia report --input EXPORT --view sessions -o OUT.csv",
        "duckdb": f"python -m bench.duckdb_sessions EXPORT OUT.csv --threads {DUCKDB_THREADS}",
        "duckdb_version": importlib.metadata.version("duckdb"),
        "numerator": "mia report wall seconds",
        "denominator": "DuckDB wall seconds",
        **pairs,
        "sessions_agree_with_duckdb": agreed,
    }
    return figure

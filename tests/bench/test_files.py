"""bench/files.py: the report's sessions are accepted only when they are DuckDB's, session by
session, column by column."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.files import compare_sessions

pytestmark = pytest.mark.unit

OURS = {
    "SessionId": "s1",
    "FirstSeen": "2026-10-01T00:00:00Z",
    "LastSeen": "2026-10-01T01:00:00Z",
    "Records": "3",
    "Operations": "7",
    "BindRecords": "2",
    "SyncRecords": "1",
    "DistinctMessages": "5",
    "Folders": "Inbox; Sent Items",
    "ClientIPs": "203.0.113.7",
    "LogonTypes": "Owner",
    "Users": "alice@contoso.com",
    "Throttled": "False",
}
DUCKDB = {**OURS, "Folders": "2", "ClientIPs": "1", "LogonTypes": "1", "Users": "1", "Throttled": "false"}


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_same_sessions_agree(tmp_path: Path) -> None:
    agreed = compare_sessions(write(tmp_path / "ours.csv", [OURS]), write(tmp_path / "duckdb.csv", [DUCKDB]))
    assert agreed["sessions"] == 1
    assert agreed["records"] == 3


@pytest.mark.parametrize(
    ("column", "ours", "duckdb"),
    [("Records", "3", "4"), ("LastSeen", "2026-10-01T01:00:00Z", "2026-10-01T01:00:01Z"),
     ("Folders", "Inbox; Sent Items", "3"), ("Throttled", "True", "false")],
)  # fmt: skip
def test_a_session_that_differs_in_any_column_fails_the_run(
    tmp_path: Path, column: str, ours: str, duckdb: str
) -> None:
    mine = write(tmp_path / "ours.csv", [{**OURS, column: ours}])
    reference = write(tmp_path / "duckdb.csv", [{**DUCKDB, column: duckdb}])
    with pytest.raises(RuntimeError, match=column):
        compare_sessions(mine, reference)


def test_a_missing_or_reordered_session_fails_the_run(tmp_path: Path) -> None:
    second = {**OURS, "SessionId": "s2"}
    mine = write(tmp_path / "ours.csv", [OURS, second])
    with pytest.raises(RuntimeError, match="sessions"):
        compare_sessions(mine, write(tmp_path / "duckdb.csv", [DUCKDB]))
    with pytest.raises(RuntimeError, match="sessions"):
        compare_sessions(mine, write(tmp_path / "again.csv", [{**DUCKDB, "SessionId": "s2"}, DUCKDB]))

"""The sessions view of a Purview export, computed by DuckDB: the yardstick of
`files_report_vs_duckdb`, and the independent answer the bench checks `mia report` against.

Run as `python -m bench.duckdb_sessions EXPORT OUT.csv`, a process of its own as `mia report` is,
so both wall times include starting the interpreter. DuckDB reads the same CSV (AuditData as text),
takes the fields `shared.reports.views.session_rows` needs from the JSON with one parse per record
(`json_extract_string` with a list of paths, https://duckdb.org/docs/data/json/json_functions),
keeps MailItemsAccessed, one row per record Id (DISTINCT ON: DuckDB's CSV scan gives no row number
to pick the first copy by, and the bench's repeats are exact copies, so any copy is the first),
and aggregates per SessionId what SQL can compute of the view's columns. Bench only: duckdb is in
requirements-bench.txt, never a dependency.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import duckdb

# The view's own names for a record without a SessionId (shared.reports.views.NO_SESSION).
NO_SESSION = "(no session id)"
MAX_LINE_BYTES = 64 * 1024 * 1024  # a Bind record of thousands of items is megabytes of AuditData

# The fields, in the order of FIELD_PATHS: the normalizer's sources for them
# (shared/parse/normalize.py), keys as the Management API spells them.
FIELD_PATHS = (
    "$.Id",
    "$.CreationTime",
    "$.SessionId",
    "$.ClientIPAddress",
    "$.UserId",
    "$.LogonType",
    "$.OperationCount",
)

SESSIONS_SQL = """
WITH exported AS (
    SELECT AuditData FROM read_csv(
        {path}, header = true, delim = ',', quote = '"', escape = '"', all_varchar = true,
        max_line_size = {max_line}, parallel = true
    )
    WHERE Operation = 'MailItemsAccessed'
),
fields AS (
    SELECT
        json_extract_string(AuditData, {paths}) AS f,
        list_transform(
            json_extract_string(AuditData, '$.OperationProperties[*].Name'), lambda n: lower(trim(n))
        ) AS property_names,
        json_extract_string(AuditData, '$.OperationProperties[*].Value') AS property_values,
        json_extract_string(AuditData, '$.Folders[*].Path') AS folder_paths,
        json_extract_string(AuditData, '$.Item.ParentFolder.Path') AS item_folder,
        json_extract_string(AuditData, '$.Folders[*].FolderItems[*].InternetMessageId') AS messages,
        json_extract_string(AuditData, '$.Item.InternetMessageId') AS item_message
    FROM exported
),
records AS (
    SELECT DISTINCT ON (trim(f[1]))
        trim(f[1]) AS record_id,
        coalesce(nullif(trim(f[3]), ''), '{no_session}') AS session_id,
        strptime(left(trim(f[2]), 19), '%Y-%m-%dT%H:%M:%S') AS seen_at,
        trim(f[4]) AS raw_ip,
        lower(trim(f[5])) AS user_id,
        trim(f[6]) AS logon_type,
        coalesce(try_cast(trim(f[7]) AS BIGINT), 1) AS operations,
        lower(trim(property_values[list_position(property_names, 'mailaccesstype')])) AS access,
        lower(trim(property_values[list_position(property_names, 'isthrottled')])) = 'true' AS throttled,
        list_filter(
            list_transform(
                list_append(coalesce(folder_paths, []), item_folder), lambda p: ltrim(trim(p), '\\')
            ),
            lambda p: p IS NOT NULL AND p <> ''
        ) AS folders,
        list_filter(
            list_transform(list_append(coalesce(messages, []), item_message), lambda m: trim(m)),
            lambda m: m IS NOT NULL AND m <> ''
        ) AS message_ids
    FROM fields
),
addressed AS (
    SELECT *,
        CASE  -- shared.parse.decoders.client_ip: no port, brackets or IPv4-mapped prefix
            WHEN raw_ip LIKE '[%' THEN regexp_extract(raw_ip, '^\\[([^\\]]*)', 1)
            WHEN length(raw_ip) - length(replace(raw_ip, ':', '')) = 1 THEN split_part(raw_ip, ':', 1)
            WHEN lower(raw_ip) LIKE '::ffff:%.%' THEN substr(raw_ip, 8)
            ELSE lower(raw_ip)
        END AS client_ip
    FROM records
)
SELECT
    session_id AS SessionId,
    strftime(min(seen_at), '%Y-%m-%dT%H:%M:%SZ') AS FirstSeen,
    strftime(max(seen_at), '%Y-%m-%dT%H:%M:%SZ') AS LastSeen,
    count(*) AS Records,
    sum(operations) AS Operations,
    count_if(access = 'bind') AS BindRecords,
    count_if(access = 'sync') AS SyncRecords,
    len(list_distinct(flatten(list(message_ids)))) AS DistinctMessages,
    len(list_distinct(flatten(list(folders)))) AS Folders,
    count(DISTINCT nullif(client_ip, '')) AS ClientIPs,
    count(DISTINCT nullif(logon_type, '')) AS LogonTypes,
    count(DISTINCT nullif(user_id, '')) AS Users,
    bool_or(coalesce(throttled, false)) AS Throttled
FROM addressed
GROUP BY session_id
ORDER BY min(seen_at), session_id
"""


def sql_text(value: str) -> str:
    """A SQL string literal (COPY and read_csv take no prepared parameters for file names)."""
    return "'" + value.replace("'", "''") + "'"


def sessions_query(export: Path) -> str:
    paths = "[" + ", ".join(sql_text(path) for path in FIELD_PATHS) + "]"
    return SESSIONS_SQL.format(
        path=sql_text(str(export)), paths=paths, max_line=MAX_LINE_BYTES, no_session=NO_SESSION
    )


def write_sessions(export: Path, out: Path, threads: int) -> None:
    """The sessions of `export` written to `out` as CSV with a header, on `threads` threads."""
    connection = duckdb.connect(config={"threads": threads})
    try:
        connection.execute(f"COPY ({sessions_query(export)}) TO {sql_text(str(out))} (HEADER, DELIMITER ',')")
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.duckdb_sessions", description=__doc__)
    parser.add_argument("export", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    write_sessions(args.export, args.out, args.threads)


if __name__ == "__main__":
    main()

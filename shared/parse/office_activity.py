"""Microsoft Sentinel / Log Analytics `OfficeActivity` rows as the AuditData records they came from.

The table flattens the audit record into columns and renames a few; its columns and types are in
the Azure Monitor Logs table reference, "OfficeActivity"
(https://learn.microsoft.com/azure/azure-monitor/reference/tables/officeactivity). A row is turned
back into the AuditData shape and then goes through the same normalizer as every other export, so
the same record gives the same event whichever way it arrived:

- `OfficeId` ("Unique identifier of an audit record") is the record's `Id`, the row key everywhere;
- `TimeGenerated` ("when the user performed the activity", UTC) is `CreationTime`; the portal's CSV
  writes it as `TimeGenerated [UTC]` in its display format, ISO 8601 elsewhere;
- `Client_IPAddress` is `ClientIPAddress` and `Logon_Type` is `LogonType` (a name or a number);
- `Folders`, `Item` (string columns) and `OperationProperties`, `AppAccessContext` (dynamic ones)
  hold the nested values as JSON text in a CSV, as JSON or JSON text in a JSON export;
- every other column keeps its name (`MailboxOwnerUPN`, `UserId`, `ClientIP`, `SessionId`, ...).
  A field the table has no column for (`OperationCount`) stays absent: nothing is guessed.

Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.model.times import iso_z, utc_timestamp
from shared.parse.text import repair_value

# The portal's CSV header marks the time zone of its datetime columns: `TimeGenerated [UTC]`.
_ZONE_SUFFIX = re.compile(r"\s*\[UTC\]\s*$", re.IGNORECASE)

# Columns renamed when the table flattened the record: column -> AuditData name.
RENAMED_COLUMNS = {
    "OfficeId": "Id",
    "TimeGenerated": "CreationTime",
    "Client_IPAddress": "ClientIPAddress",
    "Logon_Type": "LogonType",
}
# Columns holding a nested AuditData value, as JSON text in a CSV (and sometimes in JSON exports);
# the last two are `dynamic`, the others `string`.
NESTED_COLUMNS = ("Folders", "Item", "OperationProperties", "AppAccessContext")
# AuditData fields the table has no column for.
ABSENT_FIELDS = ("OperationCount",)
_RENAMED = {column.lower(): name for column, name in RENAMED_COLUMNS.items()}
_NESTED = tuple(column.lower() for column in NESTED_COLUMNS)

# The portal's English (United States) display format: "11/18/2026, 2:14:00.000 PM". Other display
# languages order day and month differently, and a date such as 3/4 cannot tell which was meant.
_US_DISPLAY_TIME = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4}),?\s+(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?\s*([AaPp][Mm])$"
)


class RowError(ValueError):
    """The row cannot be read back into an AuditData record."""


def column_name(header: str) -> str:
    """A CSV header cell as the table's column name: `TimeGenerated [UTC]` is `TimeGenerated`."""
    return _ZONE_SUFFIX.sub("", header.strip().lstrip("\ufeff"))


def is_office_activity(columns: list[str]) -> bool:
    """Whether these columns are an OfficeActivity export's: its record id column and an operation."""
    names = {column_name(name).lower() for name in columns}
    return "officeid" in names and "operation" in names


def display_time(value: str) -> datetime | None:
    """A TimeGenerated cell as a UTC time: ISO 8601, or the portal's English (US) display format.
    None for anything else (another display language is refused rather than guessed at)."""
    text = value.strip()
    iso = utc_timestamp(text)
    if iso is not None:
        return iso
    match = _US_DISPLAY_TIME.match(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, fraction, half = match.groups()
    hour_12 = int(hour)
    if not 1 <= hour_12 <= 12:
        return None
    hour_24 = hour_12 % 12 + (12 if half.lower() == "pm" else 0)
    micros = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(int(year), int(month), int(day), hour_24, int(minute), int(second), micros, UTC)
    except ValueError:
        return None


def _json_text(name: str, value: object) -> object:
    """A nested column's value: JSON text decoded (empty text is absent); JSON values pass."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        pass
    try:  # lone surrogate escapes, integers beyond 64 bits: repaired by the caller
        return json.loads(value)
    except (ValueError, RecursionError) as problem:
        raise RowError(f"{name} is not JSON: {str(problem)[:200]}") from None


def audit_record(row: Mapping[str, object]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The AuditData record an OfficeActivity row was flattened from, and the JSON paths of the
    text in it that had to be repaired. Raises RowError for a row that cannot be read."""
    record: dict[str, Any] = {}
    for header, value in row.items():
        if not isinstance(header, str):
            continue
        name = column_name(header)
        folded = name.lower()
        if folded in _NESTED:
            value = _json_text(name, value)
        if value is None or value == "":
            continue  # an empty cell is an absent field, as in the AuditData record
        record[_RENAMED.get(folded, name)] = value
    generated = record.get("CreationTime")
    if generated is not None:
        moment = display_time(generated) if isinstance(generated, str) else None
        if moment is None:
            raise RowError(
                f"TimeGenerated {str(generated)[:40]!r} is neither ISO 8601 nor the portal's "
                "English (United States) format such as '11/18/2026, 2:14:00.000 PM'"
            )
        record["CreationTime"] = iso_z(moment)
    repaired: list[str] = []
    return repair_value(record, repaired), tuple(repaired)

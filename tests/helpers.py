"""Helpers shared by the integration and function tests (real Azurite, no mocks).

The expectations about the bundled sample are computed here straight from the CSV with the csv
and json modules, independently of the readers and normalizer under test.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, cast

from azure.data.tables import TableClient

from shared.model.event import AccessEvent, MessageRef
from shared.parse.readers import PURVIEW_COLUMNS
from shared.reports.render import BOM
from shared.settings import AlertSettings, DetectionSettings
from shared.storage import Storage, raw_store
from shared.storage.base import Table

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "contoso-purview-export.csv"

# The sample spans 16-20 Nov 2026 (samples/generate_sample.py); this range holds all of it.
SAMPLE_FROM = "2026-11-16"
SAMPLE_TO = "2026-11-20"

Entity = dict[str, Any]


@cache
def sample_records() -> tuple[dict[str, Any], ...]:
    """Every AuditData record of the sample, in file order (the duplicate included)."""
    with SAMPLE.open(encoding="utf-8-sig", newline="") as handle:
        return tuple(json.loads(row["AuditData"]) for row in csv.DictReader(handle))


def sample_mia_records() -> list[dict[str, Any]]:
    """The sample's MailItemsAccessed records, each distinct Id once (first occurrence)."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in sample_records():
        if record["Operation"] == "MailItemsAccessed":
            chosen.setdefault(record["Id"], record)
    return list(chosen.values())


def expected_row_key(record: dict[str, Any]) -> str:
    """The RowKey `<CreationTime yyyymmddThhmmss>_<record Id>` (sample times are UTC):
    docs/architecture.md#access-tables-mailboxaccess-and-actoraccess."""
    moment = datetime.strptime(record["CreationTime"], "%Y-%m-%dT%H:%M:%S")
    return f"{moment:%Y%m%dT%H%M%S}_{record['Id']}"


def expected_keys(by: str) -> set[tuple[str, str]]:
    """(PartitionKey, RowKey) of every row the sample must produce in MailboxAccess / ActorAccess."""
    field_name = "MailboxOwnerUPN" if by == "mailbox" else "UserId"
    return {(r[field_name].lower(), expected_row_key(r)) for r in sample_mia_records()}


def records_for(subject: str, by: str = "mailbox") -> list[dict[str, Any]]:
    field_name = "MailboxOwnerUPN" if by == "mailbox" else "UserId"
    chosen = [r for r in sample_mia_records() if r[field_name].lower() == subject]
    return sorted(chosen, key=lambda r: (r["CreationTime"], r["Id"]))


def full_scan(table: Table) -> list[Entity]:
    """Every entity of a table as stored (properties only, no etag/timestamp), sorted by key."""
    entities = [dict(entity) for entity in table.client.list_entities()]
    return sorted(entities, key=lambda e: (e["PartitionKey"], e["RowKey"]))


def scan_all(storage: Storage) -> dict[str, list[Entity]]:
    """Every entity of MailboxAccess ("mailbox") and ActorAccess ("actor")."""
    return {"mailbox": full_scan(storage.mailbox_access), "actor": full_scan(storage.actor_access)}


def keys_of(entities: Iterable[Entity]) -> set[tuple[str, str]]:
    return {(e["PartitionKey"], e["RowKey"]) for e in entities}


def blob_names(storage: Storage) -> list[str]:
    container = storage.blobs.get_container_client("audit-raw")
    return sorted(blob.name for blob in container.list_blobs())


def parse_csv(text: str) -> list[list[str]]:
    """The rows of a CSV report, which starts with one UTF-8 byte-order mark (for Excel) before
    the header; the mark is checked and left out of the first cell."""
    assert text.startswith(BOM), f"a CSV report starts with a byte-order mark: {text[:40]!r}"
    text = text.removeprefix(BOM)
    assert not text.startswith(BOM), "the byte-order mark is written once"
    # A Bind record of thousands of messages has a Messages cell past csv's default 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    return list(csv.reader(io.StringIO(text, newline="")))


def write_json_array(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """A Management Activity API content blob: one JSON array of records."""
    path.write_text(json.dumps(list(records), ensure_ascii=False), encoding="utf-8")
    return path


def write_purview_export(path: Path, rows: Iterable[tuple[dict[str, Any], str, bool]]) -> Path:
    """A Purview-shaped audit export (UTF-8 with BOM, CRLF): for each (record, extra, indented), a
    row whose AuditData is the record, compact or indented (line breaks inside the quoted cell),
    with `extra` in the cell after it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(PURVIEW_COLUMNS)
    for audit, extra, indented in rows:
        audit_data = json.dumps(audit, indent=2 if indented else None)
        writer.writerow(
            ["id", "2026-11-18T09:15:42", "50", "MailItemsAccessed", "alice", audit_data, extra, ""]
        )
    path.write_bytes(BOM.encode("utf-8") + text.getvalue().encode("utf-8"))
    return path


def write_json_lines(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8"
    )
    return path


BASE_EVENT = AccessEvent(
    timestamp=datetime(2026, 11, 18, 2, 14, 0, tzinfo=UTC),
    mailbox="alice@contoso.com",
    user="alice@contoso.com",
    logon_type="Owner",
    access="Bind",
    throttled=False,
    folders=("Inbox",),
    folder_ids=("LgAAAAB0",),
    operation_count=1,
    client_ip="203.0.113.10",
    client_info="Client=MSExchangeRPC",
    client_family="OutlookDesktop",
    app_id="",
    client_app_id="",
    app_name="",
    session_id="session-1",
    aad_session_id="aad-1",
    external_access=False,
    originating_server="PH0PR11MB0001 (15.20.8158.017)",
    record_id="record-0",
    items=(MessageRef("<m0@contoso.com>", "Inbox", "hello", 1234),),
)


def make_event(**changes: Any) -> AccessEvent:
    return replace(BASE_EVENT, **changes)


def mia_record(when: str, record_id: str, mailbox: str = "alice@contoso.com", **extra: Any) -> dict[str, Any]:
    """A minimal but complete MailItemsAccessed AuditData record."""
    record: dict[str, Any] = {
        "CreationTime": when,
        "Id": record_id,
        "Operation": "MailItemsAccessed",
        "RecordType": 50,
        "UserId": mailbox,
        "MailboxOwnerUPN": mailbox,
        "LogonType": 0,
        "ClientIPAddress": "203.0.113.10",
        "ClientInfoString": "Client=MSExchangeRPC",
        "SessionId": "session-" + record_id,
        "OperationProperties": [
            {"Name": "MailAccessType", "Value": "Bind"},
            {"Name": "IsThrottled", "Value": "False"},
        ],
        "Folders": [
            {
                "Id": "LgAAAAB1",
                "Path": "\\Inbox",
                "FolderItems": [{"InternetMessageId": f"<{record_id}@contoso.com>", "SizeInBytes": 1000}],
            }
        ],
        "OperationCount": 1,
    }
    record.update(extra)
    return record


@dataclass
class SpyTable:
    """Forwards every call to a real TableClient and records the transactions submitted.

    Not a mock: Azurite still receives and answers every request. Pass it as `spy.client`.
    """

    table: TableClient
    transactions: list[list[Entity]] = field(default_factory=list)
    single_upserts: int = 0

    def submit_transaction(self, operations: Iterable[tuple[Any, ...]], **kwargs: Any) -> Any:
        ops = list(operations)
        assert all(op[0] == "upsert" for op in ops)
        self.transactions.append([op[1] for op in ops])
        return self.table.submit_transaction(ops, **kwargs)

    def upsert_entity(self, entity: Entity, **kwargs: Any) -> Any:
        self.single_upserts += 1
        return self.table.upsert_entity(entity, **kwargs)

    @property
    def client(self) -> TableClient:
        return cast(TableClient, self)


def busiest_blobs(tenant: Any, mailbox: str, count: int = 1) -> list[Any]:
    """The simulated tenant's content blobs holding the most records of `mailbox`."""

    def records_of_mailbox(blob: Any) -> int:
        return int(blob.body.count(f'"MailboxOwnerUPN":"{mailbox}"'.encode()))

    return sorted(tenant.blobs, key=records_of_mailbox, reverse=True)[:count]


def stored_pointer(storage: Storage, blob: Any) -> str:
    """Store a simulated content blob as fetch_audit would and return its queue pointer."""
    name = f"Audit.Exchange/test/{blob.content_id}.json.gz"
    digest, _ = raw_store.store_raw(storage.blobs, name, blob.body, {})
    return raw_store.RawPointer(name, digest, "management-api").encode()


# The collection tests prove exactly-once storage of what the simulator served; they process with
# detection off. Detection (tested in tests/detect) makes their processing about 3 times slower:
# every blob reads and conditionally rewrites the baselines of the mailboxes it touches, and 8
# concurrent blobs of one small tenant keep meeting each other's ETags.
WITHOUT_DETECTION = AlertSettings(detection=DetectionSettings(enabled=False))

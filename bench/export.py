"""A Purview audit search export of a chosen size, streamed to a file: the input of the
`import_peak_rss_mb` and `files_report_vs_duckdb` figures.

The file is what the portal's Export writes (https://learn.microsoft.com/purview/audit-search):
UTF-8 with a byte order mark, every cell quoted, the record's JSON in `AuditData`. Records come from
`bench.data.RecordFactory` (Bind with folder items, Sync of both shapes, other Exchange operations),
grouped into sessions: each session has one mailbox, one client and one or two addresses, and a
few to a hundred records, several sessions interleaved at any time, as a tenant's log is. A small
share of rows is repeated exactly, as searches that overlap repeat records.
"""

from __future__ import annotations

import codecs
import hashlib
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.data import CLIENTS, START, SYNC_SHARE, RecordFactory
from shared.parse.readers import PURVIEW_COLUMNS

EXPORT_MAILBOXES = tuple(f"user{n:03d}@contoso.com" for n in range(200))
ACTIVE_SESSIONS = 40  # sessions interleaved at any moment
SESSION_RECORDS = (3, 120)  # records of one session, drawn uniformly
SECOND_IP_SHARE = 0.15  # records of a session sent from its second address (phones, VPNs)
DELEGATE_SHARE = 0.15  # sessions of someone other than the mailbox owner
OTHER_OPERATION_SHARE = 0.08
DUPLICATE_SHARE = 0.01  # rows written twice, identical
RECORD_SPACING = timedelta(seconds=2)
ROWS_PER_WRITE = 2_000
TEMPLATES = 4_096  # distinct records the factory makes; each row is one of them, re-stamped


@dataclass
class ExportSummary:
    """What was written: the facts the figures check the tools' answers against."""

    path: Path
    bytes: int
    sha256: str
    rows: int  # CSV data rows, repeats included
    records: int  # distinct records (by Id)
    mail_items_accessed: int  # distinct MailItemsAccessed records
    repeated_rows: int
    sessions: int  # distinct SessionIds of the MailItemsAccessed records
    mailboxes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "export_bytes": self.bytes,
            "export_sha256": self.sha256,
            "rows": self.rows,
            "records": self.records,
            "mail_items_accessed": self.mail_items_accessed,
            "repeated_rows": self.repeated_rows,
            "sessions": self.sessions,
            "mailboxes": self.mailboxes,
        }


@dataclass
class _Session:
    id: str
    aad_session_id: str
    mailbox: str
    user: str
    logon_type: int
    client: tuple[str, str, str]  # (ClientInfoString, AppId, ClientAppId)
    ips: tuple[str, str]
    left: int


class SessionRecords:
    """MailItemsAccessed records in sessions (and other operations between them), in time order.

    Each record is a copy of one of TEMPLATES records the factory made, with its own Id, time,
    session and address: the factory's cost per record would make a 500 MB export take a minute."""

    def __init__(self, seed: int) -> None:
        self.factory = RecordFactory(seed)
        self.rng = random.Random(seed + 1)
        self.templates = [self._template(n) for n in range(TEMPLATES)]
        self.other_templates = [self.factory.other_operation(START) for _ in range(TEMPLATES // 8)]
        self.active = [self._new_session() for _ in range(ACTIVE_SESSIONS)]

    def _template(self, n: int) -> dict[str, Any]:
        access = "Sync" if self.rng.random() < SYNC_SHARE else "Bind"
        return self.factory.mail_items_accessed(START, access)

    def _guid(self) -> str:
        """A random version-4 UUID's text, faster than uuid.UUID (ids, not security)."""
        digits = f"{self.rng.getrandbits(128):032x}"
        return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"

    def _new_session(self) -> _Session:
        rng, factory = self.rng, self.factory
        mailbox = rng.choice(EXPORT_MAILBOXES)
        delegated = rng.random() < DELEGATE_SHARE
        return _Session(
            id=self._guid(),
            aad_session_id=self._guid(),
            mailbox=mailbox,
            user=rng.choice(EXPORT_MAILBOXES) if delegated else mailbox,
            logon_type=2 if delegated else 0,
            client=rng.choice(CLIENTS),
            ips=(rng.choice(factory.client_ips), rng.choice(factory.client_ips)),
            left=rng.randint(*SESSION_RECORDS),
        )

    def _stamped(self, template: dict[str, Any], index: int) -> dict[str, Any]:
        record = dict(template)
        record["Id"] = self._guid()
        record["CreationTime"] = (START + index * RECORD_SPACING).isoformat()[:19]
        return record

    def _in_session(self, record: dict[str, Any], session: _Session) -> dict[str, Any]:
        client_info, app_id, client_app_id = session.client
        second_ip = self.rng.random() < SECOND_IP_SHARE
        record.update(
            {
                "MailboxOwnerUPN": session.mailbox,
                "UserId": session.user,
                "LogonType": session.logon_type,
                "ClientInfoString": client_info,
                "AppId": app_id,
                "ClientAppId": client_app_id,
                "ClientIPAddress": session.ips[1] if second_ip else session.ips[0],
                "SessionId": session.id,
                "AppAccessContext": {
                    "AADSessionId": session.aad_session_id,
                    "UniqueTokenId": record["AppAccessContext"]["UniqueTokenId"],
                },
            }
        )
        return record

    def _next_mail_items_accessed(self, index: int) -> dict[str, Any]:
        slot = self.rng.randrange(ACTIVE_SESSIONS)
        session = self.active[slot]
        record = self._stamped(self.templates[self.rng.randrange(TEMPLATES)], index)
        session.left -= 1
        if session.left == 0:
            self.active[slot] = self._new_session()
        return self._in_session(record, session)

    def record(self, index: int) -> dict[str, Any]:
        """The export's `index`-th distinct record."""
        if self.rng.random() < OTHER_OPERATION_SHARE:
            record = self._stamped(self.rng.choice(self.other_templates), index)
            mailbox = self.rng.choice(EXPORT_MAILBOXES)
            record.update({"UserId": mailbox, "MailboxOwnerUPN": mailbox})
            return record
        return self._next_mail_items_accessed(index)


def _cell(value: bytes) -> bytes:
    return b'"' + value.replace(b'"', b'""') + b'"'


def purview_row(record: dict[str, Any]) -> bytes:
    """One CSV line of the export (AuditData as the portal writes it: compact JSON), every cell
    quoted as csv.QUOTE_ALL does, quotes doubled (RFC 4180)."""
    cells = (
        record["Id"],
        f"{record['CreationTime']}.0000000Z",
        str(record["RecordType"]),
        record["Operation"],
        record["UserId"],
    )
    audit_data = orjson.dumps(record)
    return b",".join([*(_cell(cell.encode()) for cell in cells), _cell(audit_data), b'""', b'""']) + b"\r\n"


class _Tally:
    def __init__(self) -> None:
        self.rows = 0
        self.records = 0
        self.mail_items_accessed = 0
        self.repeated = 0
        self.sessions: set[str] = set()
        self.mailboxes: set[str] = set()

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        self.mailboxes.add(record["MailboxOwnerUPN"])
        if record["Operation"] == "MailItemsAccessed":
            self.mail_items_accessed += 1
            self.sessions.add(record["SessionId"])


def write_export(path: Path, min_bytes: int, seed: int) -> ExportSummary:
    """Write a Purview export of at least `min_bytes` to `path`, ROWS_PER_WRITE rows at a time."""
    source = SessionRecords(seed)
    repeat_rng = random.Random(seed + 2)
    tally = _Tally()
    digest = hashlib.sha256()
    header = codecs.BOM_UTF8 + b",".join(_cell(name.encode()) for name in PURVIEW_COLUMNS) + b"\r\n"
    with path.open("wb") as out:
        out.write(header)
        digest.update(header)
        written = len(header)
        while written < min_bytes:
            rows: list[bytes] = []
            for _ in range(ROWS_PER_WRITE):
                record = source.record(tally.records)
                tally.add(record)
                row = purview_row(record)
                rows.append(row)
                if repeat_rng.random() < DUPLICATE_SHARE:
                    rows.append(row)
                    tally.repeated += 1
            tally.rows += len(rows)
            chunk = b"".join(rows)
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return ExportSummary(
        path=path,
        bytes=written,
        sha256=digest.hexdigest(),
        rows=tally.rows,
        records=tally.records,
        mail_items_accessed=tally.mail_items_accessed,
        repeated_rows=tally.repeated,
        sessions=len(tally.sessions),
        mailboxes=len(tally.mailboxes),
    )

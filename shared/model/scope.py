"""Scoping ("who else?"): the contexts an access event happened in, and per (context, day,
mailbox) what the events of that context did (docs/architecture.md#contextindex).

A context key is a kind and a value: `ip:` the client address, `net:` its /24 (IPv4) or /48
(IPv6), `app:` the app id (ClientAppId, else AppId), `session:` the SessionId, `actor:` the
accessing user; `all:` (empty value) gathers every event, for the tenant-wide mailboxes view.
Pure: the same tallies are built from stored rows by ingest and from export files by `mia scope
--input`, so both answer with the same numbers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.model.event import AccessEvent
from shared.model.times import iso_z

IP, NETWORK, APP, SESSION, ACTOR, ALL = "ip", "net", "app", "session", "actor", "all"
KINDS = (IP, NETWORK, APP, SESSION, ACTOR)
NETWORK_PREFIX = {4: 24, 6: 48}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# A mailbox known only by its MailboxGuid (no MailboxOwnerUPN in the record): UserId is then a UPN,
# SID or service name, never that GUID, so the two cannot be compared.
_MAILBOX_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OWNER_LOGON = "Owner"


def is_non_owner_access(event: AccessEvent) -> bool:
    """A record of access by someone other than the mailbox's owner: its LogonType is given and
    is not Owner (Admin, Delegated, Transport, SystemService, BestAccess, DelegatedAdmin or an
    unknown code), or its UserId is given and is not the mailbox (compared case-insensitively; not
    compared when the mailbox is known only by its MailboxGuid). A record with neither a LogonType
    nor a comparable UserId is not counted. LogonType and MailboxOwnerUPN / MailboxGuid are the
    Exchange mailbox audit fields of the schema:
    https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-schema"""
    if event.logon_type and event.logon_type != OWNER_LOGON:
        return True
    comparable = event.user and not _MAILBOX_GUID.fullmatch(event.mailbox)
    return bool(comparable) and event.user.lower() != event.mailbox


def parse_address(text: str) -> Address | None:
    """The address `text` names, IPv4-mapped IPv6 unwrapped; None when it names none."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_value(text: str) -> str:
    """An address as the index keys it (its canonical text: `2001:db8::1`, never `2001:DB8:0::1`);
    text that is no address stays as given, so it is still found by the same text."""
    address = parse_address(text)
    return str(address) if address is not None else text.strip()


def network_value(text: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address (`203.0.113.0/24`); "" for no address."""
    address = parse_address(text)
    if address is None:
        return ""
    network = ipaddress.ip_network(f"{address}/{NETWORK_PREFIX[address.version]}", strict=False)
    return str(network)


def app_value(event: AccessEvent) -> str:
    """The app by id (ClientAppId, else AppId), lower-cased: ids are GUIDs, and a display name is
    our own decoding, which a better decoder may change."""
    return (event.client_app_id or event.app_id).lower()


def context_keys(event: AccessEvent) -> list[tuple[str, str]]:
    """The (kind, value) contexts the event is indexed under: the ones it names, and ALL."""
    keys = [
        (IP, ip_value(event.client_ip) if event.client_ip else ""),
        (NETWORK, network_value(event.client_ip)),
        (APP, app_value(event)),
        (SESSION, event.session_id),
        (ACTOR, event.user.lower()),
    ]
    return [(kind, value) for kind, value in keys if value] + [(ALL, "")]


def key_text(kind: str, value: str) -> str:
    """The key as text (`ip:203.0.113.7`), before Table key encoding."""
    return f"{kind}:{value}"


@dataclass(frozen=True)
class FirstRecord:
    """The earliest record of a tally, with its provenance (the mailboxes view names it)."""

    timestamp: datetime
    record_id: str
    source_blob: str
    source_sha256: str
    source_index: int | None

    def order(self) -> tuple[datetime, str, str, int]:
        return (
            self.timestamp,
            self.source_blob,
            self.record_id,
            -1 if self.source_index is None else self.source_index,
        )


@dataclass
class Tally:
    """What the events of one context did in one mailbox on one day (or, merged, over a range).

    Records counts records; Messages is the SUM of their MessageCount (distinct InternetMessageIds
    within each record), so a message read in two records counts twice; Throttled and NonOwner
    count records; the sets are exact distinct values."""

    records: int = 0
    messages: int = 0
    throttled: int = 0
    non_owner: int = 0
    first: FirstRecord | None = None
    last: datetime | None = None
    sessions: set[str] = field(default_factory=set)
    synced_folders: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    apps: set[str] = field(default_factory=set)

    def add(self, event: AccessEvent) -> None:
        self.records += 1
        self.messages += len(event.message_ids)
        self.throttled += event.throttled
        self.non_owner += is_non_owner_access(event)
        first = FirstRecord(event.timestamp, event.record_id, event.source_blob, event.source_sha256,
                            event.source_index)  # fmt: skip
        self._widen(first, event.timestamp)
        if event.session_id:
            self.sessions.add(event.session_id)
        if event.access == "Sync":
            self.synced_folders.update(event.folders)
        if event.client_ip:
            self.ips.add(event.client_ip)
        if event.app:
            self.apps.add(event.app)

    def _widen(self, first: FirstRecord | None, last: datetime | None) -> None:
        if first is not None and (self.first is None or first.order() < self.first.order()):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last

    def merge(self, other: Tally) -> None:
        self.records += other.records
        self.messages += other.messages
        self.throttled += other.throttled
        self.non_owner += other.non_owner
        self._widen(other.first, other.last)
        self.sessions |= other.sessions
        self.synced_folders |= other.synced_folders
        self.ips |= other.ips
        self.apps |= other.apps

    def value_sets(self) -> dict[str, set[str]]:
        return {"sessions": self.sessions, "synced_folders": self.synced_folders, "ips": self.ips,
                "apps": self.apps}  # fmt: skip


# (kind, value, day, mailbox)
TallyKey = tuple[str, str, date, str]


class Tallies:
    """Tallies of many events, per context key, UTC day and mailbox."""

    def __init__(self) -> None:
        self.by_key: dict[TallyKey, Tally] = {}

    def add(self, event: AccessEvent) -> None:
        day = event.timestamp.date()
        for kind, value in context_keys(event):
            key = (kind, value, day, event.mailbox)
            tally = self.by_key.get(key)
            if tally is None:
                tally = self.by_key[key] = Tally()
            tally.add(event)

    def add_all(self, events: Iterable[AccessEvent]) -> None:
        for event in events:
            self.add(event)

    def of(self, kind: str, value: str, first_day: date, last_day: date) -> Iterator[tuple[str, Tally]]:
        """(mailbox, tally) of one context from first_day to last_day, both included."""
        for (k, v, day, mailbox), tally in self.by_key.items():
            if k == kind and v == value and first_day <= day <= last_day:
                yield mailbox, tally


SCOPE_COLUMNS: tuple[str, ...] = (
    "Mailbox", "FirstAccess", "LastAccess", "Records", "Messages", "SyncedFolders", "Sessions",
)  # fmt: skip


def merged_by_mailbox(tallies: Iterable[tuple[str, Tally]]) -> dict[str, Tally]:
    merged: dict[str, Tally] = {}
    for mailbox, tally in tallies:
        merged.setdefault(mailbox, Tally()).merge(tally)
    return merged


def scope_rows(tallies: Iterable[tuple[str, Tally]]) -> list[dict[str, Any]]:
    """One row per mailbox (SCOPE_COLUMNS), most records first, then by mailbox.

    Records: the context's records in the mailbox; Messages: the sum of their MessageCount (a
    message read in two records counts twice; the exposure report of the mailbox lists distinct
    ones); SyncedFolders: distinct folders of its Sync records; Sessions: distinct SessionIds."""
    merged = merged_by_mailbox(tallies)
    rows: list[dict[str, Any]] = []
    for mailbox, tally in merged.items():
        if not tally.records:
            continue
        assert tally.first is not None
        assert tally.last is not None
        rows.append({
            "Mailbox": mailbox,
            "FirstAccess": iso_z(tally.first.timestamp),
            "LastAccess": iso_z(tally.last),
            "Records": tally.records,
            "Messages": tally.messages,
            "SyncedFolders": len(tally.synced_folders),
            "Sessions": len(tally.sessions),
        })  # fmt: skip
    rows.sort(key=lambda row: (-row["Records"], row["Mailbox"]))
    return rows


def source_columns(first: FirstRecord) -> dict[str, Any]:
    """The provenance columns of an aggregated row (views.SOURCE_COLUMNS) whose first record is `first`."""
    return {
        "FirstRecordId": first.record_id,
        "SourceBlob": first.source_blob,
        "SourceSha256": first.source_sha256,
        "SourceIndex": first.source_index,
    }


def mailbox_totals(tallies: Iterable[tuple[str, Tally]]) -> list[tuple[str, Tally]]:
    """The ALL tallies merged per mailbox, the most suspicious first (the order of the CLI's
    mailboxes view: non-owner accesses, synced folders, throttled, records, each largest first)."""
    merged = [(mailbox, tally) for mailbox, tally in merged_by_mailbox(tallies).items() if tally.records]

    def suspicion(pair: tuple[str, Tally]) -> tuple[int, int, int, int, str]:
        mailbox, tally = pair
        return (-tally.non_owner, -len(tally.synced_folders), -tally.throttled, -tally.records, mailbox)

    return sorted(merged, key=suspicion)


def sorted_values(values: Mapping[str, set[str]]) -> dict[str, list[str]]:
    return {name: sorted(items) for name, items in values.items()}


def days_of(start: datetime, end: datetime) -> tuple[date, date]:
    """The UTC days [start, end) touches, first and last included."""
    last = (end - timedelta(microseconds=1)).date()
    return start.date(), max(last, start.date())

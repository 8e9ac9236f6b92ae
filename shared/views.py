"""Views of one mailbox or actor (DESIGN section 4): each turns events in time order into rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.decoders import iso_z
from shared.records import EVENT_COLUMNS, AccessEvent

SESSION_COLUMNS: tuple[str, ...] = (
    "SessionId",
    "FirstSeen",
    "LastSeen",
    "Records",
    "Operations",
    "BindRecords",
    "SyncRecords",
    "DistinctMessages",
    "Folders",
    "ClientIPs",
    "ClientFamilies",
    "Apps",
    "LogonTypes",
    "Users",
    "Throttled",
)

NO_SESSION = "(no session id)"


def event_rows(events: Iterable[AccessEvent]) -> Iterator[dict[str, Any]]:
    for event in events:
        yield event.row()


@dataclass
class _Session:
    first: AccessEvent
    last: AccessEvent
    records: int = 0
    operations: int = 0
    binds: int = 0
    syncs: int = 0
    throttled: bool = False
    messages: set[str] = field(default_factory=set)
    folders: dict[str, None] = field(default_factory=dict)
    ips: dict[str, None] = field(default_factory=dict)
    families: dict[str, None] = field(default_factory=dict)
    apps: dict[str, None] = field(default_factory=dict)
    logon_types: dict[str, None] = field(default_factory=dict)
    users: dict[str, None] = field(default_factory=dict)

    def add(self, event: AccessEvent) -> None:
        if event.timestamp < self.first.timestamp:
            self.first = event
        if event.timestamp >= self.last.timestamp:
            self.last = event
        self.records += 1
        self.operations += event.operation_count if event.operation_count is not None else 1
        self.binds += event.access == "Bind"
        self.syncs += event.access == "Sync"
        self.throttled |= event.throttled
        self.messages.update(item.internet_message_id for item in event.items)
        for target, value in (
            (self.ips, event.client_ip),
            (self.families, event.client_family),
            (self.apps, event.app_name or event.client_app_id or event.app_id),
            (self.logon_types, event.logon_type),
            (self.users, event.user),
        ):
            if value:
                target[value] = None
        self.folders.update(dict.fromkeys(event.folders))

    def row(self, session_id: str) -> dict[str, Any]:
        return {
            "SessionId": session_id,
            "FirstSeen": iso_z(self.first.timestamp),
            "LastSeen": iso_z(self.last.timestamp),
            "Records": self.records,
            "Operations": self.operations,
            "BindRecords": self.binds,
            "SyncRecords": self.syncs,
            "DistinctMessages": len(self.messages),
            "Folders": "; ".join(self.folders),
            "ClientIPs": "; ".join(self.ips),
            "ClientFamilies": "; ".join(self.families),
            "Apps": "; ".join(self.apps),
            "LogonTypes": "; ".join(self.logon_types),
            "Users": "; ".join(self.users),
            "Throttled": self.throttled,
        }


def session_rows(events: Iterable[AccessEvent]) -> Iterator[dict[str, Any]]:
    """One row per SessionId, ordered by first seen. Memory grows with sessions and distinct
    messages, not with records."""
    sessions: dict[str, _Session] = {}
    for event in events:
        key = event.session_id or NO_SESSION
        session = sessions.get(key)
        if session is None:
            session = sessions[key] = _Session(first=event, last=event)
        session.add(event)
    ordered = sorted(sessions.items(), key=lambda pair: (pair[1].first.timestamp, pair[0]))
    for session_id, session in ordered:
        yield session.row(session_id)


VIEWS: dict[str, tuple[tuple[str, ...], Any]] = {
    "events": (EVENT_COLUMNS, event_rows),
    "sessions": (SESSION_COLUMNS, session_rows),
}

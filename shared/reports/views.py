"""Views of one mailbox or actor: each turns events in time order into rows
(docs/architecture.md#report-views)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.ipcontext.context import IP_COLUMNS, IpContext, open_context
from shared.model.event import EVENT_COLUMNS, PROVENANCE_COLUMNS, AccessEvent
from shared.model.message_info import SOURCE_AUDIT, Key, Lookup, MessageInfo, Observed, observe
from shared.model.scope import is_non_owner_access
from shared.model.times import iso_z
from shared.reports.budget import WorkBudget

# Aggregated rows name the record behind their first access, and where it came from.
SOURCE_COLUMNS: tuple[str, ...] = ("FirstRecordId", *PROVENANCE_COLUMNS)

# The events view is the stored event's columns with its address's context, looked up as the
# report is written (docs/architecture.md#ip-context), before the provenance, which stays last; the
# other views put the context right after their address column.
EVENT_VIEW_COLUMNS: tuple[str, ...] = (
    *EVENT_COLUMNS[: -len(PROVENANCE_COLUMNS)],
    *IP_COLUMNS,
    *PROVENANCE_COLUMNS,
)

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
    *IP_COLUMNS,
    "ClientFamilies",
    "Apps",
    "LogonTypes",
    "Users",
    "Throttled",
    *SOURCE_COLUMNS,
)

MESSAGE_COLUMNS: tuple[str, ...] = (
    "TimeStamp",
    "Mailbox",
    "User",
    "SessionId",
    "ClientIP",
    *IP_COLUMNS,
    "ClientFamily",
    "Folder",
    "InternetMessageId",
    "Subject",
    "Sender",
    "Received",
    "SizeInBytes",
    "SubjectSource",
    "RecordId",
    *PROVENANCE_COLUMNS,
)

EXPOSURE_COLUMNS: tuple[str, ...] = (
    "Kind",
    "Mailbox",
    "InternetMessageId",
    "Folder",
    "Subject",
    "Sender",
    "Received",
    "SizeInBytes",
    "FirstAccess",
    "LastAccess",
    "Accesses",
    "Sessions",
    "ClientIPs",
    *IP_COLUMNS,
    "Users",
    "SubjectSource",
    *SOURCE_COLUMNS,
)

MAILBOX_COLUMNS: tuple[str, ...] = (
    "Mailbox",
    "Records",
    "DistinctMessages",
    "SyncedFolders",
    "ThrottledWindows",
    "NonOwnerAccesses",
    "DistinctIPs",
    "Countries",
    "Apps",
    "FirstAccess",
    "LastAccess",
    *SOURCE_COLUMNS,
)

NO_SESSION = "(no session id)"
LOOKUP_CHUNK = 500  # records of the messages view resolved together
FOLDER_SUBJECT = "all items in folder"
UNAUDITED_SUBJECT = "access not audited"
UNAUDITED_WINDOW = timedelta(hours=24)


def source_of(event: AccessEvent) -> dict[str, Any]:
    """The provenance columns of an aggregated row whose first access is `event`."""
    return {"FirstRecordId": event.record_id, **event.provenance()}


def _held(*collections: Sized) -> int:
    return sum(map(len, collections))


# A list cell's entry for an address a column knows nothing about, so entries stay aligned with
# ClientIPs. Not "-": CSV would neutralise it as a formula start.
UNKNOWN_ENTRY = "?"


def _entries(values: list[str]) -> str:
    return "; ".join(value or UNKNOWN_ENTRY for value in values) if any(values) else ""


def ip_list_columns(ips: Iterable[str], context: IpContext) -> dict[str, str]:
    """The IP columns of a row that lists several addresses: per column, one entry per address in
    the order of ClientIPs, joined by "; ", "?" for an address the column knows nothing of, and
    empty when it knows nothing of any."""
    facts = [context.facts(ip).columns() for ip in ips]
    return {column: _entries([f[column] for f in facts]) for column in IP_COLUMNS}


def event_rows(
    events: Iterable[AccessEvent], lookup: Lookup | None = None, *, ip_context: IpContext | None = None
) -> Iterator[dict[str, Any]]:
    context = ip_context or open_context()
    for event in events:
        row = event.row()
        provenance = {column: row.pop(column) for column in PROVENANCE_COLUMNS}
        yield {**row, **context.facts(event.client_ip).columns(), **provenance}


@dataclass
class _Span:
    """The first and the last record of an aggregated row."""

    first: AccessEvent
    last: AccessEvent

    def widen(self, event: AccessEvent) -> None:
        if event.timestamp < self.first.timestamp:
            self.first = event
        if event.timestamp >= self.last.timestamp:
            self.last = event


@dataclass
class _Session(_Span):
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

    def held(self) -> int:
        """Entries this session holds (for the request's WorkBudget)."""
        return (
            1
            + len(self.messages)
            + len(self.folders)
            + len(self.ips)
            + len(self.families)
            + len(self.apps)
            + len(self.logon_types)
            + len(self.users)
        )

    def add(self, event: AccessEvent) -> None:
        self.widen(event)
        self.records += 1
        self.operations += event.operation_count if event.operation_count is not None else 1
        self.binds += event.access == "Bind"
        self.syncs += event.access == "Sync"
        self.throttled |= event.throttled
        self.messages.update([item.internet_message_id for item in event.items])
        # Each list keeps its values in order of first appearance; an empty value is not one.
        if event.client_ip:
            self.ips[event.client_ip] = None
        if event.client_family:
            self.families[event.client_family] = None
        if app := event.app:
            self.apps[app] = None
        if event.logon_type:
            self.logon_types[event.logon_type] = None
        if event.user:
            self.users[event.user] = None
        self.folders.update(dict.fromkeys(event.folders))

    def row(self, session_id: str, context: IpContext) -> dict[str, Any]:
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
            **ip_list_columns(self.ips, context),
            "ClientFamilies": "; ".join(self.families),
            "Apps": "; ".join(self.apps),
            "LogonTypes": "; ".join(self.logon_types),
            "Users": "; ".join(self.users),
            "Throttled": self.throttled,
            **source_of(self.first),
        }


def session_rows(
    events: Iterable[AccessEvent],
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    *,
    ip_context: IpContext | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per SessionId, ordered by first seen. Memory grows with sessions and distinct
    messages, not with records; `budget` bounds it."""
    budget = budget or WorkBudget()
    context = ip_context or open_context()
    sessions: dict[str, _Session] = {}
    for event in events:
        key = event.session_id or NO_SESSION
        session = sessions.get(key)
        if session is None:
            session = sessions[key] = _Session(first=event, last=event)
            held = 0
        else:
            held = session.held()
        session.add(event)
        budget.grow(session.held() - held)
    ordered = sorted(sessions.items(), key=lambda pair: (pair[1].first.timestamp, pair[0]))
    for session_id, session in ordered:
        yield session.row(session_id, context)


@dataclass
class _Message:
    """What one record says about one message: its folders (in record order), subject and size."""

    folders: dict[str, None] = field(default_factory=dict)
    subject: str = ""
    size: int | None = None

    def add(self, folder: str, subject: str, size: int | None) -> None:
        if folder:
            self.folders[folder] = None
        self.subject = self.subject or subject
        self.size = self.size if self.size is not None else size


def _record_messages(event: AccessEvent) -> dict[str, _Message]:
    """The record's distinct messages in record order (a message named twice is one message)."""
    found: dict[str, _Message] = {}
    for item in event.items:
        message = found.get(item.internet_message_id)
        if message is None:
            message = found[item.internet_message_id] = _Message()
        message.add(item.folder, item.subject, item.size_in_bytes)
    return found


def _known(observed: Mapping[str, Mapping[str, Observed]], lookup: Lookup | None) -> dict[Key, MessageInfo]:
    """The chain for these messages: a subject some record gives (`audit`), else what `lookup`
    knows (the index, Graph), else `unresolved:not-looked-up`."""
    missing = {
        mailbox: {mid: seen for mid, seen in messages.items() if not seen.subject}
        for mailbox, messages in observed.items()
    }
    missing = {mailbox: messages for mailbox, messages in missing.items() if messages}
    looked_up = lookup(missing) if lookup is not None and missing else {}
    known: dict[Key, MessageInfo] = {}
    for mailbox, messages in observed.items():
        for message_id, seen in messages.items():
            key = (mailbox, message_id)
            if seen.subject:
                known[key] = MessageInfo(subject=seen.subject, size=seen.size, source=SOURCE_AUDIT)
            else:
                known[key] = looked_up.get(key) or MessageInfo(size=seen.size)
    return known


def _chunks(events: Iterable[AccessEvent], size: int) -> Iterator[list[AccessEvent]]:
    chunk: list[AccessEvent] = []
    for event in events:
        chunk.append(event)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _received(info: MessageInfo) -> str:
    return iso_z(info.received) if info.received is not None else ""


def message_rows(
    events: Iterable[AccessEvent], lookup: Lookup | None = None, *, ip_context: IpContext | None = None
) -> Iterator[dict[str, Any]]:
    """One row per (record, distinct message), in event order then record order. Streams in chunks
    of LOOKUP_CHUNK records, each resolved with one `lookup`. A subject the record itself gives is
    shown as such (`audit`); otherwise the subject another record in the chunk gives, or what
    `lookup` knows."""
    context = ip_context or open_context()
    for chunk in _chunks(events, LOOKUP_CHUNK):
        known = _known(observe(chunk), lookup)
        for event in chunk:
            for message_id, message in _record_messages(event).items():
                info = known[(event.mailbox, message_id)]
                if message.subject:
                    info = replace(info, subject=message.subject, source=SOURCE_AUDIT)
                yield {
                    "TimeStamp": iso_z(event.timestamp),
                    "Mailbox": event.mailbox,
                    "User": event.user,
                    "SessionId": event.session_id,
                    "ClientIP": event.client_ip,
                    **context.facts(event.client_ip).columns(),
                    "ClientFamily": event.client_family,
                    "Folder": "; ".join(message.folders),
                    "InternetMessageId": message_id,
                    "Subject": info.subject,
                    "Sender": info.sender,
                    "Received": _received(info),
                    "SizeInBytes": message.size if message.size is not None else info.size,
                    "SubjectSource": info.source,
                    "RecordId": event.record_id,
                    **event.provenance(),
                }


@dataclass
class _Exposed:
    """Accesses to one message (or one synced folder), aggregated across records."""

    first: datetime
    last: datetime
    accesses: int = 0
    folders: dict[str, None] = field(default_factory=dict)
    subject: str = ""
    size: int | None = None
    sessions: dict[str, None] = field(default_factory=dict)
    ips: dict[str, None] = field(default_factory=dict)
    users: dict[str, None] = field(default_factory=dict)
    source: AccessEvent | None = None  # the record of the first access

    def held(self) -> int:
        """Entries this row holds (for the request's WorkBudget)."""
        return 1 + _held(self.folders, self.sessions, self.ips, self.users)

    def add(self, event: AccessEvent) -> None:
        if self.source is None or event.timestamp < self.source.timestamp:
            self.source = event
        self.first = min(self.first, event.timestamp)
        self.last = max(self.last, event.timestamp)
        self.accesses += 1
        for target, value in (
            (self.sessions, event.session_id),
            (self.ips, event.client_ip),
            (self.users, event.user),
        ):
            if value:
                target[value] = None

    def row(
        self, kind: str, mailbox: str, message_id: str, folder: str, info: MessageInfo, context: IpContext
    ) -> dict[str, Any]:
        return {
            "Kind": kind,
            "Mailbox": mailbox,
            "InternetMessageId": message_id,
            "Folder": folder,
            "Subject": info.subject,
            "Sender": info.sender,
            "Received": _received(info),
            "SizeInBytes": self.size if self.size is not None else info.size,
            "FirstAccess": iso_z(self.first),
            "LastAccess": iso_z(self.last),
            "Accesses": self.accesses,
            "Sessions": "; ".join(self.sessions),
            "ClientIPs": "; ".join(self.ips),
            **ip_list_columns(self.ips, context),
            "Users": "; ".join(self.users),
            "SubjectSource": info.source if kind == "Message" else "",
            **(source_of(self.source) if self.source is not None else {}),
        }


def exposure_rows(
    events: Iterable[AccessEvent],
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    *,
    ip_context: IpContext | None = None,
) -> Iterator[dict[str, Any]]:
    """What a breach notification needs, in three groups, in this order:

    - `Message`: one row per distinct (Mailbox, InternetMessageId), ordered by FirstAccess, then
      Mailbox, then InternetMessageId. Accesses counts the records naming it; Folder lists every
      folder it was seen in.
    - `Folder`: one row per synced folder, (Mailbox, folder path) of the Sync records, Subject
      "all items in folder", ordered by FirstAccess, Mailbox, Folder.
    - `Unaudited`: one row per throttled record (the 24 hours after it are not audited), from the
      record's time to 24 hours later, Subject "access not audited", ordered by FirstAccess,
      Mailbox, then the record's folders and record id.

    Sessions, ClientIPs and Users list distinct values in order of first appearance in the input
    (time order), and the IP columns one entry per address of ClientIPs. Memory grows with distinct
    messages, synced folders and throttled records, not with records; `budget` bounds it.
    """
    budget = budget or WorkBudget()
    context = ip_context or open_context()
    messages: dict[tuple[str, str], _Exposed] = {}
    synced: dict[tuple[str, str], _Exposed] = {}
    blind: dict[str, tuple[AccessEvent, _Exposed]] = {}
    for event in events:
        for message_id, seen in _record_messages(event).items():
            key = (event.mailbox, message_id)
            exposed = messages.get(key)
            if exposed is None:
                exposed = messages[key] = _Exposed(first=event.timestamp, last=event.timestamp)
                held = 0
            else:
                held = exposed.held()
            exposed.add(event)
            exposed.folders.update(seen.folders)
            exposed.subject = exposed.subject or seen.subject
            exposed.size = exposed.size if exposed.size is not None else seen.size
            budget.grow(exposed.held() - held)
        if event.access == "Sync":
            for path in event.folders:
                exposed = synced.get((event.mailbox, path))
                if exposed is None:
                    exposed = synced[(event.mailbox, path)] = _Exposed(event.timestamp, event.timestamp)
                    held = 0
                else:
                    held = exposed.held()
                exposed.add(event)
                budget.grow(exposed.held() - held)
        if event.throttled and event.record_id not in blind:
            window = _Exposed(first=event.timestamp, last=event.timestamp + UNAUDITED_WINDOW)
            window.add(event)
            blind[event.record_id] = (event, window)
            budget.grow(window.held())
    observed: dict[str, dict[str, Observed]] = {}
    for (mailbox, message_id), exposed in messages.items():
        observed.setdefault(mailbox, {})[message_id] = Observed(exposed.subject, exposed.size, exposed.first)
    known = _known(observed, lookup)
    for (mailbox, message_id), exposed in sorted(messages.items(), key=lambda p: (p[1].first, p[0])):
        folder = "; ".join(exposed.folders)
        yield exposed.row("Message", mailbox, message_id, folder, known[(mailbox, message_id)], context)
    all_items = MessageInfo(subject=FOLDER_SUBJECT, source="")
    for (mailbox, path), exposed in sorted(synced.items(), key=lambda p: (p[1].first, p[0])):
        yield exposed.row("Folder", mailbox, "", path, all_items, context)
    ordered = sorted(
        blind.values(), key=lambda p: (p[0].timestamp, p[0].mailbox, "; ".join(p[0].folders), p[0].record_id)
    )
    unaudited = MessageInfo(subject=UNAUDITED_SUBJECT, source="")
    for event, window in ordered:
        yield window.row("Unaudited", event.mailbox, "", "; ".join(event.folders), unaudited, context)


@dataclass
class _Mailbox(_Span):
    """One mailbox's records, aggregated: counts and the distinct values its row lists."""

    records: int = 0
    throttled: int = 0
    non_owner: int = 0
    messages: set[str] = field(default_factory=set)
    synced: dict[str, None] = field(default_factory=dict)
    # The distinct addresses, kept (not only counted) so that IP context (a country per address)
    # can list this mailbox's countries from them.
    ips: dict[str, None] = field(default_factory=dict)
    apps: dict[str, None] = field(default_factory=dict)

    def held(self) -> int:
        """Entries this mailbox holds (for the request's WorkBudget)."""
        return 1 + _held(self.messages, self.synced, self.ips, self.apps)

    def add(self, event: AccessEvent) -> None:
        self.widen(event)
        self.records += 1
        self.throttled += event.throttled
        self.non_owner += is_non_owner_access(event)
        self.messages.update(item.internet_message_id for item in event.items)
        if event.access == "Sync":
            self.synced.update(dict.fromkeys(event.folders))
        if event.client_ip:
            self.ips[event.client_ip] = None
        if event.app:
            self.apps[event.app] = None

    def suspicion(self) -> tuple[int, int, int, int]:
        """Larger is looked at first: non-owner accesses, synced folders, throttled windows, records."""
        return (self.non_owner, len(self.synced), self.throttled, self.records)

    def row(self, mailbox: str, context: IpContext) -> dict[str, Any]:
        countries = dict.fromkeys(country for ip in self.ips if (country := context.facts(ip).country))
        return {
            "Mailbox": mailbox,
            "Records": self.records,
            "DistinctMessages": len(self.messages),
            "SyncedFolders": len(self.synced),
            "ThrottledWindows": self.throttled,
            "NonOwnerAccesses": self.non_owner,
            "DistinctIPs": len(self.ips),
            "Countries": "; ".join(countries),
            "Apps": "; ".join(self.apps),
            "FirstAccess": iso_z(self.first.timestamp),
            "LastAccess": iso_z(self.last.timestamp),
            **source_of(self.first),
        }


def mailbox_rows(
    events: Iterable[AccessEvent],
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    *,
    ip_context: IpContext | None = None,
) -> Iterator[dict[str, Any]]:
    """Triage: one row per mailbox, the most suspicious first.

    Records counts the mailbox's records; DistinctMessages its distinct InternetMessageIds;
    SyncedFolders the distinct folders of its Sync records (every item in them may have been
    copied); ThrottledWindows its throttled records (each opens 24 hours that are not audited, the
    `Unaudited` rows of the exposure view); NonOwnerAccesses the records is_non_owner_access
    counts; DistinctIPs its distinct client addresses; Countries their distinct
    countries (IP context), in order of first appearance; Apps the distinct apps (AppName, else
    ClientAppId, else AppId) in order of first appearance. Bind, Sync and throttling are defined
    in https://learn.microsoft.com/purview/audit-log-investigate-accounts.

    Order: NonOwnerAccesses, then SyncedFolders, then ThrottledWindows, then Records, each largest
    first, then Mailbox. A mailbox is its MailboxOwnerUPN, else its MailboxGuid, else whatever id
    the export gives (anonymised ids group as given); records of one mailbox named by UPN in some
    and by GUID alone in others are two rows, as nothing in those records joins them.

    Memory grows with mailboxes and their distinct messages, synced folders, addresses and apps,
    not with records; `budget` bounds it."""
    budget = budget or WorkBudget()
    context = ip_context or open_context()
    mailboxes: dict[str, _Mailbox] = {}
    for event in events:
        mailbox = mailboxes.get(event.mailbox)
        if mailbox is None:
            mailbox = mailboxes[event.mailbox] = _Mailbox(first=event, last=event)
            held = 0
        else:
            held = mailbox.held()
        mailbox.add(event)
        budget.grow(mailbox.held() - held)
    ordered = sorted(mailboxes.items(), key=lambda pair: (tuple(-n for n in pair[1].suspicion()), pair[0]))
    for key, mailbox in ordered:
        yield mailbox.row(key, context)


# The views that aggregate the whole range before their first row, so a request bounds them with a
# WorkBudget; the others stream and are paged.
AGGREGATED_VIEWS = frozenset({"sessions", "exposure", "mailboxes"})

VIEWS: dict[str, tuple[tuple[str, ...], Any]] = {
    "events": (EVENT_VIEW_COLUMNS, event_rows),
    "messages": (MESSAGE_COLUMNS, message_rows),
    "sessions": (SESSION_COLUMNS, session_rows),
    "exposure": (EXPOSURE_COLUMNS, exposure_rows),
    "mailboxes": (MAILBOX_COLUMNS, mailbox_rows),
}

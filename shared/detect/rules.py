"""The detection rules, pure: a per-mailbox baseline of the contexts that read it, and the rules
that turn a record into a `mailbox.new_context` or `tenant.mass_access` detection (README
"Detection").

Everything a rule decides for a record at time t depends only on sightings before t: a baseline
value remembers, per UTC day, the first and last second it was seen, which answers "seen within
[t - window, t)" exactly whatever order the records arrived in. The same `State` and `Detector`
run in memory (`detect_events`, `mia detect --input`, the bench) and over storage
(`shared.detect.engine`, which loads the state a blob needs, runs the detector and merges back).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.model.event import AccessEvent
from shared.parse.decoders import FIRST_PARTY_APPS, MICROSOFT_GRAPH_APP_ID
from shared.settings.detection import DetectionSettings

__all__ = ["Detection", "DetectionSettings", "Detector", "State", "detect_events"]

NEW_CONTEXT = "mailbox.new_context"
MASS_ACCESS = "tenant.mass_access"
# The dimensions of a context, in the order an alert names them. An address alone never makes a
# context new when its network is known (addresses move within a network); it is named with the
# others.
DIMENSIONS: tuple[str, ...] = ("actor", "logonType", "app", "client", "ip", "network", "asn", "country")
LISTED_ONLY = frozenset({"ip"})
MASS_KINDS: tuple[str, ...] = ("ip", "app", "session", "actor")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
LEGACY_CLIENTS = frozenset({"IMAP", "POP"})
GRAPH_CLIENT = "RESTGraph"
KEYSET_CAP = 2000  # hashed record or message keys one detection keeps (a Table property's room)
MAILBOX_CAP = 1000  # mailboxes one mass-access window names

IpLookup = Callable[[str], tuple[str, str]]  # address -> (country, "AS<n>"), "" when unknown


def no_lookup(_address: str) -> tuple[str, str]:
    return "", ""


def network_of(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address, "" for anything else."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def app_of(event: AccessEvent) -> str:
    """The app that read: ClientAppId (the original caller) first, then AppId."""
    return (event.client_app_id or event.app_id).strip().lower()


def context_of(event: AccessEvent, lookup: IpLookup) -> dict[str, str]:
    """The record's value in each dimension it carries (empty ones left out)."""
    country, asn = lookup(event.client_ip) if event.client_ip else ("", "")
    values = {
        "actor": event.user.strip().lower(),
        "logonType": event.logon_type,
        "app": app_of(event),
        "client": event.client_family if event.client_family not in ("", "Unknown") else "",
        "ip": event.client_ip,
        "network": network_of(event.client_ip),
        "asn": asn,
        "country": country,
    }
    return {name: value for name, value in values.items() if value}


def short_key(value: str) -> str:
    """A 10-hex-digit digest: what a detection keeps to count distinct records and messages."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:10]


def day_key(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def _second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


# --- the baseline -------------------------------------------------------------------------------


@dataclass
class Sightings:
    """When one value was seen: per UTC day (`yyyymmdd`), the first and last second (`hhmmss`)."""

    days: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, moment: datetime) -> None:
        day, second = day_key(moment), moment.strftime("%H%M%S")
        first, last = self.days.get(day, (second, second))
        self.days[day] = (min(first, second), max(last, second))

    def merge(self, other: Sightings) -> None:
        for day, (first, last) in other.days.items():
            mine = self.days.get(day, (first, last))
            self.days[day] = (min(mine[0], first), max(mine[1], last))

    def seen_within(self, moment: datetime, window: timedelta) -> bool:
        """Seen at some second s with moment - window <= s < moment (window of whole days, >= 1,
        so the window's first day comes before the moment's)."""
        start = moment - window
        first_day, last_day = day_key(start), day_key(moment)
        # Newest first (days are mostly added in time order): a routine value was seen lately.
        for day in reversed(self.days):
            first, last = self.days[day]
            if first_day < day < last_day:
                return True
            if day == last_day and first < moment.strftime("%H%M%S"):
                return True
            if day == first_day and last >= start.strftime("%H%M%S"):
                return True
        return False


@dataclass
class Draft:
    """A detection as it grows: later records of the same context update it."""

    type: str
    mailbox: str
    key: str  # what makes it one alert: the mailbox (or the mass-access kind) and the context
    session_id: str
    new: tuple[str, ...]
    context: dict[str, str]
    reasons: list[str]
    first_seen: datetime
    first_record_id: str
    records: set[str] = field(default_factory=set)
    messages: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    mailboxes: set[str] = field(default_factory=set)

    @property
    def day(self) -> str:
        return day_key(self.first_seen)

    @property
    def severity(self) -> str:
        return SEVERITIES[max((SEVERITIES.index(_REASON_SEVERITY[r]) for r in self.reasons), default=0)]

    def count(self, event: AccessEvent) -> None:
        if len(self.records) < KEYSET_CAP:
            self.records.add(short_key(event.record_id))
        for message in event.message_ids:
            if len(self.messages) >= KEYSET_CAP:
                break
            self.messages.add(short_key(message))
        self.folders.update(event.folders)
        if self.type == MASS_ACCESS and len(self.mailboxes) < MAILBOX_CAP:
            self.mailboxes.add(event.mailbox)

    def add_reasons(self, reasons: Iterable[str]) -> None:
        for reason in reasons:
            if reason not in self.reasons:
                self.reasons.append(reason)

    def merge(self, other: Draft) -> None:
        """Fold in another copy of the same detection (stored, or from a concurrent blob)."""
        if (other.first_seen, other.first_record_id) < (self.first_seen, self.first_record_id):
            self.first_seen, self.first_record_id = other.first_seen, other.first_record_id
            self.session_id, self.new, self.context = other.session_id, other.new, other.context
        self.add_reasons(other.reasons)
        for mine, theirs in ((self.records, other.records), (self.messages, other.messages)):
            mine.update(list(theirs)[: max(0, KEYSET_CAP - len(mine))])
        self.folders.update(other.folders)
        self.mailboxes.update(list(other.mailboxes)[: max(0, MAILBOX_CAP - len(self.mailboxes))])

    def detection(self) -> Detection:
        return Detection(
            type=self.type,
            mailbox=self.mailbox,
            session_id=self.session_id,
            new=self.new,
            severity=self.severity,
            reasons=tuple(self.reasons),
            first_seen=self.first_seen,
            first_record_id=self.first_record_id,
            records=len(self.records),
            context=dict(self.context),
            messages=len(self.messages),
            folders=tuple(sorted(self.folders)),
            mailboxes=tuple(sorted(self.mailboxes)),
            key=self.key,
        )


@dataclass
class MassWindow:
    """What one IP, app, session or actor read in one window: mailboxes and records."""

    mailboxes: dict[str, datetime] = field(default_factory=dict)  # mailbox -> first read in the window
    records: set[str] = field(default_factory=set)

    def add(self, event: AccessEvent) -> None:
        moment = _second(event.timestamp)
        if event.mailbox not in self.mailboxes and len(self.mailboxes) < MAILBOX_CAP:
            self.mailboxes[event.mailbox] = moment
        elif event.mailbox in self.mailboxes:
            self.mailboxes[event.mailbox] = min(self.mailboxes[event.mailbox], moment)
        if len(self.records) < KEYSET_CAP:
            self.records.add(short_key(event.record_id))

    def merge(self, other: MassWindow) -> None:
        for mailbox, moment in other.mailboxes.items():
            if mailbox in self.mailboxes or len(self.mailboxes) < MAILBOX_CAP:
                self.mailboxes[mailbox] = min(self.mailboxes.get(mailbox, moment), moment)
        self.records.update(list(other.records)[: max(0, KEYSET_CAP - len(self.records))])

    def before(self, moment: datetime) -> set[str]:
        """Mailboxes first read in this window at or before `moment`."""
        return {mailbox for mailbox, first in self.mailboxes.items() if first <= moment}


@dataclass
class History:
    """A mailbox's stored records, for the warm-up: its first record and, for a day, how many
    records lie on earlier days (counted up to the threshold)."""

    first: datetime | None
    earlier_records: int


@dataclass
class State:
    """What the rules know: sightings per (mailbox, dimension, value), detections per key, mass
    windows per (kind, value, window start), and each mailbox's history for the warm-up."""

    sightings: dict[tuple[str, str, str], Sightings] = field(default_factory=dict)
    drafts: dict[str, Draft] = field(default_factory=dict)  # by alert key
    windows: dict[tuple[str, str, str], MassWindow] = field(default_factory=dict)
    history: Callable[[str, datetime], History] | None = None
    # What changed since loaded: written back by the storage path.
    touched_sightings: set[tuple[str, str, str]] = field(default_factory=set)
    touched_drafts: set[str] = field(default_factory=set)
    touched_windows: set[tuple[str, str, str]] = field(default_factory=set)


class MemoryHistory:
    """History from the records seen so far (distinct record ids), for the in-memory path."""

    def __init__(self) -> None:
        self.first: dict[str, datetime] = {}
        self.per_day: dict[str, dict[str, set[str]]] = {}

    def add(self, event: AccessEvent) -> None:
        moment = _second(event.timestamp)
        self.first[event.mailbox] = min(self.first.get(event.mailbox, moment), moment)
        self.per_day.setdefault(event.mailbox, {}).setdefault(day_key(moment), set()).add(event.record_id)

    def __call__(self, mailbox: str, moment: datetime) -> History:
        today = day_key(moment)
        days = self.per_day.get(mailbox, {})
        earlier = sum(len(ids) for day, ids in days.items() if day < today)
        return History(self.first.get(mailbox), earlier)


# --- the rules ------------------------------------------------------------------------------------

R_UNKNOWN_GRAPH_APP = "an app that is not a known first-party app read mail through Microsoft Graph"
R_GRAPH_APP = "a first-party app read mail through Microsoft Graph"
R_NEW_APP = "an app that is not a known first-party app read the mailbox"
R_OTHER_DOMAIN = "a user of another domain read the mailbox"
R_OTHER_USER = "a user other than the owner read the mailbox"
R_LEGACY = "a legacy protocol (IMAP or POP) read the mailbox"
R_SYNC = "a Sync from this context: an offline copy of the folder"
R_COUNTRY = "a country the mailbox is not read from"
R_ASN = "a network operator (ASN) the mailbox is not read from"
R_LOGON = "a logon type the mailbox is not read with"
R_OTHER = "a context the mailbox is not read from"
R_MASS = "one source read many mailboxes other than its own in a short time"
_REASON_SEVERITY = {
    R_UNKNOWN_GRAPH_APP: "high",
    R_GRAPH_APP: "medium",
    R_NEW_APP: "medium",
    R_OTHER_DOMAIN: "high",
    R_OTHER_USER: "medium",
    R_LEGACY: "high",
    R_SYNC: "high",
    R_COUNTRY: "medium",
    R_ASN: "medium",
    R_LOGON: "medium",
    R_OTHER: "low",
    R_MASS: "high",
}


def _domain(upn: str) -> str:
    return upn.rpartition("@")[2].lower() if "@" in upn else ""


def _via_graph(event: AccessEvent) -> bool:
    return event.app_id.strip().lower() == MICROSOFT_GRAPH_APP_ID or event.client_family == GRAPH_CLIENT


def reasons_for(event: AccessEvent, new: Iterable[str], context: dict[str, str]) -> list[str]:
    """Why a record in a new context matters, each reason with its severity (_REASON_SEVERITY)."""
    found: list[str] = []
    new = set(new)
    if "app" in new:
        first_party = context["app"] in FIRST_PARTY_APPS
        if _via_graph(event):
            found.append(R_GRAPH_APP if first_party else R_UNKNOWN_GRAPH_APP)
        elif not first_party:
            found.append(R_NEW_APP)
    actor = context.get("actor", "")
    if "actor" in new and actor and actor != event.mailbox.lower():
        other = _domain(actor) and _domain(actor) != _domain(event.mailbox)
        found.append(R_OTHER_DOMAIN if other else R_OTHER_USER)
    found.extend(_access_reasons(event))
    if "country" in new:
        found.append(R_COUNTRY)
    if "asn" in new:
        found.append(R_ASN)
    if "logonType" in new:
        found.append(R_LOGON)
    return found or [R_OTHER]


def _access_reasons(event: AccessEvent) -> list[str]:
    """Reasons from what the record did, whichever of the context's records did it."""
    found = []
    if event.client_family in LEGACY_CLIENTS:
        found.append(R_LEGACY)
    if event.access == "Sync":
        found.append(R_SYNC)
    return found


def new_context_key(mailbox: str, context: dict[str, str], new: Iterable[str]) -> str:
    return (
        mailbox.lower() + "|" + "|".join(f"{name}={context[name]}" for name in new if name not in LISTED_ONLY)
    )


def mass_key(kind: str, value: str) -> str:
    return f"{kind}={value}"


def window_start(moment: datetime, minutes: int) -> datetime:
    seconds = minutes * 60
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def mass_values(event: AccessEvent) -> dict[str, str]:
    """The sources a mass-access window counts, for a record that reads a mailbox other than the
    reader's own (an owner reading their own mailbox is never mass access)."""
    actor = event.user.strip().lower()
    if actor == event.mailbox.lower():
        return {}
    values = {"ip": event.client_ip, "app": app_of(event), "session": event.session_id, "actor": actor}
    return {kind: value for kind, value in values.items() if value}


class Detector:
    """Runs the rules over records in record-time order against a State."""

    def __init__(self, settings: DetectionSettings, state: State, lookup: IpLookup = no_lookup) -> None:
        self.settings = settings
        self.state = state
        self.lookup = lookup
        self.window = timedelta(days=settings.baseline_days)

    def observe(self, event: AccessEvent) -> None:
        moment = _second(event.timestamp)
        context = context_of(event, self.lookup)
        self._new_context(event, moment, context)
        self._learn(event.mailbox, moment, context)
        self._mass_access(event, moment)

    def _warm(self, mailbox: str, moment: datetime) -> bool:
        if self.state.history is None:
            return False
        history = self.state.history(mailbox, moment)
        if history.first is None or history.earlier_records < self.settings.warmup_records:
            return False
        return moment - history.first >= timedelta(days=self.settings.warmup_days)

    def _new_context(self, event: AccessEvent, moment: datetime, context: dict[str, str]) -> None:
        if not self._warm(event.mailbox, moment):
            return
        new = tuple(
            name for name in DIMENSIONS if name in context and not self._seen(event, name, context, moment)
        )
        if any(name not in LISTED_ONLY for name in new):
            key = new_context_key(event.mailbox, context, new)
            draft = self.state.drafts.get(self._alert_key(key, moment))
            if draft is None:
                draft = Draft(
                    type=NEW_CONTEXT,
                    mailbox=event.mailbox,
                    key=key,
                    session_id=event.session_id,
                    new=new,
                    context={name: context[name] for name in new},
                    reasons=reasons_for(event, new, context),
                    first_seen=moment,
                    first_record_id=event.record_id,
                )
                self.state.drafts[self._alert_key(key, moment)] = draft
            elif (moment, event.record_id) < (draft.first_seen, draft.first_record_id):
                draft.first_seen, draft.first_record_id = moment, event.record_id  # arrived late
                draft.session_id = event.session_id
            self._update(draft, event)
            return
        for draft in self._open_drafts(event.mailbox, moment):
            if self._belongs(draft, event, context):
                self._update(draft, event)
                return

    def _seen(self, event: AccessEvent, name: str, context: dict[str, str], moment: datetime) -> bool:
        sightings = self.state.sightings.get((event.mailbox.lower(), name, context[name]))
        return sightings is not None and sightings.seen_within(moment, self.window)

    @staticmethod
    def _alert_key(key: str, moment: datetime) -> str:
        return f"{day_key(moment)}|{key}"

    def _open_drafts(self, mailbox: str, moment: datetime) -> list[Draft]:
        prefix = f"{day_key(moment)}|{mailbox.lower()}|"
        found = [draft for key, draft in self.state.drafts.items() if key.startswith(prefix)]
        return sorted(found, key=lambda draft: (draft.first_seen, draft.first_record_id))

    @staticmethod
    def _belongs(draft: Draft, event: AccessEvent, context: dict[str, str]) -> bool:
        """The same session, or the same values in every dimension that made the context new."""
        if draft.type != NEW_CONTEXT or draft.first_seen > _second(event.timestamp):
            return False
        if event.session_id and event.session_id == draft.session_id:
            return True
        deciding = [name for name in draft.new if name not in LISTED_ONLY]
        return all(context.get(name) == draft.context.get(name) for name in deciding)

    def _update(self, draft: Draft, event: AccessEvent) -> None:
        draft.count(event)
        draft.add_reasons(_access_reasons(event))
        self.state.touched_drafts.add(self._alert_key(draft.key, draft.first_seen))

    def _learn(self, mailbox: str, moment: datetime, context: dict[str, str]) -> None:
        for name, value in context.items():
            key = (mailbox.lower(), name, value)
            self.state.sightings.setdefault(key, Sightings()).add(moment)
            self.state.touched_sightings.add(key)

    def _mass_access(self, event: AccessEvent, moment: datetime) -> None:
        minutes = self.settings.mass_window_minutes
        start = window_start(moment, minutes)
        previous = start - timedelta(minutes=minutes)
        for kind, value in mass_values(event).items():
            key = mass_key(kind, value)
            draft = self.state.drafts.get(self._alert_key(key, moment))
            if draft is not None and moment >= draft.first_seen:  # an earlier record is the window's
                self._update(draft, event)
            window_id = (kind, value, start.strftime("%Y%m%dT%H%M"))
            window = self.state.windows.setdefault(window_id, MassWindow())
            window.add(event)
            self.state.touched_windows.add(window_id)
            if draft is not None:
                continue
            earlier = self.state.windows.get((kind, value, previous.strftime("%Y%m%dT%H%M")), MassWindow())
            mailboxes = window.before(moment) | earlier.mailboxes.keys()
            if len(mailboxes) >= self.settings.mass_mailboxes:
                draft = Draft(
                    type=MASS_ACCESS,
                    mailbox="",
                    key=key,
                    session_id=event.session_id,
                    new=(kind,),
                    context={kind: value, "mailboxes": str(len(mailboxes))},
                    reasons=[R_MASS],
                    first_seen=moment,
                    first_record_id=event.record_id,
                    records=set(list(window.records | earlier.records)[:KEYSET_CAP]),
                    mailboxes=set(sorted(mailboxes)[:MAILBOX_CAP]),
                )
                self.state.drafts[self._alert_key(key, moment)] = draft
                self._update(draft, event)


# --- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """One detection the rules would raise (and, in storage, have raised) as an alert."""

    type: str
    mailbox: str
    session_id: str
    new: tuple[str, ...]
    severity: str
    reasons: tuple[str, ...]
    first_seen: datetime
    first_record_id: str
    records: int
    context: dict[str, str]
    messages: int = 0
    folders: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    key: str = ""

    def row(self) -> dict[str, Any]:
        """The JSON object `mia detect` prints (and CSV's columns, in this order)."""
        return {
            "type": self.type,
            "mailbox": self.mailbox,
            "SessionId": self.session_id,
            "new": list(self.new),
            "severity": self.severity,
            "reasons": list(self.reasons),
            "firstSeen": self.first_seen.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "firstRecordId": self.first_record_id,
            "records": self.records,
            "messages": self.messages,
            "folders": list(self.folders),
            "mailboxes": list(self.mailboxes),
            "context": dict(self.context),
        }


def ordered(events: Iterable[AccessEvent]) -> list[AccessEvent]:
    """Record-time order (ties by record Id), each record Id once (its first copy)."""
    seen: set[str] = set()
    unique = []
    for event in events:
        if event.record_id in seen:
            continue
        seen.add(event.record_id)
        unique.append(event)
    return sorted(unique, key=lambda event: (_second(event.timestamp), event.record_id))


def detect_events(
    events: Iterable[AccessEvent], settings: DetectionSettings, lookup: IpLookup = no_lookup
) -> list[Detection]:
    """The detections the records raise, each once, in the order they were first raised."""
    history = MemoryHistory()
    state = State(history=history)
    detector = Detector(settings, state, lookup)
    for event in ordered(events):
        history.add(event)
        detector.observe(event)
    drafts = sorted(
        state.drafts.values(), key=lambda draft: (draft.first_seen, draft.first_record_id, draft.key)
    )
    return [draft.detection() for draft in drafts]

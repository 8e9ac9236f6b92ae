"""The simulated tenant's audit activity and its content blobs. Pure: no I/O, no clock.

`build_tenant(spec)` is deterministic for a given spec (seed, sizes and `now`). Activity covers
`days` days before `now`:

- owners read their mail on Outlook desktop (MAPI), Outlook for iOS (Outlook Mobile app id) and
  OWA; desktop clients sometimes Sync a folder; other mailbox actions are mixed in;
- bob is alice's delegate (LogonType 2); admin opens dave's mailbox through EWS (LogonType 1);
- an attacker holding alice's token reads dozens of her messages through Microsoft Graph with an
  unknown app from a foreign IP, then syncs her Inbox;
- the shared finance mailbox passes 1,000 MailItemsAccessed records within 24 hours, gets a record
  with IsThrottled=True, then none for 24 hours.

Records become content blobs 20-90 minutes after they happen, grouped in 5-10 minute slots. Some
records are stored twice (again in a later blob); some blobs are announced late (contentCreated in
the last ~90 minutes, hidden until released); a few are already expired.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from simulator.records import (
    ADMIN,
    DELEGATED,
    EWS,
    GRAPH_APP_ID,
    GRAPH_REST,
    OUTLOOK_DESKTOP,
    OUTLOOK_IOS,
    OUTLOOK_MOBILE_APP_ID,
    OWA,
    OWNER,
    Access,
    Folder,
    FolderAccess,
    Mailbox,
    Message,
    MessageMeta,
    Person,
    Record,
    RecordFactory,
    guid,
)

EXCHANGE = "Audit.Exchange"
CONTENT_LIFETIME = timedelta(days=7)  # "fetchable for 7 days after it first became available"
THROTTLE_LIMIT = 1000
THROTTLE_BLIND = timedelta(hours=24)
DOMAIN = "contoso.com"
ORGANIZATION = "contoso.onmicrosoft.com"
FOREIGN_IPS = ("185.220.101.45", "45.141.215.17", "91.219.236.198", "103.251.167.21", "5.188.206.14")
OTHER_OPERATIONS = ("Send", "Update", "MoveToDeletedItems", "SoftDelete", "Move", "HardDelete")
PURGING_OPERATIONS = ("SoftDelete", "HardDelete")
#: Who sends the mail that arrives (name, address): colleagues and outside correspondents.
SENDERS = (
    ("Megan Bowen", f"meganb@{DOMAIN}"),
    ("Contoso Payroll", f"payroll@{DOMAIN}"),
    ("IT Service Desk", f"servicedesk@{DOMAIN}"),
    ("Lee Gu", f"leeg@{DOMAIN}"),
    ("Fabrikam Legal", "legal@fabrikam.com"),
    ("Pat O'Neil", "pat.o'neil@fabrikam.com"),
    ("Woodgrove Bank", "notifications@woodgrovebank.com"),
    ("Northwind Orders", "orders@northwindtraders.com"),
    ("Microsoft Azure", "azure-noreply@microsoft.com"),
    ("Jordan Smith", "jordan.smith1987@gmail.com"),
    ("Adatum Recruiting", "jobs+contoso@adatum.com"),
)
OWN_MAIL_FOLDERS = ("\\Sent Items", "\\Drafts")


@dataclass(frozen=True)
class TenantSpec:
    seed: int
    mailboxes: int
    days: int
    now: datetime
    expired_blobs: int = 2
    late_blobs: int = 3
    duplicate_rate: float = 0.02
    max_blob_records: int = 300
    #: Days of audit history before the Management API window (only the audit-log query API serves
    #: them); 0 = none. Generated after everything else, so the window's records do not change.
    history_days: int = 0


@dataclass(frozen=True)
class Blob:
    content_type: str
    content_id: str
    created: datetime
    expiration: datetime
    late: bool
    body: bytes  # serialised once: every GET returns these exact bytes
    record_ids: tuple[str, ...]
    mia_ids: tuple[str, ...]  # the MailItemsAccessed record Ids among them


@dataclass(frozen=True)
class Story:
    """Where the interesting activity is, for tests and the demo."""

    attacker_mailbox: str
    attacker_ip: str
    attacker_session_id: str
    attacker_app_id: str
    attack_start: datetime
    delegate: str
    admin: str
    admin_target: str
    throttled_mailbox: str
    throttled_at: datetime | None  # CreationTime of the IsThrottled=True record, if in the window
    #: The attacker's first read of the mailbox: in the history (older than the Management API's
    #: window) when the tenant has history, else the attack in the window.
    attacker_first_access: datetime | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    domain: str
    organization: str
    now: datetime
    mailboxes: tuple[str, ...]
    story: Story
    records: tuple[Record, ...] = field(repr=False)  # every record placed in a blob, once, by time
    blobs: tuple[Blob, ...] = field(repr=False)  # ordered by contentCreated
    #: Records older than the Management API window (TenantSpec.history_days), by time: only the
    #: audit-log query API serves them.
    history: tuple[Record, ...] = field(default=(), repr=False)
    #: lower-case mailbox UPN -> InternetMessageId -> what Graph and message trace know of it.
    messages: Mapping[str, Mapping[str, MessageMeta]] = field(
        default_factory=dict, repr=False, hash=False, compare=False
    )


@dataclass
class _Event:
    when: datetime
    record: Record
    mia: bool


@dataclass
class _Draft:
    created: datetime
    records: list[Record]
    late: bool = False
    expired: bool = False


def tenant_id_for(seed: int) -> str:
    """The tenant GUID for a seed (the first draw of the tenant's RNG)."""
    return guid(random.Random(f"tenant/{seed}"))


def build_tenant(spec: TenantSpec) -> Tenant:
    now = spec.now.astimezone(UTC).replace(microsecond=0)
    rng = random.Random(f"tenant/{spec.seed}")
    tenant_id = guid(rng)
    world = _World.create(rng, tenant_id, spec.mailboxes)
    plan = _Plan.create(rng, now, spec.days)
    events = _activity(world, rng, plan)
    late = [
        _ordinary_batch(world, rng, now - timedelta(minutes=rng.uniform(5, 85)))
        for _ in range(spec.late_blobs)
    ]
    expired = [
        _ordinary_batch(world, rng, plan.window_start + timedelta(minutes=rng.uniform(100, 240)))
        for _ in range(spec.expired_blobs)
    ]
    throttled_at = _throttled_time(events)
    events = [e for e in events if plan.window_start <= e.when and not _blinded(e, world, throttled_at)]

    blob_rng = random.Random(f"blobs/{spec.seed}")
    drafts = _slot_drafts(events, blob_rng, now, spec.max_blob_records)
    drafts += [_Draft(created, [e.record for e in batch], late=True) for created, batch in late]
    drafts += [_Draft(created, [e.record for e in batch], expired=True) for created, batch in expired]
    drafts.sort(key=lambda d: d.created)
    _duplicate(drafts, blob_rng, spec.duplicate_rate, spec.max_blob_records)
    records = _unique_records(drafts)
    blobs = _finish(drafts, blob_rng, now)
    messages = _catalogue(world.mailboxes, records, now, plan.window_start)
    story = plan.story(world, throttled_at)
    # Drawn last from the tenant's RNG: everything above is the same with or without history.
    history, first_access = _history(world, rng, plan, spec.history_days)
    return Tenant(
        tenant_id=tenant_id,
        domain=DOMAIN,
        organization=ORGANIZATION,
        now=now,
        mailboxes=tuple(m.upn for m in world.mailboxes),
        story=replace(story, attacker_first_access=first_access or plan.attack_start),
        records=records,
        blobs=blobs,
        messages=messages,
        history=history,
    )


def _history(
    world: _World, rng: random.Random, plan: _Plan, days: int
) -> tuple[tuple[Record, ...], datetime | None]:
    """Routine days before the window, and the attacker's first, smaller visit to alice's mailbox
    halfway through them (Graph reads from the same IP and app as the later attack)."""
    if days <= 0:
        return (), None
    clients = {m.upn: _owner_clients(world, m) for m in world.owners}
    first_day = plan.window_start.replace(hour=0, minute=0, second=0) - timedelta(days=days)
    events: list[_Event] = []
    for day in range(days):
        day_start = first_day + timedelta(days=day)
        for mailbox in world.owners:
            events += _owner_day(world, rng, mailbox, clients[mailbox.upn], day_start)
    first_access = first_day + timedelta(days=days // 2, hours=22, minutes=rng.randint(0, 50))
    alice = world.alice
    inbox = alice.folders["\\Inbox"]
    graph = replace(
        world.access(alice.owner, alice, OWNER, f"{plan.attacker_ip}:50077", GRAPH_REST),
        session_id=plan.attacker_session_id,
        app_id=GRAPH_APP_ID,
        client_app_id=plan.attacker_app_id,
    )
    for burst in range(3):
        when = first_access + timedelta(minutes=3 * burst, seconds=burst * 7)
        events.append(world.bind(when, graph, [(inbox, world.pick(inbox, 4, 8))]))
    kept = sorted((e for e in events if e.when < plan.window_start), key=lambda e: (e.when, e.record["Id"]))
    return tuple(e.record for e in kept), first_access


@dataclass(frozen=True)
class _Plan:
    """When the story happens (relative to `now`) and who the attacker is."""

    now: datetime
    days: int
    window_start: datetime
    throttle_start: datetime
    attack_start: datetime
    admin_visit: datetime
    attacker_ip: str
    attacker_app_id: str
    attacker_session_id: str

    @classmethod
    def create(cls, rng: random.Random, now: datetime, days: int) -> _Plan:
        window_start = now - timedelta(days=days)
        return cls(
            now=now,
            days=days,
            window_start=window_start,
            throttle_start=window_start + timedelta(hours=1),
            attack_start=now - min(timedelta(hours=12 * days), timedelta(hours=36)) + timedelta(minutes=14),
            admin_visit=now - min(timedelta(hours=18 * days), timedelta(hours=50)) + timedelta(minutes=3),
            attacker_ip=rng.choice(FOREIGN_IPS),
            attacker_app_id=guid(rng),
            attacker_session_id=guid(rng),
        )

    def story(self, world: _World, throttled_at: datetime | None) -> Story:
        in_window = throttled_at is not None and throttled_at >= self.window_start
        return Story(
            attacker_mailbox=world.alice.upn,
            attacker_ip=self.attacker_ip,
            attacker_session_id=self.attacker_session_id,
            attacker_app_id=self.attacker_app_id,
            attack_start=self.attack_start,
            delegate=world.bob.upn,
            admin=world.admin.upn,
            admin_target=world.dave.upn,
            throttled_mailbox=world.finance.upn,
            throttled_at=throttled_at.replace(microsecond=0) if throttled_at and in_window else None,
        )


def _activity(world: _World, rng: random.Random, plan: _Plan) -> list[_Event]:
    events = list(_routine_activity(world, rng, plan.now, plan.days))
    events += _finance_activity(world, rng, plan.throttle_start)
    events += _attack(world, rng, plan)
    events += _admin_visit(world, rng, plan.admin_visit)
    return events


# -- people and mailboxes ---------------------------------------------------------------------


@dataclass
class _World:
    rng: random.Random
    factory: RecordFactory
    users: list[Mailbox]
    alice: Mailbox
    bob: Mailbox
    dave: Mailbox
    finance: Mailbox
    admin: Person
    office_ips: dict[str, str]

    @classmethod
    def create(cls, rng: random.Random, tenant_id: str, count: int) -> _World:
        def mailbox(local: str, name: str) -> Mailbox:
            return Mailbox.create(rng, Person.create(rng, f"{local}@{DOMAIN}", name))

        users = [mailbox(f"user{n}", f"User {n}") for n in range(1, count + 1)]
        alice, bob = mailbox("alice", "Alice Wilber"), mailbox("bob", "Bob Kelly")
        dave, finance = mailbox("dave", "Dave Ruiz"), mailbox("finance", "Finance (shared)")
        admin = Person.create(rng, f"admin@{DOMAIN}", "Exchange Administrator")
        ips = {m.upn: f"203.0.113.{rng.randint(10, 250)}" for m in [*users, alice, bob, dave]}
        factory = RecordFactory(rng, tenant_id, ORGANIZATION)
        return cls(rng, factory, users, alice, bob, dave, finance, admin, ips)

    @property
    def owners(self) -> list[Mailbox]:
        return [*self.users, self.alice, self.bob, self.dave]

    @property
    def mailboxes(self) -> list[Mailbox]:
        return [*self.owners, self.finance]

    def access(
        self, user: Person, mailbox: Mailbox, logon_type: int, ip: str, client: str, **app: str
    ) -> Access:
        return Access(user, mailbox, logon_type, ip, client, guid(self.rng), guid(self.rng), **app)

    def bind(self, when: datetime, access: Access, folders: Sequence[FolderAccess], **kw: bool) -> _Event:
        return _Event(when, self.factory.mail_items_accessed(when, access, "Bind", folders, **kw), True)

    def sync(self, when: datetime, access: Access, folder: Folder, older_shape: bool = False) -> _Event:
        record = self.factory.mail_items_accessed(
            when, access, "Sync", [(folder, [])], older_sync_shape=older_shape
        )
        return _Event(when, record, True)

    def pick(self, folder: Folder, low: int, high: int) -> list[Message]:
        return self.rng.sample(folder.messages, min(len(folder.messages), self.rng.randint(low, high)))


def _owner_clients(world: _World, mailbox: Mailbox) -> list[tuple[str, str, dict[str, str]]]:
    """(client string, IP, app ids) for each client the owner uses."""
    rng = world.rng
    office = world.office_ips[mailbox.upn]
    clients: list[tuple[str, str, dict[str, str]]] = [(OUTLOOK_DESKTOP, office, {})]
    mobile = rng.random() < 0.5 or mailbox is world.alice
    owa = rng.random() < 0.4 or mailbox is world.alice
    if mobile:
        ip = f"[2001:db8:{rng.randint(16, 4095):x}::{rng.randint(1, 255):x}]:{rng.randint(1024, 65000)}"
        ids = {"app_id": OUTLOOK_MOBILE_APP_ID, "client_app_id": OUTLOOK_MOBILE_APP_ID}
        clients.append((OUTLOOK_IOS, ip, ids))
    if owa:
        clients.append((OWA, f"::ffff:{office}" if rng.random() < 0.5 else office, {}))
    return clients


def _routine_activity(world: _World, rng: random.Random, now: datetime, days: int) -> Iterator[_Event]:
    """Owners' working days, and bob reading alice's Inbox as her delegate."""
    midnight = now.replace(hour=0, minute=0, second=0)
    clients = {m.upn: _owner_clients(world, m) for m in world.owners}
    for day in range(days, -1, -1):
        day_start = midnight - timedelta(days=day)
        for mailbox in world.owners:
            yield from _owner_day(world, rng, mailbox, clients[mailbox.upn], day_start)
        bob = world.access(world.bob.owner, world.alice, DELEGATED, "::ffff:203.0.113.22", OUTLOOK_DESKTOP)
        inbox = world.alice.folders["\\Inbox"]
        for _ in range(rng.randint(1, 3)):
            when = day_start + timedelta(hours=rng.uniform(8, 17))
            yield world.bind(when, bob, [(inbox, world.pick(inbox, 1, 3))])


def _owner_day(
    world: _World,
    rng: random.Random,
    mailbox: Mailbox,
    clients: list[tuple[str, str, dict[str, str]]],
    day_start: datetime,
) -> Iterator[_Event]:
    sessions = [world.access(mailbox.owner, mailbox, OWNER, ip, client, **ids) for client, ip, ids in clients]
    desktop = sessions[0]
    inbox = mailbox.folders["\\Inbox"]
    yield _other(
        world, day_start + timedelta(hours=7, minutes=rng.uniform(0, 50)), desktop, "MailboxLogin", inbox
    )
    if rng.random() < 0.3:
        folder = inbox if rng.random() < 0.6 else mailbox.folders[rng.choice(list(mailbox.folders))]
        yield world.sync(day_start + timedelta(hours=rng.uniform(7, 9)), desktop, folder)
    for _ in range(rng.randint(10, 20)):
        when = day_start + timedelta(hours=rng.uniform(7, 18.5))
        session = rng.choices(sessions, weights=[6, 2, 2][: len(sessions)])[0]
        folders: list[FolderAccess] = [(inbox, world.pick(inbox, 1, 4))]
        if rng.random() < 0.2:
            other = mailbox.folders[rng.choice(["\\Sent Items", "\\Archive", "\\Inbox\\Projects"])]
            folders.append((other, world.pick(other, 1, 2)))
        with_subjects = rng.random() < 0.6 and session.client_info != OUTLOOK_IOS
        yield world.bind(when, session, folders, with_subjects=with_subjects)
    for operation in OTHER_OPERATIONS:
        for _ in range(rng.choice([0, 0, 1, 1, 2]) if operation != "HardDelete" else int(rng.random() < 0.1)):
            folder = mailbox.folders["\\Sent Items" if operation == "Send" else "\\Inbox"]
            yield _other(world, day_start + timedelta(hours=rng.uniform(7, 19)), desktop, operation, folder)


def _other(world: _World, when: datetime, access: Access, operation: str, folder: Folder) -> _Event:
    message = world.rng.choice(folder.messages)
    return _Event(when, world.factory.mailbox_operation(when, access, operation, folder, message), False)


def _finance_activity(world: _World, rng: random.Random, burst_start: datetime) -> list[_Event]:
    """A busy shared mailbox: a few reads a day, then a 6-hour burst of 1,000 and a throttled record."""
    readers = [m.owner for m in world.users[:6]] or [world.bob.owner]
    accesses = [
        world.access(
            person, world.finance, DELEGATED, world.office_ips.get(person.upn, "203.0.113.5"), OUTLOOK_DESKTOP
        )
        for person in readers
    ]
    inbox = world.finance.folders["\\Inbox"]
    events = []
    for offset in range(-1, 8):  # everyday reads around the burst (those in the blind 24 h go later)
        for _ in range(rng.randint(4, 8)):
            when = burst_start + timedelta(days=offset, hours=rng.uniform(0, 10))
            events.append(world.bind(when, rng.choice(accesses), [(inbox, world.pick(inbox, 1, 3))]))
    times = sorted(burst_start + timedelta(seconds=rng.uniform(0, 6 * 3600)) for _ in range(THROTTLE_LIMIT))
    for n, when in enumerate(times):
        events.append(world.bind(when, accesses[n % len(accesses)], [(inbox, world.pick(inbox, 1, 3))]))
    last = times[-1] + timedelta(seconds=rng.randint(20, 110))
    events.append(world.bind(last, accesses[0], [(inbox, world.pick(inbox, 1, 2))], throttled=True))
    return events


def _attack(world: _World, rng: random.Random, plan: _Plan) -> list[_Event]:
    """Graph reads with an unknown app from a foreign IP, then a desktop Sync of the Inbox."""
    alice, ip = world.alice, plan.attacker_ip
    inbox, archive = alice.folders["\\Inbox"], alice.folders["\\Archive"]
    targets = rng.sample(inbox.messages, 64)
    graph = replace(
        world.access(alice.owner, alice, OWNER, ip, GRAPH_REST),
        session_id=plan.attacker_session_id,
        app_id=GRAPH_APP_ID,
        client_app_id=plan.attacker_app_id,
    )
    events = []
    for burst in range(8):
        when = plan.attack_start + timedelta(minutes=2 * burst, seconds=rng.randint(0, 59))
        folders = [(inbox, targets[burst * 8 : burst * 8 + 8]), (archive, [rng.choice(archive.messages)])]
        access = replace(graph, ip=f"{ip}:{50100 + burst}")
        events.append(world.bind(when, access, folders, with_subjects=burst % 2 == 0))
    desktop = replace(graph, client_info=OUTLOOK_DESKTOP, app_id="", client_app_id="")
    events.append(world.sync(plan.attack_start + timedelta(minutes=21), desktop, inbox, older_shape=True))
    return events


def _admin_visit(world: _World, rng: random.Random, start: datetime) -> list[_Event]:
    access = world.access(world.admin, world.dave, ADMIN, "198.51.100.7", EWS)
    inbox = world.dave.folders["\\Inbox"]
    return [
        world.bind(
            start + timedelta(minutes=3 * n, seconds=rng.randint(0, 59)),
            access,
            [(inbox, world.pick(inbox, 2, 6))],
        )
        for n in range(rng.randint(2, 4))
    ]


def _ordinary_batch(world: _World, rng: random.Random, created: datetime) -> tuple[datetime, list[_Event]]:
    """Owner reads for a dedicated (late or expired) blob that becomes available at `created`."""
    events = []
    for _ in range(rng.randint(3, 12)):
        mailbox = rng.choice(world.users or [world.bob])
        access = world.access(mailbox.owner, mailbox, OWNER, world.office_ips[mailbox.upn], OUTLOOK_DESKTOP)
        inbox = mailbox.folders["\\Inbox"]
        when = created - timedelta(minutes=rng.uniform(20, 110))
        events.append(world.bind(when, access, [(inbox, world.pick(inbox, 1, 4))]))
    return created, events


# -- throttling -------------------------------------------------------------------------------


def _is_throttled(record: Record) -> bool:
    return any(
        p.get("Name") == "IsThrottled" and p.get("Value") == "True"
        for p in record.get("OperationProperties", [])
    )


def _throttled_time(events: Iterable[_Event]) -> datetime | None:
    return next((e.when for e in events if e.mia and _is_throttled(e.record)), None)


def _blinded(event: _Event, world: _World, throttled_at: datetime | None) -> bool:
    """No MailItemsAccessed record for the throttled mailbox in the 24 h after the throttled one."""
    if throttled_at is None or not event.mia or event.record["MailboxOwnerUPN"] != world.finance.upn:
        return False
    return throttled_at < event.when <= throttled_at + THROTTLE_BLIND


# -- message metadata (Graph message lookup, message trace) ------------------------------------


def _catalogue(
    mailboxes: Sequence[Mailbox], records: Iterable[Record], now: datetime, window_start: datetime
) -> Mapping[str, Mapping[str, MessageMeta]]:
    """Every message of every mailbox; hashes only, so the tenant's RNG stream is untouched."""
    purged = _purged(records)
    return MappingProxyType(
        {
            mailbox.upn.lower(): MappingProxyType(_mailbox_messages(mailbox, purged, now, window_start))
            for mailbox in mailboxes
        }
    )


def _mailbox_messages(
    mailbox: Mailbox, purged: set[tuple[str, str]], now: datetime, window_start: datetime
) -> dict[str, MessageMeta]:
    upn = mailbox.upn.lower()
    messages = {}
    for folder in mailbox.folders.values():
        for message in folder.messages:
            key = message.internet_message_id
            messages[key] = _meta(mailbox, folder.path, message, now, window_start, (upn, key) in purged)
    return messages


def _purged(records: Iterable[Record]) -> set[tuple[str, str]]:
    """(mailbox, InternetMessageId) named by a SoftDelete or HardDelete record."""
    return {
        (str(record["MailboxOwnerUPN"]).lower(), str(item["InternetMessageId"]))
        for record in records
        if record["Operation"] in PURGING_OPERATIONS
        for item in record.get("AffectedItems", [])
    }


def _meta(
    mailbox: Mailbox, path: str, message: Message, now: datetime, window_start: datetime, purged: bool
) -> MessageMeta:
    digest = int.from_bytes(hashlib.sha256(message.internet_message_id.encode("utf-8")).digest(), "big")
    if path in OWN_MAIL_FOLDERS:
        name, sender = mailbox.owner.name, mailbox.upn
    else:
        name, sender = SENDERS[(digest >> 32) % len(SENDERS)]
    return MessageMeta(
        internet_message_id=message.internet_message_id,
        subject=message.subject,
        sender=sender,
        received=_received(digest, now, window_start),
        size=message.size,
        folder_path=path,
        purged=purged,
        copies=2 if digest % 40 == 0 else 1,
        sender_name=name,
    )


def _received(digest: int, now: datetime, window_start: datetime) -> datetime:
    """Before any generated access (expired blobs hold reads from up to 10 minutes before the
    window): ~70% within 10 days before the window, ~28% 10-40 days before it, ~2% more than 90 days
    before `now` (beyond message trace's reach: docs/mailitemsaccessed.md#graph-message-trace)."""
    bucket = (digest >> 64) % 1000
    seconds = (digest >> 96) % 1_000_000_007
    day = 86_400
    if bucket < 20:
        return now - timedelta(days=90, hours=1, seconds=seconds % (180 * day))
    if bucket < 300:
        return window_start - timedelta(days=10, seconds=seconds % (30 * day))
    return window_start - timedelta(hours=2, seconds=seconds % (10 * day - 7200))


# -- content blobs ----------------------------------------------------------------------------


def _slot_drafts(events: list[_Event], rng: random.Random, now: datetime, max_records: int) -> list[_Draft]:
    """Group records by availability (time + 20-90 min) into 5-10 minute slots, one blob per slot."""
    in_flight_after = now - timedelta(minutes=1)
    timed = []
    for event in sorted(events, key=lambda e: (e.when, e.record["Id"])):
        available = event.when + timedelta(minutes=rng.triangular(20, 90, 40))
        if available <= in_flight_after:  # later ones are not available yet: not in this tenant
            timed.append((available, event))
    timed.sort(key=lambda pair: (pair[0], pair[1].record["Id"]))
    drafts: list[_Draft] = []
    index = 0
    while index < len(timed):
        close = timed[index][0] + timedelta(minutes=rng.uniform(5, 10))
        group = []
        while index < len(timed) and timed[index][0] <= close:
            group.append(timed[index][1])
            index += 1
        created = min(close, now - timedelta(seconds=30))
        group.sort(key=lambda e: (e.when, e.record["Id"]))
        for part in range(0, len(group), max_records):
            chunk = group[part : part + max_records]
            drafts.append(
                _Draft(created + timedelta(milliseconds=part // max_records), [e.record for e in chunk])
            )
    return drafts


def _duplicate(drafts: list[_Draft], rng: random.Random, rate: float, max_records: int) -> None:
    """Store some records a second time in a later, live blob (the pipeline retries:
    docs/mailitemsaccessed.md#late-and-duplicate-content)."""
    if rate <= 0:
        return
    live = [d for d in drafts if not d.expired]
    originals = [(draft, list(draft.records)) for draft in drafts]
    for source, records in originals:
        for record in records:
            if rng.random() >= rate:
                continue
            later = [d for d in live if d.created > source.created and d is not source]
            if not later:
                continue
            horizon = [d for d in later if d.created <= source.created + timedelta(hours=48)] or later
            target = later[0] if rng.random() < 0.5 else rng.choice(horizon)
            if len(target.records) < max_records:
                target.records.append(record)


def _content_id(rng: random.Random, created: datetime, used: set[str]) -> str:
    while True:
        stamp = (
            created.strftime("%Y%m%d%H%M%S")
            + f"{created.microsecond // 1000:03d}{rng.randint(0, 999999):06d}"
        )
        content_id = f"{stamp}${stamp}$audit_exchange$Audit_Exchange$na{rng.randint(1, 60):04d}"
        if content_id not in used:
            used.add(content_id)
            return content_id


def _finish(drafts: list[_Draft], rng: random.Random, now: datetime) -> tuple[Blob, ...]:
    used: set[str] = set()
    blobs = []
    for draft in drafts:
        created = draft.created.replace(microsecond=draft.created.microsecond // 1000 * 1000)
        expiration = (
            now - timedelta(minutes=rng.uniform(1, 120)) if draft.expired else created + CONTENT_LIFETIME
        )
        body = json.dumps(draft.records, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        blobs.append(
            Blob(
                content_type=EXCHANGE,
                content_id=_content_id(rng, created, used),
                created=created,
                expiration=expiration.replace(microsecond=(expiration.microsecond // 1000) * 1000),
                late=draft.late,
                body=body,
                record_ids=tuple(r["Id"] for r in draft.records),
                mia_ids=tuple(r["Id"] for r in draft.records if r["Operation"] == "MailItemsAccessed"),
            )
        )
    blobs.sort(key=lambda b: (b.created, b.content_id))
    return tuple(blobs)


def _unique_records(drafts: Iterable[_Draft]) -> tuple[Record, ...]:
    seen: dict[str, Record] = {}
    for draft in drafts:
        for record in draft.records:
            seen.setdefault(record["Id"], record)
    return tuple(sorted(seen.values(), key=lambda r: (r["CreationTime"], r["Id"])))

"""Labelled tenants for the detection-quality bench. Pure: no I/O, no clock.

`generate(spec)` is deterministic for a spec. Over `days` days from `start`, every mailbox has
stable habits: its owner on Outlook desktop (MAPI) from the office or from home, Outlook for iOS or
Android from a mobile carrier, OWA for some; some mailboxes have a delegate from the same domain.
On top come the benign novelties real tenants have (a new phone, travel, a changed home IP, a new
first-party app), and, after `warmup_days`, one attacker session per pattern in `PATTERNS`.

Addresses: offices and homes are in the documentation and benchmarking ranges (RFC 5737, RFC 2544,
RFC 3849), so they have no country. Hotel Wi-Fi abroad uses addresses from MaxMind's published
GeoIP2 test data (github.com/maxmind/MaxMind-DB, `test-data`); attackers use the simulator's foreign
addresses (`simulator.tenant.FOREIGN_IPS`). Every address with a country is listed with the country
the embedded DB-IP data gives it (tests/simulator/test_behaviour.py checks that through
`shared.ipcontext`); no ASN is claimed, as the embedded data has none.

App-only reads (the `app_many_mailboxes` pattern) use the simulator's Graph shape (AppId Microsoft
Graph, ClientAppId the app, UserId the mailbox owner): which UserId Exchange writes for an app-only
read is not confirmed by a published record.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from simulator.records import (
    DELEGATED,
    GRAPH_APP_ID,
    GRAPH_REST,
    IMAP,
    OUTLOOK_ANDROID,
    OUTLOOK_DESKTOP,
    OUTLOOK_IOS,
    OUTLOOK_MOBILE_APP_ID,
    OWA,
    OWA_BROWSER,
    OWNER,
    Access,
    FolderAccess,
    Mailbox,
    Person,
    Record,
    RecordFactory,
    guid,
)

DOMAIN = "contoso.com"
ORGANIZATION = "contoso.onmicrosoft.com"
FOREIGN_DOMAIN = "fabrikam.com"

PATTERNS = (
    "graph_unknown_app",  # an app no one consented to knowingly, reading through Microsoft Graph
    "imap_hosting",  # IMAP from a hosting address
    "foreign_delegate",  # a delegate from another domain
    "owa_new_country",  # OWA from a country the mailbox was never read from
    "sync_new_device",  # a Sync (offline copy) from a device never seen
    "app_many_mailboxes",  # one app reading many mailboxes within minutes
)
NOVELTY_KINDS = ("new_phone", "travel", "home_ip_change", "new_first_party_app")

# Stable networks (no country: documentation and benchmarking ranges).
OFFICE_EGRESS = tuple(f"192.0.2.{host}" for host in (10, 11, 12, 13))  # RFC 5737 TEST-NET-1
HOME_ISPS = ("198.18", "198.19")  # RFC 2544 benchmarking /16s, one per home ISP; a home is a /24
CARRIERS = ("2001:db8:a1", "2001:db8:b2", "2001:db8:c3")  # RFC 3849; a phone stays in its /48
PARTNER_NETWORK = "203.0.113"  # RFC 5737 TEST-NET-3: the foreign delegate and the new device

# Hotel and airport Wi-Fi abroad (MaxMind test-data addresses) with the embedded DB-IP country.
TRAVEL_SITES: tuple[tuple[str, str], ...] = (
    ("89.160.20.115", "SE"),
    ("81.2.69.144", "GB"),
    ("216.160.83.58", "US"),
    ("1.128.0.7", "AU"),
    ("2.125.160.217", "GB"),
)
# Hosting and anonymising addresses (simulator.tenant.FOREIGN_IPS) with the embedded DB-IP country.
HOSTING_SITES: tuple[tuple[str, str], ...] = (
    ("185.220.101.45", "DE"),
    ("45.141.215.17", "PL"),
    ("91.219.236.198", "HU"),
    ("103.251.167.21", "NL"),
    ("5.188.206.14", "US"),
)
# First-party applications a user may start reading mail with (shared/parse/decoders.py names them).
FIRST_PARTY_APPS = (
    "1fec8e78-bce4-4aaf-ab1b-5451cc387264",  # Microsoft Teams
    "5d661950-3475-41cd-a2c3-d671a3162bc1",  # Microsoft Outlook
    "4765445b-32c6-49b0-83e6-1d93765276ca",  # OfficeHome
)
WORK_FOLDERS = ("\\Inbox", "\\Inbox", "\\Inbox", "\\Sent Items", "\\Archive", "\\Inbox\\Projects")


@dataclass(frozen=True)
class BehaviourSpec:
    seed: int
    mailboxes: int = 40
    days: int = 45
    start: datetime = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
    warmup_days: int = 14  # no attack, no benign novelty before this day
    delegate_share: float = 0.2
    mobile_share: float = 0.7
    owa_share: float = 0.4
    work_from_home_share: float = 0.15  # of an owner's other working days (besides the fixed one)
    # Probability, per mailbox over the window, of each benign novelty (at most one per mailbox;
    # at least one of each kind per tenant, so every tenant exercises every kind). Rough rates for
    # 45 days: phones are replaced every two to three years, one person in ten travels abroad in
    # six weeks, residential leases change within the ISP's pool every month or two, and a new
    # first-party app (Teams, new Outlook) reaches a few users a month.
    novelty_rates: tuple[tuple[str, float], ...] = (
        ("new_phone", 0.05),
        ("travel", 0.1),
        ("home_ip_change", 0.3),
        ("new_first_party_app", 0.08),
    )
    mass_access_mailboxes: int = 24  # an app harvesting a tenant reads most of it
    messages_per_folder: int = 6

    @property
    def warmup_end(self) -> datetime:
        return self.start + timedelta(days=self.warmup_days)


@dataclass(frozen=True)
class AttackerSession:
    label: str
    pattern: str
    mailboxes: tuple[str, ...]
    session_ids: tuple[str, ...]  # one per mailbox read
    record_ids: tuple[str, ...]  # in time order
    times: tuple[datetime, ...]  # CreationTime of each record, as record_ids
    ip: str
    country: str  # the embedded DB-IP country of `ip`, "" for none


@dataclass(frozen=True)
class BenignNovelty:
    label: str
    kind: str
    mailbox: str
    record_ids: tuple[str, ...]  # the benign records in the new context, in time order
    detail: str


@dataclass(frozen=True)
class Truth:
    seed: int
    start: datetime
    days: int
    warmup_end: datetime
    mailboxes: tuple[str, ...]
    attacks: tuple[AttackerSession, ...]
    novelties: tuple[BenignNovelty, ...]
    mailbox_days: int  # (mailbox, UTC day) pairs with benign MailItemsAccessed records
    evaluated_mailbox_days: int  # those on or after warmup_end


@dataclass(frozen=True)
class LabelledTenant:
    records: list[Record] = field(hash=False)  # MailItemsAccessed records, in time order
    truth: Truth


@dataclass(frozen=True)
class _Profile:
    mailbox: Mailbox
    office_ip: str
    home_net: str  # "198.18.7"
    home_host: int
    home_weekday: int  # hybrid work: the owner works from home this weekday every week
    phone: str  # "" (none), OUTLOOK_IOS or OUTLOOK_ANDROID
    carrier: str
    owa: bool
    delegate: Person | None
    delegate_ip: str  # the delegate's own office egress


@dataclass
class _Record:
    when: datetime
    record: Record
    mailbox: str
    attack: str = ""  # label of the attacker session
    novelty: str = ""  # label of the benign novelty


class _Builder:
    def __init__(self, spec: BehaviourSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.tenant_id = guid(self.rng)
        self.factory = RecordFactory(self.rng, self.tenant_id, ORGANIZATION)
        self.out: list[_Record] = []

    def access(self, user: Person, mailbox: Mailbox, logon: int, ip: str, client: str, **app: str) -> Access:
        return Access(user, mailbox, logon, ip, client, guid(self.rng), guid(self.rng), **app)

    def folders(self, mailbox: Mailbox, low: int, high: int) -> list[FolderAccess]:
        folder = mailbox.folders[self.rng.choice(WORK_FOLDERS)]
        count = min(len(folder.messages), self.rng.randint(low, high))
        return [(folder, self.rng.sample(folder.messages, count))]

    def bind(
        self,
        when: datetime,
        access: Access,
        low: int = 1,
        high: int = 4,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        folders = self.folders(access.mailbox, low, high)
        subjects = self.rng.random() < 0.6
        record = self.factory.mail_items_accessed(when, access, "Bind", folders, with_subjects=subjects)
        self.keep(when, record, access, labels or {})
        return str(record["Id"])

    def sync(self, when: datetime, access: Access, path: str, labels: Mapping[str, str] | None = None) -> str:
        folder = access.mailbox.folders[path]
        record = self.factory.mail_items_accessed(when, access, "Sync", [(folder, [])])
        self.keep(when, record, access, labels or {})
        return str(record["Id"])

    def keep(self, when: datetime, record: Record, access: Access, labels: Mapping[str, str]) -> None:
        attack, novelty = labels.get("attack", ""), labels.get("novelty", "")
        self.out.append(_Record(when, record, access.mailbox.upn, attack=attack, novelty=novelty))

    def at(self, day: int, low_hour: float, high_hour: float) -> datetime:
        seconds = round(self.rng.uniform(low_hour, high_hour) * 3600)
        return self.spec.start + timedelta(days=day, seconds=seconds)


def _mobile_ip(rng: random.Random, carrier: str) -> str:
    """A phone's address: its carrier's /48, a new /64 most days (how carriers hand them out)."""
    return f"{carrier}::{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:{rng.randint(1, 0xFFFF):x}"


def _profiles(builder: _Builder) -> list[_Profile]:
    rng, spec = builder.rng, builder.spec
    mailboxes = [
        Mailbox.create(
            rng,
            Person.create(rng, f"user{n:02d}@{DOMAIN}", f"User {n:02d}"),
            messages_per_folder=spec.messages_per_folder,
        )
        for n in range(spec.mailboxes)
    ]
    offices = {mailbox.upn: rng.choice(OFFICE_EGRESS) for mailbox in mailboxes}
    profiles = []
    for n, mailbox in enumerate(mailboxes):
        has_phone = rng.random() < spec.mobile_share
        delegate = None
        if len(mailboxes) > 1 and rng.random() < spec.delegate_share:
            delegate = mailboxes[(n + rng.randint(1, len(mailboxes) - 1)) % len(mailboxes)].owner
        profiles.append(
            _Profile(
                mailbox=mailbox,
                office_ip=offices[mailbox.upn],
                home_net=f"{rng.choice(HOME_ISPS)}.{rng.randint(0, 255)}",
                home_host=rng.randint(2, 254),
                home_weekday=rng.randrange(5),
                phone=rng.choice((OUTLOOK_IOS, OUTLOOK_ANDROID)) if has_phone else "",
                carrier=rng.choice(CARRIERS),
                owa=rng.random() < spec.owa_share,
                delegate=delegate,
                delegate_ip=offices[delegate.upn] if delegate else "",
            )
        )
    return profiles


# ---------------------------------------------------------------------------------------------
# Benign novelty plans: what changes for a mailbox from which day


@dataclass
class _Plan:
    """A mailbox's habits as they change over the window (the novelties applied to a profile)."""

    profile: _Profile
    home_change: tuple[int, int, str] | None = None  # (day, new host, label)
    new_phone: tuple[int, str, str, str] | None = None  # (day, client string, carrier, label)
    trip: tuple[int, int, str, str, str] | None = None  # (first day, last day, ip, country, label)
    new_app: tuple[int, str, str] | None = None  # (day, client app id, label)
    novelty_records: dict[str, list[str]] = field(default_factory=dict)


def _novelty_day(builder: _Builder) -> int:
    """A working day after the warm-up with a few days left, so the new context shows in records."""
    spec = builder.spec
    last = max(spec.warmup_days, spec.days - 4)
    days = [d for d in range(spec.warmup_days, last + 1) if (spec.start + timedelta(days=d)).weekday() < 5]
    return builder.rng.choice(days or [spec.warmup_days])


def _plans(
    builder: _Builder, profiles: list[_Profile]
) -> tuple[list[_Plan], list[tuple[str, str, int, str]]]:
    """Each mailbox's plan, and the novelties drawn: (label, kind, mailbox index, detail)."""
    rng, spec = builder.rng, builder.spec
    plans = [_Plan(profile) for profile in profiles]
    drawn: list[tuple[str, str, int, str]] = []
    for kind, rate in spec.novelty_rates:
        # One novelty per mailbox, so each is seen on its own (a trip hides a home IP change).
        free = [n for n, plan in enumerate(plans) if not plan.novelty_records]
        chosen = [n for n in free if rng.random() < rate] or rng.sample(free, min(1, len(free)))
        for n in chosen:
            label = f"novelty-{len(drawn):03d}-{kind}"
            detail = _apply_novelty(builder, plans[n], kind, label)
            drawn.append((label, kind, n, detail))
    return plans, drawn


def _apply_novelty(builder: _Builder, plan: _Plan, kind: str, label: str) -> str:
    rng, profile = builder.rng, plan.profile
    day = _novelty_day(builder)
    plan.novelty_records[label] = []
    if kind == "home_ip_change":
        host = rng.choice([h for h in range(2, 255) if h != profile.home_host])
        plan.home_change = (day, host, label)
        return f"home {profile.home_net}.{profile.home_host} -> {profile.home_net}.{host}, same /24"
    if kind == "new_phone":
        if profile.phone:  # a replacement on the other platform, same carrier
            client = OUTLOOK_ANDROID if profile.phone == OUTLOOK_IOS else OUTLOOK_IOS
            carrier = profile.carrier
        else:  # a first phone: a carrier network the mailbox has not seen
            client, carrier = rng.choice((OUTLOOK_IOS, OUTLOOK_ANDROID)), rng.choice(CARRIERS)
        plan.new_phone = (day, client, carrier, label)
        return f"{client} on {carrier}::/48"
    if kind == "travel":
        first = min(day, builder.spec.days - 2)
        ip, country = rng.choice(TRAVEL_SITES)
        plan.trip = (first, min(first + rng.randint(1, 4), builder.spec.days - 1), ip, country, label)
        return f"hotel Wi-Fi {ip} ({country})"
    app = rng.choice(FIRST_PARTY_APPS)
    plan.new_app = (day, app, label)
    return f"first-party app {app} through Microsoft Graph"


# ---------------------------------------------------------------------------------------------
# Routine days


def _owner_day(builder: _Builder, plan: _Plan, day: int) -> None:
    rng, profile = builder.rng, plan.profile
    mailbox, owner = profile.mailbox, profile.mailbox.owner
    day_of_week = (builder.spec.start + timedelta(days=day)).weekday()
    weekday = day_of_week < 5
    trip = plan.trip if plan.trip and plan.trip[0] <= day <= plan.trip[1] else None
    trip_label = {"novelty": trip[4]} if trip else {}
    if weekday:
        home_day = day_of_week == profile.home_weekday or rng.random() < builder.spec.work_from_home_share
        ip, labels = profile.office_ip, {}
        host = profile.home_host
        if plan.home_change and day >= plan.home_change[0]:
            host = plan.home_change[1]
            home_day = home_day or day == plan.home_change[0]  # the change shows the day it happens
        if home_day:
            ip = f"{profile.home_net}.{host}"
            if plan.home_change and day >= plan.home_change[0]:
                labels = {"novelty": plan.home_change[2]}
        if trip:
            ip, labels = trip[2], trip_label
        desktop = builder.access(owner, mailbox, OWNER, ip, OUTLOOK_DESKTOP)
        if rng.random() < 0.2:
            _note(plan, labels, builder.sync(builder.at(day, 7, 9), desktop, "\\Inbox", labels=labels))
        for _ in range(rng.randint(3, 6)):
            _note(plan, labels, builder.bind(builder.at(day, 7.5, 18.5), desktop, labels=labels))
        if profile.owa and not trip and rng.random() < 0.5:
            owa = builder.access(owner, mailbox, OWNER, ip, OWA)
            for _ in range(rng.randint(1, 2)):
                builder.bind(builder.at(day, 8, 18), owa)
        if plan.new_app and day >= plan.new_app[0] and (day == plan.new_app[0] or rng.random() < 0.6):
            app = builder.access(
                owner, mailbox, OWNER, ip, GRAPH_REST, app_id=GRAPH_APP_ID, client_app_id=plan.new_app[1]
            )
            app_labels = {"novelty": plan.new_app[2]}
            _note(plan, app_labels, builder.bind(builder.at(day, 9, 17), app, labels=app_labels))
    _phone_day(builder, plan, day, weekday, trip)
    if weekday and profile.delegate is not None and rng.random() < 0.6:
        delegate = builder.access(profile.delegate, mailbox, DELEGATED, profile.delegate_ip, OUTLOOK_DESKTOP)
        for _ in range(rng.randint(1, 3)):
            builder.bind(builder.at(day, 8, 17.5), delegate, 1, 2)


def _phone_day(
    builder: _Builder, plan: _Plan, day: int, weekday: bool, trip: tuple[int, int, str, str, str] | None
) -> None:
    rng, profile = builder.rng, plan.profile
    client, carrier, labels = profile.phone, profile.carrier, {}
    if plan.new_phone and day >= plan.new_phone[0]:
        client, carrier, labels = plan.new_phone[1], plan.new_phone[2], {"novelty": plan.new_phone[3]}
    first_day = plan.new_phone is not None and day == plan.new_phone[0]
    if not client or (not first_day and rng.random() > (0.8 if weekday else 0.4)):
        return
    ip = _mobile_ip(rng, carrier)
    if trip and rng.random() < 0.5:  # on the hotel's Wi-Fi rather than roaming through home
        ip, labels = trip[2], {"novelty": trip[4]}
    ids = {"app_id": OUTLOOK_MOBILE_APP_ID, "client_app_id": OUTLOOK_MOBILE_APP_ID}
    phone = builder.access(profile.mailbox.owner, profile.mailbox, OWNER, ip, client, **ids)
    for _ in range(rng.randint(1, 3)):
        _note(plan, labels, builder.bind(builder.at(day, 7, 22), phone, 1, 2, labels=labels))


def _note(plan: _Plan, labels: dict[str, str], record_id: str) -> None:
    if "novelty" in labels:
        plan.novelty_records[labels["novelty"]].append(record_id)


# ---------------------------------------------------------------------------------------------
# Attacker sessions


@dataclass(frozen=True)
class _Attack:
    label: str
    pattern: str
    day: int
    hour: float


def _session(
    builder: _Builder, attack: _Attack, access: Access, count: int, reads: Callable[[Access, datetime], str]
) -> list[str]:
    start = builder.at(attack.day, attack.hour, attack.hour)
    return [
        reads(access, start + timedelta(minutes=3 * n, seconds=builder.rng.randint(0, 150)))
        for n in range(count)
    ]


def _attacker_session(
    builder: _Builder, attack: _Attack, targets: Sequence[Mailbox], visited: frozenset[str]
) -> AttackerSession:
    """`visited`: the countries the first target's owner travels to (never the attacker's)."""
    rng, label = builder.rng, {"attack": attack.label}
    target = targets[0]
    owner = target.owner
    hosting_ip, hosting_country = rng.choice([site for site in HOSTING_SITES if site[1] not in visited])
    ip, country = hosting_ip, hosting_country

    def bind(low: int, high: int) -> Callable[[Access, datetime], str]:
        return lambda access, when: builder.bind(when, access, low, high, labels=label)

    if attack.pattern == "graph_unknown_app":
        access = builder.access(
            owner, target, OWNER, ip, GRAPH_REST, app_id=GRAPH_APP_ID, client_app_id=guid(rng)
        )
        ids = _session(builder, attack, access, rng.randint(4, 10), bind(6, 10))
    elif attack.pattern == "imap_hosting":
        access = builder.access(owner, target, OWNER, f"{ip}:{rng.randint(20000, 60000)}", IMAP)  # port kept
        ids = _session(builder, attack, access, rng.randint(6, 15), bind(1, 1))
    elif attack.pattern == "foreign_delegate":
        outsider = Person.create(
            rng, f"{rng.choice(('j.moss', 'k.tran', 'r.ivanov'))}@{FOREIGN_DOMAIN}", "Outsider"
        )
        ip, country = f"{PARTNER_NETWORK}.{rng.randint(2, 254)}", ""
        access = builder.access(outsider, target, DELEGATED, ip, OUTLOOK_DESKTOP)
        ids = _session(builder, attack, access, rng.randint(3, 8), bind(1, 4))
    elif attack.pattern == "owa_new_country":
        access = builder.access(owner, target, OWNER, ip, OWA_BROWSER)
        ids = _session(builder, attack, access, rng.randint(4, 10), bind(1, 3))
    elif attack.pattern == "sync_new_device":
        ip, country = f"{PARTNER_NETWORK}.{rng.randint(2, 254)}", ""
        access = builder.access(owner, target, OWNER, ip, OUTLOOK_DESKTOP)
        paths = ("\\Inbox", "\\Sent Items", "\\Archive", "\\Inbox\\Projects", "\\Drafts")
        order = iter(rng.sample(paths, len(paths)))
        ids = _session(
            builder,
            attack,
            access,
            rng.randint(3, 5),
            lambda a, w: builder.sync(w, a, next(order), labels=label),
        )
    else:  # app_many_mailboxes
        app = guid(rng)
        accesses = [
            builder.access(m.owner, m, OWNER, ip, GRAPH_REST, app_id=GRAPH_APP_ID, client_app_id=app)
            for m in targets
        ]
        start = builder.at(attack.day, attack.hour, attack.hour)
        ids = [
            builder.bind(start + timedelta(seconds=40 * n + rng.randint(0, 30)), access, 3, 8, labels=label)
            for n, access in enumerate(accesses)
        ]
        return AttackerSession(
            attack.label,
            attack.pattern,
            tuple(m.upn for m in targets),
            tuple(a.session_id for a in accesses),
            tuple(ids),
            (),
            ip,
            country,
        )
    return AttackerSession(
        attack.label, attack.pattern, (target.upn,), (access.session_id,), tuple(ids), (), ip, country
    )


def _attacks(builder: _Builder, plans: list[_Plan]) -> list[AttackerSession]:
    rng, spec = builder.rng, builder.spec
    mailboxes = [plan.profile.mailbox for plan in plans]
    visited = {plan.profile.mailbox.upn: frozenset({plan.trip[3]} if plan.trip else ()) for plan in plans}
    victims = rng.sample(mailboxes, min(len(mailboxes), len(PATTERNS)))
    sessions = []
    for n, pattern in enumerate(PATTERNS):
        day = rng.randint(spec.warmup_days, spec.days - 1)
        attack = _Attack(f"attack-{n}-{pattern}", pattern, day, rng.uniform(0, 23))
        if pattern == "app_many_mailboxes":
            targets = rng.sample(mailboxes, min(len(mailboxes), spec.mass_access_mailboxes))
        else:
            targets = [victims[n % len(victims)]]
        sessions.append(_attacker_session(builder, attack, targets, visited[targets[0].upn]))
    return sessions


# ---------------------------------------------------------------------------------------------
# The tenant


def generate(spec: BehaviourSpec) -> LabelledTenant:
    """A labelled tenant: its MailItemsAccessed records in time order, and the ground truth."""
    if spec.mailboxes < 1 or spec.days <= spec.warmup_days + 1:
        raise ValueError("a behaviour tenant needs a mailbox and days beyond the warm-up")
    builder = _Builder(spec)
    profiles = _profiles(builder)
    plans, drawn = _plans(builder, profiles)
    for day in range(spec.days):
        for plan in plans:
            _owner_day(builder, plan, day)
    attacks = _attacks(builder, plans)
    builder.out.sort(key=lambda r: r.when)  # stable: same-second records keep their order
    position = {str(r.record["Id"]): n for n, r in enumerate(builder.out)}

    def in_time_order(ids: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(ids, key=position.__getitem__))

    benign_days = {(r.mailbox, r.when.date()) for r in builder.out if not r.attack}
    truth = Truth(
        seed=spec.seed,
        start=spec.start,
        days=spec.days,
        warmup_end=spec.warmup_end,
        mailboxes=tuple(p.mailbox.upn for p in profiles),
        attacks=tuple(_timed(a, in_time_order(a.record_ids), builder.out, position) for a in attacks),
        novelties=tuple(
            BenignNovelty(
                label,
                kind,
                plans[n].profile.mailbox.upn,
                in_time_order(plans[n].novelty_records[label]),
                detail,
            )
            for label, kind, n, detail in drawn
        ),
        mailbox_days=len(benign_days),
        evaluated_mailbox_days=sum(1 for _, day in benign_days if day >= spec.warmup_end.date()),
    )
    return LabelledTenant([r.record for r in builder.out], truth)


def _timed(
    session: AttackerSession, ordered: tuple[str, ...], records: list[_Record], position: dict[str, int]
) -> AttackerSession:
    times = tuple(records[position[record_id]].when for record_id in ordered)
    return replace(session, record_ids=ordered, times=times)

"""The labelled behaviour tenants of the detection-quality bench: deterministic, shaped like the
API, every attacker pattern and benign novelty there as the issue describes it, with its label."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any

import pytest

from bench.detection import TEST_SEEDS
from shared.ipcontext.context import open_context
from shared.model.event import AccessEvent
from shared.parse import decoders
from shared.parse.normalize import normalize_record
from simulator.behaviour import (
    CARRIERS,
    DOMAIN,
    HOME_ISPS,
    HOSTING_SITES,
    NOVELTY_KINDS,
    OFFICE_EGRESS,
    PATTERNS,
    TRAVEL_SITES,
    AttackerSession,
    BehaviourSpec,
    LabelledTenant,
    generate,
)
from simulator.tenant import FOREIGN_IPS

pytestmark = pytest.mark.unit


def small(seed: int) -> BehaviourSpec:
    return BehaviourSpec(seed=seed, mailboxes=8, days=21, warmup_days=10, mass_access_mailboxes=6)


@pytest.fixture(scope="module")
def tenant() -> LabelledTenant:
    return generate(small(TEST_SEEDS[0]))


@pytest.fixture(scope="module")
def events(tenant: LabelledTenant) -> dict[str, AccessEvent]:
    parsed = (normalize_record(record) for record in tenant.records)
    return {event.record_id: event for event in parsed if event is not None}


def session_events(attack: AttackerSession, events: dict[str, AccessEvent]) -> list[AccessEvent]:
    return [events[record_id] for record_id in attack.record_ids]


def attack(tenant: LabelledTenant, pattern: str) -> AttackerSession:
    (found,) = [a for a in tenant.truth.attacks if a.pattern == pattern]
    return found


def bare_ip(text: str) -> str:
    """The address of a ClientIPAddress as the normalizer leaves it (IPv4 with a port: without)."""
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def country(ip: str) -> str:
    return open_context().facts(bare_ip(ip)).country


def before_attack(
    tenant: LabelledTenant, events: dict[str, AccessEvent], session: AttackerSession
) -> list[AccessEvent]:
    """The benign history of the session's (first) mailbox up to the session."""
    attacker = {rid for a in tenant.truth.attacks for rid in a.record_ids}
    mailbox, first = session.mailboxes[0], session.times[0]
    return [
        e
        for e in events.values()
        if e.mailbox == mailbox and e.timestamp < first and e.record_id not in attacker
    ]


def test_the_same_seed_gives_the_same_tenant_and_another_seed_another() -> None:
    first, again, other = generate(small(5)), generate(small(5)), generate(small(6))
    assert first.records == again.records
    assert first.truth == again.truth
    assert {r["Id"] for r in first.records}.isdisjoint({r["Id"] for r in other.records})


def test_records_are_mail_items_accessed_in_time_order_and_all_parse(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    assert {r["Operation"] for r in tenant.records} == {"MailItemsAccessed"}
    times = [r["CreationTime"] for r in tenant.records]
    assert times == sorted(times)
    assert len(events) == len(tenant.records)  # every record parsed, no Id twice


def test_every_pattern_has_one_labelled_session_after_the_warmup(tenant: LabelledTenant) -> None:
    truth = tenant.truth
    assert [a.pattern for a in truth.attacks] == list(PATTERNS)
    assert len({a.label for a in truth.attacks}) == len(PATTERNS)
    ids = {r["Id"] for r in tenant.records}
    for session in truth.attacks:
        assert session.record_ids
        assert set(session.record_ids) <= ids
        assert list(session.times) == sorted(session.times)
        assert session.times[0] >= truth.warmup_end
    all_attack_ids = [rid for a in truth.attacks for rid in a.record_ids]
    assert len(all_attack_ids) == len(set(all_attack_ids))


def test_attacker_records_carry_their_session_id(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    for session in tenant.truth.attacks:
        expected = dict(zip(session.mailboxes, session.session_ids, strict=True))
        for event in session_events(session, events):
            assert event.session_id == expected[event.mailbox]


def test_the_graph_app_is_unknown_and_reads_from_a_hosting_address(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    session = attack(tenant, "graph_unknown_app")
    for event in session_events(session, events):
        assert event.client_family == "RESTGraph"
        assert event.app_id == decoders.MICROSOFT_GRAPH_APP_ID
        assert event.client_app_id not in decoders.FIRST_PARTY_APPS
        assert event.app_name == "Unknown app via Microsoft Graph"
        assert bare_ip(event.client_ip) in {ip for ip, _ in HOSTING_SITES}


def test_the_imap_session_decodes_to_imap_from_a_hosting_address(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    session = attack(tenant, "imap_hosting")
    for event in session_events(session, events):
        assert (event.client_family, event.logon_type) == ("IMAP", "Owner")
        assert bare_ip(event.client_ip) == session.ip
    assert session.ip in {ip for ip, _ in HOSTING_SITES}
    assert all(e.client_family != "IMAP" for e in events.values() if e.record_id not in session.record_ids)


def test_the_foreign_delegate_is_a_delegated_logon_from_another_domain(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    session = attack(tenant, "foreign_delegate")
    (mailbox,) = session.mailboxes
    for event in session_events(session, events):
        assert event.logon_type == "Delegated"
        assert event.mailbox == mailbox
        assert event.user.endswith("@fabrikam.com")
    others = {e.user.rsplit("@", 1)[1] for e in events.values() if e.record_id not in session.record_ids}
    assert others == {DOMAIN}


def test_owa_comes_from_a_country_the_mailbox_was_never_read_from(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    session = attack(tenant, "owa_new_country")
    assert len(session.mailboxes) == 1
    seen = {country(e.client_ip) for e in before_attack(tenant, events, session)}
    for event in session_events(session, events):
        assert event.client_family == "OWA"
        assert country(event.client_ip) == session.country != ""
    assert session.country not in seen


def test_the_sync_comes_from_a_network_the_mailbox_never_saw(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    session = attack(tenant, "sync_new_device")
    assert len(session.mailboxes) == 1
    networks = {
        ipaddress.ip_network(f"{bare_ip(e.client_ip)}/24", strict=False)
        for e in before_attack(tenant, events, session)
        if "." in e.client_ip
    }
    for event in session_events(session, events):
        assert event.access == "Sync"
        assert event.client_family == "OutlookDesktop"
        assert ipaddress.ip_network(f"{event.client_ip}/24", strict=False) not in networks


def test_one_unknown_app_reads_many_mailboxes_within_minutes(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    session = attack(tenant, "app_many_mailboxes")
    read = session_events(session, events)
    assert len({e.client_app_id for e in read}) == 1
    assert read[0].client_app_id not in decoders.FIRST_PARTY_APPS
    assert len({e.mailbox for e in read}) == len(session.mailboxes) == 6
    assert (session.times[-1] - session.times[0]).total_seconds() < 3600


def test_every_novelty_kind_is_present_labelled_and_benign(tenant: LabelledTenant) -> None:
    truth = tenant.truth
    assert {n.kind for n in truth.novelties} == set(NOVELTY_KINDS)
    assert len({n.label for n in truth.novelties}) == len(truth.novelties)
    attacker = {rid for a in truth.attacks for rid in a.record_ids}
    ids = {r["Id"] for r in tenant.records}
    for novelty in truth.novelties:
        assert novelty.record_ids
        assert set(novelty.record_ids) <= ids - attacker
        assert novelty.label.endswith(novelty.kind)


def test_novelties_change_what_they_say_and_no_more(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    travel_countries = dict(TRAVEL_SITES)
    for novelty in tenant.truth.novelties:
        read = [events[rid] for rid in novelty.record_ids]
        assert {e.mailbox for e in read} == {novelty.mailbox}
        assert {e.logon_type for e in read} == {"Owner"}
        if novelty.kind == "travel":
            assert all(travel_countries.get(e.client_ip) == country(e.client_ip) != "" for e in read)
        elif novelty.kind == "home_ip_change":
            old, new = novelty.detail.removeprefix("home ").split(", ")[0].split(" -> ")
            assert old.rsplit(".", 1)[0] == new.rsplit(".", 1)[0]
            assert {e.client_ip for e in read} == {new}
        elif novelty.kind == "new_phone":
            assert {e.client_family for e in read} == {"OutlookMobile"}
        else:
            assert {e.client_app_id in decoders.FIRST_PARTY_APPS for e in read} == {True}


def test_attackers_use_the_simulators_foreign_addresses() -> None:
    assert [ip for ip, _ in HOSTING_SITES] == list(FOREIGN_IPS)


def test_every_address_with_a_country_has_the_one_the_embedded_data_gives() -> None:
    for ip, expected in (*TRAVEL_SITES, *HOSTING_SITES):
        assert country(ip) == expected, ip


def test_home_office_and_carrier_addresses_have_no_country(events: dict[str, AccessEvent]) -> None:
    stable = [e for e in events.values() if e.client_ip in OFFICE_EGRESS or e.client_ip.startswith(HOME_ISPS)]
    stable += [e for e in events.values() if e.client_ip.startswith(CARRIERS)]
    assert stable
    facts = {open_context().facts(e.client_ip) for e in stable}
    assert {(f.country, f.network) for f in facts} == {("", "reserved")}


def test_mailbox_days_count_the_days_with_benign_activity(
    tenant: LabelledTenant, events: dict[str, AccessEvent]
) -> None:
    truth = tenant.truth
    attacker = {rid for a in truth.attacks for rid in a.record_ids}
    days: dict[str, set[Any]] = defaultdict(set)
    for event in events.values():
        if event.record_id not in attacker:
            days[event.mailbox].add(event.timestamp.date())
    assert truth.mailbox_days == sum(len(d) for d in days.values())
    evaluated = sum(1 for d in days.values() for day in d if day >= truth.warmup_end.date())
    assert 0 < truth.evaluated_mailbox_days == evaluated < truth.mailbox_days


def test_a_spec_without_days_beyond_the_warmup_is_refused() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        generate(BehaviourSpec(seed=1, days=10, warmup_days=10))

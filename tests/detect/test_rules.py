"""The detection rules in memory: the baseline, the warm-up, each rule, its severity, and that
the order the records come in does not change what is detected."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.detect import rules
from shared.detect.rules import DetectionSettings, Sightings, detect_events
from tests.detect import scenario as s
from tests.helpers import mia_record

pytestmark = pytest.mark.unit

SETTINGS = DetectionSettings()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_sighting_counts_only_strictly_before_the_moment_and_within_the_window() -> None:
    seen = Sightings()
    seen.add(at("2026-11-10T08:00:00"))
    seen.add(at("2026-11-10T17:00:00"))
    window = timedelta(days=30)
    assert not seen.seen_within(at("2026-11-10T08:00:00"), window)  # its own second is not "before"
    assert seen.seen_within(at("2026-11-10T08:00:01"), window)
    assert seen.seen_within(at("2026-12-10T16:59:59"), window)  # the 17:00 sighting is in the window
    assert not seen.seen_within(at("2026-12-10T17:00:01"), window)  # 30 days and a second: forgotten
    assert not seen.seen_within(at("2026-11-09T23:00:00"), window)


def test_an_unknown_app_reading_through_graph_from_a_new_address_then_syncing_is_one_high_detection() -> None:
    found = detect_events(s.events(s.routine() + s.attack()), SETTINGS)
    assert len(found) == 1
    detection = found[0]
    assert detection.type == rules.NEW_CONTEXT
    assert detection.mailbox == s.ALICE
    assert detection.session_id == "s-evil"
    assert detection.new == ("app", "client", "ip", "network")
    assert detection.context["app"] == s.EVIL_APP_ID
    assert detection.severity == "high"
    assert rules.R_UNKNOWN_GRAPH_APP in detection.reasons
    assert rules.R_SYNC in detection.reasons  # the later Sync of the session grew the same detection
    assert detection.first_seen == s.ATTACK_DAY + timedelta(hours=10)
    assert detection.first_record_id == "evil-0"
    assert (detection.records, detection.messages, detection.folders) == (5, 4, ("Inbox",))


def test_no_detection_while_the_mailbox_is_warming_up() -> None:
    two_days = s.routine(days=2, per_day=20)  # 40 records, but only two days of history
    assert detect_events(s.events(two_days + s.attack()), SETTINGS) == []
    few_records = s.routine(days=5, per_day=5)  # five days, 25 records
    assert detect_events(s.events(few_records + s.attack()), SETTINGS) == []
    assert detect_events(s.events(few_records + s.attack()), replace(SETTINGS, warmup_records=25))


def test_a_new_address_in_a_known_network_is_not_a_new_context() -> None:
    neighbour = mia_record(
        s.when(s.ATTACK_DAY + timedelta(hours=11)), "n-1", ClientIPAddress="203.0.113.77", SessionId="s-desk"
    )
    assert detect_events(s.events([*s.routine(), neighbour]), SETTINGS) == []


def test_a_context_unseen_for_longer_than_the_baseline_window_is_new_again() -> None:
    old = s.routine(end=s.ATTACK_DAY - timedelta(days=40))
    imap_then = [
        mia_record(
            s.when(s.ATTACK_DAY - timedelta(days=39, hours=-9)),
            "imap-old",
            ClientInfoString="Client=POP3/IMAP4;Protocol=IMAP4",
            ClientIPAddress="198.51.100.9",
        )
    ]
    later = s.routine(end=s.ATTACK_DAY)
    imap_now = mia_record(
        s.when(s.ATTACK_DAY + timedelta(hours=9)),
        "imap-now",
        ClientInfoString="Client=POP3/IMAP4;Protocol=IMAP4",
        ClientIPAddress="198.51.100.9",
    )
    found = detect_events(s.events(old + imap_then + later + [imap_now]), SETTINGS)
    latest = [d for d in found if d.first_record_id == "imap-now"]
    assert len(latest) == 1
    assert latest[0].new == ("client", "ip", "network")
    assert latest[0].severity == "high"
    assert rules.R_LEGACY in latest[0].reasons
    wide = replace(SETTINGS, baseline_days=60)
    assert not [
        d
        for d in detect_events(s.events(old + imap_then + later + [imap_now]), wide)
        if d.first_record_id == "imap-now"
    ]


def test_a_user_of_another_domain_is_high_and_a_colleague_medium() -> None:
    def reader(user: str, record_id: str) -> dict[str, object]:
        return mia_record(
            s.when(s.ATTACK_DAY + timedelta(hours=12)),
            record_id,
            UserId=user,
            LogonType=2,
            SessionId=f"s-{record_id}",
        )

    outsider = detect_events(s.events([*s.routine(), reader("mallory@fabrikam.com", "x")]), SETTINGS)
    colleague = detect_events(s.events([*s.routine(), reader("bob@contoso.com", "y")]), SETTINGS)
    assert [(d.new, d.severity) for d in outsider] == [(("actor", "logonType"), "high")]
    assert rules.R_OTHER_DOMAIN in outsider[0].reasons
    assert [(d.new, d.severity) for d in colleague] == [(("actor", "logonType"), "medium")]
    assert rules.R_OTHER_USER in colleague[0].reasons


def test_the_same_context_on_the_same_day_is_one_detection_and_again_the_next_day_only_if_still_new() -> None:
    first = s.attack()
    again = [s.graph_read(s.ATTACK_DAY + timedelta(hours=15), "evil-again", SessionId="s-other")]
    found = detect_events(s.events(s.routine() + first + again), SETTINGS)
    assert len(found) == 1
    assert found[0].records == 6  # the later session of the same context grew it


def test_one_app_reading_many_mailboxes_is_one_mass_access_detection() -> None:
    start = s.ATTACK_DAY + timedelta(hours=3)
    mailboxes = [f"user{n}@contoso.com" for n in range(12)]
    harvest = [
        s.graph_read(start + timedelta(minutes=3 * n), f"h-{n}", mailbox, UserId="harvester-sp", SessionId="")
        for n, mailbox in enumerate(mailboxes)
    ]
    found = [d for d in detect_events(s.events(harvest), SETTINGS) if d.type == rules.MASS_ACCESS]
    by_kind = {d.new: d for d in found}
    assert set(by_kind) == {("ip",), ("app",), ("actor",)}
    app = by_kind[("app",)]
    assert app.mailbox == ""
    assert app.first_record_id == "h-9"  # the tenth mailbox
    assert app.severity == "high"
    assert app.mailboxes == tuple(sorted(mailboxes))
    assert app.records == 12


def test_owners_reading_their_own_mailboxes_from_one_address_are_not_mass_access() -> None:
    owners = [
        mia_record(s.when(s.ATTACK_DAY + timedelta(minutes=n)), f"o-{n}", f"user{n}@contoso.com")
        for n in range(30)
    ]
    assert detect_events(s.events(owners), SETTINGS) == []


def test_the_detections_do_not_depend_on_the_order_the_records_come_in() -> None:
    records = s.routine() + s.attack() + s.routine(mailbox="bob@contoso.com")
    expected = [d.row() for d in detect_events(s.events(records), SETTINGS)]
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)
    assert [d.row() for d in detect_events(s.events(shuffled), SETTINGS)] == expected
    assert expected

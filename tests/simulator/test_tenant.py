"""The simulator's pure tenant generator: deterministic, shaped like the API, and the story is there."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulator.records import GRAPH_APP_ID, OUTLOOK_MOBILE_APP_ID, MessageMeta
from simulator.tenant import Blob, Tenant, TenantSpec, build_tenant, tenant_id_for

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 12, 30, 15, tzinfo=UTC)


def spec(**overrides: Any) -> TenantSpec:
    values: dict[str, Any] = {"seed": 7, "mailboxes": 6, "days": 3, "now": NOW}
    return TenantSpec(**{**values, **overrides})


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(spec(duplicate_rate=0.05, late_blobs=3, expired_blobs=2))


def when(record: dict[str, Any]) -> datetime:
    return datetime.strptime(record["CreationTime"], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def prop(record: dict[str, Any], name: str) -> str | None:
    return next((p["Value"] for p in record.get("OperationProperties", []) if p["Name"] == name), None)


def mia(tenant: Tenant) -> list[dict[str, Any]]:
    return [r for r in tenant.records if r["Operation"] == "MailItemsAccessed"]


def message_ids(record: dict[str, Any]) -> list[str]:
    return [
        item["InternetMessageId"] for folder in record.get("Folders", []) for item in folder["FolderItems"]
    ]


# -- determinism and shape -------------------------------------------------------------------


def test_the_same_spec_gives_the_same_records_and_blob_bytes() -> None:
    first, second = build_tenant(spec()), build_tenant(spec())
    assert [b.body for b in first.blobs] == [b.body for b in second.blobs]
    assert [b.content_id for b in first.blobs] == [b.content_id for b in second.blobs]
    assert [r["Id"] for r in first.records] == [r["Id"] for r in second.records]
    assert first.tenant_id == second.tenant_id == tenant_id_for(7)


def test_another_seed_gives_another_tenant() -> None:
    first, other = build_tenant(spec()), build_tenant(spec(seed=8))
    assert first.tenant_id != other.tenant_id
    assert not {r["Id"] for r in first.records} & {r["Id"] for r in other.records}


def test_default_size_is_a_few_thousand_mailitemsaccessed_records_plus_the_burst() -> None:
    big = build_tenant(spec(mailboxes=30, days=5))
    count = len(mia(big))
    assert 3000 <= count <= 8000
    assert all(len(blob.record_ids) <= 300 for blob in big.blobs)
    assert len(big.mailboxes) == 34
    assert "user30@contoso.com" in big.mailboxes


def test_records_are_pascal_case_with_zone_less_creation_times_inside_the_window(tenant: Tenant) -> None:
    for record in tenant.records:
        assert len(record["CreationTime"]) == 19
        assert "Z" not in record["CreationTime"]
        assert NOW - timedelta(days=3) <= when(record) < NOW
        assert record["OrganizationId"] == tenant.tenant_id
        assert record["Workload"] == "Exchange"
        assert all(key[0].isupper() for key in record)
    types = Counter(r["RecordType"] for r in mia(tenant))
    assert types[50] > 0
    assert types[2] >= 1


def test_blob_bodies_are_json_arrays_of_their_records(tenant: Tenant) -> None:
    records = {r["Id"]: r for r in tenant.records}
    for blob in tenant.blobs:
        body = json.loads(blob.body)
        assert isinstance(body, list)
        assert body
        assert [r["Id"] for r in body] == list(blob.record_ids)
        assert body == [records[i] for i in blob.record_ids]
        assert set(blob.mia_ids) == {r["Id"] for r in body if r["Operation"] == "MailItemsAccessed"}


def test_blobs_are_ordered_by_availability_20_to_90_minutes_after_their_records(tenant: Tenant) -> None:
    created = [b.created for b in tenant.blobs]
    assert created == sorted(created)
    records = {r["Id"]: r for r in tenant.records}
    for blob in tenant.blobs:
        assert blob.created <= NOW
        assert blob.content_type == "Audit.Exchange"
        assert blob.created.microsecond % 1000 == 0
        for record_id in blob.record_ids:
            assert when(records[record_id]) + timedelta(minutes=20) <= blob.created
    first_seen: dict[str, datetime] = {}
    for blob in tenant.blobs:
        for record_id in blob.record_ids:
            first_seen.setdefault(record_id, blob.created)
    latencies = [first_seen[r["Id"]] - when(r) for r in tenant.records]
    assert max(latencies) <= timedelta(minutes=110)  # 90 min + the slot


def test_content_ids_are_unique_opaque_and_contain_dollar_signs(tenant: Tenant) -> None:
    ids = [b.content_id for b in tenant.blobs]
    assert len(ids) == len(set(ids))
    assert all(i.count("$") >= 3 and "audit_exchange" in i for i in ids)


def test_some_records_are_stored_twice_in_later_blobs_with_identical_bytes(tenant: Tenant) -> None:
    holders: dict[str, list[Blob]] = defaultdict(list)
    for blob in tenant.blobs:
        for record_id in blob.record_ids:
            holders[record_id].append(blob)
    duplicated = {i: blobs for i, blobs in holders.items() if len(blobs) > 1}
    assert duplicated
    for record_id, blobs in duplicated.items():
        assert len({b.content_id for b in blobs}) == len(blobs)
        copies = [next(r for r in json.loads(b.body) if r["Id"] == record_id) for b in blobs]
        assert all(copy == copies[0] for copy in copies)


def test_late_blobs_lie_in_the_last_90_minutes_and_expired_ones_are_past_expiry(tenant: Tenant) -> None:
    late = [b for b in tenant.blobs if b.late]
    assert len(late) == 3
    assert all(NOW - timedelta(minutes=90) <= b.created < NOW for b in late)
    expired = [b for b in tenant.blobs if b.expiration <= NOW]
    assert len(expired) == 2
    assert not any(b.late for b in expired)
    live = [b for b in tenant.blobs if b.expiration > NOW]
    assert all(b.expiration - b.created == timedelta(days=7) for b in live)


def test_a_pristine_tenant_has_no_late_expired_or_duplicate_content() -> None:
    pristine = build_tenant(spec(late_blobs=0, expired_blobs=0, duplicate_rate=0))
    ids = [i for b in pristine.blobs for i in b.record_ids]
    assert len(ids) == len(set(ids))
    assert not any(b.late or b.expiration <= NOW for b in pristine.blobs)


@pytest.mark.parametrize(("mailboxes", "days"), [(1, 1), (2, 7)])
def test_small_and_week_long_tenants_build(mailboxes: int, days: int) -> None:
    small = build_tenant(spec(mailboxes=mailboxes, days=days))
    assert small.story.throttled_at is not None
    assert all(NOW - timedelta(days=days) <= when(r) for r in small.records)


# -- the story -------------------------------------------------------------------------------


def test_the_attacker_reads_dozens_of_messages_through_graph_with_an_unknown_app(tenant: Tenant) -> None:
    story = tenant.story
    graph = [
        r for r in mia(tenant) if r["SessionId"] == story.attacker_session_id and r["AppId"] == GRAPH_APP_ID
    ]
    assert len(graph) >= 5
    assert {r["MailboxOwnerUPN"] for r in graph} == {story.attacker_mailbox}
    assert {r["ClientAppId"] for r in graph} == {story.attacker_app_id}
    assert story.attacker_app_id not in (GRAPH_APP_ID, OUTLOOK_MOBILE_APP_ID)
    assert all(r["ClientIPAddress"].startswith(story.attacker_ip + ":") for r in graph)
    assert all(prop(r, "MailAccessType") == "Bind" for r in graph)
    assert len({m for r in graph for m in message_ids(r)}) >= 24
    assert not story.attacker_ip.startswith(("10.", "192.168.", "203.0.113.", "198.51.100."))
    owner_ips = {r["ClientIPAddress"] for r in mia(tenant) if r["SessionId"] != story.attacker_session_id}
    assert not any(story.attacker_ip in ip for ip in owner_ips)


def test_the_attacker_syncs_a_folder(tenant: Tenant) -> None:
    syncs = [
        r
        for r in mia(tenant)
        if r["SessionId"] == tenant.story.attacker_session_id and prop(r, "MailAccessType") == "Sync"
    ]
    assert len(syncs) == 1
    assert syncs[0]["ClientIPAddress"] == tenant.story.attacker_ip
    assert syncs[0]["Item"]["ParentFolder"]["Path"] == "\\Inbox"


def test_the_throttled_mailbox_passes_1000_records_in_24h_then_goes_silent(tenant: Tenant) -> None:
    story = tenant.story
    finance = [r for r in mia(tenant) if r["MailboxOwnerUPN"] == story.throttled_mailbox]
    throttled = [r for r in finance if prop(r, "IsThrottled") == "True"]
    assert len(throttled) == 1
    at = when(throttled[0])
    assert at == story.throttled_at
    before = [r for r in finance if at - timedelta(hours=24) <= when(r) < at]
    assert len(before) >= 1000
    assert not [r for r in finance if at < when(r) <= at + timedelta(hours=24)]
    assert all(prop(r, "IsThrottled") != "True" for r in mia(tenant) if r is not throttled[0])


def test_a_delegate_and_an_admin_access_other_mailboxes(tenant: Tenant) -> None:
    story = tenant.story
    delegate = [
        r
        for r in mia(tenant)
        if r["UserId"] == story.delegate and r["MailboxOwnerUPN"] == story.attacker_mailbox
    ]
    assert delegate
    assert all(r["LogonType"] == 2 for r in delegate)
    admin = [r for r in mia(tenant) if r["UserId"] == story.admin]
    assert admin
    assert {r["MailboxOwnerUPN"] for r in admin} == {story.admin_target}
    assert all(r["LogonType"] == 1 and r["ClientInfoString"].startswith("Client=WebServices") for r in admin)


def test_owners_use_desktop_mobile_and_web_clients(tenant: Tenant) -> None:
    owner = [r for r in mia(tenant) if r["LogonType"] == 0 and r["UserId"] == r["MailboxOwnerUPN"]]
    clients = Counter(r["ClientInfoString"] for r in owner)
    assert clients["Client=MSExchangeRPC"]
    assert clients["Client=OWA;Action=ViaProxy"]
    mobile = [r for r in owner if r["ClientInfoString"] == "Client=OutlookService;Outlook-iOS/2.0;"]
    assert mobile
    assert all(r["AppId"] == r["ClientAppId"] == OUTLOOK_MOBILE_APP_ID for r in mobile)
    syncs = [
        r
        for r in owner
        if prop(r, "MailAccessType") == "Sync" and r["SessionId"] != tenant.story.attacker_session_id
    ]
    assert syncs
    assert all(r["Folders"][0]["FolderItems"] == [] for r in syncs)


def test_other_exchange_operations_are_mixed_in(tenant: Tenant) -> None:
    operations = Counter(r["Operation"] for r in tenant.records)
    for operation in ("MailboxLogin", "Send", "Update", "MoveToDeletedItems", "SoftDelete"):
        assert operations[operation] > 0, operation
    group = next(r for r in tenant.records if r["Operation"] == "MoveToDeletedItems")
    assert group["RecordType"] == 3
    assert group["AffectedItems"][0]["InternetMessageId"]


def test_operation_properties_vary_in_order_and_subjects_are_sometimes_present(tenant: Tenant) -> None:
    orders = Counter(tuple(p["Name"] for p in r["OperationProperties"]) for r in mia(tenant))
    assert orders[("MailAccessType", "IsThrottled")]
    assert orders[("IsThrottled", "MailAccessType")]
    assert orders[("MailAccessType",)]  # IsThrottled is sometimes absent
    items = [item for r in mia(tenant) for folder in r.get("Folders", []) for item in folder["FolderItems"]]
    with_subject = [item for item in items if "Subject" in item]
    assert with_subject
    assert len(with_subject) < len(items)
    ips = {r["ClientIPAddress"] for r in tenant.records}
    assert any(ip.startswith("[") for ip in ips)
    assert any(ip.startswith("::ffff:") for ip in ips)


# -- message metadata (Graph lookup and message trace) ---------------------------------------


def metas(tenant: Tenant) -> list[MessageMeta]:
    return [meta for messages in tenant.messages.values() for meta in messages.values()]


def test_every_message_of_every_mailbox_has_metadata_under_its_lower_case_upn(tenant: Tenant) -> None:
    assert sorted(tenant.messages) == sorted(m.lower() for m in tenant.mailboxes)
    assert all(len(messages) == 40 * 3 + 40 * 4 for messages in tenant.messages.values())
    for record in mia(tenant):
        catalogue = tenant.messages[record["MailboxOwnerUPN"].lower()]
        for message_id in message_ids(record):
            meta = catalogue[message_id]
            assert meta.internet_message_id == message_id
    for messages in tenant.messages.values():
        assert all(key == meta.internet_message_id for key, meta in messages.items())


def test_messages_arrive_before_any_access_mostly_within_weeks_and_a_few_beyond_90_days(
    tenant: Tenant,
) -> None:
    window_start = NOW - timedelta(days=3)
    first_record = min(when(r) for r in tenant.records)
    ages: Counter[str] = Counter()
    for meta in metas(tenant):
        assert meta.received.tzinfo is not None
        assert meta.received.utcoffset() == timedelta(0)
        assert meta.received.microsecond == 0
        assert meta.received < window_start
        assert meta.received < first_record
        before = window_start - meta.received
        ages[
            "recent" if before <= timedelta(days=10) else "weeks" if before <= timedelta(days=40) else "old"
        ] += 1
        if before > timedelta(days=40):
            assert NOW - meta.received > timedelta(days=90)
    total = sum(ages.values())
    assert 0.6 < ages["recent"] / total < 0.8
    assert 0.2 < ages["weeks"] / total < 0.36
    assert 0.01 < ages["old"] / total < 0.04


def test_senders_are_the_owner_for_sent_items_and_drafts_and_correspondents_elsewhere(tenant: Tenant) -> None:
    for upn, messages in tenant.messages.items():
        for meta in messages.values():
            if meta.folder_path in ("\\Sent Items", "\\Drafts"):
                assert meta.sender == upn
            else:
                assert meta.sender != upn
                assert "@" in meta.sender
            assert meta.sender_name
    outside = Counter(m.sender for m in metas(tenant) if m.folder_path == "\\Inbox")
    assert len(outside) >= 8
    assert any(not sender.endswith("@contoso.com") for sender in outside)
    assert any(sender.endswith("@contoso.com") for sender in outside)


def test_purged_messages_are_exactly_those_named_by_soft_or_hard_deletes(tenant: Tenant) -> None:
    named = {
        (r["MailboxOwnerUPN"].lower(), item["InternetMessageId"])
        for r in tenant.records
        if r["Operation"] in ("SoftDelete", "HardDelete")
        for item in r["AffectedItems"]
    }
    purged = {
        (upn, m.internet_message_id) for upn, box in tenant.messages.items() for m in box.values() if m.purged
    }
    assert purged
    assert purged == named


def test_about_one_message_in_40_has_a_second_copy(tenant: Tenant) -> None:
    copies = Counter(meta.copies for meta in metas(tenant))
    assert set(copies) == {1, 2}
    assert 1 / 80 < copies[2] / sum(copies.values()) < 1 / 20


def test_about_one_message_id_in_8_is_external_style_with_characters_to_url_encode(tenant: Tenant) -> None:
    ids = [meta.internet_message_id for meta in metas(tenant)]
    external = [i for i in ids if i.endswith("@mail.gmail.com>")]
    assert 1 / 12 < len(external) / len(ids) < 1 / 5
    assert all(i.startswith("<CA+") and "=" in i and "/" in i for i in external)
    assert all(i.startswith("<") and i.endswith(".prod.outlook.com>") for i in set(ids) - set(external))
    assert len(set(ids)) == len(ids)


def test_message_metadata_is_deterministic_and_meta_fields_match_the_records(tenant: Tenant) -> None:
    again = build_tenant(spec(duplicate_rate=0.05, late_blobs=3, expired_blobs=2))
    assert {u: dict(box) for u, box in again.messages.items()} == {
        u: dict(box) for u, box in tenant.messages.items()
    }
    for record in mia(tenant):
        catalogue = tenant.messages[record["MailboxOwnerUPN"].lower()]
        for folder in record.get("Folders", []):
            for item in folder["FolderItems"]:
                meta = catalogue[item["InternetMessageId"]]
                assert meta.size == item["SizeInBytes"]
                assert meta.folder_path == folder["Path"]
                assert item.get("Subject", meta.subject) == meta.subject

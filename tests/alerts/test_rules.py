"""Alerts without any server: identity per window, payload, formats, signature, backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.alerts import rules
from shared.model import times

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 18, 9, 15, 42, tzinfo=UTC)
TENANT = "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14"


def _throttled(mailbox: str = "alice@contoso.com", at: datetime = T0) -> rules.Alert:
    return rules.throttled_alert(TENANT, mailbox, at, "rec-1", at + timedelta(minutes=5))


def test_an_alert_id_is_one_per_type_mailbox_and_utc_day() -> None:
    same_day = [T0.replace(hour=0, minute=0, second=0), T0, T0.replace(hour=23, minute=59, second=59)]
    ids = {rules.alert_id(rules.MAILBOX_THROTTLED, "alice@contoso.com", moment) for moment in same_day}
    assert len(ids) == 1
    assert rules.alert_id(rules.MAILBOX_THROTTLED, "ALICE@contoso.com", T0) in ids
    others = {
        rules.alert_id(rules.MAILBOX_THROTTLED, "alice@contoso.com", T0 + timedelta(days=1)),
        rules.alert_id(rules.MAILBOX_NEAR_THROTTLE, "alice@contoso.com", T0),
        rules.alert_id(rules.MAILBOX_THROTTLED, "bob@contoso.com", T0),
        rules.alert_id(rules.COLLECTION_GAP, "", T0),
    }
    assert len(others) == 4
    assert not others & ids


def test_the_day_is_the_utc_day_whatever_the_zone_of_the_moment() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 18, 20, 0, tzinfo=ZoneInfo("America/New_York"))  # 01:00Z on the 19th
    assert times.day_of(local) == "20261119"


def test_the_payload_has_exactly_the_design_keys_in_order() -> None:
    alert = _throttled()
    payload = json.loads(rules.render(alert, "json"))
    assert list(payload) == ["type", "tenant", "mailbox", "detectedAt", "details", "id"]
    assert payload["type"] == "mailbox.throttled"
    assert payload["tenant"] == TENANT
    assert payload["mailbox"] == "alice@contoso.com"
    assert payload["detectedAt"] == "2026-11-18T09:20:42Z"
    assert payload["id"] == alert.id
    assert payload["details"]["blindWindow"] == {"from": "2026-11-18T09:15:42Z", "to": "2026-11-19T09:15:42Z"}
    assert payload["details"]["recordId"] == "rec-1"
    assert rules.from_payload(payload) == alert


def test_a_collection_alert_has_a_null_mailbox() -> None:
    alert = rules.make_alert(
        rules.COLLECTION_LAGGING, tenant=TENANT, triggered_at=T0, detected_at=T0, details={"lagHours": 7}
    )
    assert json.loads(rules.render(alert, "json"))["mailbox"] is None


def test_the_teams_body_is_an_adaptive_card_message() -> None:
    body = json.loads(rules.render(_throttled(), "teams"))
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Type"] == "mailbox.throttled"
    assert facts["Mailbox"] == "alice@contoso.com"
    assert facts["blindWindow.to"] == "2026-11-19T09:15:42Z"
    assert "2026-11-19T09:15:42Z" in card["body"][1]["text"]


def test_the_slack_body_has_text_and_blocks_within_slack_limits() -> None:
    body = json.loads(rules.render(_throttled(), "slack"))
    assert body["text"].startswith("Mailbox audit throttled")
    assert body["blocks"][0]["type"] == "header"
    for block in body["blocks"][2:]:
        assert block["type"] == "section"
        assert len(block["fields"]) <= 10
    fields = " ".join(f["text"] for block in body["blocks"][2:] for f in block["fields"])
    assert "alice@contoso.com" in fields


def test_the_signature_is_hmac_sha256_of_the_timestamp_dot_the_exact_body() -> None:
    body = rules.render(_throttled(), "json")
    headers = rules.request_headers(body, "s3cret", T0)
    timestamp = int(T0.timestamp())
    assert headers["X-Signature-Timestamp"] == str(timestamp)
    expected = "sha256=" + hmac.new(b"s3cret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Signature-256"] == expected
    stamp = headers["X-Signature-Timestamp"]
    assert rules.verify_signature(body, expected, stamp, "s3cret", now=T0)
    assert not rules.verify_signature(body + b" ", expected, stamp, "s3cret", now=T0)
    assert not rules.verify_signature(body, expected, stamp, "other", now=T0)
    assert not rules.verify_signature(body, expected, str(timestamp + 1), "s3cret", now=T0)
    assert not rules.verify_signature(body, expected, None, "s3cret", now=T0)
    body_only = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert not rules.verify_signature(body, body_only, stamp, "s3cret", now=T0)  # the old scheme
    assert "X-Signature-256" not in rules.request_headers(body, None)
    assert "X-Signature-Timestamp" not in rules.request_headers(body, None)


@pytest.mark.parametrize("late", [timedelta(minutes=5, seconds=1), timedelta(minutes=-5, seconds=-1)])
def test_a_signed_request_replayed_outside_the_tolerance_is_refused(late: timedelta) -> None:
    body = rules.render(_throttled(), "json")
    headers = rules.request_headers(body, "s3cret", T0)
    signed, stamp = headers["X-Signature-256"], headers["X-Signature-Timestamp"]

    assert rules.verify_signature(body, signed, stamp, "s3cret", now=T0 + timedelta(minutes=5))
    assert rules.verify_signature(body, signed, stamp, "s3cret", now=T0 - timedelta(minutes=5))
    assert not rules.verify_signature(body, signed, stamp, "s3cret", now=T0 + late)


@pytest.mark.parametrize("stamp", ["", "-1", "1e9", "\u00b2", " 1763457342", "1763457342.5"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(stamp: str) -> None:
    body = rules.render(_throttled(), "json")
    signed = rules.request_headers(body, "s3cret", T0)["X-Signature-256"]
    assert not rules.verify_signature(body, signed, stamp, "s3cret", now=T0)


def test_backoff_doubles_from_one_minute_up_to_an_hour() -> None:
    delays = [rules.backoff(n).total_seconds() for n in range(1, 10)]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]

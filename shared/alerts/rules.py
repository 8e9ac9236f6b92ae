"""Alerts: what they are, their identity, their payload and its formats (pure, no I/O).

An alert is raised once per type, mailbox (or other subject) and UTC day of the moment that
triggered it: its id is derived from exactly those, so raising it again (a redelivered message,
a re-run timer, a re-imported file) finds the same id in the outbox and changes nothing.

The webhook payload (docs/architecture.md#alert-payload) is `{"type", "tenant", "mailbox", "detectedAt",
"details", "id"}`; `teams` wraps it in an Adaptive Card message for a Teams Workflows webhook and `slack` in
Block Kit. When a secret is set, `X-Signature-Timestamp: <unix seconds>` says when the request was
signed and `X-Signature-256: sha256=<hex>` carries the HMAC-SHA256 of `<timestamp>.<body bytes>`, so
a receiver that checks the timestamp against its clock refuses a captured request replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.model.times import day_of, iso_z

MAILBOX_THROTTLED = "mailbox.throttled"
MAILBOX_NEAR_THROTTLE = "mailbox.near_throttle"
COLLECTION_LAGGING = "collection.lagging"
COLLECTION_GAP = "collection.gap"
COLLECTION_AUTH_FAILED = "collection.auth_failed"
COLLECTION_UNPARSEABLE = "collection.unparseable"
COLLECTION_MISCONFIGURED = "collection.misconfigured"
PROCESSING_POISON = "processing.poison"
SUBJECTS_LOOKUP_FAILED = "subjects.lookup_failed"
MAILBOX_NEW_CONTEXT = "mailbox.new_context"
TENANT_MASS_ACCESS = "tenant.mass_access"
ALERT_TYPES = (
    MAILBOX_THROTTLED,
    MAILBOX_NEAR_THROTTLE,
    COLLECTION_LAGGING,
    COLLECTION_GAP,
    COLLECTION_AUTH_FAILED,
    COLLECTION_UNPARSEABLE,
    COLLECTION_MISCONFIGURED,
    PROCESSING_POISON,
    SUBJECTS_LOOKUP_FAILED,
    MAILBOX_NEW_CONTEXT,
    TENANT_MASS_ACCESS,
)
FORMATS = ("json", "teams", "slack")
SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
# How far a receiver lets the signed timestamp stray from its own clock (either way).
SIGNATURE_TOLERANCE = timedelta(minutes=5)
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
THROTTLE_BLIND_WINDOW = timedelta(hours=24)  # docs/mailitemsaccessed.md#throttling

TITLES = {
    MAILBOX_THROTTLED: "Mailbox audit throttled: access is not being recorded",
    MAILBOX_NEAR_THROTTLE: "Mailbox close to audit throttling",
    COLLECTION_LAGGING: "Audit collection is lagging",
    COLLECTION_GAP: "Audit content lost: collection gap",
    COLLECTION_AUTH_FAILED: "Audit collection cannot authenticate",
    COLLECTION_UNPARSEABLE: "Audit content stored but not valid JSON",
    COLLECTION_MISCONFIGURED: "Audit collection is misconfigured",
    PROCESSING_POISON: "Audit content could not be processed (poison queue)",
    SUBJECTS_LOOKUP_FAILED: "Message subjects cannot be looked up (Microsoft Graph refused)",
    MAILBOX_NEW_CONTEXT: "Mailbox read in a new context",
    TENANT_MASS_ACCESS: "Many mailboxes read by one source",
}


def alert_id(alert_type: str, subject: str, triggered_at: datetime) -> str:
    """Deterministic id: the same type, subject (mailbox, or "") and UTC day give the same id."""
    key = f"{alert_type}|{subject.lower()}|{day_of(triggered_at)}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    type: str
    tenant: str
    mailbox: str | None
    detected_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def payload(self) -> dict[str, Any]:
        """The webhook payload (docs/architecture.md#alert-payload), keys in this order."""
        return {
            "type": self.type,
            "tenant": self.tenant,
            "mailbox": self.mailbox,
            "detectedAt": iso_z(self.detected_at),
            "details": self.details,
            "id": self.id,
        }


def make_alert(
    alert_type: str,
    *,
    tenant: str,
    triggered_at: datetime,
    detected_at: datetime,
    details: dict[str, Any],
    mailbox: str | None = None,
    subject: str | None = None,
) -> Alert:
    """An alert whose id derives from (type, subject or mailbox or "", day of `triggered_at`).

    `subject` replaces the mailbox in the id where the alert is about something else (a poison
    message's id)."""
    if alert_type not in ALERT_TYPES:
        raise ValueError(f"unknown alert type {alert_type!r}")
    key = subject if subject is not None else (mailbox or "")
    return Alert(
        type=alert_type,
        tenant=tenant,
        mailbox=mailbox,
        detected_at=detected_at,
        details=details,
        id=alert_id(alert_type, key, triggered_at),
    )


def throttled_alert(tenant: str, mailbox: str, record_time: datetime, record_id: str, now: datetime) -> Alert:
    end = record_time + THROTTLE_BLIND_WINDOW
    return make_alert(
        MAILBOX_THROTTLED,
        tenant=tenant,
        mailbox=mailbox,
        triggered_at=record_time,
        detected_at=now,
        details={
            "recordTime": iso_z(record_time),
            "recordId": record_id,
            "blindWindow": {"from": iso_z(record_time), "to": iso_z(end)},
            "message": (
                f"Exchange Online stopped writing MailItemsAccessed records for {mailbox} at "
                f"{iso_z(record_time)}; treat every item as accessed until {iso_z(end)}."
            ),
        },
    )


def near_throttle_alert(
    tenant: str, mailbox: str, count: int, threshold: int, window_end: datetime, now: datetime
) -> Alert:
    start = window_end - timedelta(hours=24)
    return make_alert(
        MAILBOX_NEAR_THROTTLE,
        tenant=tenant,
        mailbox=mailbox,
        triggered_at=window_end,
        detected_at=now,
        details={
            "records": count,
            "threshold": threshold,
            "throttleLimit": 1000,
            "window": {"from": iso_z(start), "to": iso_z(window_end)},
            "message": (
                f"{count} distinct MailItemsAccessed records for {mailbox} in the 24 hours to "
                f"{iso_z(window_end)}; Exchange stops auditing the mailbox for 24 hours past 1,000."
            ),
        },
    )


# --- rendering ------------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _flat(details: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    for key, value in details.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            facts.extend(_flat(value, f"{name}."))
        elif key != "message":
            facts.append((name, str(value)))
    return facts


def summary(alert: Alert) -> str:
    message = alert.details.get("message")
    if isinstance(message, str) and message:
        return message
    return TITLES.get(alert.type, alert.type) + (f": {alert.mailbox}" if alert.mailbox else "")


def _facts(alert: Alert) -> list[tuple[str, str]]:
    base = [("Type", alert.type), ("Tenant", alert.tenant or "-")]
    if alert.mailbox:
        base.append(("Mailbox", alert.mailbox))
    base.append(("Detected", iso_z(alert.detected_at)))
    return [*base, *_flat(alert.details), ("Alert id", alert.id)]


def teams_message(alert: Alert) -> dict[str, Any]:
    """An Adaptive Card 1.4 message, the body a Teams Workflows ("post to a channel when a
    webhook request is received") trigger accepts."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": TITLES.get(alert.type, alert.type),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
                "color": "Attention",
            },
            {"type": "TextBlock", "text": summary(alert), "wrap": True},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in _facts(alert)]},
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def slack_message(alert: Alert) -> dict[str, Any]:
    title = TITLES.get(alert.type, alert.type)
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in _facts(alert)]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": summary(alert)[:3000]}},
    ]
    for start in range(0, len(fields), 10):  # a section holds at most 10 fields
        blocks.append({"type": "section", "fields": fields[start : start + 10]})
    return {"text": f"{title}: {summary(alert)}", "blocks": blocks}


def render(alert: Alert, fmt: str) -> bytes:
    """The exact body bytes to POST (and to sign)."""
    if fmt == "json":
        return _dumps(alert.payload())
    if fmt == "teams":
        return _dumps(teams_message(alert))
    if fmt == "slack":
        return _dumps(slack_message(alert))
    raise ValueError(f"unknown alert format {fmt!r}")


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, the X-Signature-256 header value."""
    signed = f"{timestamp}.".encode("ascii") + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def verify_signature(
    body: bytes,
    header: str | None,
    timestamp_header: str | None,
    secret: str,
    now: datetime | None = None,
    tolerance: timedelta = SIGNATURE_TOLERANCE,
) -> bool:
    """The receiver's check: a timestamp within `tolerance` of `now` and a signature over it and
    the body, compared in constant time."""
    if header is None or timestamp_header is None or not _UNIX_SECONDS.fullmatch(timestamp_header):
        return False
    timestamp = int(timestamp_header)
    moment = (now or datetime.now(UTC)).timestamp()
    if abs(moment - timestamp) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(signature(body, secret, timestamp), header)


def request_headers(body: bytes, secret: str | None, now: datetime | None = None) -> dict[str, str]:
    """Headers of one delivery attempt; each attempt is signed afresh with its own timestamp."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "mia-alerts/1"}
    if secret:
        timestamp = int((now or datetime.now(UTC)).timestamp())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = signature(body, secret, timestamp)
    return headers


def from_payload(payload: dict[str, Any]) -> Alert:
    """Inverse of Alert.payload() (the outbox stores the payload)."""
    detected = datetime.strptime(payload["detectedAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return Alert(
        type=payload["type"],
        tenant=payload["tenant"],
        mailbox=payload["mailbox"],
        detected_at=detected,
        details=payload["details"],
        id=payload["id"],
    )


def backoff(attempts: int, base_seconds: int = 60, cap_seconds: int = 3600) -> timedelta:
    """Delay before the next delivery attempt after `attempts` failures: 1, 2, 4 ... minutes, at
    most an hour, so a receiver that comes back is served within the hour."""
    exponent = max(0, min(attempts - 1, 20))
    return timedelta(seconds=min(base_seconds * 2**exponent, cap_seconds))

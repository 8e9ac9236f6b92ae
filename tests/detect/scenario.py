"""Records for the detection tests: a mailbox's routine week, then an attacker (shared by the pure
and the storage tests, so both judge the very same records)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.model.event import AccessEvent
from shared.parse.events import events_from_bytes
from shared.parse.normalize import ParseStats
from tests.helpers import mia_record

ALICE = "alice@contoso.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EVIL_APP_ID = "6a0f2b4e-9d0c-4e55-8f6e-1c7a9d3b2e10"
ATTACKER_IP = "185.220.101.45"
OFFICE_IP = "203.0.113.10"
ATTACK_DAY = datetime(2026, 11, 20, tzinfo=UTC)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def routine(
    mailbox: str = ALICE, days: int = 5, per_day: int = 8, end: datetime = ATTACK_DAY
) -> list[dict[str, Any]]:
    """The owner on Outlook desktop from the office, `per_day` reads on each of `days` days."""
    records = []
    for day in range(days, 0, -1):
        start = end - timedelta(days=day) + timedelta(hours=9)
        for n in range(per_day):
            record_id = f"{mailbox.split('@')[0]}-{end:%m%d}-d{day}-{n}"
            records.append(
                mia_record(when(start + timedelta(minutes=10 * n)), record_id, mailbox, SessionId="s-desk")
            )
    return records


def graph_read(moment: datetime, record_id: str, mailbox: str = ALICE, **extra: Any) -> dict[str, Any]:
    """Mail read through Microsoft Graph by an unknown app from a foreign address."""
    fields: dict[str, Any] = {
        "ClientIPAddress": ATTACKER_IP,
        "ClientInfoString": "Client=REST;Client=RESTSystem;;",
        "AppId": GRAPH_APP_ID,
        "ClientAppId": EVIL_APP_ID,
        "SessionId": "s-evil",
        **extra,
    }
    return mia_record(when(moment), record_id, mailbox, **fields)


def sync(moment: datetime, record_id: str, mailbox: str = ALICE, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ClientIPAddress": ATTACKER_IP,
        "SessionId": "s-evil",
        "OperationProperties": [
            {"Name": "MailAccessType", "Value": "Sync"},
            {"Name": "IsThrottled", "Value": "False"},
        ],
        "Folders": [{"Id": "LgAAAAB1", "Path": "\\Inbox"}],
        **extra,
    }
    return mia_record(when(moment), record_id, mailbox, **fields)


def attack(start: datetime = ATTACK_DAY + timedelta(hours=10)) -> list[dict[str, Any]]:
    """Four Graph reads two minutes apart, then a Sync of the Inbox in the same session."""
    reads = [graph_read(start + timedelta(minutes=2 * n), f"evil-{n}") for n in range(4)]
    return [*reads, sync(start + timedelta(minutes=21), "evil-sync")]


def events(records: list[dict[str, Any]]) -> list[AccessEvent]:
    return list(events_from_bytes(json.dumps(records).encode(), "scenario.json", stats=ParseStats()))


def blob(records: list[dict[str, Any]]) -> bytes:
    return json.dumps(records).encode()

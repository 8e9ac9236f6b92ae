"""The messages and exposure views with a lookup: the chain's order as the views apply it, and
what they ask the lookup for (only messages no record names with a subject)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.model.event import AccessEvent
from shared.model.message_info import SOURCE_GRAPH, SOURCE_TRACE, Key, MessageInfo, Observed
from shared.reports.views import LOOKUP_CHUNK, exposure_rows, message_rows
from tests.records_factory import MID_1, MID_2, MID_3, event, folder, folder_item

pytestmark = pytest.mark.unit

ALICE = "alice@contoso.com"
RECEIVED = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
KNOWN = {
    (ALICE, MID_2): MessageInfo("Payroll", "hr@contoso.com", RECEIVED, None, SOURCE_GRAPH, copies=2),
    (ALICE, MID_3): MessageInfo("Old wire", "cfo@fabrikam.com", RECEIVED, 77, SOURCE_TRACE),
}


class RecordingLookup:
    def __init__(self, known: Mapping[Key, MessageInfo]) -> None:
        self.known = known
        self.asked: list[dict[str, dict[str, Observed]]] = []

    def __call__(self, observed: Mapping[str, Mapping[str, Observed]]) -> dict[Key, MessageInfo]:
        self.asked.append({mailbox: dict(messages) for mailbox, messages in observed.items()})
        wanted = {(mailbox, mid) for mailbox, messages in observed.items() for mid in messages}
        return {key: info for key, info in self.known.items() if key in wanted}


def ev(time: str, *items: dict[str, Any], record: str | None = None) -> AccessEvent:
    return event(
        CreationTime=f"2026-11-18T{time}", Id=record or f"rec-{time}", Folders=[folder("\\Inbox", *items)]
    )


def scenario() -> list[AccessEvent]:
    return [
        ev("09:00:00", folder_item(MID_1, subject="Budget 2027"), folder_item(MID_2, size=900)),
        ev("09:30:00", folder_item(MID_3, size=1000), folder_item(MID_1)),
        ev("10:00:00", folder_item("<never@seen.example>", size=5)),
    ]


def test_messages_view_fills_sender_received_and_source_from_the_lookup() -> None:
    lookup = RecordingLookup(KNOWN)
    rows = [
        (
            r["InternetMessageId"],
            r["Subject"],
            r["Sender"],
            r["Received"],
            r["SizeInBytes"],
            r["SubjectSource"],
        )
        for r in message_rows(scenario(), lookup)
    ]
    assert rows == [
        (MID_1, "Budget 2027", "", "", 48_213, "audit"),
        (MID_2, "Payroll", "hr@contoso.com", "2026-11-02T08:30:00Z", 900, "graph"),
        (MID_3, "Old wire", "cfo@fabrikam.com", "2026-11-02T08:30:00Z", 1000, "trace"),  # record size wins
        (MID_1, "Budget 2027", "", "", 48_213, "audit"),  # another record named its subject
        ("<never@seen.example>", "", "", "", 5, "unresolved:not-looked-up"),
    ]
    # One question for the chunk, and never about a message some record named with a subject.
    assert len(lookup.asked) == 1
    assert set(lookup.asked[0][ALICE]) == {MID_2, MID_3, "<never@seen.example>"}
    assert lookup.asked[0][ALICE][MID_3].first_access == datetime(2026, 11, 18, 9, 30, tzinfo=UTC)


def test_messages_view_asks_once_per_chunk_of_records() -> None:
    events = [ev(f"{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}", folder_item(MID_2)) for n in range(1201)]
    lookup = RecordingLookup(KNOWN)
    rows = list(message_rows(events, lookup))
    assert len(rows) == 1201
    assert all(row["SubjectSource"] == "graph" for row in rows)
    assert len(lookup.asked) == -(-1201 // LOOKUP_CHUNK)


def test_exposure_rows_carry_the_lookup_answers_and_ask_once() -> None:
    lookup = RecordingLookup(KNOWN)
    rows = {r["InternetMessageId"]: r for r in exposure_rows(scenario(), lookup) if r["Kind"] == "Message"}
    assert [rows[m]["SubjectSource"] for m in (MID_1, MID_2, MID_3)] == ["audit", "graph", "trace"]
    assert (rows[MID_2]["Sender"], rows[MID_2]["Received"]) == ("hr@contoso.com", "2026-11-02T08:30:00Z")
    assert rows["<never@seen.example>"]["SubjectSource"] == "unresolved:not-looked-up"
    assert len(lookup.asked) == 1


def test_a_negative_answer_shows_its_reason() -> None:
    unresolved = {(ALICE, MID_2): MessageInfo(source="unresolved:access-denied", size=None)}
    [row] = [
        r for r in message_rows([ev("09:00:00", folder_item(MID_2, size=3))], RecordingLookup(unresolved))
    ]
    assert (row["Subject"], row["SubjectSource"], row["SizeInBytes"]) == ("", "unresolved:access-denied", 3)

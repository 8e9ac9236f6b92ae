"""shared/reports/budget.py and the views it bounds: what one request may hold and how long it may read."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import count

import pytest

from shared.model.event import AccessEvent, MessageRef
from shared.reports.budget import ENTRIES_SETTING, SECONDS_SETTING, ReportTooLarge, WorkBudget
from shared.reports.views import exposure_rows, session_rows
from tests.helpers import BASE_EVENT

pytestmark = pytest.mark.unit


def reads(messages: int, sessions: int = 1) -> list[AccessEvent]:
    """One record per message, each message distinct, spread over `sessions` sessions."""
    return [
        replace(
            BASE_EVENT,
            timestamp=BASE_EVENT.timestamp + timedelta(seconds=n),
            record_id=f"r{n}",
            session_id=f"s{n % sessions}",
            items=(MessageRef(f"<m{n}@contoso.com>", "Inbox", "", 100),),
        )
        for n in range(messages)
    ]


def test_exposure_accounts_one_entry_per_message_and_per_value_its_row_lists() -> None:
    budget = WorkBudget()
    rows = list(exposure_rows(reads(10), None, budget))
    # Each message row holds itself, its folder, its session, its IP and its user.
    assert len(rows) == 10
    assert budget.entries == 10 * 5


def test_sessions_account_each_session_and_what_it_lists() -> None:
    budget = WorkBudget()
    rows = list(session_rows(reads(10, sessions=2), None, budget))
    # Per session: itself, 5 distinct messages, one folder, IP, client family, logon type, user.
    assert len(rows) == 2
    assert budget.entries == 2 * (1 + 5 + 5)


@pytest.mark.parametrize("view", [exposure_rows, session_rows])
def test_a_view_within_its_budget_gives_the_same_rows_as_without_one(view: object) -> None:
    events = reads(50, sessions=3)
    bounded = list(view(events, None, WorkBudget(max_entries=10_000)))  # type: ignore[operator]
    assert bounded == list(view(events))  # type: ignore[operator]


@pytest.mark.parametrize("view", [exposure_rows, session_rows])
def test_a_view_past_its_entries_is_refused_naming_the_setting_and_where_it_stopped(view: object) -> None:
    events = reads(1_000)
    budget = WorkBudget(max_entries=1_000)
    with pytest.raises(ReportTooLarge) as refused:
        list(view(budget.metered(events), None, budget))  # type: ignore[operator]
    problem = refused.value
    assert (problem.setting, problem.limit) == (ENTRIES_SETTING, 1_000)
    assert 0 < problem.records < 1_000
    assert problem.reached_at == events[problem.records - 1].timestamp
    message = str(problem)
    assert f"{ENTRIES_SETTING}=1000" in message
    assert f"after {problem.records} records" in message
    assert "shorter range" in message
    assert "view=events" in message
    assert "mia report" in message


def test_metered_events_stop_once_the_deadline_has_passed() -> None:
    ticks = count()
    budget = WorkBudget.starting_now(max_entries=10**9, max_seconds=5, clock=lambda: float(next(ticks)))
    events = reads(20)
    with pytest.raises(ReportTooLarge) as refused:
        list(budget.metered(events))
    # starting_now read the clock at 0: the deadline is 5, reached on the fifth event's check.
    assert (refused.value.setting, refused.value.limit, refused.value.records) == (SECONDS_SETTING, 5, 4)
    assert refused.value.reached_at == events[3].timestamp


def test_an_unbounded_budget_never_refuses() -> None:
    budget = WorkBudget()
    assert len(list(exposure_rows(budget.metered(reads(2_000)), None, budget))) == 2_000
    assert not budget.out_of_time()

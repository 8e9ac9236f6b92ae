"""The scope answer's pure parts: its request budget and its HTML page."""

from __future__ import annotations

import io
from datetime import date

import pytest

from shared.model.scope import SCOPE_COLUMNS, Tally
from shared.reports.budget import ENTRIES_SETTING, ReportTooLarge, WorkBudget
from shared.reports.scope import bounded, write_answer
from shared.reports.scope_request import ScopeQuery
from tests.records_factory import event

pytestmark = pytest.mark.unit


def tally(*sessions: str) -> Tally:
    result = Tally()
    result.add(event())
    result.sessions = set(sessions)
    return result


def test_reading_more_index_entries_than_the_budget_is_refused() -> None:
    rows = [("a@contoso.com", tally("s1", "s2")), ("b@contoso.com", tally("s3"))]
    # Each row is one entry, plus its values: 1 + 2 sessions + 1 ip, then 1 + 1 + 1.
    assert list(bounded(rows, WorkBudget(max_entries=7))) == rows
    with pytest.raises(ReportTooLarge) as refused:
        list(bounded(rows, WorkBudget(max_entries=6)))
    assert refused.value.setting == ENTRIES_SETTING


def test_the_html_page_escapes_every_value() -> None:
    query = ScopeQuery(view="scope", kind="ip", value="<b>", fmt="html", first_day=date(2026, 11, 1),
                       last_day=date(2026, 11, 2))  # fmt: skip
    rows = [dict.fromkeys(SCOPE_COLUMNS, "<img src=x onerror=alert(1)>")]
    sink = io.StringIO()
    write_answer(query, SCOPE_COLUMNS, rows, sink)
    page = sink.getvalue()
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "ip=&lt;b&gt;" in page

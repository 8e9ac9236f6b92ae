"""The retry tally a command summarises: counts per API host and reason, and its one line."""

from __future__ import annotations

import pytest

from shared.clients.retries import RetryTally

pytestmark = pytest.mark.unit


def test_nothing_retried_summarises_to_nothing() -> None:
    assert RetryTally().summary() == ""
    assert RetryTally().as_dict() == {"retries": 0, "gave_up": 0, "by": []}


def test_the_summary_groups_reasons_by_host_and_names_give_ups() -> None:
    tally = RetryTally()
    for _ in range(3):
        tally.retried("manage.office.com:443", "AF429")
    tally.retried("manage.office.com:443", "503")
    tally.retried("graph.microsoft.com:443", "429")
    tally.gave_up("manage.office.com:443", "503")

    assert tally.total() == 5
    assert tally.given_up() == 1
    assert tally.summary() == (
        "5 retries, gave up 1 times (graph.microsoft.com:443 429 x1; "
        "manage.office.com:443 503 x1 (gave up 1), AF429 x3)"
    )


def test_clear_starts_a_new_count() -> None:
    tally = RetryTally()
    tally.retried("h:443", "503")
    tally.clear()
    assert tally.total() == 0

"""shared/subjects/trace_search.py grid windows and shared/subjects/lookup_queue.py message bodies
(pure parts)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.model.message_info import Observed
from shared.subjects.lookup_queue import MAX_MESSAGE_BYTES, message_bodies, parse
from shared.subjects.trace_search import TRACE_MARGIN, TRACE_RETENTION, TRACE_WINDOW, grid_windows

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 23, 0, 0, tzinfo=UTC)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=120)))
def test_grid_windows_obey_the_trace_rules_and_start_at_the_first_access(age: timedelta) -> None:
    first_access = NOW - age
    windows = grid_windows(NOW, first_access)
    floor = NOW - TRACE_RETENTION + TRACE_MARGIN
    if first_access <= floor:
        assert windows == []
        return
    assert windows[0][0] <= first_access <= windows[0][1] <= NOW  # the window holding the access
    assert windows[-1][0] == floor  # back to the 90-day limit, never beyond
    assert all(timedelta(0) < end - start <= TRACE_WINDOW for start, end in windows)
    assert all(newer[0] == older[1] for newer, older in itertools.pairwise(windows))


def test_two_messages_read_days_apart_share_the_grids_windows() -> None:
    one = grid_windows(NOW, NOW - timedelta(days=1))
    other = grid_windows(NOW, NOW - timedelta(days=3))
    assert one == other  # same grid cell: one listing serves both
    assert len(one) == 9


def test_lookup_messages_stay_under_the_queue_limit_and_read_back() -> None:
    accessed = NOW - timedelta(hours=5)
    messages = {
        f"<{n:05d}.{'x' * 60}@example.com>": Observed(size=n, first_access=accessed) for n in range(2000)
    }
    bodies = list(message_bodies("alice@contoso.com", messages))
    assert len(bodies) > 1
    assert all(len(body.encode()) <= MAX_MESSAGE_BYTES + 100 for body in bodies)
    read_back: dict[str, Observed] = {}
    for body in bodies:
        read_back.update(parse(body)["alice@contoso.com"])
    assert read_back == messages


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"m": "", "ids": []}',
        '{"m": "a@b", "ids": [["only-id"]]}',
        '{"m": "a@b", "ids": [[1, null, 2]]}',
    ],
)
def test_an_unreadable_lookup_message_is_refused(body: str) -> None:
    with pytest.raises(ValueError, match="subject-lookups message"):
        parse(body)


def test_a_lookup_message_without_access_time_or_size_reads_back_empty() -> None:
    body = orjson.dumps({"m": "a@b.c", "ids": [["<m@x>", None, None]]}).decode()
    assert parse(body) == {"a@b.c": {"<m@x>": Observed()}}

"""shared/clients/graph_api.py pure parts: lookup URLs, OData quoting, the per-mailbox slots; and the
sliding-window limiter message trace uses (100 requests per 5 minutes)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.clients.errors import DeadlineReached
from shared.clients.graph_api import MailboxSlots, item_reply, message_lookup_url, odata_string
from shared.clients.transport import MIN_REQUEST_SECONDS, RateLimiter
from shared.model.message_info import Observed
from shared.subjects.resolver import Budget

pytestmark = pytest.mark.unit

AWKWARD_IDS = [
    "<CA+bq=x/1@mail.gmail.com>",
    "<it's@quoted.example>",
    "<a&b=c?d#e%20f@weird.example>",
    "<plain.123@PH0PR11MB1234.namprd11.prod.outlook.com>",
]


@pytest.mark.parametrize("message_id", AWKWARD_IDS)
def test_the_whole_id_survives_url_decoding_as_an_odata_literal(message_id: str) -> None:
    url = message_lookup_url("alice@contoso.com", message_id)
    parts = urlsplit(url)
    assert parts.path == "/users/alice@contoso.com/messages"
    assert "+" not in parts.query
    assert "<" not in parts.query
    assert "#" not in url
    query = parse_qs(parts.query)  # what the service does: '+' would become a space
    assert query["$filter"] == [f"internetMessageId eq {odata_string(message_id)}"]
    assert query["$select"][0].split(",")[:2] == ["id", "subject"]


def test_a_quote_in_a_literal_is_doubled() -> None:
    assert odata_string("<it's@x>") == "'<it''s@x>'"


def test_a_mailbox_never_gets_more_than_its_slots_across_threads() -> None:
    slots = MailboxSlots(limit=4)
    busy = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}
    lock = threading.Lock()

    def batch(needs: dict[str, int]) -> None:
        with slots.hold(needs):
            with lock:
                for mailbox, count in needs.items():
                    busy[mailbox] += min(4, count)
                    peak[mailbox] = max(peak[mailbox], busy[mailbox])
            time.sleep(0.01)
            with lock:
                for mailbox, count in needs.items():
                    busy[mailbox] -= min(4, count)

    work = [{"a": 20}, {"a": 3, "b": 2}, {"b": 7}, {"a": 1, "b": 1}] * 5
    threads = [threading.Thread(target=batch, args=(needs,)) for needs in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peak == {"a": 4, "b": 4}
    assert busy == {"a": 0, "b": 0}


def test_rate_limiter_allows_the_budget_in_any_minute_and_waits_for_the_oldest() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
        now[0] += 1.0
    assert slept == []  # the budget goes out at once
    limiter.acquire()  # the 4th waits until the 1st is a minute old
    assert slept == pytest.approx([57.0])
    assert now[0] == pytest.approx(160.0)


def test_limiter_window_is_configurable_and_gives_up_past_the_timeout() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window_s=300.0, clock=lambda: now[0])
    assert limiter.acquire(timeout=0)
    assert limiter.acquire(timeout=0)
    assert not limiter.acquire(timeout=299.0)  # the next slot frees at t=300
    now[0] = 300.0
    assert limiter.acquire(timeout=0)


def test_a_batch_items_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    seconds = item_reply({"id": "1", "status": 429, "headers": {"Retry-After": "7"}, "body": {}})
    dated = item_reply({"id": "2", "status": 429, "headers": {"retry-after": in_a_minute}, "body": {}})
    absent = item_reply({"id": "3", "status": 200, "headers": {}, "body": {"value": []}})
    assert (seconds.status, seconds.retry_after) == (429, 7.0)
    assert dated.retry_after is not None
    assert 50 < dated.retry_after <= 60
    assert absent.retry_after is None


def test_merging_what_records_say_keeps_the_earlier_access_and_ignores_an_unknown_one() -> None:
    early, late = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)
    seen = Observed(size=5, first_access=late)
    assert seen.merge("", None, None) == seen
    assert Observed().merge("Hi", 3, early) == Observed("Hi", 3, early)
    assert seen.merge("Hi", 9, early) == Observed("Hi", 5, early)


def test_slots_that_do_not_come_free_before_the_deadline_are_not_waited_for() -> None:
    slots = MailboxSlots(limit=1)
    with slots.hold({"a": 1}):
        with pytest.raises(DeadlineReached), slots.hold({"a": 1}, timeout=0.05):
            pass
        with slots.hold({"b": 1}, timeout=0.05):  # another mailbox's slot is free
            pass
    with slots.hold({"a": 1}, timeout=0.05):  # and this one once released
        pass


def test_a_budget_with_too_little_time_left_for_one_request_sends_none() -> None:
    started = time.monotonic()
    budget = Budget(10, MIN_REQUEST_SECONDS + 60, started=started - 60.5)  # half a second left

    assert 0 < budget.left() < MIN_REQUEST_SECONDS
    assert budget.deadline == pytest.approx(started + 0.5)
    assert budget.exhausted()
    assert not budget.take()
    assert budget.used == 0

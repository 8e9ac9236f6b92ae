"""Finding messages Graph no longer has through message trace (docs/mailitemsaccessed.md#graph-message-trace).

The trace answers for windows of at most 10 days within the last 90, and a tenant may send it only
100 requests per 5 minutes: the tightest budget of the whole chain. So windows sit on one grid
anchored at `now` (every message searching the same window asks the same question), each message
searches from the window holding its first access backwards (it was received before it was read),
and a window several messages need is listed once for the whole tenant: in a small tenant one page
of 5,000 rows answers all of them. A listing is cut after half as many pages as the window has
messages, and the messages it did not reach are then asked for one by one: never more than 1.5
times the requests of asking one by one from the start, in a tenant of any size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.clients.errors import ApiError, DeadlineReached, Throttled
from shared.clients.graph_api import GraphClient, TraceBudgetSpent
from shared.model.message_info import Key

TRACE_WINDOW = timedelta(days=10)  # at most 10 days per query
TRACE_RETENTION = timedelta(days=90)  # ... starting no earlier than 90 days back
TRACE_MARGIN = timedelta(hours=1)  # keep clear of the 90-day edge (clock skew)

Window = tuple[datetime, datetime]
Row = dict[str, Any]


def grid_windows(now: datetime, first_access: datetime | None) -> list[Window]:
    """The grid's windows to search for a message first read at `first_access`, newest first."""
    floor = now - TRACE_RETENTION + TRACE_MARGIN
    newest = int((now - min(first_access or now, now)) // TRACE_WINDOW)
    windows: list[Window] = []
    for n in range(newest, newest + TRACE_RETENTION // TRACE_WINDOW + 1):
        end = now - n * TRACE_WINDOW
        if end <= floor:
            break
        windows.append((max(end - TRACE_WINDOW, floor), end))
    return windows


class OutOfBudget(Exception):
    """The run's request budget or time is spent (its deadline): what is left is looked up later."""


@dataclass
class SearchResult:
    found: dict[Key, list[Row]] = field(default_factory=dict)
    exhausted: set[Key] = field(default_factory=set)  # every window searched, nothing found
    failure: ApiError | None = None  # the trace refused (permission, service principal, ...)
    requests: int = 0


class TraceSearch:
    """One search over a set of messages; `take()` spends one request of the caller's budget,
    `left()` is the time it may still wait and `deadline` (a `time.monotonic()` instant) the time
    by which every request must be done."""

    def __init__(
        self,
        graph: GraphClient,
        take: Callable[[], bool],
        left: Callable[[], float],
        deadline: float | None = None,
    ) -> None:
        self._graph = graph
        self._take = take
        self._left = left
        self._deadline = deadline
        self.result = SearchResult()

    def run(self, wanted: Mapping[Key, datetime | None], now: datetime) -> SearchResult:
        plan = {key: grid_windows(now, first) for key, first in wanted.items()}
        self.result.exhausted.update(key for key, windows in plan.items() if not windows)
        plan = {key: windows for key, windows in plan.items() if windows}
        try:
            while plan:
                window = _most_wanted(plan)
                keys = [key for key, windows in plan.items() if windows[0] == window]
                for key in self._search_window(window, keys):
                    del plan[key]
                for key in keys:
                    if key in plan:
                        plan[key].pop(0)
                        if not plan[key]:
                            del plan[key]
                            self.result.exhausted.add(key)
        except OutOfBudget:
            pass
        except ApiError as problem:
            self.result.failure = problem
        return self.result

    def _spend(self) -> None:
        if not self._take():
            raise OutOfBudget
        self.result.requests += 1

    def _search_window(self, window: Window, keys: list[Key]) -> list[Key]:
        """Search one window for these messages; returns the keys found in it."""
        rows: dict[str, list[Row]] = {}
        if len(keys) >= 2:
            listed = self._collect(window, {mid for _, mid in keys}, rows, max_pages=max(1, len(keys) // 2))
            if not listed:  # a big tenant: the listing was cut, ask for the rest one by one
                for _, message_id in [key for key in keys if key[1] not in rows]:
                    self._collect(window, {message_id}, rows, message_id=message_id)
        else:
            self._collect(window, {keys[0][1]}, rows, message_id=keys[0][1])
        found = [key for key in keys if key[1] in rows]
        for key in found:
            self.result.found[key] = rows[key[1]]
        return found

    def _collect(
        self,
        window: Window,
        wanted: set[str],
        rows: dict[str, list[Row]],
        message_id: str | None = None,
        max_pages: int = 1,
    ) -> bool:
        """Read up to `max_pages` pages of the window into `rows` (the wanted ids only); True when
        the answer was read to its end."""
        pages = self._graph.message_trace_pages(
            *window, message_id=message_id, wait_limit=self._left, deadline=self._deadline
        )
        for _ in range(max_pages):
            self._spend()
            try:
                page, more = _next_page(pages)
            except (Throttled, TraceBudgetSpent, DeadlineReached):
                # The tenant's 100 per 5 minutes, or the caller's deadline: the next run goes on.
                raise OutOfBudget from None
            for row in page:
                if row.get("messageId") in wanted:
                    rows.setdefault(str(row["messageId"]), []).append(row)
            if not more:
                return True
        return False


def _next_page(pages: Iterator[tuple[list[Row], bool]]) -> tuple[list[Row], bool]:
    try:
        page: tuple[list[Row], bool] = next(pages)
    except StopIteration:
        return [], False
    return page


def _most_wanted(plan: Mapping[Key, list[Window]]) -> Window:
    """The next window most messages need (the newest on a tie)."""
    counts = Counter(windows[0] for windows in plan.values())
    return max(counts, key=lambda window: (counts[window], window[1]))

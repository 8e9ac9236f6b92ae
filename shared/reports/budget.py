"""How much work one report request may do: the entries its aggregation may hold in memory and the
seconds it may take. An aggregated view that would need more is refused with a ReportTooLarge that
says where it stopped, so the caller can ask for less; it is never left to exhaust the instance."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from shared.model.event import AccessEvent
from shared.model.times import iso_z

ENTRIES_SETTING = "REPORT_MAX_AGGREGATE_ENTRIES"
SECONDS_SETTING = "REPORT_MAX_SECONDS"
WAYS_AROUND = (
    "ask for a shorter range (from/to), narrow it with session= or ip=, read view=events or "
    "view=messages (paged, never refused), or run `mia report` on a workstation, which has no such limit"
)


class ReportTooLarge(Exception):
    """An aggregated view reached a limit of its request: the setting, its value, and how far it got."""

    def __init__(self, setting: str, limit: int, records: int, reached_at: datetime | None) -> None:
        self.setting, self.limit, self.records, self.reached_at = setting, limit, records, reached_at
        where = f" at {iso_z(reached_at)}" if reached_at is not None else ""
        super().__init__(
            f"this view needs more than {setting}={limit} of one request; it stopped after "
            f"{records} records{where}: {WAYS_AROUND}"
        )


@dataclass
class WorkBudget:
    """Entries held (distinct messages, sessions, folders and the values listed in their rows)
    and a deadline on `clock`; None is no limit."""

    max_entries: int | None = None
    deadline: float | None = None
    max_seconds: int = 0
    clock: Callable[[], float] = time.monotonic
    entries: int = 0
    records: int = 0
    reached_at: datetime | None = None

    @classmethod
    def starting_now(
        cls, max_entries: int, max_seconds: int, clock: Callable[[], float] = time.monotonic
    ) -> WorkBudget:
        return cls(max_entries, clock() + max_seconds, max_seconds, clock)

    def out_of_time(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def metered(self, events: Iterable[AccessEvent]) -> Iterator[AccessEvent]:
        """`events`, refused with ReportTooLarge once the deadline has passed."""
        for event in events:
            if self.out_of_time():
                raise ReportTooLarge(SECONDS_SETTING, self.max_seconds, self.records, self.reached_at)
            self.records += 1
            self.reached_at = event.timestamp
            yield event

    def grow(self, entries: int) -> None:
        """Account for `entries` more held in memory; ReportTooLarge past the limit."""
        self.entries += entries
        if self.max_entries is not None and self.entries > self.max_entries:
            raise ReportTooLarge(ENTRIES_SETTING, self.max_entries, self.records, self.reached_at)

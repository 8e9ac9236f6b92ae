"""Per-mailbox (or per-actor) reports: pick the events, apply the view, render the format.

Events come either from Table Storage (paged by RowKey, so memory stays bounded) or straight from
export files with no storage at all (`mia report --input`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from shared.ipcontext.context import IpContext
from shared.model.event import AccessEvent
from shared.model.message_info import SOURCE_AUDIT, Key, Lookup, MessageInfo, MessageObserver, Observed
from shared.model.times import iso_z
from shared.reports import html, render, views, workbook
from shared.reports.budget import WorkBudget
from shared.reports.file_events import FileEvents
from shared.reports.request import WHOLE_END, WHOLE_START, ReportQuery, stored_subject
from shared.reports.selection import passes_filters

if TYPE_CHECKING:  # a report from files needs no storage SDK loaded
    from shared.storage.tables import AccessTable


def within_the_files(query: ReportQuery, events: Sequence[AccessEvent] | FileEvents) -> ReportQuery:
    """`query` with an open bound (no `from`, or no `to`, of a report from files) closed at the
    files' own edge: the second of their first record, the second after their last; so the report
    names the range it covers. `events` are the query's, in time order; with none, unchanged."""
    if isinstance(events, FileEvents):
        edges = (
            None
            if events.first_seen is None or events.last_seen is None
            else (events.first_seen, events.last_seen)
        )
    else:
        edges = (events[0].timestamp, events[-1].timestamp) if events else None
    if edges is None:
        return query
    first, last = (moment.replace(microsecond=0) for moment in edges)
    start = first if query.start == WHOLE_START else query.start
    end = last + timedelta(seconds=1) if query.end == WHOLE_END else query.end
    return replace(query, start=start, end=end)


def audit_lookup(observer: MessageObserver) -> Lookup:
    """The files' own MessageIndex: a subject any record of the files gives for a message of a
    mailbox, as ingestion records it in the MessageIndex table (so a report from files and one from
    storage of the same records agree)."""
    known = observer.messages

    def lookup(observed: Mapping[str, Mapping[str, Observed]]) -> dict[Key, MessageInfo]:
        found: dict[Key, MessageInfo] = {}
        for mailbox, messages in observed.items():
            for message_id in messages:
                seen = known.get(mailbox, {}).get(message_id)
                if seen is not None and seen.subject:
                    found[(mailbox, message_id)] = MessageInfo(
                        seen.subject, size=seen.size, source=SOURCE_AUDIT
                    )
        return found

    return lookup


def events_from_table(table: AccessTable, query: ReportQuery) -> Iterator[AccessEvent]:
    for _, event in table.query_events(stored_subject(query), query.start, query.end, query.after):
        if passes_filters(event, query):
            yield event


def render_report(
    query: ReportQuery,
    events: Iterable[AccessEvent],
    sink: render.TextSink,
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    ip_context: IpContext | None = None,
) -> int:
    """Write the query's view of `events` (already in time order) to `sink`; returns row count.
    `lookup` tells the messages and exposure views what is known of messages the records name
    without a subject. `budget` bounds an aggregated view (ReportTooLarge past it). The HTML page
    is every view at once, whatever `query.view` says (its count is the records it covers).
    `ip_context` gives the IP columns (None: the embedded data only)."""
    if query.fmt == "html":
        return html.write_page(query, events, sink, lookup, budget, ip_context=ip_context)
    columns, view = views.VIEWS[query.view]
    if budget is not None and query.view in views.AGGREGATED_VIEWS:
        rows = view(budget.metered(events), lookup, budget, ip_context=ip_context)
    else:
        rows = view(events, lookup, ip_context=ip_context)
    return render.write_rows(query.fmt, rows, columns, sink)


@dataclass
class Page:
    body: str
    rows: int
    next_after: str | None


# Rows one event produces in each paged view.
_PAGED: dict[str, Callable[[AccessEvent], int]] = {
    "events": lambda event: 1,
    "messages": lambda event: len(event.message_ids),
}


def _late(budget: WorkBudget | None, last_read: str | None) -> bool:
    """Past the deadline, once the page has read at least one row (so every page makes progress)."""
    return budget is not None and last_read is not None and budget.out_of_time()


def render_page(
    table: AccessTable,
    query: ReportQuery,
    page_rows: int,
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    ip_context: IpContext | None = None,
) -> Page:
    """One bounded page of a stored report, after the filters.

    The events and messages views take whole events until the page holds at least `page_rows`
    rows or events (messages: at most one record's messages over) and name the continuation (the
    last RowKey read). Past the budget's deadline the page ends early, even empty when the
    filters passed nothing so far, and its continuation goes on from the last row read.

    The sessions and exposure views aggregate the whole range (memory grows with sessions or
    distinct messages, not records) within `budget`, or raise ReportTooLarge; so does the HTML
    page, which also holds the range's events."""
    sink = io.StringIO()
    weight = None if query.fmt == "html" else _PAGED.get(query.view)
    if weight is None:
        count = render_report(query, events_from_table(table, query), sink, lookup, budget, ip_context)
        return Page(sink.getvalue(), count, None)
    page: list[AccessEvent] = []
    produced = 0
    last_read = next_after = None
    for key, event in table.query_events(stored_subject(query), query.start, query.end, query.after):
        if produced >= page_rows or len(page) >= page_rows or _late(budget, last_read):
            next_after = last_read
            break
        last_read = key
        if passes_filters(event, query):
            page.append(event)
            produced += weight(event)
    count = render_report(query, page, sink, lookup, ip_context=ip_context)
    return Page(sink.getvalue(), count, next_after)


# The workbook's sheets, in the order a responder reads them: what was exposed first.
WORKBOOK_VIEWS = ("exposure", "sessions", "messages", "events")
EventSource = Callable[[], Iterable[AccessEvent]]


class _Capped:
    """The events of a paged sheet: whole events, in order, while their rows fit in `cap`; the
    rows of the events after that are only counted (`more`, from `more_from` on)."""

    def __init__(self, events: Iterable[AccessEvent], weight: Callable[[AccessEvent], int], cap: int) -> None:
        self._events, self._weight, self._cap = events, weight, cap
        self.taken = 0
        self.more = 0
        self.more_from: str | None = None

    def __iter__(self) -> Iterator[AccessEvent]:
        for event in self._events:
            rows = self._weight(event)
            if self.more_from is None and self.taken + rows <= self._cap:
                self.taken += rows
                yield event
                continue
            if self.more_from is None:
                self.more_from = iso_z(event.timestamp)
            self.more += rows

    def note(self, view: str, limit: str) -> str | None:
        if not self.more:
            return None
        return (
            f"{self.more} more rows, the first at {self.more_from}: use CSV/JSON paging "
            f"(view={view}, format=csv or json) to read them; this sheet stops at {limit}"
        )


def _new_pass(budget: WorkBudget) -> WorkBudget:
    """`budget` for the next sheet: the same deadline; entries and records counted afresh (each
    sheet's aggregation is freed before the next one starts)."""
    budget.entries, budget.records, budget.reached_at = 0, 0, None
    return budget


def workbook_sheets(
    query: ReportQuery,
    events: EventSource,
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    page_rows: int | None = None,
    ip_context: IpContext | None = None,
) -> Iterator[workbook.Sheet]:
    """One sheet per view of the query's range, each from a fresh pass over `events()`.

    The sessions and exposure sheets aggregate the whole range within `budget` (ReportTooLarge
    past it, as their views over HTTP). The messages and events sheets hold whole records' rows
    up to `page_rows` (REPORT_PAGE_ROWS over HTTP; None: the worksheet's own limit) and end with
    a line saying how many rows follow and how to read them; every pass counts against the
    budget's deadline. Nothing is left out without that line. `ip_context` gives every sheet's IP
    columns (None: the embedded data only)."""
    if page_rows is not None and page_rows < workbook.MAX_DATA_ROWS:
        cap, limit = page_rows, f"REPORT_PAGE_ROWS={page_rows} rows"
    else:
        cap, limit = workbook.MAX_DATA_ROWS, f"{workbook.MAX_DATA_ROWS} rows (the worksheet limit)"
    for view in WORKBOOK_VIEWS:
        columns, rows_of = views.VIEWS[view]
        source = _new_pass(budget).metered(events()) if budget is not None else events()
        if view in views.AGGREGATED_VIEWS:
            yield workbook.Sheet(view, columns, rows_of(source, lookup, budget, ip_context=ip_context))
            continue
        capped = _Capped(source, _PAGED[view], cap)
        yield workbook.Sheet(
            view,
            columns,
            rows_of(capped, lookup, ip_context=ip_context),
            functools.partial(capped.note, view, limit),
        )


def render_workbook(
    query: ReportQuery,
    events: EventSource,
    target: str | Path | IO[bytes],
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    page_rows: int | None = None,
    ip_context: IpContext | None = None,
) -> dict[str, int]:
    """The query's workbook (format=xlsx) written to `target`; returns the rows of each sheet."""
    sheets = workbook_sheets(query, events, lookup, budget, page_rows, ip_context)
    return workbook.write_workbook(target, sheets)


def render_stored_workbook(
    table: AccessTable,
    query: ReportQuery,
    page_rows: int,
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    ip_context: IpContext | None = None,
) -> tuple[bytes, int]:
    """The workbook of a stored report, as the bytes to serve and its data rows in all sheets."""
    out = io.BytesIO()
    source = lambda: events_from_table(table, query)  # noqa: E731
    rows = render_workbook(query, source, out, lookup, budget, page_rows, ip_context)
    return out.getvalue(), sum(rows.values())

"""Per-mailbox (or per-actor) reports: pick the events, apply the view, render the format.

Events come either from Table Storage (paged by RowKey, so memory stays bounded) or straight from
export files with no storage at all (`mia report --input`).
"""

from __future__ import annotations

import functools
import heapq
import io
import ipaddress
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from shared.ipcontext.context import IpContext
from shared.model.event import AccessEvent
from shared.model.message_info import SOURCE_AUDIT, Key, Lookup, MessageInfo, MessageObserver, Observed
from shared.model.times import iso_z
from shared.parse.events import events_from_path
from shared.parse.normalize import ParseStats
from shared.reports import html, render, views, workbook
from shared.reports.budget import WorkBudget
from shared.reports.request import WHOLE_END, WHOLE_START, IPNetwork, ReportQuery, stored_subject
from shared.storage.tables import AccessTable


def _matches(event: AccessEvent, query: ReportQuery) -> bool:
    who = event.user if query.by == "actor" else event.mailbox
    return (query.subject is None or who == query.subject) and query.start <= event.timestamp < query.end


@functools.lru_cache(maxsize=4096)
def _address(client_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(client_ip)
    except ValueError:  # empty, or a value the source gave that is not an address
        return None


def _in_any(client_ip: str, networks: tuple[IPNetwork, ...]) -> bool:
    address = _address(client_ip)
    return address is not None and any(address in network for network in networks)


def passes_filters(event: AccessEvent, query: ReportQuery) -> bool:
    """The query's ip / session / exclude_ip filters (applied in Python, never in OData)."""
    if query.ips and not _in_any(event.client_ip, query.ips):
        return False
    if query.sessions and event.session_id not in query.sessions:
        return False
    return not (query.exclude_ips and _in_any(event.client_ip, query.exclude_ips))


SPILL_EVENTS = 20_000  # events of the files held before a sorted run of them is written to disk


def _order(event: AccessEvent) -> tuple[datetime, str]:
    return event.timestamp, event.record_id


class FileEvents:
    """The query's events from export files, each record once (by record Id), in time order, in
    memory bounded by SPILL_EVENTS events rather than by the files.

    The first copy wins, as in storage; a later copy that says something else (not only less:
    AccessEvent.agrees_with) marks it `Conflict`. The files are read once: the kept events are
    written in sorted runs to a temporary directory and merged each time the events are iterated.
    What is held meanwhile is a 128-bit content digest per record Id (to tell a repeat from a
    copy that differs) and the differing later copies, which are rare. `observer` is shown every
    record of the files, in the query or not (see `audit_lookup`)."""

    def __init__(
        self,
        paths: Sequence[Path],
        query: ReportQuery,
        stats: ParseStats,
        observer: MessageObserver | None = None,
    ) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="mia-report-")
        self._runs: list[Path] = []
        self._held: list[AccessEvent] = []
        self._later: dict[str, list[AccessEvent]] = {}
        self.count = 0
        self.first: AccessEvent | None = None
        self.last: AccessEvent | None = None
        contents: dict[str, int] = {}
        for path in paths:
            for event in events_from_path(path, str(path), stats=stats):
                if observer is not None:
                    observer.add(event)
                if not (_matches(event, query) and passes_filters(event, query)):
                    continue
                content = int(event.content_sha256()[:32], 16)
                first = contents.get(event.record_id)
                if first is None:
                    contents[event.record_id] = content
                    self._keep(event)
                elif first != content:
                    self._later.setdefault(event.record_id, []).append(event)
        if self._runs and self._held:
            self._spill()

    def _keep(self, event: AccessEvent) -> None:
        self.count += 1
        if self.first is None or _order(event) < _order(self.first):
            self.first = event
        if self.last is None or _order(event) > _order(self.last):
            self.last = event
        self._held.append(event)
        if len(self._held) >= SPILL_EVENTS:
            self._spill()

    def _spill(self) -> None:
        run = Path(self._directory.name) / f"run-{len(self._runs):05d}.pickle"
        with run.open("wb") as out:
            for event in sorted(self._held, key=_order):  # one pickle each: none keeps the others
                pickle.dump(event, out, protocol=pickle.HIGHEST_PROTOCOL)
        self._runs.append(run)
        self._held = []

    @staticmethod
    def _read(run: Path) -> Iterator[AccessEvent]:
        # Only ever a run _spill wrote in this process, in a directory mkdtemp made for this user
        # alone (mode 0700): never a file from outside.
        with run.open("rb") as handle:
            while True:
                try:
                    yield pickle.load(handle)  # noqa: S301
                except EOFError:
                    return

    def __iter__(self) -> Iterator[AccessEvent]:
        runs = [self._read(run) for run in self._runs] or [iter(sorted(self._held, key=_order))]
        for event in heapq.merge(*runs, key=_order):
            copies = self._later.get(event.record_id)
            if copies and not all(event.agrees_with(copy) for copy in copies):
                event = replace(event, conflict=True)
            yield event

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self._directory.cleanup()


def events_from_files(
    paths: Sequence[Path], query: ReportQuery, stats: ParseStats, observer: MessageObserver | None = None
) -> list[AccessEvent]:
    """`FileEvents`, as a list."""
    events = FileEvents(paths, query, stats, observer)
    try:
        return list(events)
    finally:
        events.close()


def within_the_files(query: ReportQuery, events: Sequence[AccessEvent] | FileEvents) -> ReportQuery:
    """`query` with an open bound (no `from`, or no `to`, of a report from files) closed at the
    files' own edge: the second of their first record, the second after their last; so the report
    names the range it covers. `events` are the query's, in time order; with none, unchanged."""
    if isinstance(events, FileEvents):
        edges = None if events.first is None or events.last is None else (events.first, events.last)
    else:
        edges = (events[0], events[-1]) if events else None
    if edges is None:
        return query
    first, last = (event.timestamp.replace(microsecond=0) for event in edges)
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

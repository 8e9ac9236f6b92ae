"""Per-mailbox (or per-actor) reports: pick the events, apply the view, render the format.

Events come either from Table Storage (paged by RowKey, so memory stays bounded) or straight from
export files with no storage at all (`mia report --input`).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from azure.data.tables import TableClient

from shared import render, tables, views
from shared.pipeline import events_from_bytes
from shared.records import AccessEvent, ParseStats
from shared.report_request import ReportQuery


def _matches(event: AccessEvent, query: ReportQuery) -> bool:
    who = event.user if query.by == "actor" else event.mailbox
    return who == query.subject and query.start <= event.timestamp < query.end


def events_from_files(paths: Sequence[Path], query: ReportQuery, stats: ParseStats) -> list[AccessEvent]:
    """The query's events from export files, each record once (by record Id), in time order."""
    chosen: dict[str, AccessEvent] = {}
    for path in paths:
        for event in events_from_bytes(path.read_bytes(), str(path), stats=stats):
            if _matches(event, query):
                chosen.setdefault(event.record_id, event)
    return sorted(chosen.values(), key=lambda event: (event.timestamp, event.record_id))


def events_from_table(table: TableClient, query: ReportQuery) -> Iterator[AccessEvent]:
    for _, event in tables.query_events(table, query.subject, query.start, query.end, query.after):
        yield event


def render_report(query: ReportQuery, events: Iterable[AccessEvent], sink: render.TextSink) -> int:
    """Write the query's view of `events` (already in time order) to `sink`; returns row count."""
    columns, view = views.VIEWS[query.view]
    return render.write_rows(query.fmt, view(events), columns, sink)


@dataclass
class Page:
    body: str
    rows: int
    next_after: str | None


def render_page(table: TableClient, query: ReportQuery, page_rows: int) -> Page:
    """One bounded page of a stored report. The events view stops after `page_rows` rows and
    names the continuation; the sessions view aggregates the whole range (its memory grows with
    sessions, not records)."""
    sink = io.StringIO()
    if query.view != "events":
        count = render_report(query, events_from_table(table, query), sink)
        return Page(sink.getvalue(), count, None)
    keyed = tables.query_events(table, query.subject, query.start, query.end, query.after)
    fetched = list(itertools.islice(keyed, page_rows + 1))
    page = fetched[:page_rows]
    count = render_report(query, (event for _, event in page), sink)
    next_after = page[-1][0] if len(fetched) > page_rows else None
    return Page(sink.getvalue(), count, next_after)

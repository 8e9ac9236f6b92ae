"""Scoping ("who else?"): which mailboxes one IP, network, app, session or actor touched, and the
tenant-wide mailboxes triage view, both answered from the ContextIndex (a RowKey range in each
of 16 partitions a month of the days asked), or with `mia scope --input` from export files
through the same tallies (docs/architecture.md#scope).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError

from shared.access import guard
from shared.ipcontext.context import IpContext, open_context
from shared.model.scope import SCOPE_COLUMNS, Tallies, Tally, mailbox_totals, scope_rows, source_columns
from shared.model.times import iso_z
from shared.parse.normalize import ParseStats
from shared.reports import html, http_api, render
from shared.reports.budget import SECONDS_SETTING, ReportTooLarge, WorkBudget
from shared.reports.file_events import FileEvents
from shared.reports.request import WHOLE_END, WHOLE_START, ReportQuery, RequestError
from shared.reports.scope_request import MAILBOXES_VIEW, ScopeQuery, parse_scope_request
from shared.reports.views import MAILBOX_COLUMNS
from shared.settings import ReportSettings
from shared.storage import Storage

log = logging.getLogger(__name__)

# The CLI's mailboxes view (views.MAILBOX_COLUMNS) as the index can give it: DistinctMessages
# needs every message id of every mailbox-day, so the index keeps Messages, the SUM of the
# records' MessageCount, instead. Apps and Countries are listed in sorted order, not in order of
# first appearance.
INDEX_MAILBOX_COLUMNS: tuple[str, ...] = tuple(
    "Messages" if column == "DistinctMessages" else column for column in MAILBOX_COLUMNS
)


def _mailbox_row(mailbox: str, tally: Tally, context: IpContext) -> dict[str, Any]:
    assert tally.first is not None
    assert tally.last is not None
    countries = sorted({country for ip in tally.ips if (country := context.facts(ip).country)})
    return {
        "Mailbox": mailbox,
        "Records": tally.records,
        "Messages": tally.messages,
        "SyncedFolders": len(tally.synced_folders),
        "ThrottledWindows": tally.throttled,
        "NonOwnerAccesses": tally.non_owner,
        "DistinctIPs": len(tally.ips),
        "Countries": "; ".join(countries),
        "Apps": "; ".join(sorted(tally.apps)),
        "FirstAccess": iso_z(tally.first.timestamp),
        "LastAccess": iso_z(tally.last),
        **source_columns(tally.first),
    }


def scope_table(
    query: ScopeQuery, tallies: Iterable[tuple[str, Tally]], ip_context: IpContext
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The columns and rows of the query's answer."""
    if query.view == MAILBOXES_VIEW:
        return INDEX_MAILBOX_COLUMNS, [_mailbox_row(m, t, ip_context) for m, t in mailbox_totals(tallies)]
    return SCOPE_COLUMNS, scope_rows(tallies)


def bounded(tallies: Iterable[tuple[str, Tally]], budget: WorkBudget) -> Iterator[tuple[str, Tally]]:
    """`tallies` within the request's budget: each index row read counts as one entry and each
    value of its sets as another (REPORT_MAX_AGGREGATE_ENTRIES), and reading stops at the deadline
    (REPORT_MAX_SECONDS); past either, ReportTooLarge (422 report_too_large)."""
    for mailbox, tally in tallies:
        if budget.out_of_time():
            raise ReportTooLarge(SECONDS_SETTING, budget.max_seconds, budget.records, budget.reached_at)
        budget.records += tally.records
        budget.reached_at = tally.last or budget.reached_at
        budget.grow(1 + sum(len(values) for values in tally.value_sets().values()))
        yield mailbox, tally


def stored_tallies(storage: Storage, query: ScopeQuery) -> Iterator[tuple[str, Tally]]:
    return storage.context_index.tallies(query.kind, query.value, query.first_day, query.last_day)


def file_tallies(
    paths: Sequence[Path], query: ScopeQuery, stats: ParseStats, workers: int | None = None
) -> list[tuple[str, Tally]]:
    """The same tallies from export files: each record once, the first copy winning, as in storage
    (read by `workers` processes; None: one per core)."""
    every = ReportQuery(
        subject=None, by="mailbox", view="events", fmt="json", start=WHOLE_START, end=WHOLE_END
    )
    tallies = Tallies()
    events = FileEvents(paths, every, stats, workers=workers)
    try:
        tallies.add_all(events)
    finally:
        events.close()
    return list(tallies.of(query.kind, query.value, query.first_day, query.last_day))


def _days_text(query: ScopeQuery) -> str:
    first = "the first record" if query.first_day == date.min else query.first_day.isoformat()
    last = "the last record" if query.last_day == date.max else query.last_day.isoformat()
    return f"{first} to {last} (UTC days, both included)"


def write_answer(
    query: ScopeQuery,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    sink: render.TextSink,
    now: datetime | None = None,
) -> int:
    """Render the rows as CSV, JSON or an HTML page; returns the row count."""
    if query.fmt != "html":
        return render.write_rows(query.fmt, rows, columns, sink)
    if query.view == MAILBOXES_VIEW:
        title, table_title = "Mailboxes: triage of every mailbox", "Mailboxes, the most suspicious first"
    else:
        title, table_title = f"Scope: the mailboxes {query.parameter} touched", "Mailboxes touched"
    facts = [
        ("Generated", iso_z(now or datetime.now(UTC))),
        ("Tool", f"{html.DISTRIBUTION} {html.tool_version()}"),
        ("Context", query.parameter),
        ("Days", _days_text(query)),
    ]
    note = (
        "Messages is the sum of the records' MessageCount: a message read in two records counts twice. "
        "Each mailbox's own report lists the distinct messages."
    )
    html.write_table_page(
        title, _days_text(query), ("scope", table_title, columns, iter(rows)), facts, sink, note
    )
    return len(rows)


def scope_reply(
    params: Mapping[str, str], storage: Storage, settings: ReportSettings, now: datetime | None = None
) -> guard.Reply:
    """GET /api/scope: the answer, or a 4xx JSON error naming the parameter."""
    try:
        query = parse_scope_request(params, settings, now)
    except RequestError as problem:
        return guard.error_reply(problem.status, problem.code, problem.message)
    budget = WorkBudget.starting_now(settings.max_aggregate_entries, settings.max_seconds)
    try:
        tallies = bounded(stored_tallies(storage, query), budget)
        columns, rows = scope_table(query, tallies, open_context(settings.ip_databases))
    except ReportTooLarge as refused:
        return guard.error_reply(422, "report_too_large", str(refused))
    except AzureError:
        log.exception("scope storage query failed")
        return guard.error_reply(503, "storage_unavailable", "storage did not answer; try again shortly")
    sink = io.StringIO()
    write_answer(query, columns, rows, sink, now)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "X-Row-Count": str(len(rows)),
    }
    if query.fmt == "html":
        headers["Content-Security-Policy"] = html.HEADER_CONTENT_SECURITY_POLICY
        headers["Referrer-Policy"] = "no-referrer"
    if query.fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="scope-{query.kind}.csv"'
    return guard.Reply(200, sink.getvalue(), headers, http_api.CONTENT_TYPES[query.fmt].split(";")[0])


def serve_scope(
    params: Mapping[str, str],
    headers: Mapping[str, str],
    storage: Storage,
    settings: ReportSettings,
    now: datetime | None = None,
) -> guard.Reply:
    """scope_reply behind the same role check and ReportAccess record as a report (no mailbox:
    the context is in the recorded parameters)."""
    return guard.serve_guarded(
        "", params, headers, storage, settings, lambda: scope_reply(params, storage, settings, now)
    )

"""`report_overhead_ratio`: what the exposure view costs beyond reading the rows.

30,000 rows of one mailbox are served by bench.table_replay (the Table query protocol over HTTP,
as Azurite answers it; see that module for why not Azurite itself). Two sides, in this process:

- paging (the denominator): `MailboxAccessTable.query_events` over the report's range, every row
  consumed: the SDK's paging and entity decoding and our entity-to-event conversion, the read path
  any stored report takes and cannot avoid;
- the report (the numerator): `render_report` of the exposure view as CSV, from
  `events_from_table` (that same paging, then the filters, the view's aggregation and the CSV
  writer), into memory, as `mia report MAILBOX --view exposure` produces it.

The figure is the median of the pair-by-pair ratios report / paging.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from azure.data.tables import TableServiceClient

from bench.data import START, mailbox_events
from bench.measure import goal_at_most, paired_ratios, require, timed
from bench.table_replay import TableReplay, serving
from devtools import azurite
from shared.reports.assemble import events_from_table, render_report
from shared.reports.request import ReportQuery, stored_subject
from shared.storage.tables import MailboxAccessTable

MAILBOX = "alice@contoso.com"
ROWS = 30_000
SEED = 5
PAGE_ROWS = 1_000  # MailboxAccessTable.query_events' page size, which the replay insists on
PAIRS = 3
GOAL_MAX = 1.5


def exposure_query() -> ReportQuery:
    end = START + timedelta(days=30)  # covers ROWS rows 20 s apart (about 7 days)
    return ReportQuery(subject=MAILBOX, by="mailbox", view="exposure", fmt="csv", start=START, end=end)


def page_rows(table: MailboxAccessTable, query: ReportQuery) -> int:
    return sum(1 for _ in table.query_events(stored_subject(query), query.start, query.end))


def render_exposure(table: MailboxAccessTable, query: ReportQuery) -> tuple[int, int]:
    """(rows of the view, characters of the CSV)."""
    out = io.StringIO()
    rows = render_report(query, events_from_table(table, query), out)
    return rows, len(out.getvalue())


def bench_report_overhead() -> dict[str, Any]:
    events = list(mailbox_events(MAILBOX, ROWS, seed=SEED))
    messages = len({(event.mailbox, item.internet_message_id) for event in events for item in event.items})
    require(
        not any(event.throttled or event.access == "Sync" for event in events), "only Message rows expected"
    )
    entities = [MailboxAccessTable.to_entity(event) for event in events]
    replay = TableReplay(MailboxAccessTable.NAME, entities[0]["PartitionKey"], entities, PAGE_ROWS)
    del events, entities
    query = exposure_query()
    paged: list[int] = []
    rendered: list[tuple[int, int]] = []

    def paging() -> float:
        seconds, rows = timed(page_rows, table, query)
        paged.append(rows)
        return seconds

    def report() -> float:
        seconds, result = timed(render_exposure, table, query)
        rendered.append(result)
        return seconds

    with serving(replay) as port:
        service = TableServiceClient.from_connection_string(azurite.connection_string(port, port, port))
        table = MailboxAccessTable.of(service)
        next(iter(table.query_events(stored_subject(query), query.start, query.end)))  # connect, untimed
        pairs = paired_ratios(report, paging, PAIRS)
    require(all(rows == ROWS for rows in paged), f"rows paged: {paged}")
    require(all(rows == messages for rows, _ in rendered), f"exposure rows {rendered}, {messages} messages")
    figure = goal_at_most(pairs["median_ratio"], GOAL_MAX)
    figure["measurements"] = {
        "rows": ROWS,
        "mailbox": MAILBOX,
        "served_by": "bench.table_replay (Table query protocol over HTTP, pages of 1,000)",
        "numerator": "render_report(view=exposure, format=csv) over events_from_table, seconds",
        "denominator": "MailboxAccessTable.query_events, every row consumed, seconds",
        "exposure_rows": messages,
        "csv_characters": rendered[-1][1],
        "replay_requests": replay.requests,
        **pairs,
    }
    return figure

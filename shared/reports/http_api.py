"""HTTP semantics of the report endpoint, free of the Functions runtime: inputs in, reply out."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlencode

from azure.core.exceptions import AzureError

from shared.access import principal as access
from shared.access.guard import Reply, error_reply, serve_guarded
from shared.ipcontext.context import IpContext, open_context
from shared.model.message_info import Lookup
from shared.model.times import iso_z
from shared.reports import html, workbook
from shared.reports.assemble import render_page, render_stored_workbook
from shared.reports.budget import ReportTooLarge, WorkBudget
from shared.reports.request import (
    ReportQuery,
    RequestError,
    encode_after,
    parse_report_request,
    stored_subject,
)
from shared.settings import ReportSettings
from shared.storage import Storage
from shared.storage.tables import AccessTable
from shared.subjects.resolver import SubjectResolver

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "xlsx": workbook.CONTENT_TYPE,
    "html": "text/html; charset=utf-8",
}
# Served as a file to save, never shown in the browser.
ATTACHMENTS = frozenset({"csv", "xlsx"})
# Never carried into the next page's link: the old token, and the function key in any casing.
_NOT_CARRIED = frozenset({"after", *access.SECRET_PARAMS})


def _filename(subject: str, view: str, fmt: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-@" else "_" for c in subject)[:100]
    # A workbook holds every view.
    return f"{safe}-{'report' if fmt == 'xlsx' else view}.{fmt}"


def _render(
    table: AccessTable,
    query: ReportQuery,
    settings: ReportSettings,
    lookup: Lookup | None,
    budget: WorkBudget,
    ip_context: IpContext,
) -> tuple[str | bytes, int, str | None]:
    """The body to serve, its row count and the continuation (None for the last page)."""
    if query.fmt == "xlsx":
        body, rows = render_stored_workbook(table, query, settings.page_rows, lookup, budget, ip_context)
        return body, rows, None
    page = render_page(table, query, settings.page_rows, lookup, budget, ip_context)
    return page.body, page.rows, page.next_after


def report_reply(
    subject: str,
    params: Mapping[str, str],
    storage: Storage,
    settings: ReportSettings,
    now: datetime | None = None,
    resolver: SubjectResolver | None = None,
) -> Reply:
    """GET /api/reports/{mailbox}: a page of the report, or a 4xx JSON error naming the problem.
    With a resolver, messages the records name without a subject are filled from MessageIndex and,
    within the on-demand budget, looked up."""
    try:
        query = parse_report_request(subject, params, settings, now)
    except RequestError as problem:
        return error_reply(problem.status, problem.code, problem.message)
    table = storage.access_table(query.by)
    budget = WorkBudget.starting_now(settings.max_aggregate_entries, settings.max_seconds)
    try:
        lookup = resolver.report_lookup() if resolver is not None else None
        ip_context = open_context(settings.ip_databases)
        body, rows, next_after = _render(table, query, settings, lookup, budget, ip_context)
    except ReportTooLarge as refused:
        return error_reply(422, "report_too_large", str(refused))
    except AzureError:
        log.exception("report storage query failed")
        return error_reply(503, "storage_unavailable", "storage did not answer; try again shortly")
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "X-Row-Count": str(rows),
    }
    if query.fmt == "html":
        headers["Content-Security-Policy"] = html.HEADER_CONTENT_SECURITY_POLICY
        headers["Referrer-Policy"] = "no-referrer"
    if query.fmt in ATTACHMENTS:
        headers["Content-Disposition"] = (
            f'attachment; filename="{_filename(stored_subject(query), query.view, query.fmt)}"'
        )
    if next_after:
        next_params = {k: v for k, v in params.items() if k.lower() not in _NOT_CARRIED}
        # Pin the resolved range so a later default "now" cannot shift the following pages.
        next_params["from"] = iso_z(query.start)
        next_params["to"] = iso_z(query.end - timedelta(seconds=1))
        token = encode_after(next_after)
        next_params["after"] = token
        headers["X-Continuation"] = token
        headers["Link"] = f'<?{urlencode(next_params)}>; rel="next"'
    return Reply(200, body, headers, CONTENT_TYPES[query.fmt].split(";")[0])


def serve_report(
    subject: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    storage: Storage,
    settings: ReportSettings,
    now: datetime | None = None,
    resolver: SubjectResolver | None = None,
) -> Reply:
    """report_reply behind the app-role check, with every request recorded in ReportAccess."""
    return serve_guarded(
        subject, params, headers, storage, settings,
        lambda: report_reply(subject, params, storage, settings, now, resolver),
    )  # fmt: skip

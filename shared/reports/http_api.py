"""HTTP semantics of the report endpoint, free of the Functions runtime: inputs in, reply out."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

import orjson
from azure.core.exceptions import AzureError

from shared.ipcontext.context import IpContext, open_context
from shared.model.message_info import Lookup
from shared.model.times import iso_z
from shared.reports import access, html, workbook
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
CORRELATION_HEADER = "X-Correlation-Id"
# Never carried into the next page's link: the old token, and the function key in any casing.
_NOT_CARRIED = frozenset({"after", *access.SECRET_PARAMS})


@dataclass
class Reply:
    status: int
    body: str | bytes  # bytes for a workbook
    headers: dict[str, str] = field(default_factory=dict)
    mimetype: str = "application/json"


def error_reply(status: int, code: str, message: str) -> Reply:
    body = orjson.dumps({"error": {"code": code, "message": message}}).decode()
    return Reply(status, body, {"X-Content-Type-Options": "nosniff"})


def internal_error(correlation_id: str) -> Reply:
    """The answer to a failure nobody foresaw: no detail, only the id that finds it in the logs."""
    reply = error_reply(
        500,
        "internal_error",
        f"the report could not be produced; quote correlation id {correlation_id} to the operator",
    )
    reply.headers[CORRELATION_HEADER] = correlation_id
    return reply


def new_correlation_id() -> str:
    return uuid.uuid4().hex


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


def _error_code(reply: Reply) -> str:
    if reply.status < 400:
        return ""
    try:
        return str(orjson.loads(reply.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


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


def serve_guarded(
    subject: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    storage: Storage,
    settings: ReportSettings,
    answer: Callable[[], Reply],
) -> Reply:
    """`answer()` behind the app-role check, with every request recorded in ReportAccess (under
    `subject`, the mailbox asked for, or "" when the request names none): every endpoint that
    serves audit data goes through here.

    Refused callers never reach the data. A report whose access cannot be recorded is not served.
    Any failure is answered as a JSON error carrying a correlation id, which the log line and the
    ReportAccess row of the request carry too.
    """
    correlation_id = new_correlation_id()
    principal: access.Principal | None = None
    reply: Reply | None = None
    try:
        principal, refusal = access.authorize(headers, settings.required_role, settings.platform_auth)
        if refusal is not None:
            reply = error_reply(refusal.status, refusal.code, refusal.message)
        else:
            reply = answer()
    except Exception:
        log.exception("report request failed; correlation id %s", correlation_id)
        reply = internal_error(correlation_id)
    finally:
        # Also reached when a BaseException (a cancelled worker) unwinds: that request is recorded too.
        answered = reply if reply is not None else internal_error(correlation_id)
        recorded = _record_access(
            storage, subject, params, headers, settings, principal, answered, correlation_id
        )
    if not recorded and answered.status < 400:
        answered = error_reply(
            503, "access_log_unavailable", "the request could not be recorded; try again shortly"
        )
    answered.headers[CORRELATION_HEADER] = correlation_id
    return answered


def _record_access(
    storage: Storage,
    subject: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    settings: ReportSettings,
    principal: access.Principal | None,
    reply: Reply,
    correlation_id: str,
) -> bool:
    """Write the request's ReportAccess row; False (logged, never raised) when it cannot be."""
    try:
        access.record(
            storage.report_access,
            principal=principal,
            mailbox=subject,
            params=params,
            status=reply.status,
            error_code=_error_code(reply),
            body=reply.body,
            client_ip=access.client_ip(headers),
            correlation_id=correlation_id,
            principal_headers_ignored=(not settings.platform_auth and access.principal_headers_sent(headers)),
        )
    except Exception:  # storage down (AzureError) or anything else: the caller gets a JSON error
        log.exception("report access could not be recorded; correlation id %s", correlation_id)
        return False
    return True

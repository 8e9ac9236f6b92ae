"""The guard every endpoint that serves audit data goes through: the app-role check, the JSON
error answers, and the ReportAccess row of every request, served or refused."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from shared.access import principal as access
from shared.settings import ReportSettings
from shared.storage import Storage

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-Id"


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


def cannot_start(endpoint: str) -> Reply:
    """The answer of an endpoint whose settings or storage did not load, called where that was
    caught: there is no ReportAccess to write to then, so the logged exception, under the
    correlation id the caller is given, is the trace."""
    correlation_id = new_correlation_id()
    log.exception("%s endpoint cannot start; correlation id %s", endpoint, correlation_id)
    return internal_error(correlation_id)


def _error_code(reply: Reply) -> str:
    if reply.status < 400:
        return ""
    try:
        return str(orjson.loads(reply.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unknown"


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

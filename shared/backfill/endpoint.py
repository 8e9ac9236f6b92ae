"""POST /api/backfills and GET /api/backfills/{id}: start a backfill job, and answer its state,
behind the same role check and ReportAccess record as reports. The job itself runs in
advance_backfills (a timer), so a request never waits for Graph.

POST takes a JSON object: `from` and `to` (ISO 8601 dates or date-times, UTC; a date as `to`
means that whole day), optional `mailboxes` (UPNs) and `source`: "auditquery" (the Graph audit-log
query API, the default) or "sentinel" with `workspace` (a Log Analytics Workspace ID). Exported
files (Sentinel or PowerShell exports) are stored with `mia import`. It answers 202 with the new
job (and its Location), or 200 with the job the same request already started."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from azure.core.exceptions import AzureError

from shared.access import guard
from shared.access.params import EARLIEST, GUID, UPN, RequestError, parse_end, parse_time
from shared.backfill import auditquery, sentinel
from shared.model.times import utcnow
from shared.settings import ReportSettings
from shared.storage import Storage

ROUTE = "/api/backfills"
MAX_BODY_BYTES = 64 * 1024
MAX_MAILBOXES = 100
FIELDS = frozenset({"from", "to", "mailboxes", "source", "workspace"})
SOURCES = (auditquery.SOURCE, sentinel.SOURCE)
# What job_id_for makes: the source, then 20 hex digits.
_JOB_ID = re.compile(r"[a-z]{1,32}-[0-9a-f]{20}")
# Job states are written by the engine; this header tells a poller when to ask again.
RETRY_AFTER_SECONDS = "60"


def _json(status: int, document: Mapping[str, Any], **headers: str) -> guard.Reply:
    body = orjson.dumps(document).decode()
    return guard.Reply(
        status, body, {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", **headers}
    )


def _shown(value: object) -> str:
    return str(value)[:64].encode("unicode_escape").decode()


def _text_field(document: Mapping[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise RequestError(
            400, f"invalid_{name}", f"'{name}' must be a string (an ISO 8601 date or date-time)"
        )
    return value


def _mailboxes(document: Mapping[str, Any]) -> tuple[str, ...]:
    value = document.get("mailboxes", [])
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise RequestError(400, "invalid_mailboxes", "'mailboxes' must be a list of user principal names")
    if len(value) > MAX_MAILBOXES:
        raise RequestError(
            400, "invalid_mailboxes", f"at most {MAX_MAILBOXES} mailboxes a job; got {len(value)}"
        )
    for mailbox in value:
        if not UPN.fullmatch(mailbox):
            raise RequestError(400, "invalid_mailboxes", f"'{_shown(mailbox)}' is not a user principal name")
    return tuple(value)


@dataclass(frozen=True)
class JobRequest:
    source: str
    start: datetime
    end: datetime
    mailboxes: tuple[str, ...]
    workspace: str = ""


def _source(document: Mapping[str, Any]) -> tuple[str, str]:
    source = document.get("source", auditquery.SOURCE)
    if source not in SOURCES:
        raise RequestError(
            400,
            "unsupported_source",
            f"'source' is one of {', '.join(SOURCES)}; got '{_shown(source)}'. Exported files "
            "(Sentinel or PowerShell exports) are stored with `mia import`",
        )
    workspace = document.get("workspace")
    if source == sentinel.SOURCE:
        if not isinstance(workspace, str) or not GUID.fullmatch(workspace):
            raise RequestError(
                400, "invalid_workspace", "'workspace' must be the Log Analytics Workspace ID (a GUID)"
            )
        return source, workspace
    if workspace is not None:
        raise RequestError(400, "invalid_workspace", "'workspace' is for source 'sentinel' only")
    return source, ""


def parse_job_request(body: bytes, now: datetime) -> JobRequest:
    """The job a POST body asks for, or RequestError naming what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RequestError(400, "invalid_json", "the request body must be a JSON object") from None
    if not isinstance(document, dict):
        raise RequestError(400, "invalid_json", "the request body must be a JSON object")
    unknown = sorted(set(document) - FIELDS)
    if unknown:
        raise RequestError(
            400,
            "unknown_field",
            f"unknown field '{_shown(unknown[0])}'; the fields are {', '.join(sorted(FIELDS))}",
        )
    source, workspace = _source(document)
    for name in ("from", "to"):
        if name not in document:
            raise RequestError(400, f"missing_{name}", f"'{name}' is required")
    start = parse_time("from", _text_field(document, "from"), end_of_day=False)
    # Not cut to now: the same request names the same job whichever minute it is sent (as with
    # `mia backfill`), and the query simply finds nothing past now.
    end = parse_end(_text_field(document, "to"))
    if not EARLIEST <= start <= now or end > now + timedelta(days=1):
        raise RequestError(
            400,
            "date_out_of_range",
            "'from' must fall between 2015-01-01 and now, 'to' no later than tomorrow",
        )
    if end <= start:
        raise RequestError(400, "invalid_range", "'to' must be after 'from'")
    return JobRequest(source, start, end, _mailboxes(document), workspace)


def start_reply(
    body: bytes,
    storage: Storage,
    unavailable: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> guard.Reply:
    """POST /api/backfills: 202 and the job created, or 200 and the job the same request made.
    `unavailable` says, by source, why jobs of that source cannot run here."""
    moment = now or utcnow()
    try:
        asked = parse_job_request(body, moment)
    except RequestError as problem:
        return guard.error_reply(problem.status, problem.code, problem.message)
    reason = (unavailable or {}).get(asked.source)
    if reason:
        return unavailable_reply(reason)
    table = storage.backfill_jobs
    try:
        if asked.source == sentinel.SOURCE:
            job, created = sentinel.start_job(
                table, asked.workspace, asked.start, asked.end, asked.mailboxes, now=moment
            )
        else:
            job, created = auditquery.start_job(table, asked.start, asked.end, asked.mailboxes, now=moment)
    except AzureError:
        return guard.error_reply(503, "storage_unavailable", "storage did not answer; try again shortly")
    location = f"{ROUTE}/{job.id}"
    return _json(
        202 if created else 200, job.as_dict(), Location=location, **{"Retry-After": RETRY_AFTER_SECONDS}
    )


def state_reply(job_id: str, storage: Storage) -> guard.Reply:
    """GET /api/backfills/{id}: the job's state, its windows and the queries that cover them."""
    if not _JOB_ID.fullmatch(job_id):
        return guard.error_reply(
            400,
            "invalid_job_id",
            f"'{_shown(job_id)}' is not a backfill job id (as POST /api/backfills answers)",
        )
    try:
        job = storage.backfill_jobs.job(job_id)
    except AzureError:
        return guard.error_reply(503, "storage_unavailable", "storage did not answer; try again shortly")
    if job is None:
        return guard.error_reply(404, "job_not_found", f"no backfill job '{job_id}'")
    headers = {} if job.state in ("done", "failed") else {"Retry-After": RETRY_AFTER_SECONDS}
    return _json(200, job.as_dict(), **headers)


def unavailable_reply(reason: str) -> guard.Reply:
    """The answer where backfill cannot run here (GCC High, DoD, or its settings are wrong)."""
    return guard.error_reply(501, "backfill_unavailable", reason)


def _recorded_body(body: bytes) -> dict[str, str]:
    # The request's own fields go into ReportAccess (bounded there); a body that is not text is
    # recorded by its length only.
    try:
        return {"body": body[:MAX_BODY_BYTES].decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_bytes": str(len(body))}


def serve_start(
    body: bytes,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    storage: Storage,
    settings: ReportSettings,
    unavailable: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> guard.Reply:
    """start_reply behind the role check, recorded in ReportAccess with the body asked for."""
    recorded = {**params, **_recorded_body(body), "endpoint": "backfills:start"}
    return guard.serve_guarded(
        "", recorded, headers, storage, settings, lambda: start_reply(body, storage, unavailable, now)
    )


def serve_state(
    job_id: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    storage: Storage,
    settings: ReportSettings,
) -> guard.Reply:
    """state_reply behind the role check, recorded in ReportAccess."""
    recorded = {**params, "job": job_id[:256], "endpoint": "backfills:state"}
    return guard.serve_guarded("", recorded, headers, storage, settings, lambda: state_reply(job_id, storage))

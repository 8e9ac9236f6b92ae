"""backfills_http: POST /api/backfills starts a backfill job (advance_backfills runs it);
GET /api/backfills/{id} answers its state. Same role check and ReportAccess record as reports."""

import azure.functions as func

from shared import runtime
from shared.access import guard
from shared.backfill import auditquery, endpoint, sentinel
from shared.settings import SettingsError, load_backfill_settings, load_sentinel_settings

bp = func.Blueprint()


def _unavailable() -> dict[str, str]:
    """Why jobs of a source cannot run here (the audit-log query API in GCC High and DoD, or
    settings that do not load), by source."""
    reasons = {}
    for source, load in (
        (auditquery.SOURCE, load_backfill_settings),
        (sentinel.SOURCE, load_sentinel_settings),
    ):
        try:
            load()
        except SettingsError as problem:
            reasons[source] = str(problem)
    return reasons


def _reply(req: func.HttpRequest) -> guard.Reply:
    try:
        storage, settings = runtime.storage(), runtime.settings().report
    except Exception:
        return guard.cannot_start("backfills")
    params, headers = dict(req.params), dict(req.headers)
    job_id = req.route_params.get("id")
    if job_id is None:
        return endpoint.serve_start(req.get_body(), params, headers, storage, settings, _unavailable())
    return endpoint.serve_state(job_id, params, headers, storage, settings)


def _response(reply: guard.Reply) -> func.HttpResponse:
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=reply.headers, mimetype=reply.mimetype
    )


@bp.function_name("backfills_http")
@bp.route(route="backfills", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def backfills_http(req: func.HttpRequest) -> func.HttpResponse:
    return _response(_reply(req))


@bp.function_name("backfill_state_http")
@bp.route(route="backfills/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def backfill_state_http(req: func.HttpRequest) -> func.HttpResponse:
    return _response(_reply(req))

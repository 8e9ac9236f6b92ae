"""report_http: GET /api/reports/{mailbox} -> a per-mailbox report (CSV, JSON, an XLSX workbook or an
HTML page)."""

import azure.functions as func

from shared import runtime
from shared.access import guard
from shared.reports import http_api

bp = func.Blueprint()


def _reply(req: func.HttpRequest) -> guard.Reply:
    try:
        storage, settings, resolver = runtime.storage(), runtime.settings().report, runtime.resolver()
    except Exception:
        return guard.cannot_start("report")
    return http_api.serve_report(
        req.route_params.get("mailbox", ""),
        dict(req.params),
        dict(req.headers),
        storage,
        settings,
        resolver=resolver,
    )


@bp.function_name("report_http")
@bp.route(route="reports/{mailbox}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def report_http(req: func.HttpRequest) -> func.HttpResponse:
    reply = _reply(req)
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=reply.headers, mimetype=reply.mimetype
    )

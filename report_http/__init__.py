"""report_http: GET /api/reports/{mailbox} -> a per-mailbox report (CSV or JSON)."""

import azure.functions as func

from shared import http_api, runtime

bp = func.Blueprint()


@bp.function_name("report_http")
@bp.route(route="reports/{mailbox}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def report_http(req: func.HttpRequest) -> func.HttpResponse:
    reply = http_api.serve_report(
        req.route_params.get("mailbox", ""),
        dict(req.params),
        dict(req.headers),
        runtime.storage(),
        runtime.settings().report,
        resolver=runtime.resolver(),
    )
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=reply.headers, mimetype=reply.mimetype
    )

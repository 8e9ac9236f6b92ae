"""health_http: GET /api/health -> collection lag, queue depths, alert outbox state (JSON)."""

import azure.functions as func

from shared import runtime
from shared.alerts import health

bp = func.Blueprint()


@bp.function_name("health_http")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def health_http(req: func.HttpRequest) -> func.HttpResponse:
    # A setting that does not validate is reported, not a crash.
    status, body = health.health_reply(runtime.storage(), runtime.valid_settings())
    return func.HttpResponse(
        body,
        status_code=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )

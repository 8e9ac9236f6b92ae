"""scope_http: GET /api/scope?ip=|network=|app=|session=|actor=&from=&to= -> the mailboxes that one
context touched, or (view=mailboxes) every mailbox for triage, from the ContextIndex (CSV, JSON or
an HTML page)."""

import azure.functions as func

from shared import runtime
from shared.access import guard
from shared.reports import scope

bp = func.Blueprint()


def _reply(req: func.HttpRequest) -> guard.Reply:
    try:
        storage, settings = runtime.storage(), runtime.settings().report
    except Exception:
        return guard.cannot_start("scope")
    return scope.serve_scope(dict(req.params), dict(req.headers), storage, settings)


@bp.function_name("scope_http")
@bp.route(route="scope", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def scope_http(req: func.HttpRequest) -> func.HttpResponse:
    reply = _reply(req)
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=reply.headers, mimetype=reply.mimetype
    )

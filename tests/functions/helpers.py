"""Indexing the real `function_app.app` as the Functions host does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.functions as func

from function_app import app


def registered_functions() -> dict[str, func.Function]:
    """`app.get_functions()` by name.

    azure-functions 1.26 records every indexed name in `app.functions_bindings` and refuses a
    second `get_functions()` call as a "duplicate name"; the record is set aside for the call and
    restored afterwards, so any test (here or elsewhere in the process) can index the app again.
    """
    saved = app.functions_bindings
    app.functions_bindings = None
    try:
        return {str(fn.get_function_name()): fn for fn in app.get_functions()}
    finally:
        app.functions_bindings = saved


def user_function(name: str) -> Callable[..., Any]:
    return registered_functions()[name].get_user_function()


def timer_tick() -> func.TimerRequest:
    return func.timer.TimerRequest(past_due=False)


def get_request(url: str, route_params: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(method="GET", url=url, body=b"", params={}, route_params=route_params or {})


def health() -> dict[str, Any]:
    """GET /api/health through the real handler; it always answers 200 with the JSON status."""
    response = user_function("health_http")(get_request("/api/health"))
    assert response.status_code == 200
    body: dict[str, Any] = json.loads(response.get_body())
    return body

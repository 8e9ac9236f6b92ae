"""Indexing the real `function_app.app` as the Functions host does."""

from __future__ import annotations

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

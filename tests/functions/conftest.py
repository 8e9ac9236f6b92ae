"""Handlers as the Functions host indexes them, from the real `function_app.app`."""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func
import pytest

from shared.ingest import pipeline
from shared.storage import Storage
from tests.functions.helpers import user_function
from tests.helpers import SAMPLE


@pytest.fixture
def enrich_trace() -> Callable[[func.QueueMessage], None]:
    return user_function("enrich_trace")


@pytest.fixture
def report_http() -> Callable[[func.HttpRequest], func.HttpResponse]:
    return user_function("report_http")


@pytest.fixture
def loaded(function_env: Storage) -> Storage:
    """The bundled sample export imported and processed into Azurite."""
    pipeline.import_file(function_env, SAMPLE)
    pipeline.drain_queue(function_env)
    return function_env

"""Shared fixtures. Storage tests run against a real Azurite started once per test process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError

from devtools.azurite import running_azurite
from shared import runtime
from shared.config import StorageSettings
from shared.storage import QUEUES, RAW_CONTAINER, TABLES, Storage


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Connection string of a private in-memory Azurite on free loopback ports."""
    with running_azurite() as connection_string:
        yield connection_string


@pytest.fixture
def storage(azurite: str) -> Storage:
    """Empty container, queues and tables for each test."""
    store = Storage.from_settings(StorageSettings(connection_string=azurite))
    with contextlib.suppress(ResourceNotFoundError):
        store.blobs.delete_container(RAW_CONTAINER)
    for queue in QUEUES:
        with contextlib.suppress(ResourceNotFoundError):
            store.queues.delete_queue(queue)
    for table in TABLES:
        store.tables.delete_table(table)  # no error when absent
    store.ensure_resources()
    return store


@pytest.fixture
def function_env(azurite: str, monkeypatch: pytest.MonkeyPatch, storage: Storage) -> Iterator[Storage]:
    """Environment the function host would give the handlers, pointing at Azurite."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    runtime.reset()
    yield storage
    runtime.reset()

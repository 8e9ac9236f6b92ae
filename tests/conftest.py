"""Shared fixtures. Storage tests run against a real Azurite started once per test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.azurite import fresh_storage, running_azurite
from shared import runtime
from shared.storage import Storage


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """Connection string of a private in-memory Azurite on free loopback ports."""
    with running_azurite() as connection_string:
        yield connection_string


@pytest.fixture
def storage(azurite: str) -> Storage:
    """Empty container, queues and tables for each test."""
    return fresh_storage(azurite)


@pytest.fixture
def function_env(azurite: str, monkeypatch: pytest.MonkeyPatch, storage: Storage) -> Iterator[Storage]:
    """Environment the function host would give the handlers, pointing at Azurite."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    runtime.reset()
    yield storage
    runtime.reset()

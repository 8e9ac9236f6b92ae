"""Shared fixtures, and the test tiers.

Every test module declares one tier with `pytestmark`, so `pytest -m unit` runs what needs no
server at all; collection fails on a test without a tier, or on a `unit` test that asks for Azurite.

- `unit`: pure logic, no server;
- `integration`: real Azurite and/or the simulator over HTTP(S) on 127.0.0.1;
- `functions`: the handlers as the Functions host indexes them, with real `azure.functions` objects;
- `infra`: the Bicep templates, checkov and the deployment scripts;
- `browser`: the HTML report in a real headless Chromium (Debian's chromium and chromium-driver).

Storage tests run against a real Azurite started once per test process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.azurite import fresh_storage, running_azurite
from shared import runtime
from shared.storage import Storage

TIERS = ("unit", "integration", "functions", "infra", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier)]
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid}: needs exactly one tier marker of {TIERS}, has {tiers}")
        if tiers == ["unit"] and "azurite" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: a unit test must not need Azurite (mark it integration)")


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


@pytest.fixture(scope="module")
def simulator_ca_only() -> Iterator[None]:
    """The simulator's CA bundle is the one used by tests that call it with plain `requests`.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify, which is how MSAL
    passes verify=; they are cleared for the module."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            patch.delenv(name, raising=False)
        yield

"""Fixtures of the integration tests that talk to the simulator with plain `requests`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def simulator_ca_only() -> Iterator[None]:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify, which is how MSAL
    # passes verify=; clear them so the simulator's CA bundle is the one used.
    with pytest.MonkeyPatch.context() as patch:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            patch.delenv(name, raising=False)
        yield

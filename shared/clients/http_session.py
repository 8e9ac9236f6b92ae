"""requests sessions that honour the CA_BUNDLE setting.

requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override `session.verify`
(psf/requests#3829), so a bundle set on the session alone is silently ignored on machines that set
those variables. The bundle is therefore passed on every request.
"""

from __future__ import annotations

from typing import Any

import requests


class CaBundleSession(requests.Session):
    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.verify = ca_bundle
        self._ca_bundle = ca_bundle

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, *args, **kwargs)


def session_for(ca_bundle: str | None) -> requests.Session:
    """A session trusting `ca_bundle` when given (a simulator, a TLS-inspecting proxy), else the
    system's trust store."""
    return CaBundleSession(ca_bundle) if ca_bundle else requests.Session()

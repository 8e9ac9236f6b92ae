"""requests sessions that honour the CA_BUNDLE setting.

requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override `session.verify`
(psf/requests#3829), so a bundle set on the session alone is silently ignored on machines that set
those variables. The bundle is therefore passed on every request.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter


class CaBundleSession(requests.Session):
    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.verify = ca_bundle
        self._ca_bundle = ca_bundle

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("verify", self._ca_bundle)
        return super().request(method, url, *args, **kwargs)


def session_for(ca_bundle: str | None, pool_size: int | None = None) -> requests.Session:
    """A session trusting `ca_bundle` when given (a simulator, a TLS-inspecting proxy), else the
    system's trust store; with `pool_size` connections kept per host for that many threads."""
    session = CaBundleSession(ca_bundle) if ca_bundle else requests.Session()
    if pool_size is not None:
        session.mount("https://", HTTPAdapter(pool_maxsize=pool_size))
    return session

"""POST one alert body to the webhook. Errors say what happened without the URL (it may hold a
token) or the secret."""

from __future__ import annotations

import requests


class DeliveryError(RuntimeError):
    """The receiver did not accept the alert; the message is safe to store and log. `status` is the
    receiver's HTTP status, 0 when it did not answer."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """Send once; returns the 2xx status or raises DeliveryError."""
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        raise DeliveryError(f"receiver timed out after {timeout:g} s") from None
    except requests.RequestException as problem:
        raise DeliveryError(f"receiver unreachable: {type(problem).__name__}") from None
    with response:
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"receiver answered HTTP {response.status_code}", response.status_code)
        return response.status_code

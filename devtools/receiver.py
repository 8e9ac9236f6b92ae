"""A real webhook receiver on 127.0.0.1 (a free port, in a thread) for the demo and the tests.

It verifies `X-Signature-256` over `X-Signature-Timestamp` and the body against the secret it was
given, refusing a timestamp more than five minutes from its clock (a replay), and records every
request. It can be
told to fail (HTTP 503) for a number of requests, or until told otherwise, to play a receiver that
is down.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from shared.alerts.rules import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None  # None: no secret to check against
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, secret: str | None = None, path: str = "/alerts") -> None:
        self.secret = secret
        self.path = path
        self.received: list[Received] = []
        self.fail_next = 0  # answer 503 to this many requests
        self.down = False  # answer 503 to every request while set
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver._status()
                signature_ok = (
                    None
                    if receiver.secret is None
                    else verify_signature(
                        body,
                        self.headers.get(SIGNATURE_HEADER),
                        self.headers.get(TIMESTAMP_HEADER),
                        receiver.secret,
                    )
                )
                if signature_ok is False and status == 200:
                    status = 401
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, signature_ok, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _status(self) -> int:
        with self._lock:
            if self.down:
                return 503
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503
            return 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def accepted(self) -> list[Received]:
        """Requests answered 200 (signature verified when a secret is set)."""
        with self._lock:
            return [r for r in self.received if r.status == 200]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

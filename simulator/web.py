"""A small HTTPS server on the standard library: ThreadingHTTPServer, TLS, HTTP/1.1 keep-alive.

The application is a function from `Request` to `Reply`. TLS handshakes happen on the connection's
own thread, so a slow client never blocks `accept()`. A `Reply` may carry `on_sent`, run only after
the whole body has been written (the ground truth counts complete responses only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("simulator")
JSON = "application/json; charset=utf-8"
MAX_BODY = 1 << 20
CONNECTION_ERRORS = (ConnectionError, TimeoutError, ssl.SSLError, OSError)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    client_host: str

    def param(self, name: str) -> str | None:
        """First value of a query parameter; names match case-insensitively, as on the real service."""
        wanted = name.lower()
        for key, values in self.query.items():
            if key.lower() == wanted and values:
                return values[0]
        return None

    def has_param(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key in self.query)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = JSON
    on_sent: Callable[[], None] | None = None
    #: After a stall, skip the answer if the client has hung up meanwhile (it timed out).
    check_peer: bool = False
    on_peer_gone: Callable[[], None] | None = None


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, dict(headers or {}))


App = Callable[[Request], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return format_datetime(self.server.clock(), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _request(self) -> Request:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        return Request(
            method=self.command,
            path=unquote(parts.path),
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_host=self.client_address[0],
        )

    def _serve(self) -> None:
        try:
            reply = self.server.app(self._request())
        except Exception:
            log.exception("simulator: unhandled error for %s %s", self.command, self.path)
            reply = json_reply(500, {"error": {"code": "AF50000", "message": "An internal error occurred."}})
        if reply.check_peer and self._peer_gone():
            self.close_connection = True
            if reply.on_peer_gone is not None:
                reply.on_peer_gone()
            return
        self.send_response(reply.status)
        if reply.content_type and (reply.body or reply.status != 200):
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.wfile.flush()
        if reply.on_sent is not None:
            reply.on_sent()

    def _peer_gone(self) -> bool:
        """Has the client closed its side (EOF waiting, no data)? Peeks without consuming."""
        try:
            with socket.fromfd(self.connection.fileno(), socket.AF_INET, socket.SOCK_STREAM) as raw:
                return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        port: int,
        app: App,
        tls: ssl.SSLContext,
        clock: Callable[[], Any],
        idle_timeout: float,
    ) -> None:
        self.app = app
        self.tls = tls
        self.clock = clock
        self.idle_timeout = idle_timeout
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs on the connection's thread: TLS handshake, then HTTP."""
        request.settimeout(self.idle_timeout)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except CONNECTION_ERRORS:
            return  # a client that gave up or does not speak TLS
        with self._open_lock:
            self._open.add(connection)
        try:
            _Handler(connection, client_address, self)
        except CONNECTION_ERRORS:
            pass  # the client went away mid-request
        finally:
            with self._open_lock:
                self._open.discard(connection)
            connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("simulator: connection error from %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def tls_context(certificate: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    return context

"""The app's HTTP functions served over real HTTP on 127.0.0.1, for scripts that call a deployed app.

Each request is routed the way the Functions host routes it (the `api` prefix and the trigger's
route template), refused with 401 without the function key when the trigger's auth level is
FUNCTION (the host takes the key from the `code` query parameter or the `x-functions-key` header:
https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#api-key-authorization),
and handed to the real handler as an `azure.functions.HttpRequest`.

`EasyAuth` stands in for App Service authentication in front of the app: with Return401 a request
without a valid token gets 401 before the app sees it, and the platform removes any
X-MS-CLIENT-PRINCIPAL* header a caller sent and sets its own for a signed-in caller
(https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities#access-user-claims-in-app-code).
Its switches let a test turn either behaviour off, to see a check fail on a platform that misbehaves.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from tests.functions.helpers import registered_functions

ROUTE_PREFIX = "/api/"
PRINCIPAL_PREFIX = "x-ms-client-principal"


@dataclass(frozen=True)
class EasyAuth:
    """App Service authentication in front of the app; `token` is the one bearer token it accepts,
    signing the caller in with `roles`."""

    token: str
    roles: tuple[str, ...]
    require_token: bool = True
    strip_principal_headers: bool = True

    def principal(self) -> str:
        claims = [{"typ": "preferred_username", "val": "investigator@contoso.com"}]
        claims += [{"typ": "roles", "val": role} for role in self.roles]
        document = {"auth_typ": "aad", "name_typ": "preferred_username", "claims": claims}
        return base64.b64encode(json.dumps(document).encode()).decode()


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    needs_key: bool
    handler: Callable[[func.HttpRequest], func.HttpResponse]


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(regex)


def http_routes() -> list[Route]:
    routes = []
    for function in registered_functions().values():
        trigger: Any = function.get_trigger()
        if not isinstance(trigger, func.decorators.http.HttpTrigger):
            continue
        routes.append(
            Route(
                pattern=_pattern(str(trigger.route)),
                methods=frozenset(str(method.value) for method in trigger.methods or ()),
                needs_key=trigger.auth_level == func.AuthLevel.FUNCTION,
                handler=function.get_user_function(),
            )
        )
    return routes


def _header(headers: dict[str, str], name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name), "")


def _handler_class(routes: list[Route], key: str, easy_auth: EasyAuth | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self._serve("GET")

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query))
            headers = {name: value for name, value in self.headers.items()}
            if easy_auth is not None:
                if easy_auth.strip_principal_headers:
                    headers = {k: v for k, v in headers.items() if not k.lower().startswith(PRINCIPAL_PREFIX)}
                if _header(headers, "authorization") == f"Bearer {easy_auth.token}":
                    headers["X-MS-CLIENT-PRINCIPAL"] = easy_auth.principal()
                elif easy_auth.require_token:
                    self._send(401, b"", {})
                    return
            if not parts.path.startswith(ROUTE_PREFIX):
                self._send(404, b"", {})
                return
            for route in routes:
                match = route.pattern.fullmatch(parts.path[len(ROUTE_PREFIX) :])
                if match is None or method not in route.methods:
                    continue
                sent_key = params.pop("code", None) or _header(headers, "x-functions-key")
                if route.needs_key and sent_key != key:
                    self._send(401, b"", {})
                    return
                request = func.HttpRequest(
                    method=method,
                    url=f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}",
                    headers=headers,
                    params=params,
                    route_params=match.groupdict(),
                    body=b"",
                )
                response = route.handler(request)
                reply_headers = dict(response.headers)
                if response.mimetype:
                    reply_headers["Content-Type"] = response.mimetype
                self._send(response.status_code, response.get_body(), reply_headers)
                return
            self._send(404, b"", {})

    return Handler


@contextmanager
def serving(key: str, easy_auth: EasyAuth | None = None) -> Iterator[str]:
    """The base URL (http://127.0.0.1:<port>) of the app's HTTP functions, served until exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(http_routes(), key, easy_auth))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

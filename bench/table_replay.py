"""Serve stored rows of one partition over the Table service query protocol, read-only.

Why: Azurite 3.35 looks an entity up by scanning its whole partition on every insert or upsert
(LokiJS uses its PartitionKey index, then filters RowKey linearly), so loading one mailbox of
100,000 rows is quadratic: hours, not minutes. The report's memory is a property of the client
(SDK paging, deserialization, our views and CSV writer), so for that figure the rows are served by
this stand-in, which answers the report's query exactly as Azurite does: pages of `$top` entities
in the same JSON (`odata.metadata`, `odata.etag`, `Timestamp`), base64 continuation headers.
It runs in the parent process, so the measured child sees only real HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import orjson
from azure.data.tables import EdmType, EntityProperty

CONTENT_TYPE = "application/json;odata=minimalmetadata"
API_VERSION = "2025-11-05"


def _wire(entity: dict[str, Any]) -> dict[str, Any]:
    """An entity as the Table service writes it in JSON: Int64 values as strings, typed."""
    wire: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, EntityProperty) and value.edm_type == EdmType.INT64:
            wire[name] = str(value.value)
            wire[f"{name}@odata.type"] = "Edm.Int64"
        else:
            wire[name] = value
    return wire


def _token(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


class TableReplay:
    """The rows of one partition, pre-encoded as the pages Azurite would send."""

    def __init__(self, table: str, partition: str, entities: list[dict[str, Any]], page_rows: int) -> None:
        self.table = table
        self.partition = partition
        self.page_rows = page_rows
        self.rows = len(entities)
        self.requests = 0
        self.bytes_served = 0
        self.pages: list[bytes] = []
        self.page_by_token: dict[str, int] = {}
        self.first_row_keys: list[str] = []
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        for start in range(0, len(entities), page_rows):
            page = entities[start : start + page_rows]
            self.first_row_keys.append(page[0]["RowKey"])
            self.page_by_token[_token(page[0]["RowKey"])] = len(self.pages)
            self.pages.append(self._encode(page, stamp))

    def _encode(self, entities: list[dict[str, Any]], stamp: str) -> bytes:
        etag = f"W/\"datetime'{quote(stamp)}'\""
        value = [{"odata.etag": etag, **_wire(entity), "Timestamp": stamp} for entity in entities]
        metadata = f"http://127.0.0.1/devstoreaccount1/$metadata#{self.table}"
        return orjson.dumps({"odata.metadata": metadata, "value": value})

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one GET of the table's query URL."""
        url = urlsplit(path)
        params = {name: values[-1] for name, values in parse_qs(url.query).items()}
        wanted = f"PartitionKey eq '{self.partition}'"
        if not url.path.endswith(f"/{self.table}()") or wanted not in params.get("$filter", ""):
            return 400, {}, b'{"odata.error":{"code":"NotSupportedByReplay"}}'
        if int(params.get("$top", self.page_rows)) != self.page_rows:
            return 400, {}, b'{"odata.error":{"code":"PageSizeNotReplayed"}}'
        index = self.page_by_token.get(params.get("NextRowKey", ""), 0)
        headers = {"x-ms-version": API_VERSION}
        if index + 1 < len(self.pages):
            headers["x-ms-continuation-NextPartitionKey"] = _token(self.partition)
            headers["x-ms-continuation-NextRowKey"] = _token(self.first_row_keys[index + 1])
        self.requests += 1
        self.bytes_served += len(self.pages[index])
        return 200, headers, self.pages[index]


def _handler(replay: TableReplay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
        # Headers and body go out in two writes; with Nagle's algorithm the body waits for the
        # client's delayed ACK of the headers (40 ms on Linux) on every page.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            status, headers, body = replay.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@contextlib.contextmanager
def serving(replay: TableReplay) -> Iterator[int]:
    """Serve `replay` on a free loopback port; yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(replay))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""report_http over evidence that used to break a mailbox: a lone surrogate in a subject, a Bind
record listing thousands of messages, a conflicting copy. Real handler, real Azurite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
import pytest

from shared.ingest import pipeline
from shared.storage import Storage
from tests.helpers import mia_record

pytestmark = pytest.mark.functions

Handler = Callable[[func.HttpRequest], func.HttpResponse]
RANGE = {"from": "2026-11-17", "to": "2026-11-19"}
VIEWS = ("events", "messages", "sessions", "exposure")


def request(**params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="GET",
        url="http://localhost:7071/api/reports/alice@contoso.com",
        route_params={"mailbox": "alice@contoso.com"},
        params=params,
        body=b"",
    )


def _stored(storage: Storage, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    pipeline.import_file(storage, path)
    pipeline.drain_queue(storage)


def _pages(report_http: Handler, **params: str) -> list[dict[str, Any]]:
    """Every row of a JSON report, following Link until the last page."""
    rows: list[dict[str, Any]] = []
    while True:
        response = report_http(request(**params))
        assert response.status_code == 200, response.get_body()[:300]
        rows.extend(json.loads(response.get_body()))
        link = response.headers.get("Link")
        if not link:
            return rows
        params = dict(parse_qsl(link[link.index("<?") + 2 : link.index(">")]))


def test_a_lone_surrogate_subject_is_served_repaired_in_every_view_and_format(
    function_env: Storage, report_http: Handler, tmp_path: Path
) -> None:
    record = mia_record(
        "2026-11-18T08:00:00",
        "odd",
        Folders=[{"Path": "\\Inbox", "FolderItems": [{"InternetMessageId": "<a@x>", "Subject": "@@"}]}],
    )
    _stored(
        function_env, tmp_path / "odd.json", json.dumps([record]).replace('"@@"', '"Invoice \\ud83d paid"')
    )

    for view in VIEWS:
        for fmt in ("csv", "json"):
            response = report_http(request(view=view, format=fmt, **RANGE))
            assert response.status_code == 200, (view, fmt)
            body = response.get_body().decode("utf-8")  # strict: valid UTF-8 throughout
            assert "Invoice \ufffd paid" in body or view == "sessions"
    statuses = [row["Status"] for row in function_env.report_access.client.list_entities()]
    assert statuses == [200] * 8


@pytest.mark.parametrize("view", ["messages", "exposure"])
def test_every_message_of_a_huge_bind_record_is_served(
    function_env: Storage, report_http: Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, view: str
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "2000")
    items = [{"InternetMessageId": f"<{n:05d}@bulk>", "SizeInBytes": n} for n in range(12_000)]
    record = mia_record("2026-11-18T08:00:00", "bulk", Folders=[{"Path": "\\Inbox", "FolderItems": items}])
    _stored(function_env, tmp_path / "bulk.json", json.dumps([record]))

    rows = _pages(report_http, view=view, format="json", **RANGE)

    assert sorted(row["InternetMessageId"] for row in rows if row.get("Kind", "Message") == "Message") == [
        item["InternetMessageId"] for item in items
    ]

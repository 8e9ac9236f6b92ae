"""format=xlsx through the real report_http handler against Azurite: one workbook, a sheet per view,
typed cells, formula-free, bounded, and recorded in ReportAccess by the SHA-256 of its bytes."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from openpyxl import load_workbook

from shared import runtime
from shared.model.event import MessageRef
from shared.reports.assemble import WORKBOOK_VIEWS
from shared.reports.views import VIEWS
from shared.storage import Storage, tables
from tests.functions.test_report_http import RANGE, body_text, request
from tests.helpers import make_event
from tests.reports.xlsx import assert_sheet_matches, assert_workbook_is_safe, sheet_rows

pytestmark = pytest.mark.functions

Handler = Callable[[func.HttpRequest], func.HttpResponse]
# Microsoft's MIME type for .xlsx ("Register file extensions on third-party servers":
# https://learn.microsoft.com/en-us/previous-versions/office/office-2007-resource-kit/ee309278(v=office.12)).
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HOSTILE_SUBJECT = '=HYPERLINK("http://evil.example","x")'


def json_view(report_http: Handler, mailbox: str, view: str, **params: str) -> list[dict[str, Any]]:
    response = report_http(request(mailbox, view=view, format="json", **params))
    assert response.status_code == 200
    rows: list[dict[str, Any]] = json.loads(body_text(response))
    return rows


def test_the_workbook_holds_every_row_of_every_view_typed_with_a_frozen_filterable_header(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", format="xlsx", **RANGE))

    assert response.status_code == 200
    assert response.mimetype == XLSX
    assert response.headers["Content-Disposition"] == 'attachment; filename="alice@contoso.com-report.xlsx"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Link" not in response.headers
    book = load_workbook(io.BytesIO(response.get_body()))
    assert book.sheetnames == list(WORKBOOK_VIEWS) == ["exposure", "sessions", "messages", "events"]
    total = 0
    for view in WORKBOOK_VIEWS:
        expected = json_view(report_http, "alice@contoso.com", view, **RANGE)
        assert expected, view
        assert_sheet_matches(book[view], VIEWS[view][0], expected)
        total += len(expected)
    assert response.headers["X-Row-Count"] == str(total)
    assert_workbook_is_safe(response.get_body())


def test_report_access_records_the_sha256_of_the_workbook_bytes_served(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", format="xlsx", **RANGE))

    body = response.get_body()
    assert body.startswith(b"PK")  # a ZIP package, as served
    [access] = loaded.report_access.client.list_entities()
    assert access["BodySha256"] == hashlib.sha256(body).hexdigest()
    assert access["BodyBytes"] == len(body)
    assert access["Status"] == 200


def test_a_hostile_subject_is_a_string_cell_behind_an_apostrophe_and_no_cell_is_a_formula(
    function_env: Storage, report_http: Handler
) -> None:
    event = make_event(
        mailbox="target@contoso.com",
        client_info="=cmd|' /C calc'!A0",
        items=(MessageRef("<evil@example>", "Inbox", HOSTILE_SUBJECT, 1),),
    )
    tables.store_events(function_env, [event])

    response = report_http(
        request("target@contoso.com", format="xlsx", **{"from": "2026-11-18", "to": "2026-11-18"})
    )

    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.get_body()))
    for view in ("messages", "exposure"):
        [row] = sheet_rows(book[view])
        cell = row["Subject"]
        assert (cell.data_type, cell.value) == ("s", "'" + HOSTILE_SUBJECT), view
    [row] = sheet_rows(book["events"])
    assert row["ClientInfo"].value == "'=cmd|' /C calc'!A0"
    assert_workbook_is_safe(response.get_body())


def _seed_wide(storage: Storage, records: int) -> None:
    """`records` records of 3 messages each on 18 November, one second apart."""
    start = datetime(2026, 11, 18, 8, tzinfo=UTC)
    events = [
        make_event(
            mailbox="wide@contoso.com",
            timestamp=start + timedelta(seconds=n),
            record_id=f"wide-{n:04d}",
            items=tuple(MessageRef(f"<w{n}-{k}@contoso.com>", "Inbox", f"s{n}-{k}", 1) for k in range(3)),
        )
        for n in range(records)
    ]
    tables.store_events(storage, events)


def test_the_messages_and_events_sheets_stop_at_report_page_rows_with_a_line_counting_the_rest(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "100")  # the smallest page the settings allow
    runtime.reset()
    _seed_wide(function_env, 150)  # 150 events, 450 message rows

    response = report_http(
        request("wide@contoso.com", format="xlsx", **{"from": "2026-11-18", "to": "2026-11-18"})
    )

    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.get_body()))
    # Whole records only: 33 records of 3 messages fit in 100 rows.
    assert len(sheet_rows(book["messages"])) == 99
    assert len(sheet_rows(book["events"])) == 100
    messages_note = book["messages"].cell(row=99 + 3, column=1).value
    events_note = book["events"].cell(row=100 + 3, column=1).value
    assert messages_note == (
        "351 more rows, the first at 2026-11-18T08:00:33Z: use CSV/JSON paging "
        "(view=messages, format=csv or json) to read them; this sheet stops at REPORT_PAGE_ROWS=100 rows"
    )
    assert str(events_note).startswith("50 more rows, the first at 2026-11-18T08:01:40Z: use CSV/JSON paging")
    # The aggregated sheets are whole: every message, the one session.
    assert len(sheet_rows(book["exposure"])) == 450
    assert len(sheet_rows(book["sessions"])) == 1
    # The note is not filtered as data; 21 columns, the four IP context columns among them.
    assert book["messages"].auto_filter.ref == "A1:U100"


def test_an_xlsx_past_the_aggregation_bound_is_refused_whole_with_a_422(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler
) -> None:
    monkeypatch.setenv("REPORT_MAX_AGGREGATE_ENTRIES", "1000")  # the smallest the settings allow
    runtime.reset()
    _seed_wide(function_env, 300)  # 900 messages, each with its folder, session, IP and user

    response = report_http(
        request("wide@contoso.com", format="xlsx", **{"from": "2026-11-18", "to": "2026-11-18"})
    )

    assert response.status_code == 422
    assert response.mimetype == "application/json"
    error = json.loads(body_text(response))["error"]
    assert error["code"] == "report_too_large"
    assert "REPORT_MAX_AGGREGATE_ENTRIES=1000" in error["message"]


@pytest.mark.parametrize("fmt", ["xlsx", "html"])
def test_after_is_refused_for_a_workbook_and_a_page(loaded: Storage, report_http: Handler, fmt: str) -> None:
    token = "v1.MjAyNjExMTZUMDgwNzAwX2Ex"  # any well-formed token: refused before it is read
    response = report_http(request("alice@contoso.com", format=fmt, after=token, **RANGE))

    assert response.status_code == 400
    error = json.loads(body_text(response))["error"]
    assert error["code"] == "invalid_after"
    assert "CSV and JSON only" in error["message"]

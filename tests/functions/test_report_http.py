"""report_http driven with real azure.functions.HttpRequest objects against a real Azurite."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import azure.functions as func
import pytest
from openpyxl import load_workbook

from shared import runtime
from shared.model.event import MessageRef
from shared.model.message_info import Lookup
from shared.reports import http_api
from shared.reports.render import neutralise_cell
from shared.reports.request import decode_after, encode_after
from shared.reports.views import EVENT_VIEW_COLUMNS, EXPOSURE_COLUMNS, MESSAGE_COLUMNS, SESSION_COLUMNS
from shared.settings import ReportSettings, ResolutionSettings, SettingsError
from shared.storage import (
    Storage,
    tables,
)
from shared.storage.tables import MailboxAccessTable
from shared.subjects.resolver import SubjectResolver
from tests.helpers import SAMPLE_FROM, SAMPLE_TO, make_event, parse_csv, records_for
from tests.ipcontext.mmdb_files import GEOLITE2_ASN, write_mmdb

pytestmark = pytest.mark.functions

Handler = Callable[[func.HttpRequest], func.HttpResponse]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
HYPERLINK = '=HYPERLINK("http://evil.example/x","Invoice")'
RANGE = {"from": SAMPLE_FROM, "to": SAMPLE_TO}


def request(mailbox: str, **params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/reports/{quote(mailbox, safe='@')}",
        route_params={"mailbox": mailbox},
        params=params,
        body=b"",
    )


def body_text(response: func.HttpResponse) -> str:
    return response.get_body().decode("utf-8")


def csv_rows(response: func.HttpResponse) -> list[list[str]]:
    return parse_csv(body_text(response))


def column(rows: list[list[str]], name: str) -> list[str]:
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


@pytest.fixture
def seeded(function_env: Storage) -> Storage:
    """A few rows in several mailboxes and actors, for requests that must not reach any of them."""
    events = [
        make_event(
            mailbox=mailbox, user=user, timestamp=datetime(2026, 11, day, 9, tzinfo=UTC), record_id=rid
        )
        for mailbox, user, day, rid in [
            ("alice@contoso.com", "alice@contoso.com", 16, "a1"),
            ("alice@contoso.com", "mallory@evil.example", 18, "a2"),
            ("bob@contoso.com", "bob@contoso.com", 17, "b1"),
            ("x", "x", 19, "x1"),
        ]
    ]
    tables.store_events(function_env, events)
    return function_env


def test_csv_report_is_an_attachment_with_safe_headers(loaded: Storage, report_http: Handler) -> None:
    response = report_http(request("alice@contoso.com", **RANGE))

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.charset == "utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="alice@contoso.com-events.csv"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Row-Count"] == "43"
    assert "X-Continuation" not in response.headers
    assert "Link" not in response.headers
    rows = csv_rows(response)
    assert tuple(rows[0]) == EVENT_VIEW_COLUMNS
    assert column(rows, "RecordId") == [r["Id"] for r in records_for("alice@contoso.com")]
    assert body_text(response).endswith("\r\n")
    # The byte-order mark Excel needs to read the file as UTF-8 (Microsoft Support, "Opening CSV
    # UTF-8 files correctly in Excel": https://support.microsoft.com/en-us/office/opening-csv-utf-8-files-correctly-in-excel-8a935af5-3416-4edd-ba7e-3dfd2bc4a032),
    # once, as the body's first bytes.
    assert response.get_body().startswith(codecs.BOM_UTF8 + b'"TimeStamp"')
    assert response.get_body().count(codecs.BOM_UTF8) == 1


def test_the_mailbox_in_the_path_is_case_insensitive(loaded: Storage, report_http: Handler) -> None:
    upper = report_http(request("ALICE@Contoso.COM", **RANGE))

    assert upper.status_code == 200
    assert upper.get_body() == report_http(request("alice@contoso.com", **RANGE)).get_body()


def test_json_report_is_an_array_of_typed_objects_in_column_order(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", format="json", **RANGE))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "Content-Disposition" not in response.headers
    assert response.get_body().startswith(b"[")  # RFC 8259 section 8.1: no byte-order mark
    rows = json.loads(body_text(response))
    assert isinstance(rows, list)
    assert len(rows) == 43
    for row in rows:
        assert list(row) == list(EVENT_VIEW_COLUMNS)
        assert isinstance(row["Throttled"], bool)
        assert isinstance(row["ExternalAccess"], bool)
        assert type(row["MessageCount"]) is int
        assert row["OperationCount"] is None or type(row["OperationCount"]) is int
    sync = [row for row in rows if row["Access"] == "Sync"]
    assert len(sync) == 1
    assert sync[0]["OperationCount"] is None  # the older Item.ParentFolder shape carries none
    assert sync[0]["ClientIP"] == "185.220.101.45"
    assert [row["RecordId"] for row in rows] == [r["Id"] for r in records_for("alice@contoso.com")]


def test_json_report_marks_the_throttled_record_with_a_true_boolean(
    loaded: Storage, report_http: Handler
) -> None:
    rows = json.loads(body_text(report_http(request("finance@contoso.com", format="json", **RANGE))))

    assert [row["Throttled"] for row in rows] == [False] * 11 + [True]
    assert all(row["LogonType"] == "Delegated" for row in rows)


def test_sessions_view_has_one_row_per_session_with_its_record_count(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", view="sessions", **RANGE))

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="alice@contoso.com-sessions.csv"'
    rows = csv_rows(response)
    assert tuple(rows[0]) == SESSION_COLUMNS
    records = records_for("alice@contoso.com")
    expected = {s: sum(1 for r in records if r["SessionId"] == s) for s in {r["SessionId"] for r in records}}
    assert dict(zip(column(rows, "SessionId"), map(int, column(rows, "Records")), strict=True)) == expected
    attacker = rows[column(rows, "ClientIPs").index("185.220.101.45") + 1]
    assert attacker[SESSION_COLUMNS.index("BindRecords")] == "8"
    assert attacker[SESSION_COLUMNS.index("SyncRecords")] == "1"


def test_by_actor_reports_what_one_account_read_in_other_mailboxes(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("bob@contoso.com", by="actor", **RANGE))

    assert response.status_code == 200
    rows = csv_rows(response)
    assert column(rows, "RecordId") == [r["Id"] for r in records_for("bob@contoso.com", "actor")]
    assert len(rows) == 5
    assert set(column(rows, "Mailbox")) == {"alice@contoso.com"}
    assert set(column(rows, "User")) == {"bob@contoso.com"}
    assert set(column(rows, "LogonType")) == {"Delegated"}
    assert set(column(rows, "ClientIP")) == {"203.0.113.22"}


def test_the_attackers_formula_subject_stays_inert_text_inside_the_messages_cell(
    loaded: Storage, report_http: Handler
) -> None:
    rows = csv_rows(report_http(request("alice@contoso.com", **RANGE)))
    json_rows = json.loads(body_text(report_http(request("alice@contoso.com", format="json", **RANGE))))

    with_formula = [cell for cell in column(rows, "Messages") if HYPERLINK in cell]
    assert with_formula
    # The cell starts with the message id, never with the formula, so no prefix is needed...
    assert all(cell.startswith("<") for cell in with_formula)
    # ...and no cell anywhere begins like a formula without the neutralising apostrophe.
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell
    # JSON is data, not a spreadsheet: it carries the subject exactly as recorded.
    assert any(f"({HYPERLINK})" in row["Messages"] for row in json_rows)


HOSTILE_CELLS = {
    "user": "@SUM(1+1)*cmd|' /C calc'!A0",
    "client_info": "=cmd|' /C calc'!A0",
    "folders": ("-2+3+cmd|' /C calc'!A0", "Inbox"),
    "session_id": "+1+1",
    "app_name": "\tTAB",
    "originating_server": "\rCR",
    "client_ip": "\nLF",
    "record_id": "=1+1",
}


def test_cells_starting_with_formula_characters_get_a_leading_apostrophe(
    function_env: Storage, report_http: Handler
) -> None:
    event = make_event(
        mailbox="target@contoso.com",
        items=(MessageRef('=HYPERLINK("http://evil")@x', "Inbox", "hi", 1),),
        **HOSTILE_CELLS,
    )
    tables.store_events(function_env, [event])
    params = {"from": "2026-11-18", "to": "2026-11-18"}

    [header, row] = csv_rows(report_http(request("target@contoso.com", **params)))
    [json_row] = json.loads(body_text(report_http(request("target@contoso.com", format="json", **params))))

    cells = dict(zip(header, row, strict=True))
    assert cells["User"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert cells["ClientInfo"] == "'=cmd|' /C calc'!A0"
    assert cells["Folders"] == "'-2+3+cmd|' /C calc'!A0; Inbox"
    assert cells["SessionId"] == "'+1+1"
    assert cells["AppName"] == "'\tTAB"
    assert cells["OriginatingServer"] == "'\rCR"
    assert cells["ClientIP"] == "'\nLF"
    assert cells["RecordId"] == "'=1+1"
    assert cells["Messages"] == '\'=HYPERLINK("http://evil")@x (hi)'
    assert json_row["User"] == HOSTILE_CELLS["user"]
    assert json_row["ClientInfo"] == HOSTILE_CELLS["client_info"]
    assert json_row["RecordId"] == "=1+1"
    assert neutralise_cell("'=already quoted") == "'=already quoted"

    sessions = csv_rows(report_http(request("target@contoso.com", view="sessions", **params)))
    cells = dict(zip(sessions[0], sessions[1], strict=True))
    assert cells["SessionId"] == "'+1+1"
    assert cells["Users"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert cells["Folders"] == "'-2+3+cmd|' /C calc'!A0; Inbox"


def _seed_bulk(storage: Storage, count: int) -> list[str]:
    start = datetime(2026, 11, 18, 8, 0, 0, tzinfo=UTC)
    events = [
        make_event(
            mailbox="bulk@contoso.com", timestamp=start + timedelta(seconds=n // 3), record_id=f"bulk-{n:04d}"
        )
        for n in range(count)
    ]
    events.append(make_event(mailbox="other@contoso.com", record_id="not-bulk"))
    tables.store_events(storage, events)
    return [event.record_id for event in events[:count]]


def _next_params(response: func.HttpResponse) -> dict[str, str] | None:
    link = response.headers.get("Link")
    if link is None:
        assert "X-Continuation" not in response.headers
        return None
    match = re.fullmatch(r'<\?([^>]*)>; rel="next"', link)
    assert match, link
    params = dict(parse_qsl(match.group(1), keep_blank_values=True, strict_parsing=True))
    assert params["after"] == response.headers["X-Continuation"]
    return params


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_paging_follows_link_headers_to_every_row_exactly_once_in_order(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler, fmt: str
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "100")  # the smallest page the settings allow
    runtime.reset()
    expected = _seed_bulk(function_env, 257)
    params: dict[str, str] | None = {
        "from": "2026-11-18",
        "to": "2026-11-18",
        "format": fmt,
        "code": "s3cret",
    }

    seen: list[str] = []
    counts: list[str] = []
    while params is not None:
        response = report_http(request("bulk@contoso.com", **params))
        assert response.status_code == 200
        counts.append(response.headers["X-Row-Count"])
        # Every page is a file of its own: a CSV page starts with the byte-order mark, once.
        body = response.get_body()
        assert body.startswith(codecs.BOM_UTF8) == (fmt == "csv")
        assert body.count(codecs.BOM_UTF8) == (fmt == "csv")
        if fmt == "csv":
            seen += column(csv_rows(response), "RecordId")
        else:
            seen += [row["RecordId"] for row in json.loads(body_text(response))]
        assert "s3cret" not in response.headers.get("Link", "")  # the function key never travels on
        params = _next_params(response)

    assert counts == ["100", "100", "57"]
    assert seen == expected


def test_paging_pins_the_resolved_range_in_the_next_link(
    function_env: Storage, monkeypatch, report_http
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "100")
    runtime.reset()
    _seed_bulk(function_env, 150)

    response = report_http(request("bulk@contoso.com", **{"from": "2026-11-18T08:00:00", "to": "2026-11-18"}))

    params = _next_params(response)
    assert params is not None
    assert params["from"] == "2026-11-18T08:00:00Z"
    assert params["to"] == "2026-11-18T23:59:59Z"
    assert decode_after(params["after"]).startswith("20261118T0800")


# Record Ids as other tools rewrite them: each one in turn ends a page, so its token must come back.
ODD_RECORD_IDS = {
    "space": "rec {n:04d} copy",
    "accent": "r\u00e9c-{n:04d}",
    "slash": "a/{n:04d}/b",
    "hash": "c#{n:04d}",
    "percent": "{n:04d}%41%",
    "long": "r" * 396 + "{n:04d}",
    "long-hashed": "\u00e9/" * 199 + "{n:04d}",  # over the key limit once encoded: hashed
}


@pytest.mark.parametrize("shape", list(ODD_RECORD_IDS))
def test_paging_reaches_every_row_once_whatever_the_record_ids_look_like(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler, shape: str
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "100")
    runtime.reset()
    start = datetime(2026, 11, 18, 8, 0, 0, tzinfo=UTC)
    events = [
        make_event(
            mailbox="odd@contoso.com",
            timestamp=start + timedelta(seconds=n // 4),
            record_id=ODD_RECORD_IDS[shape].format(n=n),
        )
        for n in range(230)
    ]
    tables.store_events(function_env, events)
    expected = [event.record_id for event in sorted(events, key=MailboxAccessTable.row_key)]
    params: dict[str, str] | None = {"from": "2026-11-18", "to": "2026-11-18", "format": "json"}

    seen: list[str] = []
    tokens: list[str] = []
    while params is not None:
        response = report_http(request("odd@contoso.com", **params))
        assert response.status_code == 200, body_text(response)
        seen += [row["RecordId"] for row in json.loads(body_text(response))]
        params = _next_params(response)
        if params is not None:
            tokens.append(params["after"])

    assert len(tokens) == 2
    assert all(re.fullmatch(r"v1\.[A-Za-z0-9_-]+", token) for token in tokens)
    assert seen == expected


@pytest.mark.parametrize("name", ["code", "Code", "CODE", "cOdE"])
def test_the_function_key_never_travels_on_in_the_link_in_any_casing(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler, name: str
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "100")
    runtime.reset()
    _seed_bulk(function_env, 150)

    response = report_http(
        request("bulk@contoso.com", **{"from": "2026-11-18", "to": "2026-11-18", name: "s3cret"})
    )

    assert response.status_code == 200
    params = _next_params(response)
    assert params is not None
    assert "s3cret" not in response.headers["Link"]
    assert {k.lower() for k in params} == {"from", "to", "after"}
    [access] = function_env.report_access.client.list_entities()
    assert "s3cret" not in access["Parameters"]


def _store_unreadable_row(storage: Storage) -> None:
    """A MailboxAccess row no reader can turn into an event (its items are not JSON)."""
    storage.mailbox_access.client.create_entity(
        {
            "PartitionKey": "alice@contoso.com",
            "RowKey": "20261118T090000_broken",
            "EventTime": "2026-11-18T09:00:00Z",
            "PayloadChunks": 1,
            "Payload0": "{not json",
        }
    )


def _internal_error_id(response: func.HttpResponse) -> str:
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    correlation_id = str(response.headers["X-Correlation-Id"])
    assert re.fullmatch(r"[0-9a-f]{32}", correlation_id)
    document = json.loads(body_text(response))
    assert list(document) == ["error"]
    assert document["error"]["code"] == "internal_error"
    assert correlation_id in document["error"]["message"]
    return correlation_id


def test_an_unexpected_failure_is_a_json_500_logged_and_recorded_with_its_correlation_id(
    function_env: Storage, report_http: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    _store_unreadable_row(function_env)

    with caplog.at_level(logging.ERROR):
        response = report_http(request("alice@contoso.com", **RANGE))

    correlation_id = _internal_error_id(response)
    [logged] = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert logged.levelno == logging.ERROR
    assert logged.exc_info is not None
    assert "alice@contoso.com" not in logged.getMessage()
    [access] = function_env.report_access.client.list_entities()
    assert (access["Status"], access["ErrorCode"]) == (500, "internal_error")
    assert access["CorrelationId"] == correlation_id
    assert access["BodySha256"] == hashlib.sha256(response.get_body()).hexdigest()


class FailingResolver(SubjectResolver):
    def report_lookup(self) -> Lookup:
        def lookup(observed: object) -> dict[Any, Any]:
            raise RuntimeError("resolver broke")

        return lookup


def test_a_failing_resolver_is_a_json_500_recorded_in_report_access(loaded: Storage) -> None:
    resolver = FailingResolver(loaded.message_index, ResolutionSettings(), graph=None)

    reply = http_api.serve_report(
        "alice@contoso.com", {"view": "messages", **RANGE}, {}, loaded, ReportSettings(), resolver=resolver
    )

    assert (reply.status, json.loads(reply.body)["error"]["code"]) == (500, "internal_error")
    correlation_id = reply.headers["X-Correlation-Id"]
    assert correlation_id in json.loads(reply.body)["error"]["message"]
    [access] = loaded.report_access.client.list_entities()
    assert (access["Status"], access["CorrelationId"]) == (500, correlation_id)


def test_an_unexpected_failure_whose_access_cannot_be_recorded_is_still_a_json_500(
    function_env: Storage, report_http: Handler
) -> None:
    _store_unreadable_row(function_env)
    function_env.report_access.client.delete_table()

    _internal_error_id(report_http(request("alice@contoso.com", **RANGE)))


def test_a_bad_setting_is_a_json_500_with_a_logged_correlation_id(
    function_env: Storage,
    monkeypatch: pytest.MonkeyPatch,
    report_http: Handler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "lots")
    runtime.reset()

    with caplog.at_level(logging.ERROR):
        response = report_http(request("alice@contoso.com", **RANGE))

    correlation_id = _internal_error_id(response)
    assert any(correlation_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_every_answer_carries_the_correlation_id_of_its_access_row(
    seeded: Storage, report_http: Handler
) -> None:
    ok = report_http(request("alice@contoso.com", **RANGE))
    bad = report_http(request("alice@contoso.com", view="nope"))

    rows = sorted(seeded.report_access.client.list_entities(), key=lambda row: row["RowKey"])
    assert [(row["Status"], row["CorrelationId"]) for row in rows] == [
        (200, ok.headers["X-Correlation-Id"]),
        (400, bad.headers["X-Correlation-Id"]),
    ]
    assert ok.headers["X-Correlation-Id"] != bad.headers["X-Correlation-Id"]


def test_a_storage_failure_is_a_503_json_error(function_env: Storage, report_http: Handler) -> None:
    function_env.mailbox_access.client.delete_table()

    response = report_http(request("alice@contoso.com", **RANGE))

    assert response.status_code == 503
    assert json.loads(body_text(response))["error"]["code"] == "storage_unavailable"


TODAY = datetime.now(UTC).date().isoformat()

HOSTILE_MAILBOXES = [
    ("", "missing_mailbox"),
    ("alice@contoso.com'", "invalid_mailbox"),
    ("alice@contoso.com' or PartitionKey ne '", "invalid_mailbox"),
    ("' or 1 eq 1 or ''='", "invalid_mailbox"),
    ("alice@contoso.com' or 1 eq 1", "invalid_mailbox"),
    ('alice@contoso.com" or "1"="1', "invalid_mailbox"),
    ('"alice@contoso.com"', "invalid_mailbox"),
    ("alice@contoso.com\x00", "invalid_mailbox"),
    ("alice\x00@contoso.com", "invalid_mailbox"),
    ("alice%00@contoso.com", "invalid_mailbox"),
    ("alice@contoso.com%00", "invalid_mailbox"),
    ("alice@contoso.com\r\nSet-Cookie: session=1", "invalid_mailbox"),
    ("alice@contoso.com\n", "invalid_mailbox"),
    ("alice@contoso.com%0d%0a", "invalid_mailbox"),
    ("\talice@contoso.com", "invalid_mailbox"),
    ("alice@contoso.com\x7f", "invalid_mailbox"),
    ("alice@contoso.com\u202e", "invalid_mailbox"),
    ("\u0430lice@contoso.com", "invalid_mailbox"),  # Cyrillic a
    ("a" * 5000, "mailbox_too_long"),
    ("a" * 5000 + "@contoso.com", "mailbox_too_long"),
    ("../../etc/passwd", "invalid_mailbox"),
    ("..\\..\\windows\\win.ini", "invalid_mailbox"),
    ("alice@contoso.com/../bob@contoso.com", "invalid_mailbox"),
    ("%2e%2e%2fbob@contoso.com", "invalid_mailbox"),
    ("alice@contoso.com or 1 eq 1", "invalid_mailbox"),
    ("*", "invalid_mailbox"),
    ("alice@contoso.com#", "invalid_mailbox"),
    ("alice@contoso.com?by=actor", "invalid_mailbox"),
]

MAILBOX_IDS = [f"{i}-{code}" for i, (_, code) in enumerate(HOSTILE_MAILBOXES)]

HOSTILE_PARAMS = [
    ({"from": "yesterday"}, "invalid_from"),
    ({"from": "2026-11-16'"}, "invalid_from"),
    ({"from": "2026-11-16' or 1 eq 1"}, "invalid_from"),
    ({"from": '2026-11-16" or "1"="1'}, "invalid_from"),
    ({"from": "2026-13-45"}, "invalid_from"),
    ({"to": "2026-11-20T25:00:00"}, "invalid_to"),
    ({"to": "2026-11-20\x00"}, "invalid_to"),
    ({"to": "2026-11-20%00"}, "invalid_to"),
    ({"to": "2026-11-20\x0012:00"}, "invalid_to"),
    ({"from": "2026-11-16X08:00"}, "invalid_from"),
    ({"to": "2026-11-20\r\nX-Injected: 1"}, "invalid_to"),
    ({"to": "2026-11-20\n"}, "invalid_to"),
    ({"to": "9" * 5000}, "invalid_to"),
    ({"from": "2026-11-20", "to": "2026-11-16"}, "invalid_range"),
    ({"from": "2026-11-20T10:00:00", "to": "2026-11-20T09:59:58"}, "invalid_range"),
    ({"view": "all"}, "invalid_view"),
    ({"view": "EVENTS"}, "invalid_view"),
    ({"view": "events' or 1 eq 1"}, "invalid_view"),
    ({"view": "exposure\x00"}, "invalid_view"),
    ({"view": "mailboxes"}, "invalid_view"),  # mia report only: a report here is of one mailbox
    ({"format": "xml"}, "invalid_format"),
    ({"format": "csv\r\nX-Injected: 1"}, "invalid_format"),
    ({"by": "tenant"}, "invalid_by"),
    ({"by": "actor' or 1 eq 1"}, "invalid_by"),
    ({"from": "2015-01-01", "to": TODAY}, "range_too_large"),
    ({"from": "2015-01-01"}, "range_too_large"),
    ({"to": "9999-12-31"}, "date_out_of_range"),
    ({"from": "9999-01-01", "to": "9999-12-31"}, "date_out_of_range"),
    ({"to": "9999-12-31T23:59:59"}, "date_out_of_range"),
    ({"to": "9999-12-31T23:59:59.999999"}, "date_out_of_range"),
    ({"to": "9999-12-31T23:00:00-05:00"}, "date_out_of_range"),
    ({"from": "0001-01-01T00:00:00+01:00", "to": "2026-11-20"}, "date_out_of_range"),
    ({"to": "0001-01-01"}, "date_out_of_range"),
    ({"from": "2014-12-31", "to": "2015-01-02"}, "date_out_of_range"),
    ({"from": "2099-01-01", "to": "2099-01-02"}, "date_out_of_range"),
    ({"after": "bogus"}, "invalid_after"),
    ({"after": "' or 1 eq 1"}, "invalid_after"),
    ({"after": "20261118T000000_' or 1 eq 1"}, "invalid_after"),
    ({"after": "20261118T000000_"}, "invalid_after"),
    ({"after": "20261118T000000_x\n"}, "invalid_after"),
    ({"after": "20261118T000000_" + "x" * 500}, "invalid_after"),
    ({"after": "20261118T000000_bulk-0001"}, "invalid_after"),  # a raw RowKey is not a token
    ({"after": "v1.' or 1 eq 1"}, "invalid_after"),
    ({"after": encode_after("20261118T000000_x' or RowKey ne '\n")}, "invalid_after"),
    ({"after": encode_after("' or 1 eq 1")}, "invalid_after"),
    ({"after": encode_after("20261118T000000_a/b")}, "invalid_after"),
    ({"after": encode_after("20261118T000000_x") + "="}, "invalid_after"),
    ({"after": "v1." + "A" * 6000}, "invalid_after"),
]


def _assert_json_error(response: func.HttpResponse, code: str) -> None:
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    document = json.loads(body_text(response))
    assert list(document) == ["error"]
    assert sorted(document["error"]) == ["code", "message"]
    assert document["error"]["code"] == code
    assert isinstance(document["error"]["message"], str)
    assert len(document["error"]["message"]) > 10


# Actor names may hold quotes, spaces, '#', '\\' and brackets (service accounts, O'Brien): with
# by=actor these few are well-formed names, looked up as bound keys that match nobody.
VALID_ACTOR_NAMES = {
    "alice@contoso.com'",
    "alice@contoso.com' or PartitionKey ne '",
    "alice@contoso.com' or 1 eq 1",
    "..\\..\\windows\\win.ini",
    "alice@contoso.com or 1 eq 1",
    "alice@contoso.com#",
}


@pytest.mark.parametrize(("mailbox", "code"), HOSTILE_MAILBOXES, ids=MAILBOX_IDS)
def test_a_hostile_mailbox_gets_a_400_json_error(
    seeded: Storage, report_http: Handler, mailbox: str, code: str
) -> None:
    response = report_http(request(mailbox, **RANGE))

    _assert_json_error(response, code)


@pytest.mark.parametrize(("mailbox", "code"), HOSTILE_MAILBOXES, ids=MAILBOX_IDS)
def test_a_hostile_actor_gets_a_400_json_error_or_an_empty_report(
    seeded: Storage, report_http: Handler, mailbox: str, code: str
) -> None:
    response = report_http(request(mailbox, by="actor", **RANGE))

    if mailbox in VALID_ACTOR_NAMES:
        assert response.status_code == 200
        assert csv_rows(response) == [list(EVENT_VIEW_COLUMNS)]
    else:
        _assert_json_error(response, code)


@pytest.mark.parametrize(
    ("params", "code"), HOSTILE_PARAMS, ids=[f"{i}-{c}" for i, (_, c) in enumerate(HOSTILE_PARAMS)]
)
def test_a_hostile_parameter_gets_a_400_json_error_and_no_rows(
    seeded: Storage, report_http: Handler, params: dict[str, str], code: str
) -> None:
    response = report_http(request("alice@contoso.com", **{**RANGE, **params}))

    _assert_json_error(response, code)


@pytest.mark.parametrize(
    "subject",
    [
        "alice@contoso.com' or PartitionKey ne '",
        "' or 1 eq 1 or 'a' eq 'a",
        "x') or (PartitionKey ge '",
        "alice@contoso.com or 1 eq 1",
    ],
)
def test_an_odata_injection_as_an_actor_name_is_a_literal_actor_with_no_rows(
    seeded: Storage, report_http: Handler, subject: str
) -> None:
    # Actor names may hold quotes, spaces and brackets (service accounts, O'Brien): the value is
    # accepted but only ever compared as a bound key, so it matches nobody.
    response = report_http(request(subject, by="actor", **RANGE))

    assert response.status_code == 200
    assert csv_rows(response) == [list(EVENT_VIEW_COLUMNS)]
    assert response.headers["X-Row-Count"] == "0"


def test_a_valid_upn_with_an_apostrophe_matches_only_itself(
    function_env: Storage, report_http: Handler
) -> None:
    events = [
        make_event(mailbox="o'brien@contoso.com", record_id="obrien"),
        make_event(mailbox="obrien@contoso.com", record_id="other"),
    ]
    tables.store_events(function_env, events)

    response = report_http(request("O'Brien@contoso.com", **{"from": "2026-11-18", "to": "2026-11-18"}))

    assert response.status_code == 200
    assert column(csv_rows(response), "RecordId") == ["obrien"]
    assert response.headers["Content-Disposition"] == 'attachment; filename="o_brien@contoso.com-events.csv"'


# --- messages and exposure views, ip / session / exclude_ip filters -----------------------------

ATTACKER_IP = "185.220.101.45"
OWNER_OFFICE_IP = "203.0.113.10"


def _message_ids(records: list[dict[str, Any]]) -> list[str]:
    return list(
        dict.fromkeys(
            item["InternetMessageId"]
            for record in records
            for folder in record.get("Folders", [])
            for item in folder.get("FolderItems", [])
        )
    )


def _client_ip(record: dict[str, Any]) -> str:
    return str(record["ClientIPAddress"]).split(":")[0]


def test_exposure_view_filtered_to_the_attackers_ip_over_http(loaded: Storage, report_http: Handler) -> None:
    response = report_http(request("alice@contoso.com", view="exposure", ip=ATTACKER_IP, **RANGE))

    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="alice@contoso.com-exposure.csv"'
    rows = csv_rows(response)
    assert tuple(rows[0]) == EXPOSURE_COLUMNS
    attacker_records = [r for r in records_for("alice@contoso.com") if _client_ip(r) == ATTACKER_IP]
    expected_ids = _message_ids(attacker_records)
    assert len(expected_ids) == 72
    kinds = column(rows, "Kind")
    assert kinds == ["Message"] * 72 + ["Folder"]
    assert sorted(column(rows, "InternetMessageId")[:72]) == sorted(expected_ids)
    assert rows[-1][EXPOSURE_COLUMNS.index("Folder")] == "Inbox"
    assert rows[-1][EXPOSURE_COLUMNS.index("Subject")] == "all items in folder"
    assert set(column(rows, "ClientIPs")) == {ATTACKER_IP}
    assert response.headers["X-Row-Count"] == "73"

    owner_only = _message_ids(
        [r for r in records_for("alice@contoso.com") if _client_ip(r) == OWNER_OFFICE_IP]
    )
    assert not set(owner_only) & set(column(rows, "InternetMessageId"))


def test_messages_view_excluding_the_owners_ip_as_json(loaded: Storage, report_http: Handler) -> None:
    response = report_http(
        request("alice@contoso.com", view="messages", format="json", exclude_ip=OWNER_OFFICE_IP, **RANGE)
    )

    assert response.status_code == 200
    rows = json.loads(body_text(response))
    assert all(list(row) == list(MESSAGE_COLUMNS) for row in rows)
    kept = [r for r in records_for("alice@contoso.com") if _client_ip(r) != OWNER_OFFICE_IP]
    expected = [
        (record["Id"], item["InternetMessageId"])
        for record in kept
        for folder in record.get("Folders", [])
        for item in folder.get("FolderItems", [])
    ]
    assert len(rows) == len(expected)
    assert OWNER_OFFICE_IP not in {row["ClientIP"] for row in rows}
    assert [row["InternetMessageId"] for row in rows] == [mid for _, mid in expected]
    assert all(type(row["SizeInBytes"]) is int for row in rows)
    assert {row["SubjectSource"] for row in rows} == {"audit", "unresolved:not-looked-up"}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"ip": "185.220.101.45:443"}, "invalid_ip"),
        ({"exclude_ip": "not-an-ip"}, "invalid_exclude_ip"),
        ({"session": "x' or true or '"}, "invalid_session"),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(
    seeded: Storage, report_http: Handler, params: dict[str, str], code: str
) -> None:
    response = report_http(request("alice@contoso.com", **params))

    assert response.status_code == 400
    assert json.loads(body_text(response))["error"]["code"] == code


@pytest.mark.parametrize("view", ["events", "messages"])
def test_filtered_paging_counts_produced_rows_and_loses_none(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler, view: str
) -> None:
    monkeypatch.setenv("REPORT_PAGE_ROWS", "100")
    runtime.reset()
    start = datetime(2026, 11, 18, 8, 0, 0, tzinfo=UTC)
    events = [
        make_event(
            mailbox="bulk@contoso.com",
            timestamp=start + timedelta(seconds=n),
            record_id=f"bulk-{n:04d}",
            client_ip=ATTACKER_IP if n % 3 else OWNER_OFFICE_IP,
            items=tuple(MessageRef(f"<m{n}-{k}@x>", "Inbox") for k in range(n % 3)),
        )
        for n in range(450)
    ]
    tables.store_events(function_env, events)
    params: dict[str, str] | None = {
        "from": "2026-11-18",
        "to": "2026-11-18",
        "view": view,
        "ip": ATTACKER_IP,
        "format": "json",
    }

    seen: list[str] = []
    counts: list[int] = []
    while params is not None:
        response = report_http(request("bulk@contoso.com", **params))
        assert response.status_code == 200
        rows = json.loads(body_text(response))
        counts.append(len(rows))
        seen += [row["RecordId" if view == "events" else "InternetMessageId"] for row in rows]
        params = _next_params(response)

    attacker = [e for e in events if e.client_ip == ATTACKER_IP]
    if view == "events":
        assert counts == [100, 100, 100]
        assert seen == [e.record_id for e in attacker]
    else:  # one or two messages per event: a page ends with the event that reaches 100 rows
        assert counts == [100, 101, 100, 101, 48]
        assert seen == [ref.internet_message_id for e in attacker for ref in e.items]


@pytest.fixture
def heavy(function_env: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """A mailbox past the smallest aggregate bound the settings allow (1,000 entries)."""
    monkeypatch.setenv("REPORT_MAX_AGGREGATE_ENTRIES", "1000")
    runtime.reset()
    _seed_heavy(function_env)
    return function_env


def _seed_heavy(storage: Storage) -> None:
    """150 records a day on 18 and 19 November, each a session reading a message of its own: 1,500
    exposure entries (a message, its folder, session, IP and user), 2,100 for the sessions view."""
    events = [
        make_event(
            mailbox="heavy@contoso.com",
            timestamp=datetime(2026, 11, 18 + n // 150, 8, tzinfo=UTC) + timedelta(minutes=n % 150),
            record_id=f"heavy-{n:03d}",
            session_id=f"heavy-session-{n:03d}",
            items=(MessageRef(f"<heavy-{n}@contoso.com>", "Inbox", "", 100),),
        )
        for n in range(300)
    ]
    tables.store_events(storage, events)


@pytest.mark.parametrize(("view", "fmt"), [("exposure", "csv"), ("sessions", "csv"), ("events", "html")])
def test_an_aggregated_view_past_its_bound_is_a_422_naming_the_limit_and_the_way_around(
    heavy: Storage, report_http: Handler, view: str, fmt: str
) -> None:
    response = report_http(
        request("heavy@contoso.com", view=view, format=fmt, **{"from": "2026-11-18", "to": "2026-11-19"})
    )

    assert response.status_code == 422
    error = json.loads(body_text(response))["error"]
    assert error["code"] == "report_too_large"
    assert "REPORT_MAX_AGGREGATE_ENTRIES=1000" in error["message"]
    assert "shorter range" in error["message"]
    assert "view=events" in error["message"]
    stopped_at = re.search(r"after (\d+) records at (\S+):", error["message"])
    assert stopped_at, error["message"]
    assert 0 < int(stopped_at.group(1)) < 300
    assert stopped_at.group(2).startswith("2026-11-1")
    (row,) = heavy.report_access.client.list_entities()
    assert (row["Status"], row["ErrorCode"]) == (422, "report_too_large")


def test_the_range_a_refusal_points_to_is_served_whole(heavy: Storage, report_http: Handler) -> None:
    response = report_http(
        request("heavy@contoso.com", view="exposure", **{"from": "2026-11-18", "to": "2026-11-18"})
    )

    assert response.status_code == 200
    assert column(csv_rows(response), "InternetMessageId") == [f"<heavy-{n}@contoso.com>" for n in range(150)]


def test_the_paged_views_of_a_mailbox_past_the_bound_are_served_in_full(
    heavy: Storage, report_http: Handler
) -> None:
    response = report_http(
        request("heavy@contoso.com", view="messages", **{"from": "2026-11-18", "to": "2026-11-19"})
    )

    assert response.status_code == 200
    assert len(column(csv_rows(response), "InternetMessageId")) == 300


# --- IP context (docs/architecture.md#ip-context) ----------------------------------------------


def test_the_sessions_view_names_each_addresses_network_and_the_users_mmdb_fills_asn_and_org(
    loaded: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler, tmp_path: Path
) -> None:
    networks = {
        **GEOLITE2_ASN,
        "203.0.113.0/24": {"autonomous_system_number": 64500, "autonomous_system_organization": "never"},
    }
    monkeypatch.setenv("IP_DATABASE_PATH", str(write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", networks)))
    runtime.reset()

    response = report_http(request("alice@contoso.com", view="sessions", format="json", **RANGE))

    assert response.status_code == 200
    rows = json.loads(body_text(response))
    assert all(list(row) == list(SESSION_COLUMNS) for row in rows)
    by_ip = {row["ClientIPs"]: row for row in rows}
    attacker = by_ip[ATTACKER_IP]
    assert (attacker["ClientASN"], attacker["ClientOrg"], attacker["ClientNetwork"]) == (
        "AS208294",
        '=HYPERLINK("http://evil")<script>',  # JSON carries the text as it is; CSV neutralises it
        "public",
    )
    assert attacker["ClientCountry"] == "DE"  # the embedded DB-IP Lite data: the file has no country
    # 203.0.113.0/24 is for documentation (RFC 5737): never looked up, whatever a database says.
    office = by_ip[OWNER_OFFICE_IP]
    assert (office["ClientASN"], office["ClientNetwork"]) == ("", "reserved")


def test_an_ip_database_path_that_is_not_an_mmdb_fails_the_report_settings_by_name(
    function_env: Storage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    csv_file = tmp_path / "GeoLite2-ASN-Blocks-IPv4.csv"
    csv_file.write_text("network,autonomous_system_number\n")
    monkeypatch.setenv("IP_DATABASE_PATH", str(csv_file))
    runtime.reset()
    with pytest.raises(SettingsError, match="IP_DATABASE_PATH"):
        runtime.settings()


def test_an_xlsx_report_carries_the_ip_columns_of_the_users_mmdb(
    loaded: Storage, monkeypatch: pytest.MonkeyPatch, report_http: Handler, tmp_path: Path
) -> None:
    asn = write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", GEOLITE2_ASN)
    monkeypatch.setenv("IP_DATABASE_PATH", str(asn))
    runtime.reset()

    response = report_http(request("alice@contoso.com", format="xlsx", **RANGE))

    assert response.status_code == 200
    sessions = load_workbook(io.BytesIO(response.get_body()))["sessions"]
    header = [cell.value for cell in sessions[1]]
    assert header == list(SESSION_COLUMNS)
    rows = [dict(zip(header, (c.value for c in row), strict=True)) for row in sessions.iter_rows(min_row=2)]
    assert {row["ClientASN"] for row in rows if row["ClientIPs"] == ATTACKER_IP} == {"AS208294"}

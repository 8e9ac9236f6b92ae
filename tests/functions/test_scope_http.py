"""scope_http driven with real azure.functions.HttpRequest objects against a real Azurite: the
answers from the ContextIndex, the bad-input answers (4xx JSON naming the parameter, as reports
give them) and the ReportAccess record of each request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest

from devtools.azurite import fresh_storage
from shared import runtime
from shared.ingest import pipeline
from shared.model.scope import SCOPE_COLUMNS
from shared.reports.scope import INDEX_MAILBOX_COLUMNS
from shared.storage import Storage, raw_store
from tests.functions.helpers import user_function
from tests.helpers import parse_csv
from tests.records_factory import mail_items_accessed, operation_properties

pytestmark = pytest.mark.functions

ATTACKER_IP = "198.51.100.23"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
RANGE = {"from": "2026-11-01", "to": "2026-11-29"}
HOSTILE_MAILBOX = '=cmd|"<script>alert(1)</script>"@evil.example'


def record(number: int, mailbox: str, day: int, **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "Id": f"00000000-0000-4000-8000-{number:012d}",
        "CreationTime": f"2026-11-{day:02d}T09:{number % 60:02d}:00",
        "MailboxOwnerUPN": mailbox,
        "UserId": "mallory@evil.example",
        "LogonType": 2,
    }
    return mail_items_accessed(**{**values, **fields})


@pytest.fixture(scope="module")
def seeded(azurite: str) -> Storage:
    """The records processed once for the module, as enrich_trace would."""
    storage = fresh_storage(azurite)
    records = [
        record(1, "alice@contoso.com", 3, ClientIPAddress=ATTACKER_IP),
        record(
            2,
            "alice@contoso.com",
            4,
            ClientIPAddress=ATTACKER_IP,
            OperationProperties=operation_properties("Sync"),
        ),
        record(3, "bob@contoso.com", 5, ClientIPAddress=ATTACKER_IP),
        record(4, HOSTILE_MAILBOX, 6, ClientIPAddress=ATTACKER_IP),
        record(
            5, "carol@contoso.com", 6, ClientIPAddress="203.0.113.10", UserId="carol@contoso.com", LogonType=0
        ),
    ]
    imported = pipeline.import_bytes(storage, json.dumps(records).encode(), "export.json")
    pointer = raw_store.RawPointer(blob=imported.blob, sha256=imported.sha256, format=imported.format)
    pipeline.process_pointer(storage, pointer.encode())
    return storage


@pytest.fixture
def indexed(seeded: Storage, azurite: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    """The function host's environment, pointing at the module's Azurite."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    runtime.reset()
    yield seeded
    runtime.reset()


def scope(**params: str) -> func.HttpResponse:
    request = func.HttpRequest(method="GET", url="http://localhost:7071/api/scope", params=params, body=b"")
    response: func.HttpResponse = user_function("scope_http")(request)
    return response


def error_of(response: func.HttpResponse) -> tuple[int, str, str]:
    error = json.loads(response.get_body())["error"]
    return response.status_code, error["code"], error["message"]


def test_an_address_is_answered_with_one_row_per_mailbox_it_touched(indexed: Storage) -> None:
    response = scope(ip=ATTACKER_IP, format="json", **RANGE)

    assert response.status_code == 200
    rows = json.loads(response.get_body())
    assert [list(row) for row in rows] == [list(SCOPE_COLUMNS)] * 3
    by_mailbox = {row["Mailbox"]: row for row in rows}
    assert set(by_mailbox) == {"alice@contoso.com", "bob@contoso.com", HOSTILE_MAILBOX.lower()}
    alice = by_mailbox["alice@contoso.com"]
    assert (alice["Records"], alice["Messages"], alice["SyncedFolders"], alice["Sessions"]) == (2, 4, 1, 1)
    assert (alice["FirstAccess"], alice["LastAccess"]) == ("2026-11-03T09:01:00Z", "2026-11-04T09:02:00Z")
    # The same answer by network and by actor; the owner's own access from elsewhere is not in it.
    assert json.loads(scope(network="198.51.100.0/24", format="json", **RANGE).get_body()) == rows
    assert json.loads(scope(actor="Mallory@Evil.example", format="json", **RANGE).get_body()) == rows


def test_the_day_range_narrows_the_answer(indexed: Storage) -> None:
    rows = json.loads(
        scope(ip=ATTACKER_IP, format="json", **{"from": "2026-11-04", "to": "2026-11-05"}).get_body()
    )
    assert {row["Mailbox"]: row["Records"] for row in rows} == {"alice@contoso.com": 1, "bob@contoso.com": 1}


def test_csv_neutralises_and_html_escapes_a_hostile_mailbox(indexed: Storage) -> None:
    csv_response = scope(ip=ATTACKER_IP, **RANGE)
    rows = parse_csv(csv_response.get_body().decode("utf-8"))
    assert tuple(rows[0]) == SCOPE_COLUMNS
    assert "'" + HOSTILE_MAILBOX.lower() in [row[0] for row in rows[1:]]
    assert csv_response.headers["Content-Disposition"] == 'attachment; filename="scope-ip.csv"'

    page = scope(ip=ATTACKER_IP, format="html", **RANGE)
    body = page.get_body().decode("utf-8")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_the_mailboxes_view_is_served_from_the_index(indexed: Storage) -> None:
    rows = json.loads(scope(view="mailboxes", format="json", **RANGE).get_body())

    assert all(list(row) == list(INDEX_MAILBOX_COLUMNS) for row in rows)
    assert [row["Mailbox"] for row in rows][-1] == "carol@contoso.com"  # the only owner access: last
    alice = next(row for row in rows if row["Mailbox"] == "alice@contoso.com")
    assert (alice["Records"], alice["NonOwnerAccesses"], alice["SyncedFolders"], alice["DistinctIPs"]) == (
        2,
        2,
        1,
        1,
    )
    assert alice["FirstRecordId"] == "00000000-0000-4000-8000-000000000001"
    assert alice["SourceBlob"].startswith("import/")


@pytest.mark.parametrize(
    ("params", "status", "code", "names"),
    [
        ({}, 400, "missing_context", "ip, network"),
        ({"ip": ATTACKER_IP, "app": "x"}, 400, "too_many_contexts", "ip, app"),
        ({"ip": "198.51.100"}, 400, "invalid_ip", "'ip'"),
        ({"ip": "198.51.100.0/24"}, 400, "invalid_ip", "'ip'"),
        ({"network": "198.51.0.0/16"}, 422, "invalid_network", "/16"),
        ({"network": "nonsense"}, 400, "invalid_network", "'network'"),
        ({"app": "x' or PartitionKey ne '"}, 400, "invalid_app", "'app'"),
        ({"session": "a,b"}, 400, "invalid_session", "'session'"),
        ({"actor": 'bob"\x00'}, 400, "invalid_actor", "'actor'"),
        ({"ip": ATTACKER_IP, "from": "2026-11-01T08:00:00Z"}, 400, "invalid_from", "'from'"),
        ({"ip": ATTACKER_IP, "from": "2020-01-01", "to": "2026-11-01"}, 400, "range_too_large", "'to'"),
        ({"ip": ATTACKER_IP, "from": "2026-11-05", "to": "2026-11-01"}, 400, "invalid_range", "'from'"),
        ({"ip": ATTACKER_IP, "format": "xlsx"}, 400, "invalid_format", "'format'"),
        ({"view": "mailboxes", "ip": ATTACKER_IP}, 400, "invalid_view", "'ip'"),
        ({"view": "events", "ip": ATTACKER_IP}, 400, "invalid_view", "'view'"),
    ],
)
def test_bad_input_gets_a_json_error_naming_the_parameter(
    indexed: Storage, params: dict[str, str], status: int, code: str, names: str
) -> None:
    response = scope(**params)

    assert response.mimetype == "application/json"
    got_status, got_code, message = error_of(response)
    assert (got_status, got_code) == (status, code)
    assert names in message


def test_a_quote_in_a_value_reaches_the_filter_as_data(indexed: Storage) -> None:
    # An actor may hold quotes (service account names); it is a bound parameter, escaped by the SDK.
    response = scope(actor="x' or PartitionKey ne 'x", format="json", **RANGE)
    assert (response.status_code, json.loads(response.get_body())) == (200, [])


def test_every_scope_request_is_recorded_in_report_access(indexed: Storage) -> None:
    scope(ip=ATTACKER_IP, **RANGE)
    scope(ip="nonsense")

    rows = sorted(indexed.report_access.client.list_entities(), key=lambda row: row["RowKey"])[-2:]
    assert [(row["Status"], row["ErrorCode"]) for row in rows] == [(200, ""), (400, "invalid_ip")]
    assert json.loads(rows[0]["Parameters"])["ip"] == ATTACKER_IP

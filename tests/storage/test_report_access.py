"""ReportAccessTable: its keys and the stored entity, against a real Azurite."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.storage import Storage
from shared.storage.report_access import ReportRequest
from tests.helpers import full_scan

pytestmark = pytest.mark.integration

# 00:30 in Auckland on the 19th is still the 18th in UTC: the partition is the UTC day.
AUCKLAND = timezone(timedelta(hours=13))
REQUESTED = datetime(2026, 11, 19, 0, 30, 5, 123456, tzinfo=AUCKLAND)
REQUEST = ReportRequest(
    requested_at=REQUESTED,
    principal="ines@contoso.com",
    principal_id="oid-123",
    auth_type="aad",
    roles="MailAudit.Investigator",
    mailbox="alice@contoso.com",
    parameters='{"from":"2026-11-16"}',
    status=200,
    error_code="",
    body_sha256="b" * 64,
    body_bytes=3_000,
    client_ip="203.0.113.9",
    correlation_id="c0ffee",
    principal_headers_ignored=False,
)


def test_a_request_is_one_row_in_its_utc_day_keyed_by_time_to_the_microsecond(storage: Storage) -> None:
    written = storage.report_access.append(REQUEST)

    [row] = full_scan(storage.report_access)
    assert row == written
    assert row["PartitionKey"] == "2026-11-18"
    assert re.fullmatch(r"20261118T113005123456_[0-9a-f]{32}", row["RowKey"])
    assert row == {
        "PartitionKey": "2026-11-18",
        "RowKey": row["RowKey"],
        "RequestedAt": datetime(2026, 11, 18, 11, 30, 5, 123456, tzinfo=UTC),
        "Principal": "ines@contoso.com",
        "PrincipalId": "oid-123",
        "AuthType": "aad",
        "Roles": "MailAudit.Investigator",
        "Mailbox": "alice@contoso.com",
        "Parameters": '{"from":"2026-11-16"}',
        "Status": 200,
        "ErrorCode": "",
        "BodySha256": "b" * 64,
        "BodyBytes": 3_000,
        "ClientIp": "203.0.113.9",
        "CorrelationId": "c0ffee",
        "PrincipalHeadersIgnored": False,
    }
    assert row["RequestedAt"].tzinfo == UTC


def test_two_requests_in_the_same_microsecond_are_two_rows(storage: Storage) -> None:
    storage.report_access.append(REQUEST)
    storage.report_access.append(replace(REQUEST, status=403, error_code="forbidden"))

    rows = full_scan(storage.report_access)
    assert sorted(row["Status"] for row in rows) == [200, 403]
    assert len({row["RowKey"] for row in rows}) == 2
    assert {row["RowKey"][:22] for row in rows} == {"20261118T113005123456_"}

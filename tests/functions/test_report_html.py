"""format=html through report_http: the page, its headers, and the SHA-256 ReportAccess keeps."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import azure.functions as func
import pytest

from shared.reports import html
from shared.storage import Storage
from tests.helpers import SAMPLE_FROM, SAMPLE_TO
from tests.html_cases import parts

pytestmark = pytest.mark.functions

Handler = Callable[[func.HttpRequest], func.HttpResponse]
RANGE = {"from": SAMPLE_FROM, "to": SAMPLE_TO}


def request(mailbox: str, **params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/reports/{mailbox}",
        route_params={"mailbox": mailbox},
        params=params,
        body=b"",
    )


def test_the_html_report_is_one_page_under_a_policy_header_and_recorded_by_its_hash(
    loaded: Storage, report_http: Handler
) -> None:
    response = report_http(request("alice@contoso.com", format="html", **RANGE))

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == html.HEADER_CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Disposition" not in response.headers
    assert "Link" not in response.headers, "the page is whole: never paged"
    body = response.get_body()
    page = parts(body.decode("utf-8"))
    sessions = json.loads(
        report_http(request("alice@contoso.com", view="sessions", format="json", **RANGE)).get_body()
    )
    lanes = [g for g in page.of("g") if "lane" in g.attrs.get("class", "").split()]
    assert sorted(g.attrs["data-lane"] for g in lanes) == sorted(row["SessionId"] for row in sessions)
    assert response.headers["X-Row-Count"] == "43", "the records the page covers"
    [row, *_] = sorted(loaded.report_access.client.list_entities(), key=lambda row: row["RowKey"])
    assert json.loads(row["Parameters"])["format"] == "html"
    assert row["BodySha256"] == hashlib.sha256(body).hexdigest()
    assert row["BodyBytes"] == len(body)

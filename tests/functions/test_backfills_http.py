"""backfills_http and backfill_state_http driven with real azure.functions.HttpRequest objects
against Azurite (and, end to end, the simulated Graph audit-log query API): a POST starts one job
however often it is sent, GET answers its state, bad requests get a 4xx JSON error naming the
problem, and every request leaves its ReportAccess row."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import azure.functions as func
import pytest

from shared import runtime
from shared.backfill.endpoint import MAX_BODY_BYTES
from shared.storage import Storage
from tests.functions.helpers import user_function
from tests.functions.test_report_access import ROLE, access_rows, principal_header

pytestmark = pytest.mark.functions

TENANT = "4c0e6b1a-9d2f-4e37-8a15-2b7f0c9d3e61"
WORKSPACE = "5d2c8a1e-6f3b-4c7d-9e0a-1b2c3d4e5f60"
ASKED = {"from": "2026-10-01", "to": "2026-10-31", "mailboxes": ["alice@contoso.com"]}


@pytest.fixture
def backfills(function_env: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    monkeypatch.setenv("TENANT_ID", TENANT)
    return function_env


def post(body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = func.HttpRequest(
        method="POST",
        url="http://localhost:7071/api/backfills",
        params={"code": "function-key"},
        headers=headers or {},
        body=data,
    )
    response: func.HttpResponse = user_function("backfills_http")(request)
    return response


def get(job_id: str) -> func.HttpResponse:
    request = func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/backfills/{job_id}",
        route_params={"id": job_id},
        params={},
        body=b"",
    )
    response: func.HttpResponse = user_function("backfill_state_http")(request)
    return response


def answer(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def all_jobs(storage: Storage) -> list[str]:
    return storage.backfill_jobs.job_ids(("pending", "running", "done", "failed"))


def test_a_post_starts_a_job_answers_202_with_its_location_and_is_recorded(backfills: Storage) -> None:
    response = post(ASKED)

    assert response.status_code == 202
    job = answer(response)
    assert response.headers["Location"] == f"/api/backfills/{job['id']}"
    assert (job["state"], job["from"], job["to"]) == (
        "pending",
        "2026-10-01T00:00:00Z",
        "2026-11-01T00:00:00Z",
    )
    assert job["mailboxes"] == ["alice@contoso.com"]
    assert len(job["windows"]) == 31  # one a day, as `mia backfill` plans them
    assert all_jobs(backfills) == [job["id"]]
    [row] = access_rows(backfills)
    assert (row["Status"], row["Mailbox"]) == (202, "")
    recorded = json.loads(row["Parameters"])
    assert json.loads(recorded["body"]) == ASKED
    assert "code" not in recorded, "the function key must never be recorded"
    assert row["BodySha256"] == hashlib.sha256(response.get_body()).hexdigest()


def test_the_same_post_again_answers_the_same_job_with_200_and_creates_none(backfills: Storage) -> None:
    first = answer(post(ASKED))
    again = post({**ASKED, "mailboxes": ["ALICE@contoso.com"]})  # the same mailbox in other casing

    assert again.status_code == 200
    assert answer(again)["id"] == first["id"]
    assert all_jobs(backfills) == [first["id"]]


def test_get_answers_the_state_of_the_job_with_a_retry_after_while_it_is_unfinished(
    backfills: Storage,
) -> None:
    job = answer(post(ASKED))

    response = get(job["id"])

    assert response.status_code == 200
    assert answer(response) == job
    assert response.headers["Retry-After"] == "60"
    assert [row["Status"] for row in access_rows(backfills)] == [202, 200]


@pytest.mark.parametrize(
    ("job_id", "status", "code"),
    [
        ("auditquery-0123456789abcdef0123", 404, "job_not_found"),
        ("auditquery-' or PartitionKey ne '", 400, "invalid_job_id"),
        ("x" * 300, 400, "invalid_job_id"),
        ("auditquery-0123456789abcdef0123\n", 400, "invalid_job_id"),
    ],
)
def test_get_of_an_unknown_or_malformed_id_answers_a_json_error_and_is_recorded(
    backfills: Storage, job_id: str, status: int, code: str
) -> None:
    response = get(job_id)

    assert response.status_code == status
    assert answer(response)["error"]["code"] == code
    [row] = access_rows(backfills)
    assert (row["Status"], row["ErrorCode"]) == (status, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b'["2026-10-01"]', "invalid_json"),
        ({**ASKED, "window": "1d"}, "unknown_field"),
        ({"to": "2026-10-31"}, "missing_from"),
        ({"from": 20261001, "to": "2026-10-31"}, "invalid_from"),
        ({"from": "2026-10-01", "to": "last week"}, "invalid_to"),
        ({"from": "2026-10-31", "to": "2026-10-01"}, "invalid_range"),
        ({"from": "2014-01-01", "to": "2014-02-01"}, "date_out_of_range"),
        ({"from": "2999-01-01", "to": "2999-02-01"}, "date_out_of_range"),
        ({**ASKED, "source": "splunk"}, "unsupported_source"),
        ({**ASKED, "source": "sentinel"}, "invalid_workspace"),
        ({**ASKED, "source": "sentinel", "workspace": "' or 1 eq 1"}, "invalid_workspace"),
        ({**ASKED, "workspace": WORKSPACE}, "invalid_workspace"),
        ({**ASKED, "mailboxes": "alice@contoso.com"}, "invalid_mailboxes"),
        ({**ASKED, "mailboxes": ['=cmd|"/c calc"!A1']}, "invalid_mailboxes"),
        ({**ASKED, "mailboxes": ["alice@contoso.com\n"]}, "invalid_mailboxes"),
        ({**ASKED, "source": "sentinel", "workspace": f"{WORKSPACE}\n"}, "invalid_workspace"),
        ({**ASKED, "mailboxes": [f"user{n}@contoso.com" for n in range(101)]}, "invalid_mailboxes"),
    ],
)
def test_a_bad_post_answers_400_naming_the_problem_and_starts_nothing(
    backfills: Storage, body: bytes | dict[str, Any], code: str
) -> None:
    response = post(body)

    assert response.status_code == 400
    assert answer(response)["error"]["code"] == code
    assert all_jobs(backfills) == []
    [row] = access_rows(backfills)
    assert (row["Status"], row["ErrorCode"]) == (400, code)


def test_a_body_past_the_limit_answers_413_and_is_recorded_by_its_first_bytes(backfills: Storage) -> None:
    response = post(b" " * (MAX_BODY_BYTES + 1))

    assert response.status_code == 413
    assert all_jobs(backfills) == []
    [row] = access_rows(backfills)
    assert row["Status"] == 413


def test_with_a_role_required_a_caller_without_it_starts_nothing(
    backfills: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("REPORT_REQUIRED_ROLE", ROLE)
    runtime.reset()

    refused = post(ASKED, {"X-MS-CLIENT-PRINCIPAL": principal_header(["Other.Role"])})
    allowed = post(ASKED, {"X-MS-CLIENT-PRINCIPAL": principal_header([ROLE])})

    assert refused.status_code == 403
    assert allowed.status_code == 202
    assert all_jobs(backfills) == [answer(allowed)["id"]]
    assert [(row["Status"], row["Principal"]) for row in access_rows(backfills)] == [
        (403, "ines@contoso.com"),
        (202, "ines@contoso.com"),
    ]


def test_in_a_cloud_without_the_audit_query_api_only_its_jobs_answer_501_naming_the_other_sources(
    backfills: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("M365_CLOUD", "gcchigh")

    response = post(ASKED)

    assert response.status_code == 501
    error = answer(response)["error"]
    assert error["code"] == "backfill_unavailable"
    assert "mia import" in error["message"]
    assert all_jobs(backfills) == []
    from_workspace = post({**ASKED, "source": "sentinel", "workspace": WORKSPACE})
    assert from_workspace.status_code == 202, "Log Analytics answers in every cloud"


def test_a_post_for_a_workspace_starts_a_sentinel_job_of_that_workspace(backfills: Storage) -> None:
    response = post({**ASKED, "source": "sentinel", "workspace": WORKSPACE})

    assert response.status_code == 202
    job = answer(response)
    assert (job["source"], job["workspace"]) == ("sentinel", WORKSPACE)
    assert job["id"].startswith("sentinel-")
    assert answer(post(ASKED))["id"] != job["id"], "the audit-log query job of the same range is another"

"""Pure parts of the Management Activity API client: error classification by error code, links."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import requests

from shared.clients.activity_api import (
    ActivityClient,
    ContentGone,
    NoSubscription,
    api_time,
    classify,
    parse_api_time,
)
from shared.clients.errors import ApiAuthError, ApiError, PermanentError, Throttled, TransientError
from shared.clients.transport import error_reply
from shared.settings import load_collection_settings

pytestmark = pytest.mark.unit

TENANT = "11111111-2222-3333-4444-555555555555"
PUBLISHER = "99999999-8888-7777-6666-555555555555"


def response(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = orjson.dumps(body) if not isinstance(body, bytes) else body
    made.headers.update(headers or {})
    return made


def classified(status: int, body: object, headers: dict[str, str] | None = None) -> ApiError:
    return classify(error_reply(response(status, body, headers)))


def af(code: str) -> dict[str, object]:
    return {"error": {"code": code, "message": f"message of {code}"}}


class NoTokens:
    def token(self, scope: str) -> str:
        return "token"

    def invalidate(self) -> None:
        pass


def client() -> ActivityClient:
    settings = load_collection_settings({"TENANT_ID": TENANT, "PUBLISHER_ID": PUBLISHER})
    return ActivityClient(settings, NoTokens())


@pytest.mark.parametrize("status", [403, 429])
def test_af429_is_throttling_whatever_the_status(status: int) -> None:
    problem = classified(status, af("AF429"), {"Retry-After": "7"})
    assert isinstance(problem, Throttled)
    assert problem.retry_after == 7.0


def test_throttling_without_retry_after_has_no_retry_after() -> None:
    problem = classified(403, af("AF429"))
    assert isinstance(problem, Throttled)
    assert problem.retry_after is None


@pytest.mark.parametrize("code", ["AF50000", "AF50005", "AF50006"])
def test_internal_errors_are_retried(code: str) -> None:
    assert isinstance(classified(500, af(code)), TransientError)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_bare_server_errors_are_retried(status: int) -> None:
    assert isinstance(classified(status, b"<html>busy</html>"), TransientError)


@pytest.mark.parametrize("code", ["AF20050", "AF20051", "AF20052"])
def test_missing_or_expired_content_is_gone_not_retried(code: str) -> None:
    problem = classified(400, af(code))
    assert isinstance(problem, ContentGone)
    assert isinstance(problem, PermanentError)
    assert problem.code == code


@pytest.mark.parametrize("code", ["AF20022", "AF20023"])
def test_no_or_disabled_subscription_is_recognised(code: str) -> None:
    assert isinstance(classified(400, af(code)), NoSubscription)


@pytest.mark.parametrize("code", ["AF10001", "AF20010", "AF20011", "AF20012", "AF20013"])
def test_permission_and_tenant_errors_are_auth_errors(code: str) -> None:
    assert isinstance(classified(401 if code == "AF10001" else 400, af(code)), ApiAuthError)


def test_a_plain_401_is_an_auth_error() -> None:
    body = {"Message": "Authorization has been denied for this request."}
    problem = classified(401, body)
    assert isinstance(problem, ApiAuthError)
    assert "denied" in problem.message


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_with_a_code_this_client_does_not_know_are_retried(status: int) -> None:
    assert isinstance(classified(status, af("AF99999")), TransientError)


def test_a_bare_403_is_an_auth_error() -> None:
    assert isinstance(classified(403, b""), ApiAuthError)


def test_window_errors_are_plain_errors_not_retried() -> None:
    problem = classified(400, af("AF20030"))
    assert type(problem) is PermanentError
    assert problem.code == "AF20030"


def test_links_get_the_publisher_identifier_once() -> None:
    url = client()._with_publisher("https://manage.office.com/api/v1.0/t/activity/feed/audit/abc$def?x=1")
    query = parse_qs(urlsplit(url).query)
    assert query["PublisherIdentifier"] == [PUBLISHER]
    again = client()._with_publisher(url)
    assert parse_qs(urlsplit(again).query)["PublisherIdentifier"] == [PUBLISHER]


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/v1.0/t/activity/feed/audit/x",
        "http://manage.office.com/api/v1.0/t/activity/feed/audit/x",
        "https://manage.office.com.evil.example/x",
    ],
)
def test_the_token_is_never_sent_to_another_host(url: str) -> None:
    with pytest.raises(PermanentError) as caught:
        client().request("GET", url, lambda answer: answer)
    assert caught.value.code == "foreign_host"


def test_api_times_are_utc_without_zone_and_parse_back() -> None:
    moment = datetime(2026, 11, 20, 8, 15, 2, tzinfo=UTC)
    assert api_time(moment) == "2026-11-20T08:15:02"
    assert parse_api_time("2026-11-20T08:15:02.000Z") == moment
    assert parse_api_time("2026-11-20T08:15:02") == moment

"""The tenant simulator over real HTTPS: MSAL tokens, the Management Activity API's documented rules
and error codes, paging, late and expired content, faults, ground truth, the CLI."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests

from simulator import PUBLISHER_ID, FaultConfig, Simulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE = "Audit.Exchange"
QUIET = FaultConfig.none()


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def msal_token(sim: Simulator, mode: str = "secret", scope: str | None = None) -> dict[str, Any]:
    credential: Any = sim.client_secret
    if mode == "certificate":
        pem = Path(sim.certificate_path).read_text(encoding="ascii")
        credential = {"private_key": pem, "thumbprint": sim.certificate_thumbprint}
    app = msal.ConfidentialClientApplication(
        sim.client_id,
        client_credential=credential,
        authority=sim.authority,
        instance_discovery=False,
        verify=sim.ca_bundle,
    )
    result: dict[str, Any] = app.acquire_token_for_client([scope or f"{sim.base_url}/.default"])
    return result


class Api:
    """Plain requests against the simulator, the way a client would call the real service."""

    def __init__(self, sim: Simulator, token: str | None = None) -> None:
        self.sim = sim
        self.token = token if token is not None else msal_token(sim)["access_token"]
        self.root = f"{sim.base_url}/api/v1.0/{sim.tenant_id}/activity/feed"
        self.session = requests.Session()

    def call(self, method: str, url: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        with_publisher = params.pop("publisher", True)
        if with_publisher and "PublisherIdentifier" not in url:
            params["PublisherIdentifier"] = PUBLISHER_ID
        return self.session.request(
            method, url, params=params, headers=headers, verify=self.sim.ca_bundle, timeout=10
        )

    def get(self, operation: str, **params: Any) -> requests.Response:
        return self.call("GET", f"{self.root}/{operation}", **params)

    def post(self, operation: str, **params: Any) -> requests.Response:
        return self.call("POST", f"{self.root}/{operation}", **params)

    def start(self, content_type: str = EXCHANGE) -> requests.Response:
        return self.post("subscriptions/start", contentType=content_type)

    def pages(self, start: datetime, end: datetime, **extra: Any) -> list[requests.Response]:
        responses = [
            self.get(
                "subscriptions/content", contentType=EXCHANGE, startTime=fmt(start), endTime=fmt(end), **extra
            )
        ]
        while "NextPageUri" in responses[-1].headers:
            assert len(responses) < 500
            responses.append(self.call("GET", responses[-1].headers["NextPageUri"]))
        assert all(r.status_code == 200 for r in responses), [
            r.text for r in responses if r.status_code != 200
        ]
        return responses

    def listing(self) -> list[dict[str, Any]]:
        """Everything listable now: 24-hour windows over the last days, pages followed."""
        now = datetime.now(UTC) + timedelta(minutes=1)
        items = []
        for back in range(self.sim.config.days, -1, -1):
            end = now - timedelta(days=back)
            start = max(end - timedelta(days=1), now - timedelta(days=7))
            for page in self.pages(start, end):
                items += page.json()
        return items


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """Read-only checks share one quiet tenant; its Audit.Exchange subscription is started."""
    config = SimulatorConfig(seed=5, mailboxes=3, days=2, page_size=5, late_delay_s=3600, faults=QUIET)
    with Simulator(config) as running:
        assert Api(running).start().status_code == 200
        yield running


@pytest.fixture(scope="module")
def api(sim: Simulator) -> Api:
    return Api(sim)


def small(**faults: Any) -> SimulatorConfig:
    return SimulatorConfig(seed=3, mailboxes=1, days=1, page_size=10, faults=replace(QUIET, **faults))


@pytest.fixture
def fresh() -> Iterator[Simulator]:
    with Simulator(small()) as running:
        yield running


# -- Entra: discovery and tokens ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["secret", "certificate"])
def test_msal_gets_an_activity_feed_token_with_a_secret_or_a_certificate(sim: Simulator, mode: str) -> None:
    result = msal_token(sim, mode)
    assert result.get("token_type") == "Bearer", result
    assert result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == sim.base_url
    assert not claims["aud"].endswith("/")
    assert claims["tid"] == sim.tenant_id
    assert claims["appid"] == sim.client_id
    assert claims["roles"] == ["ActivityFeed.Read"]
    assert claims["exp"] - claims["iat"] == 3599
    assert claims["appidacr"] == ("1" if mode == "secret" else "2")
    assert Api(sim, result["access_token"]).get("subscriptions/list").status_code == 200


def test_openid_configuration_names_the_tenant_endpoints(sim: Simulator) -> None:
    response = requests.get(
        f"{sim.authority}/v2.0/.well-known/openid-configuration", verify=sim.ca_bundle, timeout=10
    )
    config = response.json()
    assert config["issuer"] == f"{sim.base_url}/{sim.tenant_id}/v2.0"
    assert config["token_endpoint"] == f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token"
    keys = requests.get(config["jwks_uri"], verify=sim.ca_bundle, timeout=10).json()["keys"]
    token = msal_token(sim)["access_token"]
    key = jwt.PyJWK(keys[0]).key
    assert jwt.decode(token, key, algorithms=["RS256"], audience=sim.base_url)["tid"] == sim.tenant_id
    unknown = requests.get(
        f"{sim.base_url}/nobody.example/v2.0/.well-known/openid-configuration",
        verify=sim.ca_bundle,
        timeout=10,
    )
    assert unknown.status_code == 400
    assert "AADSTS90002" in unknown.json()["error_description"]


def post_token(sim: Simulator, tenant: str | None = None, **form: str) -> requests.Response:
    body = {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "scope": f"{sim.base_url}/.default",
        **form,
    }
    url = f"{sim.base_url}/{tenant or sim.tenant_id}/oauth2/v2.0/token"
    return requests.post(url, data=body, verify=sim.ca_bundle, timeout=10)


def assertion(sim: Simulator, key_pem: str | None = None, **claims: Any) -> str:
    pem = key_pem or Path(sim.certificate_path).read_text(encoding="ascii")
    thumbprint = base64.urlsafe_b64encode(bytes.fromhex(sim.certificate_thumbprint)).decode()
    now = int(time.time())
    payload = {
        "aud": f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token",
        "iss": sim.client_id,
        "sub": sim.client_id,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    return jwt.encode(payload, pem, algorithm="RS256", headers={"x5t": thumbprint})


ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        (
            {"client_secret": "x", "client_id": "11111111-2222-3333-4444-555555555555"},
            400,
            "unauthorized_client",
            700016,
        ),
        ({}, 401, "invalid_client", 7000218),
        (
            {"client_secret": "@secret", "scope": "https://example.invalid/.default"},
            400,
            "invalid_resource",
            500011,
        ),
        ({"client_secret": "@secret", "scope": "@base/ActivityFeed.Read"}, 400, "invalid_scope", 1002012),
        ({"client_secret": "@secret", "grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"client_assertion_type": ASSERTION, "client_assertion": "@expired"}, 401, "invalid_client", 700024),
        (
            {"client_assertion_type": ASSERTION, "client_assertion": "@wrong-aud"},
            401,
            "invalid_client",
            700212,
        ),
        (
            {"client_assertion_type": ASSERTION, "client_assertion": "@wrong-iss"},
            401,
            "invalid_client",
            700021,
        ),
        (
            {"client_assertion_type": ASSERTION, "client_assertion": "@other-key"},
            401,
            "invalid_client",
            700027,
        ),
    ],
)
def test_the_token_endpoint_refuses_like_entra(
    sim: Simulator, form: dict[str, str], status: int, error: str, code: int
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    values = {
        "@secret": sim.client_secret,
        "@base": sim.base_url,
        "@expired": assertion(sim, iat=int(time.time()) - 3600, exp=int(time.time()) - 1200),
        "@wrong-aud": assertion(sim, aud=f"{sim.base_url}/other/oauth2/v2.0/token"),
        "@wrong-iss": assertion(sim, iss="someone-else", sub="someone-else"),
        "@other-key": assertion(sim, key_pem=other_key.decode()),
    }
    resolved = {
        k: v.replace("@base", sim.base_url) if v.startswith("@base") else values.get(v, v)
        for k, v in form.items()
    }
    response = post_token(sim, **resolved)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"AADSTS{code}:")
    assert body["error_codes"] == [code]
    assert body["correlation_id"]
    assert body["trace_id"]


def test_a_valid_assertion_and_the_v1_endpoint_issue_tokens(sim: Simulator) -> None:
    response = post_token(sim, client_assertion_type=ASSERTION, client_assertion=assertion(sim))
    assert response.status_code == 200
    assert response.json()["expires_in"] == 3599
    v1 = requests.post(
        f"{sim.base_url}/contoso.com/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "resource": sim.base_url,
        },
        verify=sim.ca_bundle,
        timeout=10,
    )
    assert v1.status_code == 200
    assert v1.json()["resource"] == sim.base_url


def test_a_short_token_lifetime_expires_and_a_new_token_works() -> None:
    with Simulator(replace(small(), token_lifetime_s=2)) as sim:
        first = msal_token(sim)
        assert first["expires_in"] == 2
        api = Api(sim, first["access_token"])
        assert api.get("subscriptions/list").status_code == 200
        time.sleep(2.1)
        expired = api.get("subscriptions/list")
        assert expired.status_code == 401
        assert expired.json() == {"Message": "Authorization has been denied for this request."}
        assert Api(sim).get("subscriptions/list").status_code == 200


# -- API authorization -------------------------------------------------------------------------


def test_every_call_needs_a_valid_token_for_this_api(sim: Simulator, api: Api) -> None:
    blob = next(b for b in sim.tenant.blobs if not b.late and b.expiration > datetime.now(UTC))
    blob_url = f"{api.root}/audit/{blob.content_id}"
    other_audience = msal_token(sim, scope="https://manage.office.com/.default")["access_token"]
    before = sim.stats()["requests_with_bad_token"]
    bad_tokens = ["", "not-a-jwt", sim.mint_token(issued_at=int(time.time()) - 7200), other_audience]
    for token in bad_tokens:
        for response in (
            api.call("GET", f"{api.root}/subscriptions/list", token=token),
            api.call("GET", blob_url, token=token),
        ):
            assert response.status_code == 401
            assert response.json() == {"Message": "Authorization has been denied for this request."}
    no_header = requests.get(blob_url, verify=sim.ca_bundle, timeout=10)
    assert no_header.status_code == 401
    assert sim.stats()["requests_with_bad_token"] == before + 2 * len(bad_tokens) + 1


def test_a_token_without_the_role_or_for_another_tenant_is_refused(sim: Simulator, api: Api) -> None:
    no_role = api.call("GET", f"{api.root}/subscriptions/list", token=sim.mint_token(roles=[]))
    assert no_role.status_code == 401
    assert error_code(no_role) == "AF10001"
    assert "ActivityFeed.Read" in no_role.json()["error"]["message"]
    foreign = sim.mint_token(tenant_id=str(uuid.uuid4()))
    mismatch = api.call("GET", f"{api.root}/subscriptions/list", token=foreign)
    assert error_code(mismatch) == "AF20010"
    not_guid = api.call("GET", f"{sim.base_url}/api/v1.0/contoso.com/activity/feed/subscriptions/list")
    assert not_guid.status_code == 400
    assert error_code(not_guid) == "AF20013"


def test_requests_without_publisher_identifier_are_served_and_counted(sim: Simulator, api: Api) -> None:
    before = sim.stats()["requests_without_publisher_identifier"]
    response = api.get("subscriptions/list", publisher=False)
    assert response.status_code == 200
    assert sim.stats()["requests_without_publisher_identifier"] == before + 1


def test_unknown_routes_answer_like_web_api(sim: Simulator, api: Api) -> None:
    response = api.get("subscriptions/nothing")
    assert response.status_code == 404
    assert "No HTTP resource was found" in response.json()["Message"]
    assert api.get("subscriptions/start", contentType=EXCHANGE).status_code == 405


# -- subscriptions ----------------------------------------------------------------------------


def test_subscription_lifecycle(fresh: Simulator) -> None:
    api = Api(fresh)
    now = datetime.now(UTC)
    window = {"contentType": EXCHANGE, "startTime": fmt(now - timedelta(hours=2)), "endTime": fmt(now)}
    assert error_code(api.get("subscriptions/content", **window)) == "AF20022"  # none to begin with
    assert api.get("subscriptions/list").json() == []
    started = api.start()
    assert started.status_code == 200
    assert started.json() == {"contentType": EXCHANGE, "status": "enabled", "webhook": None}
    again = api.start()
    assert again.status_code == 400
    assert error_code(again) == "AF20024"
    assert api.get("subscriptions/list").json() == [
        {"contentType": EXCHANGE, "status": "enabled", "webhook": None}
    ]
    assert api.get("subscriptions/content", **window).status_code == 200
    stopped = api.post("subscriptions/stop", contentType=EXCHANGE)
    assert stopped.status_code == 200
    assert stopped.content == b""
    assert error_code(api.get("subscriptions/content", **window)) == "AF20023"
    assert api.get("subscriptions/list").json()[0]["status"] == "disabled"
    assert api.start().status_code == 200
    assert api.get("subscriptions/content", **window).status_code == 200


def test_content_types_are_validated(fresh: Simulator) -> None:
    api = Api(fresh)
    assert error_code(api.post("subscriptions/start", contentType="Audit.Teams")) == "AF20020"
    assert error_code(api.post("subscriptions/start")) == "AF20001"
    assert error_code(api.get("subscriptions/content", contentType="Exchange")) == "AF20020"
    assert api.start("Audit.General").status_code == 200
    assert api.get("subscriptions/content", contentType="Audit.General").json() == []


def test_a_subscription_disabled_by_an_admin_answers_af20023() -> None:
    with Simulator(replace(small(), admin_disabled=(EXCHANGE,))) as sim:
        api = Api(sim)
        assert api.start().json()["status"] == "disabled"
        assert error_code(api.get("subscriptions/content", contentType=EXCHANGE)) == "AF20023"


# -- listing content --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        (timedelta(hours=-2), None, "AF20030"),  # both or neither
        (None, timedelta(hours=-1), "AF20030"),
        (timedelta(hours=-30), timedelta(hours=-5), "AF20030"),  # more than 24 h
        (timedelta(hours=-1), timedelta(hours=-2), "AF20055"),  # end before start
        (timedelta(hours=-1), timedelta(hours=-1), "AF20055"),
        (timedelta(days=-8), timedelta(days=-7, hours=-12), "AF20030"),  # more than 7 days back
    ],
)
def test_time_window_rules(api: Api, start: timedelta | None, end: timedelta | None, code: str) -> None:
    now = datetime.now(UTC)
    params = {"contentType": EXCHANGE}
    if start is not None:
        params["startTime"] = fmt(now + start)
    if end is not None:
        params["endTime"] = fmt(now + end)
    response = api.get("subscriptions/content", **params)
    assert response.status_code == 400
    assert error_code(response) == code


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("%Y-%m-%d", "%Y-%m-%d"),
        ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M"),
        ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"),
        ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%fZ"),
    ],
)
def test_documented_time_formats_and_client_variants_are_accepted(api: Api, start: str, end: str) -> None:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    response = api.get(
        "subscriptions/content",
        contentType=EXCHANGE,
        startTime=day.strftime(start),
        endTime=(day + timedelta(days=1)).strftime(end),
    )
    assert response.status_code == 200, response.text
    bad = api.get("subscriptions/content", contentType=EXCHANGE, startTime="yesterday", endTime=fmt(day))
    assert error_code(bad) == "AF20002"


def test_a_window_starting_exactly_seven_days_back_and_ending_in_the_future_is_accepted(api: Api) -> None:
    now = datetime.now(UTC)
    assert (
        api.get(
            "subscriptions/content",
            contentType=EXCHANGE,
            startTime=fmt(now - timedelta(days=7)),
            endTime=fmt(now - timedelta(days=6)),
        ).status_code
        == 200
    )
    assert (
        api.get(
            "subscriptions/content",
            contentType=EXCHANGE,
            startTime=fmt(now - timedelta(hours=1)),
            endTime=fmt(now + timedelta(hours=23)),
        ).status_code
        == 200
    )


def test_no_window_means_the_last_24_hours_and_paging_keeps_that_interval(api: Api) -> None:
    first = api.get("subscriptions/content", contentType=EXCHANGE)
    assert first.status_code == 200
    query = parse_qs(urlsplit(first.headers["NextPageUri"]).query)
    start, end = (
        datetime.fromisoformat(query[name][0]).replace(tzinfo=UTC) for name in ("startTime", "endTime")
    )
    assert end - start == timedelta(hours=24)
    assert abs(end - datetime.now(UTC)) < timedelta(minutes=1)


def test_listing_filters_on_content_created_with_inclusive_start_and_exclusive_end(
    sim: Simulator, api: Api
) -> None:
    visible = [b for b in sim.tenant.blobs if not b.late]
    target = visible[len(visible) // 2]
    exact = target.created.strftime("%Y-%m-%dT%H:%M:%S.%f")
    including = [
        i["contentId"]
        for p in api.pages(target.created, target.created + timedelta(hours=1))
        for i in p.json()
    ]
    including += [
        i["contentId"]
        for p in [
            api.get(
                "subscriptions/content",
                contentType=EXCHANGE,
                startTime=exact,
                endTime=fmt(target.created + timedelta(hours=1)),
            )
        ]
        for i in p.json()
    ]
    assert target.content_id in including
    before = api.get(
        "subscriptions/content",
        contentType=EXCHANGE,
        startTime=fmt(target.created - timedelta(hours=1)),
        endTime=exact,
    )
    ids = [i["contentId"] for i in before.json()]
    assert target.content_id not in ids


def test_paging_follows_next_page_uri_until_everything_visible_is_listed(sim: Simulator, api: Api) -> None:
    items = api.listing()
    visible = [b for b in sim.tenant.blobs if not b.late]
    assert sorted(i["contentId"] for i in items) == sorted(b.content_id for b in visible)
    assert len(items) == len({i["contentId"] for i in items})
    created = [i["contentCreated"] for i in items]
    assert created == sorted(created)  # ordered by availability
    item = items[0]
    assert set(item) == {"contentType", "contentId", "contentUri", "contentCreated", "contentExpiration"}
    assert item["contentUri"] == f"{api.root}/audit/{item['contentId']}"
    assert "$" in item["contentId"]
    assert item["contentCreated"].endswith("Z")
    assert len(item["contentCreated"]) == len("2026-11-20T10:00:00.000Z")
    now = datetime.now(UTC)
    pages = api.pages(now - timedelta(days=1), now)
    assert len(pages) > 2
    assert all(len(p.json()) == 5 for p in pages[:-1])
    assert len(pages[-1].json()) <= 5
    link = urlsplit(pages[0].headers["NextPageUri"])
    query = parse_qs(link.query)
    assert f"{link.scheme}://{link.netloc}" == sim.base_url
    assert link.path.endswith("/subscriptions/content")
    assert query["startTime"] == [fmt(now - timedelta(days=1))]
    assert query["endTime"] == [fmt(now)]
    assert query["PublisherIdentifier"] == [PUBLISHER_ID]
    assert query["nextPage"][0]


def test_a_garbage_or_tampered_next_page_is_af20031(api: Api) -> None:
    now = datetime.now(UTC)
    window = {"contentType": EXCHANGE, "startTime": fmt(now - timedelta(days=1)), "endTime": fmt(now)}
    assert (
        error_code(api.get("subscriptions/content", nextPage="2015101900R022885001761", **window))
        == "AF20031"
    )
    link = api.get("subscriptions/content", **window).headers["NextPageUri"]
    token = parse_qs(urlsplit(link).query)["nextPage"][0]
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    assert error_code(api.get("subscriptions/content", nextPage=tampered, **window)) == "AF20031"
    other_window = {**window, "startTime": fmt(now - timedelta(hours=20))}
    assert error_code(api.get("subscriptions/content", nextPage=token, **other_window)) == "AF20031"


def test_empty_pages_still_carry_a_next_page_uri() -> None:
    with Simulator(small(empty_page_rate=1.0)) as sim:
        api = Api(sim)
        api.start()
        now = datetime.now(UTC)
        pages = api.pages(now - timedelta(hours=23, minutes=59), now + timedelta(minutes=1))
        empty = [p for p in pages if p.json() == []]
        assert empty
        assert all("NextPageUri" in p.headers for p in empty)
        listed = sorted(i["contentId"] for p in pages for i in p.json())
        assert listed == sorted(b.content_id for b in sim.tenant.blobs if not b.late)
        assert sim.stats()["faults"]["empty_page"] == len(empty)


# -- content blobs ----------------------------------------------------------------------------


def test_a_blob_is_the_exact_stored_json_array_every_time(sim: Simulator, api: Api) -> None:
    blob = next(b for b in sim.tenant.blobs if not b.late and b.expiration > datetime.now(UTC))
    url = f"{api.root}/audit/{blob.content_id}"
    first, second = api.call("GET", url), api.call("GET", url)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert first.content == second.content == blob.body
    records = first.json()
    assert isinstance(records, list)
    assert [r["Id"] for r in records] == list(blob.record_ids)
    assert int(first.headers["Content-Length"]) == len(blob.body)


def test_unknown_malformed_and_expired_blobs(sim: Simulator, api: Api) -> None:
    unknown = api.call(
        "GET",
        f"{api.root}/audit/20261120100000000000001$20261120100000000000001$audit_exchange$Audit_Exchange$na0001",
    )
    assert unknown.status_code == 404
    assert error_code(unknown) == "AF20050"
    assert error_code(api.call("GET", f"{api.root}/audit/not-a-content-id")) == "AF20052"
    expired = [b for b in sim.tenant.blobs if b.expiration <= datetime.now(UTC)]
    assert len(expired) == QUIET.expired_blobs
    listed = {i["contentId"] for i in api.listing()}
    for blob in expired:
        assert blob.content_id in listed  # listed, gone when fetched: docs/mailitemsaccessed.md#error-codes
        response = api.call("GET", f"{api.root}/audit/{blob.content_id}")
        assert response.status_code == 400
        assert error_code(response) == "AF20051"


def test_late_blobs_appear_in_windows_already_collected_once_released() -> None:
    with Simulator(replace(small(), late_delay_s=3600, page_size=50)) as sim:
        api = Api(sim)
        api.start()
        late = [b for b in sim.tenant.blobs if b.late]
        assert len(late) == QUIET.late_blobs
        now = datetime.now(UTC)
        assert all(now - timedelta(minutes=90) <= b.created < now for b in late)
        listed = {i["contentId"] for i in api.listing()}
        assert listed
        assert not listed & {b.content_id for b in late}
        hidden = api.call("GET", f"{api.root}/audit/{late[0].content_id}")
        assert error_code(hidden) == "AF20050"
        late_ids = {i for b in late for i in b.mia_ids}
        assert late_ids <= set(sim.ground_truth()["available"])  # available, though not visible yet
        sim.release_late_content()
        listed = {i["contentId"] for i in api.listing()}
        assert {b.content_id for b in late} <= listed
        assert sim.stats()["late_content_visible"] is True


def test_late_blobs_become_listable_by_themselves_after_the_delay() -> None:
    with Simulator(replace(small(), late_delay_s=2.0)) as sim:
        api = Api(sim)
        api.start()
        late = {b.content_id for b in sim.tenant.blobs if b.late}
        assert not late & {i["contentId"] for i in api.listing()}
        assert eventually(lambda: sim.stats()["late_content_visible"], timeout=5)
        assert late <= {i["contentId"] for i in api.listing()}


# -- ground truth, faults -----------------------------------------------------------------------


def fetch_everything(api: Api) -> None:
    for item in api.listing():
        for _ in range(20):
            response = api.call("GET", item["contentUri"])
            if response.status_code in (400, 404) or (response.status_code == 200 and _complete(response)):
                break


def _complete(response: requests.Response) -> bool:
    try:
        return isinstance(response.json(), list)
    except ValueError:
        return False


def test_ground_truth_counts_complete_deliveries_of_mailitemsaccessed_records(fresh: Simulator) -> None:
    api = Api(fresh)
    api.start()
    truth = fresh.ground_truth()
    assert truth["served"] == []
    fresh.release_late_content()
    fetch_everything(api)
    assert eventually(
        lambda: fresh.stats()["blobs_served"] == fresh.stats()["blob_gets"] - QUIET.expired_blobs
    )
    truth = fresh.ground_truth()
    assert truth["served"] == truth["available"]
    assert truth["available"]
    assert truth["expired_lost"]
    assert not set(truth["expired_lost"]) & set(truth["available"])
    all_mia = {i for b in fresh.tenant.blobs for i in b.mia_ids}
    assert set(truth["available"]) | set(truth["expired_lost"]) == all_mia
    stats = fresh.stats()
    assert stats["tokens_issued"] >= 1
    assert stats["requests"]["audit"] == stats["blob_gets"]


def test_throttling_as_403_without_retry_after_and_as_429_with_it() -> None:
    with Simulator(small(throttle_403=1.0)) as sim:
        response = Api(sim).get("subscriptions/list")
        assert response.status_code == 403
        assert "Retry-After" not in response.headers
        assert response.json()["error"] == {
            "code": "AF429",
            "message": f"Too many requests. Method=GET, PublisherId={PUBLISHER_ID}",
        }
        assert sim.stats()["faults"] == {"throttle_403": 1}
    with Simulator(small(throttle_429=1.0)) as sim:
        response = Api(sim).get("subscriptions/list")
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert error_code(response) == "AF429"


def test_server_errors_are_500_af50000_or_bare_503() -> None:
    with Simulator(small(server_error=1.0)) as sim:
        api = Api(sim)
        statuses = {api.get("subscriptions/list").status_code for _ in range(12)}
        assert statuses == {500, 503}
        response = next(r for r in (api.get("subscriptions/list") for _ in range(20)) if r.status_code == 500)
        assert error_code(response) == "AF50000"


def test_a_truncated_blob_is_a_200_with_a_short_body_and_is_not_served() -> None:
    with Simulator(small(truncated_blob=1.0)) as sim:
        api = Api(sim)
        blob = next(b for b in sim.tenant.blobs if not b.late and b.expiration > datetime.now(UTC))
        response = api.call("GET", f"{api.root}/audit/{blob.content_id}")
        assert response.status_code == 200
        assert len(response.content) < len(blob.body)
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert blob.body.startswith(response.content)
        assert not _complete(response)
        assert sim.ground_truth()["served"] == []
        assert sim.stats()["faults"]["truncated_blob"] == 1


def test_a_stall_delays_the_answer_and_a_client_that_gave_up_is_not_counted_as_served() -> None:
    with Simulator(small(stall=1.0, stall_s=0.4)) as sim:
        api = Api(sim)
        blob = next(b for b in sim.tenant.blobs if not b.late and b.expiration > datetime.now(UTC))
        url = f"{api.root}/audit/{blob.content_id}?PublisherIdentifier={PUBLISHER_ID}"
        headers = {"Authorization": f"Bearer {api.token}"}
        with pytest.raises(requests.Timeout):
            requests.get(url, headers=headers, verify=sim.ca_bundle, timeout=0.1)
        assert eventually(lambda: sim.stats()["faults"].get("client_gone_after_stall") == 1)
        assert sim.ground_truth()["served"] == []
        began = time.monotonic()
        assert requests.get(url, headers=headers, verify=sim.ca_bundle, timeout=5).status_code == 200
        assert time.monotonic() - began >= 0.4
        assert eventually(lambda: sim.ground_truth()["served"] == sorted(blob.mia_ids))


def eventually(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """The server records a delivery just after the client has read it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_latency_is_added_to_every_api_call() -> None:
    with Simulator(small(latency_s=0.2)) as sim:
        api = Api(sim)
        began = time.monotonic()
        api.get("subscriptions/list")
        assert time.monotonic() - began >= 0.2


def test_the_all_preset_still_lets_a_retrying_client_collect_everything() -> None:
    config = SimulatorConfig(seed=9, mailboxes=1, days=1, faults=replace(FaultConfig.all(), stall=0.0))
    with Simulator(config) as sim:
        api = Api(sim)
        for _ in range(10):
            if api.start().status_code in (200, 400):
                break
        sim.release_late_content()
        listed: dict[str, str] = {}
        now = datetime.now(UTC)
        url: str | None = f"{api.root}/subscriptions/content"
        window = {
            "startTime": fmt(now - timedelta(hours=23, minutes=59)),
            "endTime": fmt(now + timedelta(minutes=1)),
        }
        params: dict[str, Any] = {"contentType": EXCHANGE, **window}
        for _ in range(500):
            if not url:
                break
            response = api.call("GET", url, **params)
            if response.status_code != 200:
                continue  # throttled or failed: the same page again
            listed.update({i["contentId"]: i["contentUri"] for i in response.json()})
            url, params = response.headers.get("NextPageUri"), {}
        for uri in listed.values():
            for _ in range(20):
                response = api.call("GET", uri)
                if response.status_code == 400 or (response.status_code == 200 and _complete(response)):
                    break
        assert eventually(lambda: sim.ground_truth()["served"] == sim.ground_truth()["available"])
        faults = sim.stats()["faults"]
        for kind in ("throttle_403", "throttle_429", "truncated_blob", "empty_page"):
            assert faults.get(kind, 0) > 0, kind


def test_the_same_seed_serves_the_same_bytes() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    config = replace(small(), now=now)
    with Simulator(config) as first, Simulator(config) as second:
        assert first.tenant_id == second.tenant_id
        assert first.client_id == second.client_id
        blobs = [b for b in first.tenant.blobs if not b.late][:3]
        for blob in blobs:
            bodies = [
                Api(sim).call("GET", f"{Api(sim).root}/audit/{blob.content_id}").content
                for sim in (first, second)
            ]
            assert bodies[0] == bodies[1] == blob.body
        assert [b.content_id for b in first.tenant.blobs] == [b.content_id for b in second.tenant.blobs]


# -- admin routes, environment, CLI -------------------------------------------------------------


def test_admin_routes_mirror_the_methods(fresh: Simulator) -> None:
    base = fresh.base_url
    truth = requests.get(f"{base}/_sim/ground-truth", verify=fresh.ca_bundle, timeout=10).json()
    assert truth == fresh.ground_truth()
    stats = requests.get(f"{base}/_sim/stats", verify=fresh.ca_bundle, timeout=10).json()
    assert stats["requests"]["admin"] >= 1
    assert "faults" in stats
    assert not fresh.stats()["late_content_visible"]
    assert requests.post(f"{base}/_sim/release-late", verify=fresh.ca_bundle, timeout=10).status_code == 200
    assert fresh.stats()["late_content_visible"]


def test_settings_env_names_everything_our_client_needs(sim: Simulator) -> None:
    secret, certificate = sim.settings_env("secret"), sim.settings_env("certificate")
    assert secret["TENANT_ID"] == sim.tenant_id
    assert secret["PUBLISHER_ID"] not in ("", sim.tenant_id)
    assert secret["LOGIN_AUTHORITY"] == secret["MANAGEMENT_API_BASE"] == sim.base_url
    assert secret["CA_BUNDLE"] == sim.ca_bundle
    assert os.path.isfile(sim.ca_bundle)
    assert secret["CLIENT_SECRET"] == sim.client_secret
    assert "CLIENT_SECRET" not in certificate
    pem = Path(certificate["CLIENT_CERTIFICATE_PATH"]).read_text(encoding="ascii")
    assert "PRIVATE KEY" in pem
    assert "CERTIFICATE" in pem
    assert certificate["CLIENT_CERTIFICATE_THUMBPRINT"] == sim.certificate_thumbprint
    assert len(sim.certificate_thumbprint) == 40
    assert sim.authority == f"{sim.base_url}/{sim.tenant_id}"
    assert sim.base_url.startswith("https://127.0.0.1:")
    with pytest.raises(ValueError, match="mode"):
        sim.settings_env("password")


def test_the_cli_prints_its_settings_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "simulator",
        "--seed",
        "4",
        "--mailboxes",
        "1",
        "--days",
        "1",
        "--faults",
        "moderate",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["base_url"].startswith("https://127.0.0.1:")
        assert line["settings_env"]["CLIENT_SECRET"]
        assert line["tenant_id"] == line["settings_env"]["TENANT_ID"]
        stats = requests.get(f"{line['base_url']}/_sim/stats", verify=line["ca_bundle"], timeout=10)
        assert stats.status_code == 200
        assert stats.json()["api_requests"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0

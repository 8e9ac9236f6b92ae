"""infra/smoke.sh against the real health_http and report_http handlers served on 127.0.0.1
(tests/functions/local_host.py): every check passes on an app that behaves as deployed, and each
check fails on an app or platform that misbehaves in the way the check is there to catch."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared import runtime
from shared.storage import Storage
from tests.functions.local_host import EasyAuth, serving
from tests.infra.tools import INFRA, az_log, fake_az_environment

pytestmark = pytest.mark.functions

SCRIPT = INFRA / "smoke.sh"
KEY = "smoke-function-key"
TOKEN = "smoke-access-token"
ROLE = "MailAudit.Investigator"
AUTH_ON = ("--key", KEY, "--auth", "true", "--token", TOKEN)


def run_smoke(
    tmp_path: Path, *args: str, az_state: dict[str, Any] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The script under bash with only the given environment, a fake `az` first on PATH (run by
    .venv-infra's Python, which has the jmespath its --query needs)."""
    environment = {
        **fake_az_environment(tmp_path, az_state or {}),
        "SMOKE_INTERVAL_SECONDS": "0",
        **env,
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )


def az_calls(tmp_path: Path) -> list[list[str]]:
    return [call["argv"] for call in az_log(tmp_path)]


@pytest.fixture
def auth_on(function_env: Storage, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """The app settings the deployment gives it with enableAuth: the platform's WEBSITE_AUTH_ENABLED
    and the required role."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("REPORT_REQUIRED_ROLE", ROLE)
    runtime.reset()
    return function_env


def test_an_app_deployed_without_authentication_passes(tmp_path: Path, function_env: Storage) -> None:
    with serving(KEY) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url, "--key", KEY)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ok: /api/health answered 200 with a JSON object" in completed.stdout
    assert "ok: a forged principal header was ignored" in completed.stdout
    assert "without a token" not in completed.stdout  # that check needs authentication on
    # The smoke report request is recorded like any other, as a function-key call.
    (row,) = list(function_env.report_access.client.list_entities())
    assert row["AuthType"] == "function-key"
    assert row["PrincipalHeadersIgnored"] is True


def test_an_app_that_trusts_principal_headers_without_authentication_fails(
    tmp_path: Path, function_env: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # WEBSITE_AUTH_ENABLED set by hand, with no App Service authentication in front to strip the header.
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    runtime.reset()
    with serving(KEY) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url, "--key", KEY)
    assert completed.returncode == 1
    assert "FAIL: a report request with a forged principal header got 401, not 200" in completed.stderr
    assert "ok: /api/health" in completed.stdout


def test_an_app_behind_authentication_passes(tmp_path: Path, auth_on: Storage) -> None:
    with serving(KEY, EasyAuth(token=TOKEN, roles=(ROLE,))) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url, *AUTH_ON)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ok: /api/health answered 200" in completed.stdout
    assert f"ok: a forged principal naming {ROLE} without a token got 401" in completed.stdout
    assert "ok: a report request without a token got 401" in completed.stdout


def test_a_forged_principal_the_platform_lets_through_fails(tmp_path: Path, auth_on: Storage) -> None:
    # The app believes principal headers (WEBSITE_AUTH_ENABLED) but nothing in front removes a forged one.
    front = EasyAuth(token=TOKEN, roles=(ROLE,), require_token=False, strip_principal_headers=False)
    with serving(KEY, front) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url, *AUTH_ON)
    assert completed.returncode == 1
    assert f"FAIL: a forged principal naming {ROLE} without a token got 200, not 401" in completed.stderr
    # The app itself still refuses a caller with no principal at all.
    assert "ok: a report request without a token got 401" in completed.stdout


def test_a_report_served_without_a_token_fails(
    tmp_path: Path, auth_on: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No role required and a platform that lets anonymous callers through.
    monkeypatch.delenv("REPORT_REQUIRED_ROLE")
    runtime.reset()
    front = EasyAuth(token=TOKEN, roles=(ROLE,), require_token=False)
    with serving(KEY, front) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url, *AUTH_ON)
    assert completed.returncode == 1
    assert "FAIL: a report request without a token got 200, not 401" in completed.stderr


def test_health_not_answering_200_fails_after_the_attempts(tmp_path: Path, function_env: Storage) -> None:
    with serving(KEY) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url, "--key", "wrong-key", "--attempts", "3")
    assert completed.returncode == 1
    assert completed.stdout.count("/api/health answered 401 (attempt") == 2
    assert "FAIL: /api/health answered 401 after 3 attempts" in completed.stderr


def test_health_that_is_not_json_fails(tmp_path: Path, function_env: Storage) -> None:
    # A base URL whose "/api/health" lands on a CSV report: 200, but not JSON.
    csv_report = "/api/reports/someone@contoso.com?format=csv&ignored="
    with serving(KEY) as base_url:
        completed = run_smoke(tmp_path, "--base-url", base_url + csv_report, "--key", KEY, "--attempts", "1")
    assert completed.returncode == 1
    assert "FAIL: /api/health answered 200 with content type text/csv" in completed.stderr


def test_the_key_and_token_are_read_with_az_from_the_azd_env(tmp_path: Path, auth_on: Storage) -> None:
    with serving(KEY, EasyAuth(token=TOKEN, roles=(ROLE,))) as base_url:
        completed = run_smoke(
            tmp_path,
            az_state={"functionKey": KEY, "accessToken": TOKEN},
            SERVICE_API_URI=base_url,
            ENABLE_AUTH="true",
            AUTH_CLIENT_ID="api-client-id",
            AZURE_FUNCTION_NAME="func-abc",
            AZURE_RESOURCE_GROUP="rg-mia-prod",
        )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert az_calls(tmp_path) == [
        ["functionapp", "keys", "list", "--resource-group", "rg-mia-prod", "--name", "func-abc",
         "--query", "functionKeys.default", "--output", "tsv"],
        ["account", "get-access-token", "--resource", "api://api-client-id", "--query", "accessToken",
         "--output", "tsv"],
    ]  # fmt: skip
    assert KEY not in completed.stdout + completed.stderr


def test_a_failed_key_lookup_stops_with_what_failed(tmp_path: Path, function_env: Storage) -> None:
    completed = run_smoke(
        tmp_path,
        az_state={"failing": ["^functionapp keys"]},
        SERVICE_API_URI="http://127.0.0.1:9",
        AZURE_FUNCTION_NAME="func-abc",
        AZURE_RESOURCE_GROUP="rg-mia-prod",
    )
    assert completed.returncode == 2
    assert "could not read the function key of func-abc" in completed.stderr
    assert "Authorization_RequestDenied" in completed.stderr  # az's own error is shown too
    assert "/api/health" not in completed.stdout

"""shared/settings/alerts.py: the webhook, its format and the alert rules' thresholds."""

from __future__ import annotations

import pytest

from shared.settings import AlertFormat, AlertSettings, SettingsError, load_alert_settings, load_settings

pytestmark = pytest.mark.unit

TENANT = "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14"


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x"],
)
def test_the_webhook_url_may_be_https_or_loopback_http(url: str) -> None:
    assert load_alert_settings({"ALERT_WEBHOOK_URL": url}).webhook_url == url


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/x?token=abc123", "ftp://example.com/x", "example.com/x", "https://"]
)
def test_a_webhook_url_that_is_not_https_fails_naming_the_setting_without_its_token(url: str) -> None:
    with pytest.raises(SettingsError, match="ALERT_WEBHOOK_URL") as caught:
        load_alert_settings({"ALERT_WEBHOOK_URL": url})
    assert "abc123" not in str(caught.value)


def test_the_alert_settings_are_validated_at_start_up_with_the_rest() -> None:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "ALERT_WEBHOOK_FORMAT": "email"}
    with pytest.raises(SettingsError, match="ALERT_WEBHOOK_FORMAT"):
        load_settings(env)
    with pytest.raises(SettingsError, match="ALERT_NEAR_THROTTLE_THRESHOLD"):
        load_settings({**env, "ALERT_WEBHOOK_FORMAT": "", "ALERT_NEAR_THROTTLE_THRESHOLD": "lots"})
    with pytest.raises(SettingsError, match="ALERT_RETENTION_DAYS"):
        load_settings({**env, "ALERT_WEBHOOK_FORMAT": "", "ALERT_RETENTION_DAYS": "0"})


def test_defaults_and_tenant_reuse() -> None:
    settings = load_alert_settings({"TENANT_ID": TENANT.upper()})
    assert settings == AlertSettings(tenant=TENANT)
    assert settings.near_throttle_threshold == 900
    assert settings.lag_hours == 6
    assert settings.retention_days == 30
    assert settings.webhook_format == "json"
    assert settings.webhook_url is None


def test_the_secret_and_url_never_appear_in_the_settings_repr() -> None:
    settings = load_alert_settings(
        {"ALERT_WEBHOOK_URL": "https://example.com/h?sig=tok3n", "ALERT_WEBHOOK_SECRET": "hush-hush"}
    )
    assert "hush-hush" not in repr(settings)
    assert "tok3n" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", AlertFormat.JSON),
        ("json", AlertFormat.JSON),
        (" Teams ", AlertFormat.TEAMS),
        ("SLACK", AlertFormat.SLACK),
    ],
)
def test_the_webhook_format_is_read_case_insensitively(value: str, expected: AlertFormat) -> None:
    assert load_alert_settings({"ALERT_WEBHOOK_FORMAT": value}).webhook_format is expected


def test_an_unknown_webhook_format_lists_the_valid_ones() -> None:
    with pytest.raises(SettingsError) as raised:
        load_alert_settings({"ALERT_WEBHOOK_FORMAT": "Email"})
    assert str(raised.value) == "ALERT_WEBHOOK_FORMAT must be one of json, teams, slack, got 'email'"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALERT_NEAR_THROTTLE_THRESHOLD", "0", "between 1 and 100000, got 0"),
        ("ALERT_LAG_HOURS", "169", "between 1 and 168, got 169"),
        ("ALERT_WEBHOOK_TIMEOUT_SECONDS", "121", "between 1 and 120, got 121"),
        ("ALERT_RETENTION_DAYS", "ten", "an integer, got 'ten'"),
    ],
)
def test_an_alert_threshold_out_of_range_is_rejected_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_alert_settings({name: value})
    assert str(raised.value) == f"{name} must be {message}"

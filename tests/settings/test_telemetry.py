"""shared/settings/telemetry.py: where telemetry goes and with which Entra identity."""

from __future__ import annotations

import pytest

from shared.settings import SettingsError, TelemetrySettings, load_settings, load_telemetry_settings

pytestmark = pytest.mark.unit

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/"
CLIENT_ID = "7d3c2b1a-0000-4000-8000-000000000001"


def test_without_a_connection_string_there_is_no_telemetry() -> None:
    assert load_telemetry_settings({}) == TelemetrySettings()
    assert not TelemetrySettings().configured


@pytest.mark.parametrize(
    ("authentication", "client_id"),
    [
        (f"Authorization=AAD;ClientId={CLIENT_ID}", CLIENT_ID),
        (f"ClientId={CLIENT_ID};Authorization=AAD", CLIENT_ID),  # the order Bicep writes
        ("Authorization=AAD", None),  # the system-assigned identity
    ],
)
def test_the_authentication_string_names_the_entra_identity(
    authentication: str, client_id: str | None
) -> None:
    loaded = load_telemetry_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": authentication,
        }
    )
    assert loaded == TelemetrySettings(CONNECTION, entra=True, client_id=client_id)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "ClientId=abc", "Authorization=AAD"),
        ("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "AAD", "key=value"),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", "https://example.invalid", "connection string"),
    ],
)
def test_a_malformed_telemetry_setting_is_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_telemetry_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION, name: value})
    assert name in str(raised.value)


def test_a_malformed_telemetry_setting_stops_telemetry_alone() -> None:
    loaded = load_settings(
        {
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "x=y",
        }
    )
    assert loaded.telemetry == TelemetrySettings()
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in loaded.unavailable()["telemetry"]


def test_the_worker_setting_says_who_configures_azure_monitor() -> None:
    loaded = load_telemetry_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
        }
    )
    assert loaded.worker_exports
    assert loaded.configured

"""shared/runtime.py's telemetry: configure_azure_monitor's arguments, and when it is not called."""

from __future__ import annotations

import pytest
from azure.identity import ManagedIdentityCredential
from azure.monitor.opentelemetry._constants import _ALL_SUPPORTED_INSTRUMENTED_LIBRARIES

from shared import runtime
from shared.settings import TelemetrySettings

pytestmark = pytest.mark.unit

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/"


def test_every_instrumentation_the_distro_bundles_is_switched_off() -> None:
    # Private to the distro, read here only: a new instrumentation in an upgrade fails this test.
    assert set(_ALL_SUPPORTED_INSTRUMENTED_LIBRARIES) <= set(runtime.DISTRO_INSTRUMENTATIONS)
    options = runtime.azure_monitor_options(TelemetrySettings(CONNECTION))
    assert options["instrumentation_options"] == {
        name: {"enabled": False} for name in runtime.DISTRO_INSTRUMENTATIONS
    }


def test_entra_ingestion_gets_the_managed_identity_and_logs_stay_the_hosts() -> None:
    options = runtime.azure_monitor_options(TelemetrySettings(CONNECTION, entra=True, client_id="abc"))
    assert isinstance(options["credential"], ManagedIdentityCredential)
    assert options["connection_string"] == CONNECTION
    assert options["disable_logging"] is True
    assert options["enable_live_metrics"] is False
    assert runtime.azure_monitor_options(TelemetrySettings(CONNECTION))["credential"] is None


@pytest.mark.parametrize(
    "env",
    [
        {},  # nothing configured: the API's no-op providers stay
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
        },
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "not one"},
    ],
)
def test_azure_monitor_is_not_configured_by_the_app_unconfigured_by_the_worker_or_malformed(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    try:
        assert runtime.telemetry() is False
    finally:
        runtime.reset()

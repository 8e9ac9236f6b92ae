"""Telemetry settings: where to export (APPLICATIONINSIGHTS_CONNECTION_STRING) and with which Entra
identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING, `Authorization=AAD;ClientId=...`, the format
App Service and Functions use:
https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication), and whether the Python
worker configures Azure Monitor itself (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY:
https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings.environment import Environment, SettingsError

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
WORKER_TELEMETRY = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"


@dataclass(frozen=True)
class TelemetrySettings:
    """`connection_string` None: no telemetry. `entra` with `client_id` None: the system-assigned
    identity. The connection string holds no secret with Entra ingestion (local auth disabled),
    but it is never logged either way."""

    connection_string: str | None = None
    entra: bool = False
    client_id: str | None = None
    worker_exports: bool = False

    @property
    def configured(self) -> bool:
        return self.connection_string is not None


def _parse_authentication(value: str) -> tuple[bool, str | None]:
    pairs: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, separator, found = part.partition("=")
        if not separator:
            raise SettingsError(
                f"{AUTHENTICATION_STRING} must be key=value pairs such as "
                "Authorization=AAD;ClientId=<client id>"
            )
        pairs[key.strip().lower()] = found.strip()
    if pairs.get("authorization", "").upper() != "AAD":
        raise SettingsError(f"{AUTHENTICATION_STRING} must say Authorization=AAD (Entra ingestion)")
    return True, pairs.get("clientid") or None


def load_telemetry_settings(env: Mapping[str, str] | None = None) -> TelemetrySettings:
    environment = Environment(env)
    connection = environment.optional(CONNECTION_STRING)
    if connection is not None and "InstrumentationKey=" not in connection:
        raise SettingsError(f"{CONNECTION_STRING} must be an Application Insights connection string")
    authentication = environment.optional(AUTHENTICATION_STRING)
    entra, client_id = _parse_authentication(authentication) if authentication else (False, None)
    worker = environment.boolean(WORKER_TELEMETRY)
    return TelemetrySettings(connection, entra, client_id, worker)

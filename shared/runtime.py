"""Settings, storage clients and the subject resolver for the function host, built once per
worker process."""

from __future__ import annotations

import logging
from functools import cache

from azure.core.exceptions import AzureError
from azure.identity import ManagedIdentityCredential

from shared import logsetup
from shared.clients.auth import token_provider
from shared.clients.graph_api import GraphClient
from shared.collect import collector
from shared.settings import (
    AlertSettings,
    CollectionSettings,
    ResolutionSettings,
    Settings,
    SettingsError,
    TelemetrySettings,
    load_alert_settings,
    load_collection_settings,
    load_settings,
    load_storage_settings,
    load_telemetry_settings,
)
from shared.storage import Storage
from shared.subjects.resolver import SubjectResolver

log = logging.getLogger(__name__)


@cache
def settings() -> Settings:
    """Every setting, collection's included, validated by the first function of the worker,
    whatever it is. Collection settings that do not validate stop fetch_audit alone: the problem
    is kept for /api/health (Settings.collection_problem)."""
    # Every Graph client is built from these settings (storage from storage()), so with the call
    # in storage() the loggers are quiet before any request.
    logsetup.quiet_sdk_loggers()
    check_collection_settings()
    loaded = load_settings()
    _log_unavailable(loaded)
    return loaded


def _log_unavailable(loaded: Settings) -> None:
    """One line per worker for each feature a setting keeps from running (collection's is logged
    by the start-up check); the message names the setting and the secret, never a value."""
    for feature, problem in loaded.unavailable().items():
        if feature != "collection":
            log.error("unavailable (%s): %s", feature, problem)


@cache
def check_collection_settings() -> None:
    """Once per worker, before anything else: collection settings that do not validate raise
    collection.misconfigured now rather than on the next fetch_audit tick (which raises it again,
    once a day per problem). Run on its own, so that it alerts even when the setting is one Graph
    shares (the tenant, the credentials) and settings() fails too."""
    try:
        load_collection_settings()
    except SettingsError as problem:
        _raise_collection_misconfigured(problem)


def _raise_collection_misconfigured(problem: SettingsError) -> None:
    try:
        alerts = load_alert_settings()
    except SettingsError:
        # No alert can be raised; settings() fails naming the alert setting, and health shows both.
        return
    try:
        collector.report_misconfiguration(storage(), alerts, problem)
    except AzureError:
        # The functions still start; fetch_audit raises the alert on its next tick.
        log.exception("collection is misconfigured, and storage did not take the alert")


def valid_settings() -> Settings | None:
    """settings(), or None while a setting outside collection does not validate. The functions
    that raise, deliver and show alerts then read what they need on its own, so that a bad Graph
    or report setting does not hold back the alerts and health that tell about it."""
    try:
        return settings()
    except SettingsError:
        return None


def alert_settings() -> AlertSettings:
    loaded = valid_settings()
    return load_alert_settings() if loaded is None else loaded.alerts


def collection_settings() -> CollectionSettings:
    """Raises SettingsError naming the collection setting that does not validate."""
    loaded = valid_settings()
    return load_collection_settings() if loaded is None else loaded.require_collection()


@cache
def storage() -> Storage:
    # Storage settings alone: a bad TENANT_ID, say, must still be alerted and shown by health.
    # Every function asks for storage first, so telemetry is set up before its first span.
    logsetup.quiet_sdk_loggers()
    telemetry()
    return Storage.from_settings(load_storage_settings())


# Every instrumentation the distro bundles stays off: their spans carry request URLs, and a Table
# entity URL or a Graph URL holds a mailbox UPN in its path (shared/logsetup.py). Only the spans and
# metrics of shared/telemetry are exported.
# tests/test_runtime_telemetry.py holds this list to the distro's own.
DISTRO_INSTRUMENTATIONS = (
    "azure_sdk", "django", "fastapi", "flask", "httpx", "httpx2", "psycopg2", "requests", "urllib", "urllib3",
)  # fmt: skip
_INSTRUMENTATIONS_OFF = {name: {"enabled": False} for name in DISTRO_INSTRUMENTATIONS}


@cache
def telemetry() -> bool:
    """Configure Azure Monitor once per worker; True when this call did it.

    Not when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY is on: the Python worker then calls
    configure_azure_monitor itself before loading the app (reading the connection string and the
    Entra identity from APPLICATIONINSIGHTS_AUTHENTICATION_STRING), tells the host it exports the
    logs (so the host does not send them again) and parents each invocation's spans on the host's
    (https://learn.microsoft.com/azure/azure-functions/opentelemetry-howto); a second configuration
    would add a second log handler and export every line twice. Otherwise the host keeps sending
    the worker's logs itself, so only metrics and traces are exported from here."""
    try:
        loaded = load_telemetry_settings()
    except SettingsError:  # settings() logs it, as every feature a setting keeps from running
        return False
    if not loaded.configured or loaded.worker_exports:
        return False
    # Imported only when used: the distro and its instrumentations take about a second to import,
    # which `mia` (it imports this module for build_resolver) and an unconfigured worker never pay.
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(**azure_monitor_options(loaded))
    return True


def azure_monitor_options(loaded: TelemetrySettings) -> dict[str, object]:
    """configure_azure_monitor's arguments: the Entra credential when ingestion is identity-based
    (https://learn.microsoft.com/azure/azure-monitor/app/azure-ad-authentication), no log export
    (the host's), no live metrics (they stream sample requests and logs) and no instrumentations."""
    credential = ManagedIdentityCredential(client_id=loaded.client_id) if loaded.entra else None
    return {
        "connection_string": loaded.connection_string,
        "credential": credential,
        "disable_logging": True,
        "enable_live_metrics": False,
        "instrumentation_options": _INSTRUMENTATIONS_OFF,
    }


def build_resolver(storage: Storage, settings: ResolutionSettings) -> SubjectResolver:
    """MessageIndex always; Microsoft Graph when a tenant is configured."""
    graph = None
    if settings.graph is not None:
        graph = GraphClient(settings.graph, token_provider(settings.graph.auth))
    return SubjectResolver(storage.message_index, settings, graph)


@cache
def resolver() -> SubjectResolver:
    return build_resolver(storage(), settings().resolution)


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    settings.cache_clear()
    check_collection_settings.cache_clear()
    storage.cache_clear()
    resolver.cache_clear()
    telemetry.cache_clear()

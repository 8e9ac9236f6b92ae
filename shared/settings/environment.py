"""The only reader of the environment: the catalogue of every setting the code can read, and typed
readers that take their defaults from it and fail with a SettingsError naming the setting."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")

Choice = TypeVar("Choice", bound=StrEnum)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what to fix."""


# App Service resolves a Key Vault reference in an app setting before the app starts; one it cannot
# resolve (no such secret, or the identity may not read it) is left as the literal reference text:
# "If a reference isn't resolved properly, the reference string is used instead", Use Key Vault
# references as app settings, https://learn.microsoft.com/azure/app-service/app-service-key-vault-references#troubleshoot-key-vault-references
_KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\((?P<body>.*)\)$", re.IGNORECASE | re.DOTALL)
_SECRET_URI_PATH = re.compile(r"^/secrets/(?P<name>[^/]+)", re.IGNORECASE)


@dataclass(frozen=True)
class SecretReference:
    """Where an unresolved Key Vault reference points: `VaultName=...;SecretName=...` or
    `SecretUri=https://{vault}.vault.azure.net/secrets/{name}/{version}`, as the page above writes
    them. Either part is "" when the reference does not say (a reference App Service found invalid)."""

    vault: str
    secret: str

    def describe(self) -> str:
        secret = f"secret {self.secret!r}" if self.secret else "a secret it does not name"
        return f"{secret} in vault {self.vault!r}" if self.vault else secret


def key_vault_reference(value: str) -> SecretReference | None:
    """The secret a value refers to when the value is a Key Vault reference left unresolved."""
    matched = _KEY_VAULT_REFERENCE.match(value.strip())
    if matched is None:
        return None
    parts = dict(
        (key.strip().lower(), found.strip())
        for key, _, found in (part.partition("=") for part in matched["body"].split(";"))
    )
    uri = urlsplit(parts.get("secreturi", ""))
    if uri.hostname:
        path = _SECRET_URI_PATH.match(uri.path)
        return SecretReference(uri.hostname.split(".")[0], path["name"] if path else "")
    return SecretReference(parts.get("vaultname", ""), parts.get("secretname", ""))


class UnresolvedReference(SettingsError):
    """A setting holds a Key Vault reference App Service could not resolve. Only the feature the
    setting belongs to stops; the message names the setting and the secret (a reference is no
    secret, and the secret's value was never there)."""

    def __init__(self, name: str, reference: SecretReference) -> None:
        self.setting = name
        self.reference = reference
        super().__init__(
            f"{name} is an unresolved Key Vault reference to {reference.describe()}: App Service "
            "could not read the secret (it does not exist yet, or the app's identity may not read "
            "it); create it (README, Key Vault secrets) and restart the app"
        )


class Capability(StrEnum):
    STORAGE = "storage"
    COLLECTION = "collection"  # the Management Activity API, with the credentials and the cloud
    REPORTS = "reports"
    ALERTS = "alerts"
    SUBJECTS = "subjects"  # Microsoft Graph and subject resolution
    SCHEDULES = "schedules"  # the timers, read by the Functions host
    TELEMETRY = "telemetry"  # OpenTelemetry to Application Insights (function host only)
    BACKFILL = "backfill"  # history from the Graph audit-log query API


@dataclass(frozen=True)
class Setting:
    """One setting: its capability, whether that capability cannot run without it, its default as it
    would be written (`default`, "" for none) or where the default comes from when it depends on
    other settings (`derived`), and what it means. A `host` setting (a timer's schedule) must be set
    wherever the host runs: it resolves `%NAME%` from the app settings and has no default of its own
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-expressions-patterns#binding-expressions---app-settings)."""

    name: str
    capability: Capability
    meaning: str
    default: str = ""
    derived: str = ""
    required: bool = False
    host: bool = False  # read by the Functions host from a `%NAME%` binding expression, not by the code


_STORAGE = "AzureWebJobsStorage"
_SETTINGS = (
    Setting(_STORAGE, Capability.STORAGE, "storage connection string (Azurite locally); unset in Azure"),
    Setting(f"{_STORAGE}__accountName", Capability.STORAGE, "identity-based access to this account"),
    *(
        Setting(
            f"{_STORAGE}__{kind}ServiceUri",
            Capability.STORAGE,
            f"identity-based access to the {kind} service at this https URI",
            derived=f"https://{{accountName}}.{kind}.core.windows.net",
        )
        for kind in ("blob", "queue", "table")
    ),
    Setting(
        f"{_STORAGE}__credential",
        Capability.STORAGE,
        "managedidentity: the app's managed identity",
        derived="DefaultAzureCredential",
    ),
    Setting(f"{_STORAGE}__clientId", Capability.STORAGE, "client id of the user-assigned managed identity"),
    # NCRONTAB with seconds, UTC (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions).
    # Every 5 minutes, ordered so that deliver_alerts sends what resolve_subjects and watch_poison
    # raised in the same minute (fetch_audit and enrich_trace send their own alerts at once).
    *(
        Setting(
            f"{name}_SCHEDULE",
            Capability.SCHEDULES,
            f"{function} timer, NCRONTAB with seconds, UTC",
            cron,
            host=True,
        )
        for name, function, cron in (
            ("FETCH", "fetch_audit", "0 */5 * * * *"),
            ("RESOLVE", "resolve_subjects", "15 */5 * * * *"),
            ("POISON", "watch_poison", "30 */5 * * * *"),
            ("DELIVER", "deliver_alerts", "50 */5 * * * *"),
            ("BACKFILL", "advance_backfills", "40 */5 * * * *"),
        )
    ),
    Setting(
        "TENANT_ID",
        Capability.COLLECTION,
        "Entra tenant GUID (also Graph's tenant and the alerts' tenant)",
        required=True,
    ),
    Setting("PUBLISHER_ID", Capability.COLLECTION, "PublisherIdentifier of every call", derived="TENANT_ID"),
    Setting("M365_CLOUD", Capability.COLLECTION, "the cloud: login, API and Graph hosts", "commercial"),
    Setting("CLIENT_ID", Capability.COLLECTION, "app registration (with a secret or a certificate)"),
    Setting("CLIENT_SECRET", Capability.COLLECTION, "the app registration's secret"),
    Setting("CLIENT_CERTIFICATE", Capability.COLLECTION, "the app registration's certificate and key (PEM)"),
    Setting("CLIENT_CERTIFICATE_PATH", Capability.COLLECTION, "a PEM file, when CLIENT_CERTIFICATE is unset"),
    Setting(
        "CLIENT_CERTIFICATE_THUMBPRINT",
        Capability.COLLECTION,
        "the certificate's SHA-1 thumbprint",
        derived="computed from the certificate",
    ),
    Setting(
        "MANAGED_IDENTITY_CLIENT_ID",
        Capability.COLLECTION,
        "user-assigned managed identity for tokens (no CLIENT_ID)",
        derived="system-assigned",
    ),
    Setting("LOGIN_AUTHORITY", Capability.COLLECTION, "override of the login host", derived="M365_CLOUD"),
    Setting("MANAGEMENT_API_BASE", Capability.COLLECTION, "override of the API host", derived="M365_CLOUD"),
    Setting(
        "MANAGEMENT_API_SCOPE",
        Capability.COLLECTION,
        "token scope for the API",
        derived="{MANAGEMENT_API_BASE}/.default",
    ),
    Setting("CA_BUNDLE", Capability.COLLECTION, "PEM file of extra CAs to trust (simulator, TLS proxy)"),
    Setting("COLLECT_OVERLAP_MINUTES", Capability.COLLECTION, "re-listed overlap for late content", "120"),
    Setting("COLLECT_WINDOW_HOURS", Capability.COLLECTION, "width of one listing window", "23"),
    Setting("COLLECT_INITIAL_LOOKBACK_HOURS", Capability.COLLECTION, "first run's look-back", "24"),
    Setting("COLLECT_MAX_REQUESTS_PER_MINUTE", Capability.COLLECTION, "API request budget", "1500"),
    Setting("COLLECT_CONCURRENCY", Capability.COLLECTION, "concurrent blob fetches", "8"),
    Setting("COLLECT_TIME_BUDGET_SECONDS", Capability.COLLECTION, "one run's time budget", "1500"),
    Setting("COLLECT_REQUEST_TIMEOUT_SECONDS", Capability.COLLECTION, "one request's timeout", "30"),
    Setting("COLLECT_MAX_ATTEMPTS", Capability.COLLECTION, "attempts per request", "8"),
    Setting("COLLECT_MAX_BACKOFF_SECONDS", Capability.COLLECTION, "longest wait between attempts", "60"),
    Setting("REPORT_DEFAULT_DAYS", Capability.REPORTS, "report range when `from` is not given", "7"),
    Setting("REPORT_MAX_DAYS", Capability.REPORTS, "longest range one request may ask for", "400"),
    Setting("REPORT_PAGE_ROWS", Capability.REPORTS, "rows per page over HTTP", "10000"),
    Setting(
        "REPORT_MAX_AGGREGATE_ENTRIES",
        Capability.REPORTS,
        "entries a sessions or exposure request may hold before it is refused (422)",
        "200000",
    ),
    Setting("REPORT_MAX_SECONDS", Capability.REPORTS, "seconds one request may read rows for", "120"),
    Setting("REPORT_REQUIRED_ROLE", Capability.REPORTS, "app role a report's principal must carry"),
    Setting(
        "IP_DATABASE_PATH",
        Capability.REPORTS,
        "MaxMind DB (.mmdb) files, GeoLite2 or IPinfo Lite, for the IP columns (os.pathsep between)",
        derived="the embedded DB-IP Lite country data alone",
    ),
    Setting(
        "WEBSITE_AUTH_ENABLED",
        Capability.REPORTS,
        "App Service authentication is on (injected by the platform, never set)",
        "false",
    ),
    Setting("ALERT_WEBHOOK_URL", Capability.ALERTS, "where alerts are POSTed; empty: recorded, not sent"),
    Setting("ALERT_WEBHOOK_SECRET", Capability.ALERTS, "HMAC-SHA256 key signing each delivery"),
    Setting("ALERT_WEBHOOK_FORMAT", Capability.ALERTS, "payload format", "json"),
    Setting("ALERT_NEAR_THROTTLE_THRESHOLD", Capability.ALERTS, "records in 24h for near_throttle", "900"),
    Setting("ALERT_LAG_HOURS", Capability.ALERTS, "checkpoint age that raises collection.lagging", "6"),
    Setting("ALERT_WEBHOOK_TIMEOUT_SECONDS", Capability.ALERTS, "one delivery attempt's timeout", "10"),
    Setting("ALERT_RETENTION_DAYS", Capability.ALERTS, "days a delivered alert is kept", "30"),
    Setting("DETECT_ENABLED", Capability.ALERTS, "new-context and mass-access detection on records", "true"),
    Setting("DETECT_BASELINE_DAYS", Capability.ALERTS, "days a mailbox's baseline remembers a context", "30"),
    Setting("DETECT_WARMUP_DAYS", Capability.ALERTS, "history a mailbox needs before new_context", "3"),
    Setting("DETECT_WARMUP_RECORDS", Capability.ALERTS, "records on earlier days before new_context", "30"),
    Setting(
        "DETECT_MASS_MAILBOXES",
        Capability.ALERTS,
        "mailboxes one IP/app/session/actor reads for mass_access",
        "10",
    ),
    Setting("DETECT_MASS_WINDOW_MINUTES", Capability.ALERTS, "the mass_access window", "60"),
    Setting(
        "RESOLVE_SUBJECTS",
        Capability.SUBJECTS,
        "whose message ids are resolved as records arrive",
        derived="all with TENANT_ID, else off",
    ),
    Setting("RESOLVE_WATCHLIST", Capability.SUBJECTS, "mailbox UPNs for RESOLVE_SUBJECTS=watchlist"),
    Setting(
        "RESOLVE_ON_DEMAND",
        Capability.SUBJECTS,
        "a report looks up what is not resolved yet",
        derived="true with TENANT_ID, else false",
    ),
    Setting("RESOLVE_ON_DEMAND_MAX_REQUESTS", Capability.SUBJECTS, "Graph requests per report lookup", "50"),
    Setting("RESOLVE_ON_DEMAND_SECONDS", Capability.SUBJECTS, "seconds per report lookup", "20"),
    Setting(
        "RESOLVE_MESSAGE_TRACE",
        Capability.SUBJECTS,
        "fall back to Graph message trace",
        derived="true in commercial and gcc, else false",
    ),
    Setting("GRAPH_API_BASE", Capability.SUBJECTS, "override of the Graph host", derived="M365_CLOUD"),
    Setting("GRAPH_SCOPE", Capability.SUBJECTS, "token scope for Graph", derived="M365_CLOUD"),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        Capability.TELEMETRY,
        "Application Insights resource to export metrics and traces to; unset: no telemetry",
    ),
    Setting(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        Capability.TELEMETRY,
        "Authorization=AAD;ClientId=<user-assigned identity>: Entra ingestion (ClientId omitted: "
        "system-assigned)",
    ),
    Setting(
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        Capability.TELEMETRY,
        "the Python worker configures Azure Monitor itself (and exports the logs); the app then does not",
        "false",
    ),
    Setting(
        "BACKFILL_INITIAL_DAYS",
        Capability.BACKFILL,
        "days of history the first advance_backfills run asks for (0: none)",
        "0",
    ),
    Setting(
        "LOG_ANALYTICS_ENDPOINT",
        Capability.BACKFILL,
        "override of the Log Analytics query API host (Sentinel backfill)",
        derived="M365_CLOUD",
    ),
)
CATALOGUE: Mapping[str, Setting] = {setting.name: setting for setting in _SETTINGS}


def is_https_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.netloc)


class Environment:
    """Typed reads of one environment (the process's unless given), each of a catalogued name.

    Values are trimmed, and a blank one counts as unset. When unset, a setting has the catalogue's
    default; a reader takes an explicit default only for a setting whose default is derived. A
    value that is an unresolved Key Vault reference is never used: every reader raises
    UnresolvedReference for it."""

    def __init__(self, source: Mapping[str, str] | None = None) -> None:
        self._source = os.environ if source is None else source

    def text(self, name: str, default: str | None = None) -> str:
        setting = CATALOGUE[name]  # a KeyError here is a name missing from the catalogue
        value = self._source.get(name, "").strip()
        reference = key_vault_reference(value)
        if reference is not None:
            raise UnresolvedReference(name, reference)
        if value:
            return value
        return setting.default if default is None else default

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def integer(self, name: str, low: int, high: int) -> int:
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def boolean(self, name: str, default: bool | None = None) -> bool:
        raw = self.text(name, None if default is None else str(default).lower()).lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, choices: type[Choice], default: Choice | None = None) -> Choice:
        value = self.text(name, None if default is None else default.value).lower()
        try:
            return choices(value)
        except ValueError:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}") from None

    def https_url(self, name: str, default: str | None = None) -> str:
        """An https:// URL without its trailing slash."""
        value = self.text(name, default)
        if not is_https_url(value):
            raise SettingsError(f"{name} must be an https:// URL, got {value!r}")
        return value.rstrip("/")

    def guid(self, name: str, default: str | None = None) -> str:
        """A GUID, lower-case."""
        value = self.text(name, default)
        if not _GUID.match(value):
            raise SettingsError(f"{name} must be a GUID, got {value!r}")
        return value.lower()

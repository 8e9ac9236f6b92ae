"""Typed settings: the only module that reads the environment.

Every setting is validated once, and a bad one fails at start-up with a message naming it.
Storage follows the Functions host's own convention (docs/architecture.md#settings): `AzureWebJobsStorage` is
a connection string locally (Azurite), and in Azure the identity-based
`AzureWebJobsStorage__accountName` or `__blobServiceUri`/`__queueServiceUri`/`__tableServiceUri`
forms, with `__credential=managedidentity` and `__clientId` for a user-assigned identity.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

STORAGE_SETTING = "AzureWebJobsStorage"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what to fix."""


@dataclass(frozen=True)
class StorageSettings:
    connection_string: str | None = None
    blob_url: str | None = None
    queue_url: str | None = None
    table_url: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class ReportSettings:
    default_days: int = 7
    max_days: int = 400
    page_rows: int = 10_000
    # App role the Easy Auth principal must carry for a report (REPORT_REQUIRED_ROLE); "" = off.
    required_role: str = ""
    # App Service authentication is on (WEBSITE_AUTH_ENABLED): only then do X-MS-CLIENT-PRINCIPAL*
    # headers come from the platform rather than from the caller.
    platform_auth: bool = False


@dataclass(frozen=True)
class AlertSettings:
    """Alert rules and the webhook they are delivered to (no URL: recorded, not delivered)."""

    # The URL can carry a token (Teams Workflows, Slack), the secret signs: neither is ever shown.
    webhook_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_format: str = "json"
    tenant: str = ""
    near_throttle_threshold: int = 900
    lag_hours: int = 6
    timeout_seconds: int = 10
    retention_days: int = 30  # delivered alerts are kept this long, then removed


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    report: ReportSettings
    alerts: AlertSettings = field(default_factory=AlertSettings)
    resolution: ResolutionSettings = field(default_factory=lambda: ResolutionSettings())


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _service_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise SettingsError(f"{name} must be an https:// service URI, got {value!r}")
    return value.rstrip("/")


def storage_settings(env: Mapping[str, str]) -> StorageSettings:
    connection_string = env.get(STORAGE_SETTING, "").strip()
    if connection_string:
        if connection_string != "UseDevelopmentStorage=true" and "=" not in connection_string:
            raise SettingsError(
                f"{STORAGE_SETTING} must be a storage connection string "
                "(or unset, with the identity-based __accountName/__*ServiceUri settings)"
            )
        return StorageSettings(connection_string=connection_string)

    prefix = STORAGE_SETTING + "__"
    account = env.get(prefix + "accountName", "").strip()
    urls = {kind: _service_url(env, f"{prefix}{kind}ServiceUri") for kind in ("blob", "queue", "table")}
    if account:
        if not account.isalnum() or not 3 <= len(account) <= 24:
            raise SettingsError(f"{prefix}accountName must be a storage account name, got {account!r}")
        for kind in urls:
            urls[kind] = urls[kind] or f"https://{account}.{kind}.core.windows.net"
    missing = [f"{prefix}{kind}ServiceUri" for kind, url in urls.items() if url is None]
    if missing:
        raise SettingsError(
            f"storage is not configured: set {STORAGE_SETTING} (a connection string), or "
            f"{prefix}accountName, or all of {', '.join(missing)}"
        )
    credential = env.get(prefix + "credential", "").strip() or None
    if credential not in (None, "managedidentity"):
        raise SettingsError(f"{prefix}credential must be 'managedidentity' or unset, got {credential!r}")
    return StorageSettings(
        blob_url=urls["blob"],
        queue_url=urls["queue"],
        table_url=urls["table"],
        credential=credential,
        client_id=env.get(prefix + "clientId", "").strip() or None,
    )


def report_settings(env: Mapping[str, str]) -> ReportSettings:
    return ReportSettings(
        default_days=_int_setting(env, "REPORT_DEFAULT_DAYS", 7, 1, 3650),
        max_days=_int_setting(env, "REPORT_MAX_DAYS", 400, 1, 3650),
        page_rows=_int_setting(env, "REPORT_PAGE_ROWS", 10_000, 100, 200_000),
        required_role=_role_setting(env, "REPORT_REQUIRED_ROLE"),
        # Injected by App Service ("True") when its authentication is on, never an app setting:
        # https://learn.microsoft.com/azure/app-service/reference-app-settings#authentication--authorization
        platform_auth=_bool_setting(env, "WEBSITE_AUTH_ENABLED", False),
    )


def _role_setting(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if value and (len(value) > 250 or any(c.isspace() or c == "," for c in value)):
        raise SettingsError(f"{name} must be one app role value (no spaces or commas), got {value!r}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises SettingsError naming the first bad one."""
    source = os.environ if env is None else env
    return Settings(
        storage=storage_settings(source),
        report=report_settings(source),
        alerts=alert_settings(source),
        resolution=resolution_settings(source),
    )


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ALERT_FORMATS = ("json", "teams", "slack")


def _webhook_url(env: Mapping[str, str]) -> str | None:
    value = env.get("ALERT_WEBHOOK_URL", "").strip()
    if not value:
        return None
    # The value itself is never echoed: it may hold a token.
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise SettingsError("ALERT_WEBHOOK_URL is not a valid URL") from None
    if not host or parts.scheme not in ("https", "http"):
        raise SettingsError("ALERT_WEBHOOK_URL must be an https:// URL")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise SettingsError(
            "ALERT_WEBHOOK_URL must use https:// (plain http is accepted only for 127.0.0.1, "
            f"localhost or ::1, not {host!r})"
        )
    return value


def alert_settings(env: Mapping[str, str]) -> AlertSettings:
    fmt = env.get("ALERT_WEBHOOK_FORMAT", "").strip().lower() or "json"
    if fmt not in ALERT_FORMATS:
        raise SettingsError(f"ALERT_WEBHOOK_FORMAT must be one of {', '.join(ALERT_FORMATS)}, got {fmt!r}")
    return AlertSettings(
        webhook_url=_webhook_url(env),
        webhook_secret=env.get("ALERT_WEBHOOK_SECRET", "").strip() or None,
        webhook_format=fmt,
        tenant=env.get("TENANT_ID", "").strip().lower(),
        near_throttle_threshold=_int_setting(env, "ALERT_NEAR_THROTTLE_THRESHOLD", 900, 1, 100_000),
        lag_hours=_int_setting(env, "ALERT_LAG_HOURS", 6, 1, 24 * 7),
        timeout_seconds=_int_setting(env, "ALERT_WEBHOOK_TIMEOUT_SECONDS", 10, 1, 120),
        retention_days=_int_setting(env, "ALERT_RETENTION_DAYS", 30, 1, 3650),
    )


def load_storage_settings(env: Mapping[str, str] | None = None) -> StorageSettings:
    """Storage alone: a bad collection or Graph setting must not keep alerts and health from the
    tables that record it."""
    return storage_settings(os.environ if env is None else env)


def load_alert_settings(env: Mapping[str, str] | None = None) -> AlertSettings:
    """Alert settings alone; raises SettingsError naming the bad one."""
    return alert_settings(os.environ if env is None else env)


def load_report_settings(env: Mapping[str, str] | None = None) -> ReportSettings:
    """Report limits alone, for the offline `mia report --input` path that needs no storage."""
    return report_settings(os.environ if env is None else env)


# --- Collection from the Office 365 Management Activity API -------------------------------------


@dataclass(frozen=True)
class Cloud:
    """Endpoints of one Microsoft 365 cloud (docs/mailitemsaccessed.md#national-clouds)."""

    authority: str
    management: str
    graph: str


CLOUDS: dict[str, Cloud] = {
    "commercial": Cloud(
        "https://login.microsoftonline.com", "https://manage.office.com", "https://graph.microsoft.com"
    ),
    "gcc": Cloud(
        "https://login.microsoftonline.com", "https://manage-gcc.office.com", "https://graph.microsoft.com"
    ),
    "gcchigh": Cloud(
        "https://login.microsoftonline.us", "https://manage.office365.us", "https://graph.microsoft.us"
    ),
    "dod": Cloud(
        "https://login.microsoftonline.us",
        "https://manage.protection.apps.mil",
        "https://dod-graph.microsoft.us",
    ),
}


@dataclass(frozen=True)
class AuthSettings:
    """How to get tokens: an app registration (secret or certificate) or a managed identity."""

    tenant_id: str
    authority_host: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)
    certificate_thumbprint: str | None = None
    managed_identity_client_id: str | None = None
    ca_bundle: str | None = None

    @property
    def mode(self) -> str:
        if self.client_id and self.client_secret:
            return "secret"
        if self.client_id and self.certificate_pem:
            return "certificate"
        return "managed_identity"


@dataclass(frozen=True)
class CollectionSettings:
    auth: AuthSettings
    management_base: str
    management_scope: str
    publisher_id: str
    content_type: str = "Audit.Exchange"
    overlap_minutes: int = 120
    window_hours: int = 23
    initial_lookback_hours: int = 24
    requests_per_minute: int = 1500
    concurrency: int = 8
    time_budget_seconds: int = 1500
    request_timeout_seconds: int = 30
    max_attempts: int = 8
    max_backoff_seconds: int = 60


def _guid_setting(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, "").strip() or (default or "")
    if not value:
        raise SettingsError(f"{name} is required for collection (the Entra tenant ID, a GUID)")
    if not _GUID.match(value):
        raise SettingsError(f"{name} must be a GUID, got {value!r}")
    return value.lower()


def _url_setting(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise SettingsError(f"{name} must be an https:// URL, got {value!r}")
    return value.rstrip("/")


def _certificate(env: Mapping[str, str]) -> str | None:
    inline = env.get("CLIENT_CERTIFICATE", "").strip()
    if inline:
        return inline
    path = env.get("CLIENT_CERTIFICATE_PATH", "").strip()
    if not path:
        return None
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError as problem:
        raise SettingsError(f"CLIENT_CERTIFICATE_PATH cannot be read: {problem}") from None


def auth_settings(env: Mapping[str, str], cloud: Cloud) -> AuthSettings:
    ca_bundle = env.get("CA_BUNDLE", "").strip() or None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise SettingsError(f"CA_BUNDLE must be the path of a PEM file, and {ca_bundle!r} is not a file")
    client_id = env.get("CLIENT_ID", "").strip() or None
    secret = env.get("CLIENT_SECRET", "").strip() or None
    certificate = _certificate(env)
    if (secret or certificate) and not client_id:
        raise SettingsError("CLIENT_ID is required with CLIENT_SECRET or a client certificate")
    if secret and certificate:
        raise SettingsError("set CLIENT_SECRET or a client certificate, not both")
    return AuthSettings(
        tenant_id=_guid_setting(env, "TENANT_ID"),
        authority_host=_url_setting(env, "LOGIN_AUTHORITY", cloud.authority),
        client_id=client_id,
        client_secret=secret,
        certificate_pem=certificate,
        certificate_thumbprint=env.get("CLIENT_CERTIFICATE_THUMBPRINT", "").strip() or None,
        managed_identity_client_id=env.get("MANAGED_IDENTITY_CLIENT_ID", "").strip() or None,
        ca_bundle=ca_bundle,
    )


def _cloud(env: Mapping[str, str]) -> tuple[str, Cloud]:
    name = env.get("M365_CLOUD", "").strip().lower() or "commercial"
    if name not in CLOUDS:
        raise SettingsError(f"M365_CLOUD must be one of {', '.join(CLOUDS)}, got {name!r}")
    return name, CLOUDS[name]


def load_collection_settings(env: Mapping[str, str] | None = None) -> CollectionSettings:
    """Settings for fetch_audit / `mia collect`; raises SettingsError naming the bad one."""
    source = os.environ if env is None else env
    _, cloud = _cloud(source)
    auth = auth_settings(source, cloud)
    base = _url_setting(source, "MANAGEMENT_API_BASE", cloud.management)
    return CollectionSettings(
        auth=auth,
        management_base=base,
        management_scope=source.get("MANAGEMENT_API_SCOPE", "").strip() or f"{base}/.default",
        publisher_id=_guid_setting(source, "PUBLISHER_ID", auth.tenant_id),
        overlap_minutes=_int_setting(source, "COLLECT_OVERLAP_MINUTES", 120, 0, 24 * 60),
        window_hours=_int_setting(source, "COLLECT_WINDOW_HOURS", 23, 1, 23),
        initial_lookback_hours=_int_setting(source, "COLLECT_INITIAL_LOOKBACK_HOURS", 24, 1, 167),
        requests_per_minute=_int_setting(source, "COLLECT_MAX_REQUESTS_PER_MINUTE", 1500, 1, 2000),
        concurrency=_int_setting(source, "COLLECT_CONCURRENCY", 8, 1, 64),
        time_budget_seconds=_int_setting(source, "COLLECT_TIME_BUDGET_SECONDS", 1500, 10, 3 * 3600),
        request_timeout_seconds=_int_setting(source, "COLLECT_REQUEST_TIMEOUT_SECONDS", 30, 1, 300),
        max_attempts=_int_setting(source, "COLLECT_MAX_ATTEMPTS", 8, 1, 20),
        max_backoff_seconds=_int_setting(source, "COLLECT_MAX_BACKOFF_SECONDS", 60, 1, 900),
    )


# --- Subject resolution through Microsoft Graph ------------------------------------------------

RESOLVE_POLICIES = ("all", "watchlist", "off")
# Graph message trace is documented for the worldwide service only
# (docs/mailitemsaccessed.md#graph-message-trace).
_TRACE_CLOUDS = ("commercial", "gcc")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class GraphSettings:
    """Where Microsoft Graph is and how to call it (message lookup and message trace)."""

    auth: AuthSettings
    base: str
    scope: str
    message_trace: bool
    request_timeout_seconds: int = 30
    max_attempts: int = 5
    max_backoff_seconds: int = 60
    trace_requests_per_window: int = 100  # per tenant, shared with every other trace client
    trace_window_seconds: int = 300


@dataclass(frozen=True)
class ResolutionSettings:
    """Which mailboxes' message identifiers are resolved to subjects as records arrive, and how much
    a report may spend resolving what is still missing (docs/architecture.md#subject-resolution)."""

    policy: str = "off"
    watchlist: frozenset[str] = frozenset()
    graph: GraphSettings | None = None
    on_demand: bool = False
    on_demand_max_requests: int = 50
    on_demand_seconds: int = 20
    run_max_requests: int = 1000  # Graph requests one resolve_subjects run may spend
    retry_hours: int = 24  # first wait before a "not found" is looked up again (then doubled)

    def covers(self, mailbox: str) -> bool:
        """Is `mailbox` resolved as its records arrive?"""
        if self.graph is None or self.policy == "off":
            return False
        return self.policy == "all" or mailbox.lower() in self.watchlist


def _bool_setting(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _watchlist(env: Mapping[str, str]) -> frozenset[str]:
    raw = env.get("RESOLVE_WATCHLIST", "")
    mailboxes = frozenset(part.strip().lower() for part in raw.replace(";", ",").split(",") if part.strip())
    bad = sorted(m for m in mailboxes if "@" not in m or any(c.isspace() for c in m))
    if bad:
        raise SettingsError(f"RESOLVE_WATCHLIST must list mailbox UPNs separated by commas, got {bad[0]!r}")
    return mailboxes


def graph_settings(env: Mapping[str, str]) -> GraphSettings:
    cloud_name, cloud = _cloud(env)
    base = _url_setting(env, "GRAPH_API_BASE", cloud.graph)
    trace_default = cloud_name in _TRACE_CLOUDS
    trace = _bool_setting(env, "RESOLVE_MESSAGE_TRACE", trace_default)
    if trace and not trace_default:
        raise SettingsError(
            f"RESOLVE_MESSAGE_TRACE cannot be true in M365_CLOUD={cloud_name}: Graph message trace "
            "exists only in the worldwide service"
        )
    return GraphSettings(
        auth=auth_settings(env, cloud),
        base=base,
        scope=env.get("GRAPH_SCOPE", "").strip() or f"{cloud.graph}/.default",
        message_trace=trace,
    )


def resolution_settings(env: Mapping[str, str]) -> ResolutionSettings:
    """Resolution is on (`all`) by default when a tenant is configured, and off without one."""
    configured = bool(env.get("TENANT_ID", "").strip())
    policy = env.get("RESOLVE_SUBJECTS", "").strip().lower() or ("all" if configured else "off")
    if policy not in RESOLVE_POLICIES:
        raise SettingsError(f"RESOLVE_SUBJECTS must be one of {', '.join(RESOLVE_POLICIES)}, got {policy!r}")
    on_demand = _bool_setting(env, "RESOLVE_ON_DEMAND", configured)
    if (policy != "off" or on_demand) and not configured:
        raise SettingsError(
            "TENANT_ID is required to resolve subjects through Microsoft Graph (RESOLVE_SUBJECTS="
            f"{policy}, RESOLVE_ON_DEMAND={str(on_demand).lower()}); set RESOLVE_SUBJECTS=off and "
            "RESOLVE_ON_DEMAND=false to run without Graph"
        )
    watchlist = _watchlist(env)
    if policy == "watchlist" and not watchlist:
        raise SettingsError(
            "RESOLVE_WATCHLIST must list at least one mailbox when RESOLVE_SUBJECTS=watchlist"
        )
    return ResolutionSettings(
        policy=policy,
        watchlist=watchlist,
        graph=graph_settings(env) if configured else None,
        on_demand=on_demand,
        on_demand_max_requests=_int_setting(env, "RESOLVE_ON_DEMAND_MAX_REQUESTS", 50, 1, 10_000),
        on_demand_seconds=_int_setting(env, "RESOLVE_ON_DEMAND_SECONDS", 20, 1, 600),
    )


def load_resolution_settings(env: Mapping[str, str] | None = None) -> ResolutionSettings:
    """Subject resolution alone (`mia process`, `mia report`); raises SettingsError naming the bad one."""
    return resolution_settings(os.environ if env is None else env)

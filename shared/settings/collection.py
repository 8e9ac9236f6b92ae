"""Collection settings: the Management Activity API, the credentials that get its tokens (shared
with Microsoft Graph) and the Microsoft 365 cloud that picks the hosts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shared.settings.environment import Environment, SettingsError


class Cloud(StrEnum):
    COMMERCIAL = "commercial"
    GCC = "gcc"
    GCC_HIGH = "gcchigh"
    DOD = "dod"


@dataclass(frozen=True)
class CloudEndpoints:
    authority: str
    management: str
    graph: str


# docs/mailitemsaccessed.md#national-clouds. Management Activity API root by plan:
# https://learn.microsoft.com/office/office-365-management-api/office-365-management-activity-api-reference
# login and Graph hosts by national cloud: https://learn.microsoft.com/graph/deployments
CLOUDS: Mapping[Cloud, CloudEndpoints] = {
    Cloud.COMMERCIAL: CloudEndpoints(
        "https://login.microsoftonline.com", "https://manage.office.com", "https://graph.microsoft.com"
    ),
    Cloud.GCC: CloudEndpoints(
        "https://login.microsoftonline.com", "https://manage-gcc.office.com", "https://graph.microsoft.com"
    ),
    Cloud.GCC_HIGH: CloudEndpoints(
        "https://login.microsoftonline.us", "https://manage.office365.us", "https://graph.microsoft.us"
    ),
    Cloud.DOD: CloudEndpoints(
        "https://login.microsoftonline.us",
        "https://manage.protection.apps.mil",
        "https://dod-graph.microsoft.us",
    ),
}


class AuthMode(StrEnum):
    SECRET = "secret"  # noqa: S105 - the name of a mode, not a password
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed_identity"


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
    def mode(self) -> AuthMode:
        if self.client_id and self.client_secret:
            return AuthMode.SECRET
        if self.client_id and self.certificate_pem:
            return AuthMode.CERTIFICATE
        return AuthMode.MANAGED_IDENTITY


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


def read_cloud(env: Environment) -> Cloud:
    return env.choice("M365_CLOUD", Cloud)


def _tenant(env: Environment) -> str:
    if env.optional("TENANT_ID") is None:
        raise SettingsError("TENANT_ID is required for collection (the Entra tenant ID, a GUID)")
    return env.guid("TENANT_ID")


def _certificate(env: Environment) -> str | None:
    inline = env.optional("CLIENT_CERTIFICATE")
    if inline:
        return inline
    path = env.optional("CLIENT_CERTIFICATE_PATH")
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError as problem:
        raise SettingsError(f"CLIENT_CERTIFICATE_PATH cannot be read: {problem}") from None


def _ca_bundle(env: Environment) -> str | None:
    path = env.optional("CA_BUNDLE")
    if path and not os.path.isfile(path):
        raise SettingsError(f"CA_BUNDLE must be the path of a PEM file, and {path!r} is not a file")
    return path


def read_auth(env: Environment, cloud: Cloud) -> AuthSettings:
    """The credentials, for the Management Activity API and for Graph alike."""
    ca_bundle = _ca_bundle(env)
    client_id = env.optional("CLIENT_ID")
    secret = env.optional("CLIENT_SECRET")
    certificate = _certificate(env)
    if (secret or certificate) and not client_id:
        raise SettingsError("CLIENT_ID is required with CLIENT_SECRET or a client certificate")
    if secret and certificate:
        raise SettingsError("set CLIENT_SECRET or a client certificate, not both")
    return AuthSettings(
        tenant_id=_tenant(env),
        authority_host=env.https_url("LOGIN_AUTHORITY", CLOUDS[cloud].authority),
        client_id=client_id,
        client_secret=secret,
        certificate_pem=certificate,
        certificate_thumbprint=env.optional("CLIENT_CERTIFICATE_THUMBPRINT"),
        managed_identity_client_id=env.optional("MANAGED_IDENTITY_CLIENT_ID"),
        ca_bundle=ca_bundle,
    )


def load_collection_settings(env: Mapping[str, str] | None = None) -> CollectionSettings:
    """Settings for fetch_audit / `mia collect`; raises SettingsError naming the bad one."""
    source = Environment(env)
    cloud = read_cloud(source)
    auth = read_auth(source, cloud)
    base = source.https_url("MANAGEMENT_API_BASE", CLOUDS[cloud].management)
    return CollectionSettings(
        auth=auth,
        management_base=base,
        management_scope=source.text("MANAGEMENT_API_SCOPE", f"{base}/.default"),
        publisher_id=source.guid("PUBLISHER_ID", auth.tenant_id),
        overlap_minutes=source.integer("COLLECT_OVERLAP_MINUTES", 0, 24 * 60),
        window_hours=source.integer("COLLECT_WINDOW_HOURS", 1, 23),
        initial_lookback_hours=source.integer("COLLECT_INITIAL_LOOKBACK_HOURS", 1, 167),
        requests_per_minute=source.integer("COLLECT_MAX_REQUESTS_PER_MINUTE", 1, 2000),
        concurrency=source.integer("COLLECT_CONCURRENCY", 1, 64),
        time_budget_seconds=source.integer("COLLECT_TIME_BUDGET_SECONDS", 10, 3 * 3600),
        request_timeout_seconds=source.integer("COLLECT_REQUEST_TIMEOUT_SECONDS", 1, 300),
        max_attempts=source.integer("COLLECT_MAX_ATTEMPTS", 1, 20),
        max_backoff_seconds=source.integer("COLLECT_MAX_BACKOFF_SECONDS", 1, 900),
    )

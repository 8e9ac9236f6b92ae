"""Typed settings: the only module that reads the environment.

Every setting is validated once, and a bad one fails at start-up with a message naming it.
Storage follows the Functions host's own convention (DESIGN section 6): `AzureWebJobsStorage` is a
connection string locally (Azurite), and in Azure the identity-based
`AzureWebJobsStorage__accountName` or `__blobServiceUri`/`__queueServiceUri`/`__tableServiceUri`
forms, with `__credential=managedidentity` and `__clientId` for a user-assigned identity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

STORAGE_SETTING = "AzureWebJobsStorage"


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


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    report: ReportSettings


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
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises SettingsError naming the first bad one."""
    source = os.environ if env is None else env
    return Settings(storage=storage_settings(source), report=report_settings(source))


def load_report_settings(env: Mapping[str, str] | None = None) -> ReportSettings:
    """Report limits alone, for the offline `mia report --input` path that needs no storage."""
    return report_settings(os.environ if env is None else env)

"""Storage settings, in the Functions host's own convention: `AzureWebJobsStorage` is a connection
string locally (Azurite); in Azure the identity-based `AzureWebJobsStorage__accountName` or
`__blobServiceUri`/`__queueServiceUri`/`__tableServiceUri` forms, with `__credential=managedidentity`
and `__clientId` for a user-assigned identity:
https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.settings.environment import Environment, SettingsError, is_https_url

STORAGE_SETTING = "AzureWebJobsStorage"
_PREFIX = STORAGE_SETTING + "__"
_SERVICES = ("blob", "queue", "table")


class StorageCredential(StrEnum):
    MANAGED_IDENTITY = "managedidentity"


@dataclass(frozen=True)
class StorageSettings:
    connection_string: str | None = None
    blob_url: str | None = None
    queue_url: str | None = None
    table_url: str | None = None
    credential: StorageCredential | None = None
    client_id: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


def _connection_string(value: str) -> StorageSettings:
    if value != "UseDevelopmentStorage=true" and "=" not in value:
        raise SettingsError(
            f"{STORAGE_SETTING} must be a storage connection string "
            "(or unset, with the identity-based __accountName/__*ServiceUri settings)"
        )
    return StorageSettings(connection_string=value)


def _service_url(env: Environment, name: str) -> str | None:
    value = env.optional(name)
    if value is None:
        return None
    if not is_https_url(value):
        raise SettingsError(f"{name} must be an https:// service URI, got {value!r}")
    return value.rstrip("/")


def _service_urls(env: Environment) -> dict[str, str]:
    """Explicit service URIs, the rest derived from the account name; all three or an error."""
    account = env.text(_PREFIX + "accountName")
    urls = {kind: _service_url(env, f"{_PREFIX}{kind}ServiceUri") for kind in _SERVICES}
    if account:
        if not account.isalnum() or not 3 <= len(account) <= 24:
            raise SettingsError(f"{_PREFIX}accountName must be a storage account name, got {account!r}")
        urls = {kind: url or f"https://{account}.{kind}.core.windows.net" for kind, url in urls.items()}
    missing = [f"{_PREFIX}{kind}ServiceUri" for kind, url in urls.items() if url is None]
    if missing:
        raise SettingsError(
            f"storage is not configured: set {STORAGE_SETTING} (a connection string), or "
            f"{_PREFIX}accountName, or all of {', '.join(missing)}"
        )
    return {kind: url for kind, url in urls.items() if url is not None}


def _credential(env: Environment) -> StorageCredential | None:
    value = env.optional(_PREFIX + "credential")
    if value is None:
        return None
    try:
        return StorageCredential(value)
    except ValueError:
        raise SettingsError(
            f"{_PREFIX}credential must be '{StorageCredential.MANAGED_IDENTITY}' or unset, got {value!r}"
        ) from None


def load_storage_settings(env: Mapping[str, str] | None = None) -> StorageSettings:
    """Storage alone: a bad collection or Graph setting must not keep alerts and health from the
    tables that record it."""
    source = Environment(env)
    connection_string = source.optional(STORAGE_SETTING)
    if connection_string is not None:
        return _connection_string(connection_string)
    urls = _service_urls(source)
    return StorageSettings(
        blob_url=urls["blob"],
        queue_url=urls["queue"],
        table_url=urls["table"],
        credential=_credential(source),
        client_id=source.optional(_PREFIX + "clientId"),
    )

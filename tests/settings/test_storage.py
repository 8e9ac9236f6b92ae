"""shared/settings/storage.py: the host's storage connection, as a connection string or identity-based."""

from __future__ import annotations

import pytest

from shared.settings import SettingsError, StorageCredential, StorageSettings, load_storage_settings

pytestmark = pytest.mark.unit

CONNECTION_STRING = (
    "DefaultEndpointsProtocol=https;AccountName=miaforensics;AccountKey=bm90LWEta2V5;"
    "EndpointSuffix=core.windows.net"
)
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
CLIENT_ID = "9f1c2a7e-0b1d-4c55-9d0e-6a3f2b8c9d10"


@pytest.mark.parametrize("value", [CONNECTION_STRING, AZURITE, "UseDevelopmentStorage=true"])
def test_connection_string_forms_are_kept_as_given(value: str) -> None:
    settings = load_storage_settings({"AzureWebJobsStorage": value})
    assert settings == StorageSettings(connection_string=value)
    assert settings.uses_identity is False


def test_connection_string_is_trimmed() -> None:
    assert load_storage_settings({"AzureWebJobsStorage": f"  {CONNECTION_STRING}\n"}).connection_string == (
        CONNECTION_STRING
    )


def test_connection_string_wins_over_identity_settings() -> None:
    env = {"AzureWebJobsStorage": CONNECTION_STRING, "AzureWebJobsStorage__accountName": "other"}
    assert load_storage_settings(env) == StorageSettings(connection_string=CONNECTION_STRING)


def test_a_value_that_is_no_connection_string_is_rejected_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^AzureWebJobsStorage must be a storage connection string"):
        load_storage_settings({"AzureWebJobsStorage": "miaforensics"})


def test_account_name_derives_the_three_https_service_uris() -> None:
    settings = load_storage_settings({"AzureWebJobsStorage__accountName": "miaforensics"})
    assert settings == StorageSettings(
        blob_url="https://miaforensics.blob.core.windows.net",
        queue_url="https://miaforensics.queue.core.windows.net",
        table_url="https://miaforensics.table.core.windows.net",
    )
    assert settings.uses_identity is True


def test_explicit_service_uris_are_used_without_trailing_slash() -> None:
    env = {
        "AzureWebJobsStorage__blobServiceUri": "https://mia.blob.core.usgovcloudapi.net/",
        "AzureWebJobsStorage__queueServiceUri": "https://mia.queue.core.usgovcloudapi.net",
        "AzureWebJobsStorage__tableServiceUri": " https://mia.table.core.usgovcloudapi.net/ ",
    }
    assert load_storage_settings(env) == StorageSettings(
        blob_url="https://mia.blob.core.usgovcloudapi.net",
        queue_url="https://mia.queue.core.usgovcloudapi.net",
        table_url="https://mia.table.core.usgovcloudapi.net",
    )


def test_explicit_service_uri_overrides_the_one_derived_from_the_account_name() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "miaforensics",
        "AzureWebJobsStorage__tableServiceUri": "https://miaforensics.table.cosmos.azure.com",
    }
    settings = load_storage_settings(env)
    assert settings.blob_url == "https://miaforensics.blob.core.windows.net"
    assert settings.table_url == "https://miaforensics.table.cosmos.azure.com"


def test_managed_identity_credential_and_client_id() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "miaforensics",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": f" {CLIENT_ID} ",
    }
    settings = load_storage_settings(env)
    assert (settings.credential, settings.client_id) == ("managedidentity", CLIENT_ID)
    assert settings.credential is StorageCredential.MANAGED_IDENTITY
    assert settings.connection_string is None


def test_credential_other_than_managed_identity_is_rejected_by_name() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "miaforensics",
        "AzureWebJobsStorage__credential": "clientsecret",
    }
    with pytest.raises(SettingsError, match=r"^AzureWebJobsStorage__credential must be 'managedidentity'"):
        load_storage_settings(env)


@pytest.mark.parametrize("env", [{}, {"AzureWebJobsStorage": "  "}, {"AzureWebJobsStorage__accountName": ""}])
def test_missing_storage_names_azure_web_jobs_storage(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as raised:
        load_storage_settings(env)
    message = str(raised.value)
    assert message.startswith("storage is not configured: set AzureWebJobsStorage (a connection string)")
    assert "AzureWebJobsStorage__accountName" in message


def test_partial_service_uris_name_the_missing_ones() -> None:
    env = {
        "AzureWebJobsStorage__blobServiceUri": "https://mia.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": "https://mia.queue.core.windows.net",
    }
    with pytest.raises(SettingsError, match=r"or all of AzureWebJobsStorage__tableServiceUri$"):
        load_storage_settings(env)


@pytest.mark.parametrize("kind", ["blob", "queue", "table"])
@pytest.mark.parametrize(
    "uri", ["http://mia.{kind}.core.windows.net", "mia.{kind}.core.windows.net", "https://"]
)
def test_non_https_service_uri_is_rejected_naming_the_setting(kind: str, uri: str) -> None:
    env = {"AzureWebJobsStorage__accountName": "miaforensics", f"AzureWebJobsStorage__{kind}ServiceUri": ""}
    env[f"AzureWebJobsStorage__{kind}ServiceUri"] = uri.format(kind=kind)
    with pytest.raises(SettingsError) as raised:
        load_storage_settings(env)
    assert str(raised.value).startswith(
        f"AzureWebJobsStorage__{kind}ServiceUri must be an https:// service URI"
    )


@pytest.mark.parametrize("account", ["my-account", "ab", "a" * 25, "mia.forensics", "mia forensics"])
def test_bad_account_name_is_rejected_by_name(account: str) -> None:
    with pytest.raises(
        SettingsError, match=r"^AzureWebJobsStorage__accountName must be a storage account name"
    ):
        load_storage_settings({"AzureWebJobsStorage__accountName": account})

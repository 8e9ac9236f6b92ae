"""shared/settings/config.py: settings are read from an explicit environment and fail fast by name."""

from __future__ import annotations

import pytest

from shared.settings.config import (
    ReportSettings,
    Settings,
    SettingsError,
    StorageSettings,
    load_report_settings,
    load_settings,
    report_settings,
    storage_settings,
)

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
    settings = storage_settings({"AzureWebJobsStorage": value})
    assert settings == StorageSettings(connection_string=value)
    assert settings.uses_identity is False


def test_connection_string_is_trimmed() -> None:
    assert storage_settings({"AzureWebJobsStorage": f"  {CONNECTION_STRING}\n"}).connection_string == (
        CONNECTION_STRING
    )


def test_connection_string_wins_over_identity_settings() -> None:
    env = {"AzureWebJobsStorage": CONNECTION_STRING, "AzureWebJobsStorage__accountName": "other"}
    assert storage_settings(env) == StorageSettings(connection_string=CONNECTION_STRING)


def test_a_value_that_is_no_connection_string_is_rejected_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^AzureWebJobsStorage must be a storage connection string"):
        storage_settings({"AzureWebJobsStorage": "miaforensics"})


def test_account_name_derives_the_three_https_service_uris() -> None:
    settings = storage_settings({"AzureWebJobsStorage__accountName": "miaforensics"})
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
    assert storage_settings(env) == StorageSettings(
        blob_url="https://mia.blob.core.usgovcloudapi.net",
        queue_url="https://mia.queue.core.usgovcloudapi.net",
        table_url="https://mia.table.core.usgovcloudapi.net",
    )


def test_explicit_service_uri_overrides_the_one_derived_from_the_account_name() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "miaforensics",
        "AzureWebJobsStorage__tableServiceUri": "https://miaforensics.table.cosmos.azure.com",
    }
    settings = storage_settings(env)
    assert settings.blob_url == "https://miaforensics.blob.core.windows.net"
    assert settings.table_url == "https://miaforensics.table.cosmos.azure.com"


def test_managed_identity_credential_and_client_id() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "miaforensics",
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": f" {CLIENT_ID} ",
    }
    settings = storage_settings(env)
    assert (settings.credential, settings.client_id) == ("managedidentity", CLIENT_ID)
    assert settings.connection_string is None


def test_credential_other_than_managed_identity_is_rejected_by_name() -> None:
    env = {
        "AzureWebJobsStorage__accountName": "miaforensics",
        "AzureWebJobsStorage__credential": "clientsecret",
    }
    with pytest.raises(SettingsError, match=r"^AzureWebJobsStorage__credential must be 'managedidentity'"):
        storage_settings(env)


@pytest.mark.parametrize("env", [{}, {"AzureWebJobsStorage": "  "}, {"AzureWebJobsStorage__accountName": ""}])
def test_missing_storage_names_azure_web_jobs_storage(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as raised:
        storage_settings(env)
    message = str(raised.value)
    assert message.startswith("storage is not configured: set AzureWebJobsStorage (a connection string)")
    assert "AzureWebJobsStorage__accountName" in message


def test_partial_service_uris_name_the_missing_ones() -> None:
    env = {
        "AzureWebJobsStorage__blobServiceUri": "https://mia.blob.core.windows.net",
        "AzureWebJobsStorage__queueServiceUri": "https://mia.queue.core.windows.net",
    }
    with pytest.raises(SettingsError, match=r"or all of AzureWebJobsStorage__tableServiceUri$"):
        storage_settings(env)


@pytest.mark.parametrize("kind", ["blob", "queue", "table"])
@pytest.mark.parametrize(
    "uri", ["http://mia.{kind}.core.windows.net", "mia.{kind}.core.windows.net", "https://"]
)
def test_non_https_service_uri_is_rejected_naming_the_setting(kind: str, uri: str) -> None:
    env = {"AzureWebJobsStorage__accountName": "miaforensics", f"AzureWebJobsStorage__{kind}ServiceUri": ""}
    env[f"AzureWebJobsStorage__{kind}ServiceUri"] = uri.format(kind=kind)
    with pytest.raises(SettingsError) as raised:
        storage_settings(env)
    assert str(raised.value).startswith(
        f"AzureWebJobsStorage__{kind}ServiceUri must be an https:// service URI"
    )


@pytest.mark.parametrize("account", ["my-account", "ab", "a" * 25, "mia.forensics", "mia forensics"])
def test_bad_account_name_is_rejected_by_name(account: str) -> None:
    with pytest.raises(
        SettingsError, match=r"^AzureWebJobsStorage__accountName must be a storage account name"
    ):
        storage_settings({"AzureWebJobsStorage__accountName": account})


# --- Report settings -------------------------------------------------------------------------------


def test_report_settings_defaults() -> None:
    assert report_settings({}) == ReportSettings(default_days=7, max_days=400, page_rows=10_000)


def test_report_settings_are_read_and_trimmed() -> None:
    env = {"REPORT_DEFAULT_DAYS": " 30 ", "REPORT_MAX_DAYS": "90", "REPORT_PAGE_ROWS": "5000"}
    assert report_settings(env) == ReportSettings(default_days=30, max_days=90, page_rows=5000)


@pytest.mark.parametrize("name", ["REPORT_DEFAULT_DAYS", "REPORT_MAX_DAYS", "REPORT_PAGE_ROWS"])
@pytest.mark.parametrize("value", ["ten", "7.5", "1e3", "0x10"])
def test_non_integer_report_setting_is_rejected_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        report_settings({name: value})
    assert str(raised.value) == f"{name} must be an integer, got {value!r}"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REPORT_DEFAULT_DAYS", "0", "REPORT_DEFAULT_DAYS must be between 1 and 3650, got 0"),
        ("REPORT_MAX_DAYS", "3651", "REPORT_MAX_DAYS must be between 1 and 3650, got 3651"),
        ("REPORT_PAGE_ROWS", "99", "REPORT_PAGE_ROWS must be between 100 and 200000, got 99"),
        ("REPORT_PAGE_ROWS", "-5", "REPORT_PAGE_ROWS must be between 100 and 200000, got -5"),
        ("REPORT_PAGE_ROWS", "200001", "REPORT_PAGE_ROWS must be between 100 and 200000, got 200001"),
    ],
)
def test_out_of_range_report_setting_is_rejected_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        report_settings({name: value})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "expected"), [("True", True), ("true", True), ("1", True), (" TRUE ", True)]
)
def test_platform_authentication_is_on_when_app_service_says_so(value: str, expected: bool) -> None:
    # App Service injects WEBSITE_AUTH_ENABLED=True into the app while its authentication is on.
    assert report_settings({"WEBSITE_AUTH_ENABLED": value}).platform_auth is expected


@pytest.mark.parametrize("env", [{}, {"WEBSITE_AUTH_ENABLED": ""}, {"WEBSITE_AUTH_ENABLED": "False"}])
def test_platform_authentication_is_off_unless_app_service_says_so(env: dict[str, str]) -> None:
    assert report_settings(env).platform_auth is False


def test_a_malformed_platform_authentication_flag_is_rejected_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^WEBSITE_AUTH_ENABLED must be true or false"):
        report_settings({"WEBSITE_AUTH_ENABLED": "enabled"})


def test_load_settings_reads_storage_and_report_settings_from_the_given_env() -> None:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REPORT_PAGE_ROWS": "250"}
    assert load_settings(env) == Settings(
        storage=StorageSettings(connection_string="UseDevelopmentStorage=true"),
        report=ReportSettings(page_rows=250),
    )


def test_load_settings_fails_on_the_first_bad_setting() -> None:
    with pytest.raises(SettingsError, match=r"^storage is not configured"):
        load_settings({"REPORT_PAGE_ROWS": "250"})
    with pytest.raises(SettingsError, match=r"^REPORT_MAX_DAYS must be an integer"):
        load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REPORT_MAX_DAYS": "x"})


def test_load_report_settings_needs_no_storage() -> None:
    assert load_report_settings({"REPORT_DEFAULT_DAYS": "3"}) == ReportSettings(default_days=3)

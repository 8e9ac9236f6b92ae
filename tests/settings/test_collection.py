"""shared/settings/collection.py: the Management Activity API, the credentials and the cloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import AuthMode, Cloud, SettingsError, load_collection_settings

pytestmark = pytest.mark.unit

TENANT = "2F1C9A52-3B7E-4D0A-9E25-8C4B1F7D2A63"
CLIENT = "5a0c1f4e-7d2b-4c39-8e61-0f9b2d7a4c15"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


def test_a_tenant_alone_collects_from_the_commercial_cloud_with_the_managed_identity() -> None:
    settings = load_collection_settings({"TENANT_ID": TENANT})
    assert settings.auth.tenant_id == TENANT.lower()
    assert settings.auth.authority_host == "https://login.microsoftonline.com"
    assert settings.auth.mode is AuthMode.MANAGED_IDENTITY
    assert settings.management_base == "https://manage.office.com"
    assert settings.management_scope == "https://manage.office.com/.default"
    assert settings.publisher_id == TENANT.lower()
    limits = (
        settings.overlap_minutes,
        settings.window_hours,
        settings.initial_lookback_hours,
        settings.requests_per_minute,
        settings.concurrency,
        settings.time_budget_seconds,
        settings.request_timeout_seconds,
        settings.max_attempts,
        settings.max_backoff_seconds,
    )
    assert limits == (120, 23, 24, 1500, 8, 1500, 30, 8, 60)


@pytest.mark.parametrize(
    ("value", "login", "management"),
    [
        ("commercial", "https://login.microsoftonline.com", "https://manage.office.com"),
        ("GCC", "https://login.microsoftonline.com", "https://manage-gcc.office.com"),
        (" gcchigh ", "https://login.microsoftonline.us", "https://manage.office365.us"),
        ("dod", "https://login.microsoftonline.us", "https://manage.protection.apps.mil"),
    ],
)
def test_each_cloud_has_its_login_and_api_hosts(value: str, login: str, management: str) -> None:
    settings = load_collection_settings({"TENANT_ID": TENANT, "M365_CLOUD": value})
    assert (settings.auth.authority_host, settings.management_base) == (login, management)
    assert settings.management_scope == f"{management}/.default"


def test_the_clouds_are_the_four_documented_ones() -> None:
    assert [cloud.value for cloud in Cloud] == ["commercial", "gcc", "gcchigh", "dod"]


def test_an_unknown_cloud_lists_the_valid_ones() -> None:
    with pytest.raises(SettingsError) as raised:
        load_collection_settings({"TENANT_ID": TENANT, "M365_CLOUD": "Mars"})
    assert str(raised.value) == "M365_CLOUD must be one of commercial, gcc, gcchigh, dod, got 'mars'"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "TENANT_ID is required for collection (the Entra tenant ID, a GUID)"),
        ({"TENANT_ID": "  "}, "TENANT_ID is required for collection (the Entra tenant ID, a GUID)"),
        ({"TENANT_ID": "contoso"}, "TENANT_ID must be a GUID, got 'contoso'"),
        ({"TENANT_ID": TENANT, "PUBLISHER_ID": "contoso"}, "PUBLISHER_ID must be a GUID, got 'contoso'"),
    ],
)
def test_the_tenant_and_publisher_must_be_guids(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_collection_settings(env)
    assert str(raised.value) == message


def test_overrides_for_the_simulator_drop_the_trailing_slash() -> None:
    settings = load_collection_settings(
        {
            "TENANT_ID": TENANT,
            "PUBLISHER_ID": CLIENT.upper(),
            "LOGIN_AUTHORITY": "https://127.0.0.1:8443/",
            "MANAGEMENT_API_BASE": "https://127.0.0.1:8443/",
        }
    )
    assert settings.auth.authority_host == "https://127.0.0.1:8443"
    assert settings.management_base == "https://127.0.0.1:8443"
    assert settings.management_scope == "https://127.0.0.1:8443/.default"
    assert settings.publisher_id == CLIENT
    scoped = load_collection_settings({"TENANT_ID": TENANT, "MANAGEMENT_API_SCOPE": " api://mia/.default "})
    assert scoped.management_scope == "api://mia/.default"


@pytest.mark.parametrize("name", ["LOGIN_AUTHORITY", "MANAGEMENT_API_BASE"])
@pytest.mark.parametrize("value", ["http://127.0.0.1:8443", "manage.office.com", "https://"])
def test_a_host_override_must_be_https(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_collection_settings({"TENANT_ID": TENANT, name: value})
    assert str(raised.value) == f"{name} must be an https:// URL, got {value!r}"


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("COLLECT_OVERLAP_MINUTES", 0, 1440),
        ("COLLECT_WINDOW_HOURS", 1, 23),
        ("COLLECT_INITIAL_LOOKBACK_HOURS", 1, 167),
        ("COLLECT_MAX_REQUESTS_PER_MINUTE", 1, 2000),
        ("COLLECT_CONCURRENCY", 1, 64),
        ("COLLECT_TIME_BUDGET_SECONDS", 10, 10800),
        ("COLLECT_REQUEST_TIMEOUT_SECONDS", 1, 300),
        ("COLLECT_MAX_ATTEMPTS", 1, 20),
        ("COLLECT_MAX_BACKOFF_SECONDS", 1, 900),
    ],
)
def test_each_collection_limit_has_its_range(name: str, low: int, high: int) -> None:
    base = {"TENANT_ID": TENANT}
    for value in (low, high):
        load_collection_settings({**base, name: str(value)})
    for value in (low - 1, high + 1):
        with pytest.raises(SettingsError) as raised:
            load_collection_settings({**base, name: str(value)})
        assert str(raised.value) == f"{name} must be between {low} and {high}, got {value}"
    with pytest.raises(SettingsError) as raised:
        load_collection_settings({**base, name: "lots"})
    assert str(raised.value) == f"{name} must be an integer, got 'lots'"


def test_an_app_registration_with_a_secret() -> None:
    settings = load_collection_settings({"TENANT_ID": TENANT, "CLIENT_ID": CLIENT, "CLIENT_SECRET": "s3cret"})
    assert settings.auth.mode is AuthMode.SECRET
    assert settings.auth.client_secret == "s3cret"
    assert "s3cret" not in repr(settings)


def test_an_app_registration_with_a_certificate_inline_or_from_a_file(tmp_path: Path) -> None:
    inline = load_collection_settings({"TENANT_ID": TENANT, "CLIENT_ID": CLIENT, "CLIENT_CERTIFICATE": PEM})
    path = tmp_path / "app.pem"
    path.write_text(PEM, encoding="ascii")
    from_file = load_collection_settings(
        {
            "TENANT_ID": TENANT,
            "CLIENT_ID": CLIENT,
            "CLIENT_CERTIFICATE_PATH": str(path),
            "CLIENT_CERTIFICATE_THUMBPRINT": "AB12",
        }
    )
    assert inline.auth.mode is from_file.auth.mode is AuthMode.CERTIFICATE
    assert inline.auth.certificate_pem == PEM.strip()
    assert from_file.auth.certificate_pem == PEM
    assert from_file.auth.certificate_thumbprint == "AB12"
    assert "PRIVATE KEY" not in repr(inline) + repr(from_file)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLIENT_SECRET": "s3cret"}, "CLIENT_ID is required with CLIENT_SECRET or a client certificate"),
        ({"CLIENT_CERTIFICATE": PEM}, "CLIENT_ID is required with CLIENT_SECRET or a client certificate"),
        (
            {"CLIENT_ID": CLIENT, "CLIENT_SECRET": "s3cret", "CLIENT_CERTIFICATE": PEM},
            "set CLIENT_SECRET or a client certificate, not both",
        ),
    ],
)
def test_credentials_that_do_not_fit_together_are_rejected(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_collection_settings({"TENANT_ID": TENANT, **env})
    assert str(raised.value) == message


def test_an_unreadable_certificate_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    with pytest.raises(SettingsError, match=r"^CLIENT_CERTIFICATE_PATH cannot be read: "):
        load_collection_settings(
            {"TENANT_ID": TENANT, "CLIENT_ID": CLIENT, "CLIENT_CERTIFICATE_PATH": str(missing)}
        )


def test_the_ca_bundle_must_be_a_file(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text(PEM, encoding="ascii")
    assert load_collection_settings({"TENANT_ID": TENANT, "CA_BUNDLE": str(bundle)}).auth.ca_bundle == str(
        bundle
    )
    with pytest.raises(SettingsError) as raised:
        load_collection_settings({"TENANT_ID": TENANT, "CA_BUNDLE": str(tmp_path)})
    assert (
        str(raised.value) == f"CA_BUNDLE must be the path of a PEM file, and {str(tmp_path)!r} is not a file"
    )


def test_a_user_assigned_identity_for_tokens() -> None:
    settings = load_collection_settings({"TENANT_ID": TENANT, "MANAGED_IDENTITY_CLIENT_ID": CLIENT})
    assert settings.auth.mode is AuthMode.MANAGED_IDENTITY
    assert settings.auth.managed_identity_client_id == CLIENT

"""shared/settings/reports.py: report limits and who may ask for a report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.settings import ReportSettings, SettingsError, load_report_settings

pytestmark = pytest.mark.unit


def test_report_settings_defaults() -> None:
    assert load_report_settings({}) == ReportSettings(default_days=7, max_days=400, page_rows=10_000)


def test_report_settings_are_read_and_trimmed() -> None:
    env = {"REPORT_DEFAULT_DAYS": " 30 ", "REPORT_MAX_DAYS": "90", "REPORT_PAGE_ROWS": "5000"}
    assert load_report_settings(env) == ReportSettings(default_days=30, max_days=90, page_rows=5000)


@pytest.mark.parametrize("name", ["REPORT_DEFAULT_DAYS", "REPORT_MAX_DAYS", "REPORT_PAGE_ROWS"])
@pytest.mark.parametrize("value", ["ten", "7.5", "1e3", "0x10"])
def test_non_integer_report_setting_is_rejected_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_report_settings({name: value})
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
        load_report_settings({name: value})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "expected"), [("True", True), ("true", True), ("1", True), (" TRUE ", True)]
)
def test_platform_authentication_is_on_when_app_service_says_so(value: str, expected: bool) -> None:
    # App Service injects WEBSITE_AUTH_ENABLED=True into the app while its authentication is on.
    assert load_report_settings({"WEBSITE_AUTH_ENABLED": value}).platform_auth is expected


@pytest.mark.parametrize("env", [{}, {"WEBSITE_AUTH_ENABLED": ""}, {"WEBSITE_AUTH_ENABLED": "False"}])
def test_platform_authentication_is_off_unless_app_service_says_so(env: dict[str, str]) -> None:
    assert load_report_settings(env).platform_auth is False


def test_a_malformed_platform_authentication_flag_is_rejected_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^WEBSITE_AUTH_ENABLED must be true or false"):
        load_report_settings({"WEBSITE_AUTH_ENABLED": "enabled"})


def test_load_report_settings_needs_no_storage() -> None:
    assert load_report_settings({"REPORT_DEFAULT_DAYS": "3"}) == ReportSettings(default_days=3)


def test_the_required_role_is_one_app_role_value() -> None:
    role = "MailAudit.Investigator"
    assert load_report_settings({"REPORT_REQUIRED_ROLE": f" {role} "}).required_role == role
    for value in ("two roles", "a,b", "r" * 251):
        with pytest.raises(SettingsError, match=r"^REPORT_REQUIRED_ROLE must be one app role value"):
            load_report_settings({"REPORT_REQUIRED_ROLE": value})


def _mmdb(path: Path) -> Path:
    from tests.ipcontext.mmdb_files import GEOLITE2_ASN, write_mmdb

    return write_mmdb(path, "GeoLite2-ASN", GEOLITE2_ASN)


def test_ip_database_path_names_one_or_more_mmdb_files(tmp_path: Path) -> None:
    first, second = _mmdb(tmp_path / "asn.mmdb"), _mmdb(tmp_path / "country.mmdb")
    assert load_report_settings({}).ip_databases == ()
    assert load_report_settings({"IP_DATABASE_PATH": f" {first} "}).ip_databases == (first,)
    both = {"IP_DATABASE_PATH": f"{first}{os.pathsep}{second}"}
    assert load_report_settings(both).ip_databases == (first, second)


def test_a_missing_ip_database_fails_at_load_naming_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "GeoLite2-ASN.mmdb"
    with pytest.raises(SettingsError) as raised:
        load_report_settings({"IP_DATABASE_PATH": str(missing)})
    assert str(raised.value) == f"IP_DATABASE_PATH: {missing} is not a file (give a GeoLite2 or IPinfo .mmdb)"


def test_a_file_that_is_not_an_mmdb_fails_at_load_naming_the_setting(tmp_path: Path) -> None:
    csv = tmp_path / "GeoLite2-ASN-Blocks-IPv4.csv"
    csv.write_text("network,autonomous_system_number\n8.8.8.0/24,15169\n")
    with pytest.raises(SettingsError) as raised:
        load_report_settings({"IP_DATABASE_PATH": str(csv)})
    assert str(raised.value) == f"IP_DATABASE_PATH: {csv} is not a MaxMind DB (.mmdb) file"

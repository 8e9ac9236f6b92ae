"""shared/settings: load_settings reads every capability, and collection's problem stops no other."""

from __future__ import annotations

import pytest

from shared.settings import (
    AlertSettings,
    ReportSettings,
    ResolutionSettings,
    Settings,
    SettingsError,
    StorageSettings,
    load_collection_settings,
    load_settings,
)

pytestmark = pytest.mark.unit

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
TENANT = "4c0e6b1a-9d2f-4e37-8a15-2b7f0c9d3e61"
NO_TENANT = "TENANT_ID is required for collection (the Entra tenant ID, a GUID)"


def test_load_settings_reads_every_capability_from_the_given_env() -> None:
    env = {**STORAGE, "REPORT_PAGE_ROWS": "250", "TENANT_ID": TENANT, "COLLECT_CONCURRENCY": "4"}
    settings = load_settings(env)
    assert settings.storage == StorageSettings(connection_string="UseDevelopmentStorage=true")
    assert settings.report == ReportSettings(page_rows=250)
    assert settings.alerts == AlertSettings(tenant=TENANT)
    assert settings.resolution.graph is not None
    assert settings.collection == load_collection_settings(env)
    assert settings.collection is not None
    assert settings.collection.concurrency == 4
    assert settings.collection_problem is None
    assert settings.require_collection() is settings.collection


def test_collection_settings_that_do_not_validate_are_recorded_not_raised() -> None:
    settings = load_settings({**STORAGE, "REPORT_PAGE_ROWS": "250"})
    assert settings == Settings(
        storage=StorageSettings(connection_string="UseDevelopmentStorage=true"),
        report=ReportSettings(page_rows=250),
        alerts=AlertSettings(),
        resolution=ResolutionSettings(),
        collection=None,
        collection_problem=NO_TENANT,
    )
    with pytest.raises(SettingsError) as raised:
        settings.require_collection()
    assert str(raised.value) == NO_TENANT


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"COLLECT_CONCURRENCY": "65"}, "COLLECT_CONCURRENCY must be between 1 and 64, got 65"),
        ({"PUBLISHER_ID": "s3cret"}, "PUBLISHER_ID must be a GUID"),
        ({"MANAGEMENT_API_BASE": "http://manage"}, "MANAGEMENT_API_BASE must be an https:// URL"),
    ],
)
def test_a_bad_collection_setting_leaves_the_others_loaded(bad: dict[str, str], message: str) -> None:
    settings = load_settings({**STORAGE, "TENANT_ID": TENANT, **bad})
    assert settings.collection is None
    assert settings.collection_problem is not None
    assert settings.collection_problem.startswith(message)
    assert settings.alerts.tenant == TENANT
    assert settings.resolution.graph is not None


def test_load_settings_fails_on_the_first_bad_setting_outside_collection() -> None:
    with pytest.raises(SettingsError, match=r"^storage is not configured"):
        load_settings({"REPORT_PAGE_ROWS": "250"})
    with pytest.raises(SettingsError, match=r"^REPORT_MAX_DAYS must be an integer"):
        load_settings({**STORAGE, "REPORT_MAX_DAYS": "x"})
    # The tenant and the credentials are Graph's too: a bad one stops subject resolution as well.
    with pytest.raises(SettingsError, match=r"^TENANT_ID must be a GUID"):
        load_settings({**STORAGE, "TENANT_ID": "contoso"})
    with pytest.raises(SettingsError, match=r"^CLIENT_ID is required with CLIENT_SECRET"):
        load_settings({**STORAGE, "TENANT_ID": TENANT, "CLIENT_SECRET": "s3cret"})


def test_settings_built_without_collection_say_so_when_collection_is_asked_for() -> None:
    settings = Settings(
        storage=StorageSettings(connection_string="UseDevelopmentStorage=true"), report=ReportSettings()
    )
    with pytest.raises(SettingsError, match="collection settings were not loaded"):
        settings.require_collection()

"""Detection settings: the defaults README "Detection" names, and a bad value named."""

from __future__ import annotations

import pytest

from shared.settings import DetectionSettings, SettingsError, load_alert_settings, load_detection_settings

pytestmark = pytest.mark.unit


def test_unset_detection_settings_are_the_documented_defaults() -> None:
    assert load_detection_settings({}) == DetectionSettings()
    assert load_alert_settings({}).detection == DetectionSettings()
    assert (DetectionSettings().warmup_days, DetectionSettings().warmup_records) == (3, 30)


def test_detection_settings_are_read_from_the_environment() -> None:
    loaded = load_detection_settings(
        {"DETECT_ENABLED": "false", "DETECT_BASELINE_DAYS": "60", "DETECT_MASS_MAILBOXES": "25"}
    )
    assert (loaded.enabled, loaded.baseline_days, loaded.mass_mailboxes) == (False, 60, 25)


@pytest.mark.parametrize(
    ("name", "value"),
    [("DETECT_BASELINE_DAYS", "0"), ("DETECT_MASS_MAILBOXES", "1"), ("DETECT_MASS_WINDOW_MINUTES", "x")],
)
def test_a_bad_detection_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_detection_settings({name: value})

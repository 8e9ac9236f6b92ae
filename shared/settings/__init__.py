"""Typed settings, one module per capability, and `environment`, the only reader of the environment.

Every setting is read and validated once, at start-up, and a bad one fails with an error that names
it. Nothing else in the project looks at `os.environ`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from shared.settings.alerts import AlertFormat, AlertSettings, load_alert_settings
from shared.settings.backfill import (
    BackfillSettings,
    SentinelSettings,
    load_backfill_settings,
    load_sentinel_settings,
    read_initial_days,
    read_log_analytics_endpoint,
)
from shared.settings.collection import (
    CLOUDS,
    AuthMode,
    AuthSettings,
    Cloud,
    CloudEndpoints,
    CollectionSettings,
    load_collection_settings,
)
from shared.settings.detection import DetectionSettings, load_detection_settings
from shared.settings.environment import (
    CATALOGUE,
    Capability,
    Environment,
    Setting,
    SettingsError,
    UnresolvedReference,
)
from shared.settings.reports import ReportSettings, load_report_settings
from shared.settings.storage import STORAGE_SETTING, StorageCredential, StorageSettings, load_storage_settings
from shared.settings.subjects import (
    GraphSettings,
    ResolutionSettings,
    ResolvePolicy,
    load_resolution_settings,
)
from shared.settings.telemetry import TelemetrySettings, load_telemetry_settings

__all__ = [
    "CATALOGUE",
    "CLOUDS",
    "STORAGE_SETTING",
    "AlertFormat",
    "AlertSettings",
    "AuthMode",
    "AuthSettings",
    "BackfillSettings",
    "Capability",
    "Cloud",
    "CloudEndpoints",
    "CollectionSettings",
    "DetectionSettings",
    "GraphSettings",
    "ReportSettings",
    "ResolutionSettings",
    "ResolvePolicy",
    "SentinelSettings",
    "Setting",
    "Settings",
    "SettingsError",
    "StorageCredential",
    "StorageSettings",
    "TelemetrySettings",
    "UnresolvedReference",
    "load_alert_settings",
    "load_backfill_settings",
    "load_collection_settings",
    "load_detection_settings",
    "load_report_settings",
    "load_resolution_settings",
    "load_sentinel_settings",
    "load_settings",
    "load_storage_settings",
    "load_telemetry_settings",
]


@dataclass(frozen=True)
class Settings:
    """Every capability's settings. Collection's may not validate without stopping the rest (reports
    and health still run, and report the problem): then `collection` is None and
    `collection_problem` says why. A setting that is an unresolved Key Vault reference stops its
    own feature alone the same way: collection (`collection_problem`), alert delivery
    (`alerts.delivery_problem`) or Graph lookups (`resolution.graph_problem`)."""

    storage: StorageSettings
    report: ReportSettings
    alerts: AlertSettings = field(default_factory=AlertSettings)
    resolution: ResolutionSettings = field(default_factory=ResolutionSettings)
    collection: CollectionSettings | None = None
    collection_problem: str | None = None
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    telemetry_problem: str | None = None  # a malformed telemetry setting: no telemetry, the rest runs
    #: BACKFILL_INITIAL_DAYS, validated with the rest (backfill itself loads load_backfill_settings).
    backfill_initial_days: int = 0
    #: A malformed LOG_ANALYTICS_ENDPOINT (or cloud): no backfill from a workspace, the rest runs.
    sentinel_problem: str | None = None

    def require_collection(self) -> CollectionSettings:
        """Collection's settings, or the SettingsError that kept them from loading."""
        if self.collection is None:
            raise SettingsError(self.collection_problem or "collection settings were not loaded")
        return self.collection

    def unavailable(self) -> dict[str, str]:
        """By feature, why it cannot run while the rest does (features that run are left out)."""
        problems = {
            "collection": self.collection_problem,
            "alerts": self.alerts.delivery_problem,
            "subjects": self.resolution.graph_problem,
            "telemetry": self.telemetry_problem,
            "backfill from Log Analytics": self.sentinel_problem,
        }
        return {feature: problem for feature, problem in problems.items() if problem is not None}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises SettingsError naming the first bad one, except for
    collection's, which is recorded in `collection_problem`."""
    storage = load_storage_settings(env)
    report = load_report_settings(env)
    alerts = load_alert_settings(env)
    resolution = load_resolution_settings(env)
    telemetry, telemetry_problem = TelemetrySettings(), None
    initial_days = read_initial_days(Environment(env))
    sentinel_problem = None
    try:
        read_log_analytics_endpoint(Environment(env))
    except SettingsError as problem:
        sentinel_problem = str(problem)
    try:
        telemetry = load_telemetry_settings(env)
    except SettingsError as problem:
        telemetry_problem = str(problem)
    loaded = Settings(
        storage,
        report,
        alerts,
        resolution,
        telemetry=telemetry,
        telemetry_problem=telemetry_problem,
        backfill_initial_days=initial_days,
        sentinel_problem=sentinel_problem,
    )
    try:
        return replace(loaded, collection=load_collection_settings(env))
    except SettingsError as problem:
        return replace(loaded, collection_problem=str(problem))

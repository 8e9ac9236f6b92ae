"""Detection settings: the baseline's window, the warm-up and the mass-access thresholds
(README "Detection"). `shared.detect.rules` re-exports `DetectionSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.settings.environment import Environment
from shared.settings.reports import _ip_databases


@dataclass(frozen=True)
class DetectionSettings:
    enabled: bool = True
    # A context last seen longer ago than this is new again (a rolling baseline).
    baseline_days: int = 30
    # No mailbox.new_context until the mailbox's first record is this old and this many of its
    # records lie on earlier UTC days: the simulated and real working weeks show every routine
    # client within three working days, and 30 records is a few days of one user's reading.
    warmup_days: int = 3
    warmup_records: int = 30
    # tenant.mass_access: one IP, app, session or actor reading this many mailboxes other than its
    # own within one window (and the window before it).
    mass_mailboxes: int = 10
    mass_window_minutes: int = 60
    # Country and ASN come from the same IP data as the reports' columns (IP_DATABASE_PATH, then
    # the embedded country data).
    ip_databases: tuple[Path, ...] = ()


def load_detection_settings(env: Mapping[str, str] | None = None) -> DetectionSettings:
    source = Environment(env)
    return DetectionSettings(
        enabled=source.boolean("DETECT_ENABLED"),
        baseline_days=source.integer("DETECT_BASELINE_DAYS", 1, 400),
        warmup_days=source.integer("DETECT_WARMUP_DAYS", 0, 90),
        warmup_records=source.integer("DETECT_WARMUP_RECORDS", 0, 100_000),
        mass_mailboxes=source.integer("DETECT_MASS_MAILBOXES", 2, 100_000),
        mass_window_minutes=source.integer("DETECT_MASS_WINDOW_MINUTES", 1, 24 * 60),
        ip_databases=_ip_databases(source),
    )

"""Report settings: the ranges a request may ask for, the page size, and who may ask."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings.environment import Environment, SettingsError


@dataclass(frozen=True)
class ReportSettings:
    default_days: int = 7
    max_days: int = 400
    page_rows: int = 10_000
    # What one sessions or exposure request may aggregate (see shared/reports/budget.py), and the
    # seconds any request may read for.
    max_aggregate_entries: int = 200_000
    max_seconds: int = 120
    # App role the Easy Auth principal must carry for a report (REPORT_REQUIRED_ROLE); "" = off.
    required_role: str = ""
    # App Service authentication is on (WEBSITE_AUTH_ENABLED): only then do X-MS-CLIENT-PRINCIPAL*
    # headers come from the platform rather than from the caller.
    platform_auth: bool = False


def _role(env: Environment) -> str:
    value = env.text("REPORT_REQUIRED_ROLE")
    if value and (len(value) > 250 or any(c.isspace() or c == "," for c in value)):
        raise SettingsError(
            f"REPORT_REQUIRED_ROLE must be one app role value (no spaces or commas), got {value!r}"
        )
    return value


def load_report_settings(env: Mapping[str, str] | None = None) -> ReportSettings:
    """Report limits alone, for the offline `mia report --input` path that needs no storage."""
    source = Environment(env)
    return ReportSettings(
        default_days=source.integer("REPORT_DEFAULT_DAYS", 1, 3650),
        max_days=source.integer("REPORT_MAX_DAYS", 1, 3650),
        page_rows=source.integer("REPORT_PAGE_ROWS", 100, 200_000),
        max_aggregate_entries=source.integer("REPORT_MAX_AGGREGATE_ENTRIES", 1_000, 10_000_000),
        # An HTTP-triggered function has 230 seconds to answer, whatever functionTimeout says:
        # https://learn.microsoft.com/azure/azure-functions/functions-scale#timeout
        max_seconds=source.integer("REPORT_MAX_SECONDS", 5, 200),
        required_role=_role(source),
        # Injected by App Service ("True") when its authentication is on, never an app setting:
        # https://learn.microsoft.com/azure/app-service/reference-app-settings#authentication--authorization
        platform_auth=source.boolean("WEBSITE_AUTH_ENABLED"),
    )

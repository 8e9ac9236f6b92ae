"""Report settings: the ranges a request may ask for, the page size, and who may ask."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
    # MaxMind DB files the IP columns are looked up in before the embedded data (IP_DATABASE_PATH).
    ip_databases: tuple[Path, ...] = ()


def _role(env: Environment) -> str:
    value = env.text("REPORT_REQUIRED_ROLE")
    if value and (len(value) > 250 or any(c.isspace() or c == "," for c in value)):
        raise SettingsError(
            f"REPORT_REQUIRED_ROLE must be one app role value (no spaces or commas), got {value!r}"
        )
    return value


# Every MaxMind DB file ends with its metadata section, which starts with this marker and lies
# within the file's last 128 KiB ("MaxMind DB File Format Specification", Database Metadata:
# https://maxmind.github.io/MaxMind-DB/#database-metadata).
MMDB_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
_METADATA_MAX = 128 * 1024


def _is_mmdb(path: Path) -> bool:
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - _METADATA_MAX))
        return MMDB_METADATA_MARKER in file.read()


def _ip_databases(env: Environment) -> tuple[Path, ...]:
    """IP_DATABASE_PATH: one or more .mmdb files, separated as in PATH (os.pathsep)."""
    parts = env.text("IP_DATABASE_PATH").split(os.pathsep)
    paths = tuple(Path(part.strip()) for part in parts if part.strip())
    for path in paths:
        if not path.is_file():
            raise SettingsError(f"IP_DATABASE_PATH: {path} is not a file (give a GeoLite2 or IPinfo .mmdb)")
        try:
            readable = _is_mmdb(path)
        except OSError as problem:
            raise SettingsError(f"IP_DATABASE_PATH: {path} cannot be read ({problem.strerror})") from None
        if not readable:
            raise SettingsError(f"IP_DATABASE_PATH: {path} is not a MaxMind DB (.mmdb) file")
    return paths


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
        ip_databases=_ip_databases(source),
    )

"""Backfill from the Microsoft Graph audit-log query API: where Graph is and how long one run may
take. The API exists only in the worldwide service (and GCC, which uses it): in GCC High and DoD
loading these settings fails and says which sources remain
(https://learn.microsoft.com/en-us/graph/api/security-auditlogquery-list-records?view=graph-rest-1.0,
"National cloud deployments")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings.collection import CLOUDS, AuthSettings, Cloud, read_auth, read_cloud
from shared.settings.environment import Environment, SettingsError
from shared.settings.subjects import GraphSettings

#: Clouds whose Graph has no /security/auditLog/queries.
NO_AUDIT_QUERY = (Cloud.GCC_HIGH, Cloud.DOD)


@dataclass(frozen=True)
class BackfillSettings:
    graph: GraphSettings
    #: Seconds one run (a `mia backfill` call has none: it runs to completion) may spend.
    time_budget_seconds: float | None = None
    #: Seconds between status polls of a query that is not done.
    poll_seconds: float = 5.0
    #: Days of history the first advance_backfills run starts a job for (0: none).
    initial_days: int = 0


#: The Log Analytics query API host and token audience by cloud
#: (https://learn.microsoft.com/azure/azure-monitor/logs/api/access-api).
LOG_ANALYTICS_HOSTS = {
    Cloud.COMMERCIAL: "https://api.loganalytics.io",
    Cloud.GCC: "https://api.loganalytics.io",
    Cloud.GCC_HIGH: "https://api.loganalytics.us",
    Cloud.DOD: "https://api.loganalytics.us",
}


@dataclass(frozen=True)
class SentinelSettings:
    """Backfill from a Log Analytics workspace's OfficeActivity table (Microsoft Sentinel)."""

    auth: AuthSettings
    endpoint: str
    audience: str
    #: Seconds one run may spend (None: to completion, as `mia backfill`).
    time_budget_seconds: float | None = None


def read_log_analytics_endpoint(env: Environment) -> tuple[str, str]:
    """(the query API host, the token audience) of the cloud, or LOG_ANALYTICS_ENDPOINT's host."""
    audience = LOG_ANALYTICS_HOSTS[read_cloud(env)]
    return env.https_url("LOG_ANALYTICS_ENDPOINT", audience), audience


def load_sentinel_settings(env: Mapping[str, str] | None = None) -> SentinelSettings:
    """Where the workspace's query API is, and the credential for it; every cloud has it."""
    source = Environment(env)
    endpoint, audience = read_log_analytics_endpoint(source)
    return SentinelSettings(auth=read_auth(source, read_cloud(source)), endpoint=endpoint, audience=audience)


def read_initial_days(env: Environment) -> int:
    return env.integer("BACKFILL_INITIAL_DAYS", 0, 3650)


def load_backfill_settings(env: Mapping[str, str] | None = None) -> BackfillSettings:
    """Graph's settings for the audit-log query API; SettingsError in a cloud without it."""
    source = Environment(env)
    cloud = read_cloud(source)
    initial_days = read_initial_days(source)
    if cloud in NO_AUDIT_QUERY:
        raise SettingsError(
            f"M365_CLOUD={cloud}: the Graph audit-log query API exists only in the worldwide service "
            "(not GCC High or DoD); there, export Microsoft Sentinel's OfficeActivity table or a "
            "Purview audit search and store it with `mia import`"
        )
    graph = GraphSettings(
        auth=read_auth(source, cloud),
        base=source.https_url("GRAPH_API_BASE", CLOUDS[cloud].graph),
        scope=source.text("GRAPH_SCOPE", f"{CLOUDS[cloud].graph}/.default"),
        message_trace=False,
    )
    return BackfillSettings(graph=graph, initial_days=initial_days)

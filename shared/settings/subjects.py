"""Subject settings: which mailboxes' message identifiers are resolved to subjects as records
arrive, how much a report may spend resolving what is still missing, and where Microsoft Graph is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.settings.collection import CLOUDS, AuthSettings, Cloud, read_auth, read_cloud
from shared.settings.environment import Environment, SettingsError, UnresolvedReference

# Graph message trace exists in the global service only (docs/mailitemsaccessed.md#graph-message-trace):
# https://learn.microsoft.com/graph/api/messagetracingroot-list-messagetraces
_TRACE_CLOUDS = (Cloud.COMMERCIAL, Cloud.GCC)


class ResolvePolicy(StrEnum):
    ALL = "all"
    WATCHLIST = "watchlist"
    OFF = "off"


@dataclass(frozen=True)
class GraphSettings:
    """Where Microsoft Graph is and how to call it (message lookup and message trace)."""

    auth: AuthSettings
    base: str
    scope: str
    message_trace: bool
    request_timeout_seconds: int = 30
    max_attempts: int = 5
    max_backoff_seconds: int = 60
    trace_requests_per_window: int = 100  # per tenant, shared with every other trace client
    trace_window_seconds: int = 300


@dataclass(frozen=True)
class ResolutionSettings:
    policy: ResolvePolicy = ResolvePolicy.OFF
    watchlist: frozenset[str] = frozenset()
    graph: GraphSettings | None = None
    on_demand: bool = False
    on_demand_max_requests: int = 50
    on_demand_seconds: int = 20
    run_max_requests: int = 1000  # Graph requests one resolve_subjects run may spend
    retry_hours: int = 24  # first wait before a "not found" is looked up again (then doubled)
    # Why `graph` is None although a tenant is configured: a credential is an unresolved Key Vault
    # reference. Subjects then come from the records and MessageIndex alone.
    graph_problem: str | None = None

    def covers(self, mailbox: str) -> bool:
        """Is `mailbox` resolved as its records arrive?"""
        if self.graph is None or self.policy == ResolvePolicy.OFF:
            return False
        return self.policy == ResolvePolicy.ALL or mailbox.lower() in self.watchlist


def _watchlist(env: Environment) -> frozenset[str]:
    raw = env.text("RESOLVE_WATCHLIST")
    mailboxes = frozenset(part.strip().lower() for part in raw.replace(";", ",").split(",") if part.strip())
    bad = sorted(m for m in mailboxes if "@" not in m or any(c.isspace() for c in m))
    if bad:
        raise SettingsError(f"RESOLVE_WATCHLIST must list mailbox UPNs separated by commas, got {bad[0]!r}")
    return mailboxes


def _graph(env: Environment) -> GraphSettings:
    cloud = read_cloud(env)
    base = env.https_url("GRAPH_API_BASE", CLOUDS[cloud].graph)
    trace_exists = cloud in _TRACE_CLOUDS
    trace = env.boolean("RESOLVE_MESSAGE_TRACE", trace_exists)
    if trace and not trace_exists:
        raise SettingsError(
            f"RESOLVE_MESSAGE_TRACE cannot be true in M365_CLOUD={cloud}: Graph message trace "
            "exists only in the worldwide service"
        )
    return GraphSettings(
        auth=read_auth(env, cloud),
        base=base,
        scope=env.text("GRAPH_SCOPE", f"{CLOUDS[cloud].graph}/.default"),
        message_trace=trace,
    )


def _graph_or_problem(env: Environment) -> tuple[GraphSettings | None, str | None]:
    """Graph's settings, or (None, why) when the credentials it shares with collection are an
    unresolved Key Vault reference (collection reports the same problem)."""
    try:
        return _graph(env), None
    except UnresolvedReference as problem:
        return None, str(problem)


def load_resolution_settings(env: Mapping[str, str] | None = None) -> ResolutionSettings:
    """Subject resolution (`mia process`, `mia report`); on (`all`) by default when a tenant is
    configured, and off without one. Raises SettingsError naming the bad setting, except for a
    credential that is an unresolved Key Vault reference: Graph is then unavailable
    (`graph_problem`) and everything else resolves as without a tenant."""
    source = Environment(env)
    configured = source.optional("TENANT_ID") is not None
    default_policy = ResolvePolicy.ALL if configured else ResolvePolicy.OFF
    policy = source.choice("RESOLVE_SUBJECTS", ResolvePolicy, default_policy)
    on_demand = source.boolean("RESOLVE_ON_DEMAND", configured)
    if (policy != ResolvePolicy.OFF or on_demand) and not configured:
        raise SettingsError(
            "TENANT_ID is required to resolve subjects through Microsoft Graph (RESOLVE_SUBJECTS="
            f"{policy}, RESOLVE_ON_DEMAND={str(on_demand).lower()}); set RESOLVE_SUBJECTS=off and "
            "RESOLVE_ON_DEMAND=false to run without Graph"
        )
    watchlist = _watchlist(source)
    if policy == ResolvePolicy.WATCHLIST and not watchlist:
        raise SettingsError(
            "RESOLVE_WATCHLIST must list at least one mailbox when RESOLVE_SUBJECTS=watchlist"
        )
    graph, graph_problem = _graph_or_problem(source) if configured else (None, None)
    return ResolutionSettings(
        policy=policy,
        watchlist=watchlist,
        graph=graph,
        graph_problem=graph_problem,
        on_demand=on_demand,
        on_demand_max_requests=source.integer("RESOLVE_ON_DEMAND_MAX_REQUESTS", 1, 10_000),
        on_demand_seconds=source.integer("RESOLVE_ON_DEMAND_SECONDS", 1, 600),
    )

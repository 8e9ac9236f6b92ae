"""shared/settings/subjects.py: subject-resolution settings (RESOLVE_*, GRAPH_*)."""

from __future__ import annotations

import pytest

from shared.settings import ResolvePolicy, SettingsError, load_resolution_settings

pytestmark = pytest.mark.unit

TENANT = "2f1c9a52-3b7e-4d0a-9e25-8c4b1f7d2a63"
APP = {"TENANT_ID": TENANT, "CLIENT_ID": "5a0c1f4e-7d2b-4c39-8e61-0f9b2d7a4c15", "CLIENT_SECRET": "s3cret"}


def test_without_a_tenant_resolution_is_off_and_needs_no_graph() -> None:
    settings = load_resolution_settings({})
    assert settings.policy is ResolvePolicy.OFF
    assert settings.graph is None
    assert not settings.on_demand
    assert not settings.covers("alice@contoso.com")


def test_with_a_tenant_every_mailbox_is_resolved_and_reports_may_look_up() -> None:
    settings = load_resolution_settings(APP)
    assert settings.policy is ResolvePolicy.ALL
    assert settings.on_demand
    assert settings.covers("Anyone@Contoso.com")
    assert settings.graph is not None
    assert settings.graph.base == "https://graph.microsoft.com"
    assert settings.graph.scope == "https://graph.microsoft.com/.default"
    assert settings.graph.message_trace


def test_watchlist_covers_only_the_listed_mailboxes_case_insensitively() -> None:
    settings = load_resolution_settings(
        {**APP, "RESOLVE_SUBJECTS": "watchlist", "RESOLVE_WATCHLIST": "Alice@Contoso.com; ceo@contoso.com"}
    )
    assert settings.covers("alice@contoso.com")
    assert settings.covers("CEO@contoso.com")
    assert not settings.covers("bob@contoso.com")


def test_off_covers_no_mailbox_but_reports_may_still_look_up() -> None:
    settings = load_resolution_settings({**APP, "RESOLVE_SUBJECTS": "off"})
    assert not settings.covers("alice@contoso.com")
    assert settings.on_demand


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RESOLVE_SUBJECTS": "all"}, "TENANT_ID"),
        ({"RESOLVE_ON_DEMAND": "true"}, "TENANT_ID"),
        ({**APP, "RESOLVE_SUBJECTS": "some"}, "RESOLVE_SUBJECTS"),
        ({**APP, "RESOLVE_SUBJECTS": "watchlist"}, "RESOLVE_WATCHLIST"),
        ({**APP, "RESOLVE_SUBJECTS": "watchlist", "RESOLVE_WATCHLIST": "not a upn"}, "RESOLVE_WATCHLIST"),
        ({**APP, "RESOLVE_ON_DEMAND": "maybe"}, "RESOLVE_ON_DEMAND"),
        ({**APP, "RESOLVE_ON_DEMAND_MAX_REQUESTS": "0"}, "RESOLVE_ON_DEMAND_MAX_REQUESTS"),
        ({**APP, "RESOLVE_ON_DEMAND_SECONDS": "ten"}, "RESOLVE_ON_DEMAND_SECONDS"),
        ({**APP, "GRAPH_API_BASE": "http://graph.example"}, "GRAPH_API_BASE"),
        ({**APP, "M365_CLOUD": "gcchigh", "RESOLVE_MESSAGE_TRACE": "true"}, "RESOLVE_MESSAGE_TRACE"),
    ],
)
def test_a_bad_resolution_setting_is_rejected_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_resolution_settings(env)


@pytest.mark.parametrize(
    ("cloud", "graph", "trace"),
    [
        ("commercial", "https://graph.microsoft.com", True),
        ("gcc", "https://graph.microsoft.com", True),
        ("gcchigh", "https://graph.microsoft.us", False),
        ("dod", "https://dod-graph.microsoft.us", False),
    ],
)
def test_each_cloud_has_its_graph_host_and_trace_only_where_it_exists(
    cloud: str, graph: str, trace: bool
) -> None:
    settings = load_resolution_settings({**APP, "M365_CLOUD": cloud}).graph
    assert settings is not None
    assert (settings.base, settings.scope, settings.message_trace) == (graph, f"{graph}/.default", trace)


def test_graph_overrides_for_the_simulator() -> None:
    settings = load_resolution_settings(
        {**APP, "GRAPH_API_BASE": "https://127.0.0.1:8443/", "RESOLVE_MESSAGE_TRACE": "false"}
    ).graph
    assert settings is not None
    assert settings.base == "https://127.0.0.1:8443"
    assert settings.scope == "https://graph.microsoft.com/.default"  # tokens are still for Graph
    assert not settings.message_trace


@pytest.mark.parametrize(
    ("value", "policy"),
    [(" ALL ", ResolvePolicy.ALL), ("WatchList", ResolvePolicy.WATCHLIST), ("off", ResolvePolicy.OFF)],
)
def test_the_policy_is_read_case_insensitively(value: str, policy: ResolvePolicy) -> None:
    env = {**APP, "RESOLVE_SUBJECTS": value, "RESOLVE_WATCHLIST": "alice@contoso.com"}
    assert load_resolution_settings(env).policy is policy


def test_an_unknown_policy_lists_the_valid_ones() -> None:
    with pytest.raises(SettingsError) as raised:
        load_resolution_settings({**APP, "RESOLVE_SUBJECTS": "Some"})
    assert str(raised.value) == "RESOLVE_SUBJECTS must be one of all, watchlist, off, got 'some'"


def test_graph_uses_the_collection_credentials() -> None:
    settings = load_resolution_settings(APP).graph
    assert settings is not None
    assert (settings.auth.tenant_id, settings.auth.client_id) == (TENANT, APP["CLIENT_ID"])
    assert settings.auth.mode == "secret"

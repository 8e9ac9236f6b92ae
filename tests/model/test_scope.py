"""Context keys, tallies and the scope rows merged from them."""

from __future__ import annotations

from datetime import date

import pytest

from shared.model.scope import (
    ACTOR,
    ALL,
    APP,
    IP,
    NETWORK,
    SESSION,
    Tallies,
    context_keys,
    network_value,
    scope_rows,
)
from tests.records_factory import event, operation_properties

pytestmark = pytest.mark.unit


def test_an_event_is_keyed_by_each_context_it_names_and_by_all() -> None:
    keys = context_keys(
        event(ClientIPAddress="2001:db8:1:2::7", ClientAppId="ABC", UserId="Alice@Contoso.com")
    )
    assert dict(keys) == {
        IP: "2001:db8:1:2::7",
        NETWORK: "2001:db8:1::/48",
        APP: "abc",
        SESSION: "2b3830cf-e2b4-47be-93dc-085aa4a3907b",
        ACTOR: "alice@contoso.com",
        ALL: "",
    }


def test_no_address_has_no_network() -> None:
    assert network_value("not an address") == ""
    assert network_value("198.51.100.200") == "198.51.100.0/24"


def test_rows_merge_days_per_mailbox_and_sum_messages() -> None:
    tallies = Tallies()
    tallies.add(event(Id="r1", CreationTime="2026-11-01T09:00:00"))
    tallies.add(event(Id="r2", CreationTime="2026-11-02T10:00:00"))
    tallies.add(
        event(Id="r3", CreationTime="2026-11-02T11:00:00", OperationProperties=operation_properties("Sync"))
    )

    [row] = scope_rows(tallies.of(IP, "203.0.113.10", date(2026, 11, 1), date(2026, 11, 2)))

    assert row == {
        "Mailbox": "alice@contoso.com",
        "FirstAccess": "2026-11-01T09:00:00Z",
        "LastAccess": "2026-11-02T11:00:00Z",
        "Records": 3,
        "Messages": 6,  # the same two messages in each record: a sum, not distinct
        "SyncedFolders": 1,
        "Sessions": 1,
    }

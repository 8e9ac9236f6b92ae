"""The scope request validator: one context, dates, bounds, and errors that name the parameter."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.model import scope
from shared.reports.request import RequestError
from shared.reports.scope_request import MAILBOXES_VIEW, parse_scope_request
from shared.settings import ReportSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "kind", "value"),
    [
        ({"ip": "::ffff:198.51.100.23"}, scope.IP, "198.51.100.23"),
        ({"ip": "2001:DB8:0::7"}, scope.IP, "2001:db8::7"),
        ({"network": "198.51.100.23"}, scope.NETWORK, "198.51.100.0/24"),
        ({"network": "2001:db8:1:2::/48"}, scope.NETWORK, "2001:db8:1::/48"),
        ({"app": "00000003-0000-0000-C000-000000000000"}, scope.APP, "00000003-0000-0000-c000-000000000000"),
        (
            {"session": "2b3830cf-e2b4-47be-93dc-085aa4a3907b"},
            scope.SESSION,
            "2b3830cf-e2b4-47be-93dc-085aa4a3907b",
        ),
        ({"actor": "Mallory@Evil.example"}, scope.ACTOR, "mallory@evil.example"),
    ],
)
def test_each_context_is_normalised_as_the_index_keys_it(
    params: dict[str, str], kind: str, value: str
) -> None:
    query = parse_scope_request(params, ReportSettings(), NOW)
    assert (query.kind, query.value) == (kind, value)


def test_the_days_default_to_the_report_default_and_to_includes_its_day() -> None:
    query = parse_scope_request({"ip": "198.51.100.23"}, ReportSettings(), NOW)
    assert (query.first_day, query.last_day) == (date(2026, 11, 23), date(2026, 11, 30))
    query = parse_scope_request(
        {"ip": "198.51.100.23", "from": "2026-11-02", "to": "2026-11-04"}, ReportSettings(), NOW
    )
    assert (query.first_day, query.last_day) == (date(2026, 11, 2), date(2026, 11, 4))


def test_the_mailboxes_view_takes_no_context_and_reads_the_all_partition() -> None:
    query = parse_scope_request({"view": "mailboxes"}, ReportSettings(), NOW)
    assert (query.view, query.kind, query.value) == (MAILBOXES_VIEW, scope.ALL, "")


def test_export_files_leave_a_missing_bound_open() -> None:
    query = parse_scope_request({"ip": "198.51.100.23"}, ReportSettings(), NOW, open_ended=True)
    assert (query.first_day, query.last_day) == (date.min, date.max)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"ip": "1.2.3.4", "actor": "a@b.c"}, "too_many_contexts"),
        ({"ip": "x" * 400}, "invalid_ip"),
        ({"network": "10.0.0.0/25"}, "invalid_network"),
        ({"app": "a b"}, "invalid_app"),
        ({"session": "a/b"}, "invalid_session"),
        ({"ip": "1.2.3.4", "to": "2026-11-40"}, "invalid_to"),
    ],
)
def test_bad_input_raises_an_error_with_the_parameters_code(params: dict[str, str], code: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_scope_request(params, ReportSettings(), NOW)
    assert raised.value.code == code

"""shared/reports/request.py: report parameters are validated before anything uses them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.model.keys import encode_key
from shared.reports.request import (
    CLI_VIEWS,
    WHOLE_END,
    WHOLE_START,
    ReportQuery,
    RequestError,
    decode_after,
    encode_after,
    parse_file_report_request,
    parse_report_request,
    parse_time,
    stored_subject,
    validate_subject,
)
from shared.settings import ReportSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 12, 30, 15, tzinfo=UTC)
SETTINGS = ReportSettings()
ALICE = "alice@contoso.com"
SYSTEM_ACTOR = "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)"


def parse(params: dict[str, str], subject: str = ALICE, settings: ReportSettings = SETTINGS) -> ReportQuery:
    return parse_report_request(subject, params, settings, now=NOW)


def rejected(params: dict[str, str], subject: str = ALICE) -> RequestError:
    with pytest.raises(RequestError) as raised:
        parse(params, subject)
    assert raised.value.status == 400
    assert str(raised.value) == raised.value.message
    return raised.value


# --- Defaults ----------------------------------------------------------------------------------


def test_defaults_are_the_last_seven_days_of_events_as_csv_by_mailbox() -> None:
    assert parse({}) == ReportQuery(
        subject=ALICE, by="mailbox", view="events", fmt="csv", start=NOW - timedelta(days=7), end=NOW
    )


def test_empty_parameters_mean_the_defaults() -> None:
    assert parse({"view": "", "format": "", "by": "", "from": "", "to": "", "after": ""}) == parse({})


def test_default_window_follows_the_report_default_days_setting() -> None:
    query = parse({}, settings=ReportSettings(default_days=30))
    assert query.start == NOW - timedelta(days=30)


def test_choices_are_taken_as_given() -> None:
    query = parse({"view": "sessions", "format": "json", "by": "actor"})
    assert (query.view, query.fmt, query.by) == ("sessions", "json", "actor")


# --- Dates -------------------------------------------------------------------------------------


def test_date_only_to_covers_the_whole_day() -> None:
    query = parse({"from": "2026-11-01", "to": "2026-11-10"})
    assert query.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert query.end == datetime(2026, 11, 11, tzinfo=UTC)


@pytest.mark.parametrize("to", ["2026-11-10T08:00:00Z", "2026-11-10T08:00:00", "2026-11-10T08:00:00+00:00"])
def test_date_time_to_includes_that_second(to: str) -> None:
    assert parse({"from": "2026-11-10", "to": to}).end == datetime(2026, 11, 10, 8, 0, 1, tzinfo=UTC)


def test_zone_offsets_are_converted_to_utc() -> None:
    query = parse({"from": "2026-11-10T10:00:00+02:00", "to": "2026-11-10T03:00:00-05:00"})
    assert query.start == datetime(2026, 11, 10, 8, 0, 0, tzinfo=UTC)
    assert query.end == datetime(2026, 11, 10, 8, 0, 1, tzinfo=UTC)


def test_only_to_given_starts_the_default_days_before_it() -> None:
    query = parse({"to": "2026-11-10"})
    assert query.end == datetime(2026, 11, 11, tzinfo=UTC)
    assert query.start == datetime(2026, 11, 4, tzinfo=UTC)


def test_only_from_given_ends_now() -> None:
    query = parse({"from": "2026-11-19T00:00:00"})
    assert (query.start, query.end) == (datetime(2026, 11, 19, tzinfo=UTC), NOW)


def test_from_equal_to_as_date_time_is_a_one_second_range() -> None:
    query = parse({"from": "2026-11-10T08:00:00Z", "to": "2026-11-10T08:00:00Z"})
    assert query.end - query.start == timedelta(seconds=1)


def test_from_equal_to_as_dates_is_that_whole_day() -> None:
    query = parse({"from": "2026-11-10", "to": "2026-11-10"})
    assert query.end - query.start == timedelta(days=1)


def test_parse_time_is_utc_when_no_zone_is_given() -> None:
    assert parse_time("from", "2026-11-10T08:00:00", end_of_day=False) == datetime(
        2026, 11, 10, 8, tzinfo=UTC
    )
    assert parse_time("to", "2026-11-10", end_of_day=True) == datetime(2026, 11, 11, tzinfo=UTC)


def test_range_of_exactly_the_maximum_days_is_accepted() -> None:
    query = parse({"from": "2025-10-01", "to": "2026-11-04"})  # 2025-10-01 .. 2026-11-05 = 400 days
    assert query.end - query.start == timedelta(days=400)


def test_to_of_tomorrow_is_accepted() -> None:
    assert parse({"to": "2026-11-21"}).end == datetime(2026, 11, 22, tzinfo=UTC)


# --- Request errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        (
            {"view": "timeline"},
            "invalid_view",
            "'view' must be one of events, messages, sessions, exposure; got 'timeline'",
        ),
        (
            {"view": "Events"},
            "invalid_view",
            "'view' must be one of events, messages, sessions, exposure; got 'Events'",
        ),
        ({"format": "xml"}, "invalid_format", "'format' must be one of csv, json, xlsx, html; got 'xml'"),
        ({"by": "owner"}, "invalid_by", "'by' must be one of mailbox, actor; got 'owner'"),
    ],
)
def test_unknown_choices_are_rejected_naming_the_allowed_values(
    params: dict[str, str], code: str, message: str
) -> None:
    error = rejected(params)
    assert (error.code, error.message) == (code, message)


def test_rejected_choice_is_shown_escaped_once_and_shortened() -> None:
    error = rejected({"view": "\x00evil\r\n" + "x" * 200})
    assert error.code == "invalid_view"
    assert (
        error.message
        == "'view' must be one of events, messages, sessions, exposure; got '\\x00evil\\r\\n" + "x" * 57 + "'"
    )


def test_rejected_date_is_shown_escaped_once() -> None:
    error = rejected({"from": "2026-11-20\n"})
    assert error.message == (
        "'from' must be an ISO 8601 date or date-time in UTC (2026-11-20 or 2026-11-20T08:00:00Z); "
        "got '2026-11-20\\n'"
    )


def test_missing_mailbox() -> None:
    error = rejected({}, subject="")
    assert error.code == "missing_mailbox"
    assert "/api/reports/{mailbox}" in error.message


def test_mailbox_too_long() -> None:
    error = rejected({}, subject="a" * 300 + "@contoso.com" + "m" * 9)
    assert (error.code, error.message) == ("mailbox_too_long", "the mailbox is longer than 320 characters")


@pytest.mark.parametrize(
    "subject",
    [
        "alice@contoso.com' or '1' eq '1",
        "alice@contoso.com'",
        "' or PartitionKey ne '",
        "PartitionKey eq 'bob@contoso.com'",
        '"alice"@contoso.com',
        'alice@contoso.com"',
        "alice@contoso.com\x00",
        "alice@contoso.com\n",
        "alice@contoso.com\r\n",
        "\talice@contoso.com",
        "ali ce@contoso.com",
        " alice@contoso.com",
        "alice@contoso.com/../bob@contoso.com",
        "alice@contoso.com\\bob",
        "contoso.com/alice",
        "alice@contoso.com#",
        "alice@contoso.com?x=1",
        "alice@contoso.com%27",
        "\u0430lice@contoso.com",  # Cyrillic a
        "alice@contoso.com\u200b",  # zero-width space
        "alice\uff20contoso.com",  # full-width at sign
        "alice@contoso.com\u202e",  # right-to-left override
        "alice",
        "@contoso.com",
        "alice@",
        SYSTEM_ACTOR,
        "0dcd61a6-c882-4a30-9d46-507794a00f39\n",
    ],
)
def test_invalid_mailboxes_are_rejected(subject: str) -> None:
    error = rejected({}, subject=subject)
    assert error.code == "invalid_mailbox"
    assert "user principal name" in error.message


@pytest.mark.parametrize(
    "subject", ["alice@contoso.com\n", "bob\x00", "a/b", "S-1-5-21;drop", "\u0430dmin", 'say "hi"', "x" * 257]
)
def test_invalid_actors_are_rejected(subject: str) -> None:
    assert rejected({"by": "actor"}, subject=subject).code == "invalid_mailbox"


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("Alice@Contoso.COM", "alice@contoso.com"),
        ("o'brien@contoso.com", "o'brien@contoso.com"),
        ("first.last+tag@sub.contoso.co.uk", "first.last+tag@sub.contoso.co.uk"),
        ("0DCD61A6-C882-4A30-9D46-507794A00F39", "0dcd61a6-c882-4a30-9d46-507794a00f39"),
    ],
)
def test_valid_mailboxes_become_their_lower_case_key(subject: str, key: str) -> None:
    assert parse({}, subject=subject).subject == key
    assert validate_subject(subject, "mailbox") == key


@pytest.mark.parametrize(
    "actor", [SYSTEM_ACTOR, "S-1-5-21-3623811015-3361044348-30300820-1013", "Bob@Contoso.com"]
)
def test_actor_names_are_accepted_only_by_actor(actor: str) -> None:
    query = parse({"by": "actor"}, subject=actor)
    assert query.by == "actor"
    assert query.subject == (actor.lower() if "@" in actor else actor)


@pytest.mark.parametrize("name", ["from", "to"])
@pytest.mark.parametrize(
    "raw", ["yesterday", "2026-13-01", "2026-11-31", "11/20/2026", "2026-11-20T25:00:00", "2026-11-20\n"]
)
def test_unreadable_dates_are_rejected(name: str, raw: str) -> None:
    error = rejected({name: raw})
    assert error.code == f"invalid_{name}"
    assert error.message.startswith(f"'{name}' must be an ISO 8601 date or date-time in UTC")


@pytest.mark.parametrize("name", ["from", "to"])
def test_too_long_dates_are_rejected(name: str) -> None:
    error = rejected({name: "2026-11-20T08:00:00" + "0" * 46})
    assert (error.code, error.message) == (f"invalid_{name}", f"'{name}' is longer than 64 characters")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2014-12-31"},
        {"from": "1970-01-01T00:00:00Z", "to": "2015-02-01"},
        {"from": "2026-11-01", "to": "2030-01-01"},
        {"from": "2026-11-23T00:00:00Z"},
    ],
)
def test_dates_outside_the_audit_era_are_out_of_range(params: dict[str, str]) -> None:
    error = rejected(params)
    assert (error.code, error.message.endswith("must fall between 2015-01-01 and tomorrow")) == (
        "date_out_of_range",
        True,
    )


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-11-10", "to": "2026-11-09"},
        {"from": "2026-11-10T08:00:01Z", "to": "2026-11-10T08:00:00Z"},
        {"from": "2026-11-10T10:00:00+02:00", "to": "2026-11-10T07:59:59Z"},
    ],
)
def test_from_after_to_or_an_empty_range_is_rejected(params: dict[str, str]) -> None:
    error = rejected(params)
    assert (error.code, error.message) == ("invalid_range", "'from' must be earlier than 'to'")


def test_range_larger_than_the_maximum_is_rejected() -> None:
    error = rejected({"from": "2025-10-01", "to": "2026-11-05"})
    assert error.code == "range_too_large"
    assert "at most 400 days" in error.message


def test_range_limit_follows_the_report_max_days_setting() -> None:
    with pytest.raises(RequestError) as raised:
        parse({"from": "2026-11-01", "to": "2026-11-20"}, settings=ReportSettings(max_days=14))
    assert raised.value.code == "range_too_large"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "after",
    [
        "x",
        "v1.",
        "v1",
        "20261120T083000",
        "20261120T083000_rec",  # a raw RowKey, as tokens were before they became opaque
        "20261120T083000_a b",
        "V1." + _b64(b"20261120T083000_rec"),
        "v2." + _b64(b"20261120T083000_rec"),
        "v1." + _b64(b"20261120T083000_rec") + "=",  # padding is never part of a token
        "v1." + base64.b64encode(b"20261120T083000_rec?>>").decode(),  # '+' '/' are not base64url
        "v1.MjAyNjExMjBUMDgzMDAwX3JlYx",  # the same bytes as ...X3JlYw, with a stray low bit set
        "v1." + _b64(b"20261120T083000_rec") + "\n",
        "v1." + _b64(b"not a row key at all"),
        "v1." + _b64(b"20261120T083000_"),
        "v1." + _b64(b"2026-11-20T083000_rec"),
        "v1." + _b64(b"20261120T083000_rec\n"),  # a control character no RowKey holds
        "v1." + _b64(b"20261120T083000_a/b"),  # '/' is encoded in every RowKey
        "v1." + _b64(b"20261120T083000_a#b"),
        "v1." + _b64(b"20261120T083000_\xff\xfe"),  # not UTF-8
        "v1." + _b64(b"20261120T083000_" + b"r" * 1100),  # longer than any Table key
        "v1." + "A" * 6000,
        "v1.' or 1 eq 1",
    ],
)
def test_after_must_be_a_continuation_token(after: str) -> None:
    error = rejected({"after": after})
    assert (error.code, error.status) == ("invalid_after", 400)


@pytest.mark.parametrize(
    "record_id",
    ["5f1c2a7e-0b1d-4c55-9d0e-6a3f2b8c9d10", "id with space", "r\u00e9c", "a/b", "c#d", "50%", "r" * 400],
)
def test_a_continuation_token_gives_back_the_row_key_it_was_made_from(record_id: str) -> None:
    row_key = f"20261120T083000_{encode_key(record_id)}"
    token = encode_after(row_key)

    assert token.startswith("v1.")
    assert parse({"after": token}).after == row_key


@given(st.text(min_size=1, max_size=400))
def test_every_row_key_the_tables_write_round_trips_through_its_token(record_id: str) -> None:
    row_key = f"20261120T083000_{encode_key(record_id)}"
    try:
        row_key.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not text the Table service can store
        return
    token = encode_after(row_key)
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in token)
    assert decode_after(token) == row_key


@pytest.mark.parametrize("params", [{"to": "9999-12-31"}, {"from": "0001-01-01", "to": "0001-01-02"}])
def test_dates_at_the_ends_of_the_calendar_are_out_of_range_not_a_crash(params: dict[str, str]) -> None:
    assert rejected(params).code == "date_out_of_range"


# --- Filters: ip, session, exclude_ip ----------------------------------------------------------


def test_filters_default_to_none() -> None:
    query = parse({"ip": "", "session": "", "exclude_ip": ""})
    assert (query.ips, query.sessions, query.exclude_ips) == ((), (), ())


def test_filters_take_comma_separated_addresses_ranges_and_session_ids() -> None:
    query = parse(
        {
            "ip": "185.220.101.45, 2001:DB8::/32,185.220.101.45",
            "session": "4b1a14fa-c93d-4180-a403-3f7ccf4eb375,sess.B_2",
            "exclude_ip": "203.0.113.0/24",
        }
    )
    assert query.ips == (ip_network("185.220.101.45/32"), ip_network("2001:db8::/32"))
    assert query.sessions == ("4b1a14fa-c93d-4180-a403-3f7ccf4eb375", "sess.B_2")
    assert query.exclude_ips == (ip_network("203.0.113.0/24"),)


def test_host_bits_in_a_range_are_ignored() -> None:
    assert parse({"ip": "10.1.2.3/8"}).ips == (ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("params", "code", "shown"),
    [
        ({"ip": "185.220.101.45:50123"}, "invalid_ip", "185.220.101.45:50123"),
        ({"ip": "1.2.3.4,evil"}, "invalid_ip", "evil"),
        ({"ip": "' or 1 eq 1"}, "invalid_ip", "' or 1 eq 1"),
        ({"exclude_ip": "300.1.1.1"}, "invalid_exclude_ip", "300.1.1.1"),
        ({"exclude_ip": "10.0.0.0/33"}, "invalid_exclude_ip", "10.0.0.0/33"),
    ],
)
def test_bad_ip_filters_are_rejected_naming_the_value(params: dict[str, str], code: str, shown: str) -> None:
    error = rejected(params)
    name = code.removeprefix("invalid_")
    assert (error.code, error.message) == (
        code,
        f"'{name}' must be IP addresses or CIDR ranges, comma-separated (185.220.101.45,2001:db8::/32); "
        f"got '{shown}'",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("sess' or PartitionKey ne '", "sess' or PartitionKey ne '"),
        ("a b", "a b"),
        ("ok,x\r\ny", "x\\r\\ny"),
        ("ok,\x00", "\\x00"),
        ("s" * 129, "s" * 64),
    ],
)
def test_bad_session_filters_are_rejected(value: str, shown: str) -> None:
    error = rejected({"session": value})
    assert error.code == "invalid_session"
    assert error.message.endswith(f"got '{shown}'")


def test_filter_lists_are_bounded() -> None:
    many = ",".join(f"10.0.0.{n}" for n in range(51))
    assert rejected({"ip": many}).message == "'ip' may list at most 50 values"
    assert rejected({"session": "a," * 2001}).message == "'session' is longer than 4000 characters"


# --- Reports of export files (mia report --input) ----------------------------------------------


def parse_files(params: dict[str, str], subject: str | None = None) -> ReportQuery:
    return parse_file_report_request(subject, params, SETTINGS, now=NOW)


def test_a_report_of_files_without_a_mailbox_covers_every_mailbox_and_the_whole_of_the_files() -> None:
    query = parse_files({})
    assert query.subject is None
    assert (query.start, query.end) == (WHOLE_START, WHOLE_END)
    assert (query.by, query.view, query.fmt) == ("mailbox", "events", "csv")


def test_a_report_of_files_with_one_bound_is_open_on_the_other_side() -> None:
    query = parse_files({"from": "2026-11-18"}, ALICE)
    assert (query.subject, query.start, query.end) == (ALICE, datetime(2026, 11, 18, tzinfo=UTC), WHOLE_END)
    query = parse_files({"to": "2026-11-18"})
    assert (query.start, query.end) == (WHOLE_START, datetime(2026, 11, 19, tzinfo=UTC))


def test_an_open_range_of_files_is_not_held_to_the_maximum_days_but_a_closed_one_is() -> None:
    assert parse_files({"from": "2015-01-01"}).start == datetime(2015, 1, 1, tzinfo=UTC)
    with pytest.raises(RequestError) as raised:
        parse_files({"from": "2015-01-01", "to": "2026-11-20"})
    assert raised.value.code == "range_too_large"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "2014-12-31"}, "date_out_of_range"),
        ({"to": "2099-01-01"}, "date_out_of_range"),
        ({"from": "2026-11-20", "to": "2026-11-19"}, "invalid_range"),
        ({"from": "yesterday"}, "invalid_from"),
    ],
)
def test_the_bounds_given_for_files_are_checked_as_ever(params: dict[str, str], code: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_files(params)
    assert raised.value.code == code


def test_a_report_of_files_by_actor_needs_the_user() -> None:
    with pytest.raises(RequestError) as raised:
        parse_files({"by": "actor"})
    assert raised.value.code == "missing_actor"
    assert parse_files({"by": "actor"}, "Bob@Contoso.com").subject == "bob@contoso.com"


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("User_7F3A9C", "user_7f3a9c"),  # an anonymised id, lower-cased as the normalizer does
        ("0DCD61A6-C882-4A30-9D46-507794A00F39", "0dcd61a6-c882-4a30-9d46-507794a00f39"),
        ("Alice@Contoso.COM", ALICE),
    ],
)
def test_a_report_of_files_takes_mailbox_ids_that_are_not_upns(subject: str, key: str) -> None:
    assert parse_files({}, subject).subject == key


def test_an_anonymised_mailbox_id_is_still_refused_for_storage() -> None:
    assert rejected({}, subject="User_7F3A9C").code == "invalid_mailbox"


@pytest.mark.parametrize(
    "subject", ["alice@contoso.com\n", "a/b", "bob\x00", "x" * 321, "alice' or 1 eq 1", "a b", "User_1\n"]
)
def test_a_report_of_files_refuses_mailbox_ids_that_could_escape(subject: str) -> None:
    with pytest.raises(RequestError) as raised:
        parse_files({}, subject)
    assert raised.value.code in {"invalid_mailbox", "mailbox_too_long"}


def test_the_mailboxes_view_is_refused_where_a_report_is_of_one_mailbox_over_http() -> None:
    error = rejected({"view": "mailboxes"})
    assert error.code == "invalid_view"
    assert "mia report --input" in error.message
    assert (
        parse_report_request(ALICE, {"view": "mailboxes"}, SETTINGS, NOW, views=CLI_VIEWS).view == "mailboxes"
    )
    assert parse_files({"view": "mailboxes"}).view == "mailboxes"


def test_a_report_from_storage_needs_its_subject() -> None:
    assert stored_subject(parse({})) == ALICE
    with pytest.raises(RequestError) as raised:
        stored_subject(parse_files({}))
    assert raised.value.code == "missing_mailbox"
    assert "only a report of --input files may leave it out" in raised.value.message

"""shared/parse/decoders.py: LogonType, client family, application names, client IPs, timestamps."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.model import times
from shared.model.times import utc_timestamp
from shared.parse import decoders
from shared.parse.decoders import (
    FIRST_PARTY_APPS,
    LOGON_TYPES,
    POP_IMAP_PROTOCOLS,
    PROTOCOL_FAMILIES,
    app_name,
    client_family,
    client_ip,
    logon_type,
)
from tests.records_factory import GRAPH, OUTLOOK_MOBILE, UNKNOWN_APP

pytestmark = pytest.mark.unit

# ---------------------------------------------------------------------------------------------
# LogonType


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, "Owner"),
        (1, "Admin"),
        (2, "Delegated"),
        (3, "Transport"),
        (4, "SystemService"),
        (5, "BestAccess"),
        (6, "DelegatedAdmin"),
    ],
)
def test_logon_type_decodes_each_schema_code_to_its_name(code: int, name: str) -> None:
    assert logon_type(code) == name
    assert logon_type(str(code)) == name


def test_logon_type_table_is_exactly_the_schema_enum() -> None:
    assert LOGON_TYPES == {
        0: "Owner",
        1: "Admin",
        2: "Delegated",
        3: "Transport",
        4: "SystemService",
        5: "BestAccess",
        6: "DelegatedAdmin",
    }


@pytest.mark.parametrize(("code", "shown"), [(7, "Unknown(7)"), (-1, "Unknown(-1)"), (99, "Unknown(99)")])
def test_logon_type_other_codes_are_unknown_with_the_number(code: int, shown: str) -> None:
    assert logon_type(code) == shown


@pytest.mark.parametrize("value", [None, ""])
def test_logon_type_absent_is_empty(value: object) -> None:
    assert logon_type(value) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", "Delegated"),
        (" 6 ", "DelegatedAdmin"),
        ("0", "Owner"),
        ("-1", "Unknown(-1)"),
        ("12", "Unknown(12)"),
    ],
)
def test_logon_type_accepts_codes_written_as_string_digits(value: str, expected: str) -> None:
    assert logon_type(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Owner", "Owner"),
        ("owner", "Owner"),
        (" ADMIN ", "Admin"),
        ("Delegate", "Delegated"),
        ("delegated", "Delegated"),
        ("DelegatedAdmin", "DelegatedAdmin"),
        ("SystemService", "SystemService"),
        ("Anonymous", "Unknown(Anonymous)"),
    ],
)
def test_logon_type_accepts_names_exports_already_carry(value: str, expected: str) -> None:
    assert logon_type(value) == expected


def test_logon_type_boolean_is_not_a_code() -> None:
    assert logon_type(True) == ""
    assert logon_type(False) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("\u00b2", "Unknown(\u00b2)"), ("--1", "Unknown(--1)"), ("1" * 5000, "Unknown(" + "1" * 5000 + ")")],
)
def test_logon_type_digit_like_text_that_is_no_integer_is_unknown_not_a_crash(
    value: str, expected: str
) -> None:
    # Superscript two is isdigit() but not int()-able; 5000 digits exceed int()'s digit limit.
    assert logon_type(value) == expected


def test_logon_type_other_json_types_are_unknown() -> None:
    assert logon_type(2.5) == "Unknown(2.5)"
    assert logon_type([2]) == "Unknown([2])"


# ---------------------------------------------------------------------------------------------
# ClientInfoString -> client family

REAL_CLIENT_INFO = json.loads(
    (Path(__file__).parents[2] / "simulator" / "fixtures" / "client_info_strings.json").read_text("utf-8")
)["strings"]


@pytest.mark.parametrize(
    ("client_info", "family"),
    [(entry["client_info"], entry["family"]) for entry in REAL_CLIENT_INFO],
    ids=[entry["client_info"][:48] for entry in REAL_CLIENT_INFO],
)
def test_client_family_decodes_each_published_real_string(client_info: str, family: str) -> None:
    assert client_family(client_info) == family


def test_every_published_string_names_where_it_came_from() -> None:
    for entry in REAL_CLIENT_INFO:
        assert entry["source"] is None or entry["source"].startswith("https://")
        assert entry["source"] or entry.get("note"), entry  # no URL: the note says why


def test_every_family_rule_is_exercised_by_a_published_string() -> None:
    families = {entry["family"] for entry in REAL_CLIENT_INFO}
    assert set(PROTOCOL_FAMILIES.values()) | set(POP_IMAP_PROTOCOLS.values()) <= families


@pytest.mark.parametrize(
    ("client_info", "family"),
    [
        ("Client=POP3/IMAP4;Protocol=IMAP4", "IMAP"),
        ("client=pop3/imap4;protocol=imap4", "IMAP"),
        ("Client=POP3/IMAP4;Protocol=POP3", "POP"),
        (" Client=POP3/IMAP4 ; Protocol=POP3 ", "POP"),
    ],
)
def test_client_family_pop_or_imap_is_decided_by_the_protocol_segment(client_info: str, family: str) -> None:
    assert client_family(client_info) == family


@pytest.mark.parametrize("client_info", ["Client=POP3/IMAP4", "Client=POP3/IMAP4;Protocol=SMTP"])
def test_client_family_pop_imap_without_a_known_protocol_is_other_not_a_guess(client_info: str) -> None:
    assert client_family(client_info) == "Other"


@pytest.mark.parametrize(
    ("client_info", "family"),
    [
        # EWS, ActiveSync and OWA copy the caller's User-Agent into the string: naming another
        # client there must not change the family.
        ("Client=WebServices;Outlook-iOS/2.0;", "EWS"),
        ("Client=WebServices;Client=OWA;", "EWS"),
        ("Client=WebServices;Client=POP3/IMAP4;Protocol=IMAP4", "EWS"),
        ("Client=ActiveSync;UserAgent=Client=MSExchangeRPC", "ActiveSync"),
        ("Client=OWA;Outlook-Android/2.0;", "OWA"),
        ("Mozilla/5.0;Client=OWA", "Other"),
    ],
)
def test_client_family_is_decided_by_the_leading_client_segment_only(client_info: str, family: str) -> None:
    assert client_family(client_info) == family


@pytest.mark.parametrize(
    ("client_info", "family"),
    [
        ("CLIENT=MSEXCHANGERPC", "OutlookDesktop"),
        ("  client=owa;Action=ViaProxy  ", "OWA"),
        ("Client=REST;;", "RESTGraph"),
        ("Client=REST;Client=RESTSystem;OutlookMobile/4.2248.0;", "OutlookMobile"),
        ("Client=OutlookService;", "OutlookMobile"),
    ],
)
def test_client_family_ignores_case_and_surrounding_whitespace(client_info: str, family: str) -> None:
    assert client_family(client_info) == family


@pytest.mark.parametrize("client_info", ["", "   ", "\r\n", ";;"])
def test_client_family_is_unknown_when_empty(client_info: str) -> None:
    assert client_family(client_info) == "Unknown"


@pytest.mark.parametrize(
    "client_info",
    [
        "Client=Momentum;",
        "Hub Transport",
        "Client=TransportSync;",
        "Mozilla/5.0",
        # Shapes no published string shows; a leading token that merely starts like a known one
        # is not that client.
        "Client=IMAP4",
        "Client=POP3",
        "Client=AirSync;",
        "Client=Microsoft Outlook 16.0",
        "Client=OWAx",
        "Client=RESTful",
    ],
)
def test_client_family_is_other_for_unrecognised_clients(client_info: str) -> None:
    assert client_family(client_info) == "Other"


# ---------------------------------------------------------------------------------------------
# Application names


@pytest.mark.parametrize(("app_id", "name"), sorted(FIRST_PARTY_APPS.items()))
def test_first_party_app_is_named_from_app_id_or_client_app_id(app_id: str, name: str) -> None:
    assert app_name(app_id, "") == name
    assert app_name("", app_id) == name
    assert app_name(app_id.upper(), "") == name
    assert app_name(f" {app_id.upper()} ", f" {app_id.upper()} ") == name


@pytest.mark.parametrize("app_id", sorted(FIRST_PARTY_APPS))
def test_first_party_app_ids_are_lower_case_guids_so_lookups_can_find_them(app_id: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", app_id)


@pytest.mark.parametrize(
    ("app_id", "name"),
    [
        ("00000003-0000-0000-c000-000000000000", "Microsoft Graph"),
        ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
        ("27922004-5251-4030-b22d-91ecd9a37ea4", "Outlook Mobile"),
        ("5d661950-3475-41cd-a2c3-d671a3162bc1", "Microsoft Outlook"),
        ("14d82eec-204b-4c2f-b7e8-296a70dab67e", "Microsoft Graph Command Line Tools"),
        ("de8bc8b5-d9f9-48b1-a8ad-b748da725064", "Graph Explorer"),
    ],
)
def test_well_known_app_ids_are_pinned(app_id: str, name: str) -> None:
    assert FIRST_PARTY_APPS[app_id] == name
    assert app_name(app_id, "") == name


def test_graph_app_id_constant_is_microsoft_graph() -> None:
    assert decoders.MICROSOFT_GRAPH_APP_ID == "00000003-0000-0000-c000-000000000000"


def test_app_name_known_client_app_id_wins_over_client_app_name_and_app_id() -> None:
    assert app_name(GRAPH, OUTLOOK_MOBILE, "Contoso Mail Sync") == "Outlook Mobile"


def test_app_name_client_app_name_wins_over_unknown_app_via_first_party() -> None:
    assert app_name(GRAPH, UNKNOWN_APP, "  Contoso Mail Sync ") == "Contoso Mail Sync"


def test_app_name_unknown_client_behind_first_party_app_is_named_as_such() -> None:
    assert app_name(GRAPH, UNKNOWN_APP) == "Unknown app via Microsoft Graph"
    assert (
        app_name("00000002-0000-0ff1-ce00-000000000000", UNKNOWN_APP.upper())
        == "Unknown app via Office 365 Exchange Online"
    )


def test_app_name_falls_back_to_app_id_name_without_a_client_app_id() -> None:
    assert app_name(GRAPH, "") == "Microsoft Graph"
    assert app_name(GRAPH, "", "   ") == "Microsoft Graph"


def test_app_name_is_empty_when_nothing_is_known() -> None:
    assert app_name("", "") == ""
    assert app_name(UNKNOWN_APP, "") == ""
    assert app_name(UNKNOWN_APP, UNKNOWN_APP) == ""
    assert app_name("", UNKNOWN_APP) == ""


def test_app_name_uses_client_app_name_even_for_an_unknown_app_id() -> None:
    assert app_name(UNKNOWN_APP, UNKNOWN_APP, "Fabrikam CRM") == "Fabrikam CRM"


# ---------------------------------------------------------------------------------------------
# Client IP


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("203.0.113.10", "203.0.113.10"),
        ("203.0.113.10:52344", "203.0.113.10"),
        (" 203.0.113.10:443 ", "203.0.113.10"),
        ("[2001:db8:10::5]:443", "2001:db8:10::5"),
        ("[2001:db8:10::5]", "2001:db8:10::5"),
        ("[2001:db8:10::5", "2001:db8:10::5"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("[::ffff:198.51.100.7]:8443", "198.51.100.7"),
        ("2001:db8:10::5", "2001:db8:10::5"),
        ("2001:DB8:10:0:0:0:0:5", "2001:db8:10::5"),
        ("fe80::1", "fe80::1"),
    ],
)
def test_client_ip_drops_port_brackets_and_ipv4_mapped_prefix(raw: str, clean: str) -> None:
    assert client_ip(raw) == clean


@pytest.mark.parametrize("raw", ["not-an-ip", "BN8PR12CA0001", "300.1.2.3", "1.2.3", "[garbage]x"])
def test_client_ip_garbage_passes_through(raw: str) -> None:
    expected = "garbage" if raw.startswith("[") else raw
    assert client_ip(raw) == expected


def test_client_ip_empty_stays_empty() -> None:
    assert client_ip("") == ""
    assert client_ip("   ") == ""


# ---------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-04-07T23:47:30", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07 23:47:30", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07T23:47:30.1234567", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07T23:47:30,5", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07T23:47:30Z", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07T23:47:30.0000000Z", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        (" 2020-04-07T23:47:30\r\n", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-08T01:47:30+02:00", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-08T01:47:30+0200", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07T18:17:30-05:30", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2020-04-07T23:47:30+00:00", datetime(2020, 4, 7, 23, 47, 30, tzinfo=UTC)),
        ("2021-01-01T00:30:00+01:00", datetime(2020, 12, 31, 23, 30, 0, tzinfo=UTC)),
    ],
)
def test_utc_timestamp_reads_zone_less_as_utc_and_converts_offsets(raw: str, expected: datetime) -> None:
    parsed = utc_timestamp(raw)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "yesterday",
        "2020-04-07",
        "2020-04-07T23:47",
        "2020-02-30T00:00:00",
        "2020-04-07T24:00:00",
        "0000-01-01T00:00:00",
        "2020-04-07T23:47:30 UTC",
        "2020-04-07T23:47:30+2",
        "2020-04-07T23:47:30+24:00",
        "2020-04-07T23:47:30+99:99",
        "2020-04-07T23:47:30-01:60",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_utc_timestamp_invalid_is_none(raw: str) -> None:
    assert utc_timestamp(raw) is None


def test_iso_z_formats_to_the_second_with_z() -> None:
    assert times.iso_z(datetime(2020, 4, 7, 23, 47, 30, 999_999, tzinfo=UTC)) == "2020-04-07T23:47:30Z"


def test_lower_if_upn_lowercases_upns_only() -> None:
    assert decoders.lower_if_upn(" Bob@Contoso.COM ") == "bob@contoso.com"
    assert decoders.lower_if_upn("S-1-5-21-ABC") == "S-1-5-21-ABC"
    assert (
        decoders.lower_if_upn("NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)")
        == "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),
        (" true ", True),
        ("False", False),
        ("yes", False),
        (1, False),
    ],
)
def test_as_bool_reads_booleans_and_their_text(value: object, expected: bool) -> None:
    assert decoders.as_bool(value) is expected

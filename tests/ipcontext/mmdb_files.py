"""MaxMind DB files written for a test with mmdb-writer, in the schemas IP_DATABASE_PATH accepts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

GOOGLE_DNS = "8.8.8.8"
GOOGLE_DNS_V6 = "2001:4860:4860::8888"
TOR_EXIT = "185.220.101.45"

# GeoLite2-ASN: autonomous_system_number (uint32) and autonomous_system_organization
# (https://dev.maxmind.com/geoip/docs/databases/asn).
GEOLITE2_ASN: dict[str, dict[str, Any]] = {
    "8.8.8.0/24": {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"},
    "2001:4860::/32": {"autonomous_system_number": 15169, "autonomous_system_organization": "GOOGLE"},
    "185.220.101.0/24": {
        "autonomous_system_number": 208294,
        "autonomous_system_organization": '=HYPERLINK("http://evil")<script>',
    },
}
# GeoLite2-Country: country.iso_code, registered_country.iso_code
# (https://dev.maxmind.com/geoip/docs/databases/city-and-country).
GEOLITE2_COUNTRY: dict[str, dict[str, Any]] = {
    "8.8.8.0/24": {"country": {"iso_code": "US", "names": {"en": "United States"}}},
    "185.220.101.0/24": {"registered_country": {"iso_code": "NL"}},
}
# IPinfo Lite: flat fields (https://ipinfo.io/developers/ipinfo-lite-database).
IPINFO_LITE: dict[str, dict[str, Any]] = {
    "8.8.8.0/24": {
        "asn": "AS15169",
        "as_name": "Google LLC",
        "as_domain": "google.com",
        "country_code": "US",
        "country": "United States",
        "continent_code": "NA",
        "continent": "North America",
    },
}


def write_mmdb(path: Path, database_type: str, networks: Mapping[str, Mapping[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), dict(record))
    writer.to_db_file(str(path))
    return path

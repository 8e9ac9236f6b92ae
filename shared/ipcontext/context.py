"""IpContext: the four report columns of one address, from the sources in order of precedence."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.ipcontext.microsoft import RANGES_AS_OF, RANGES_SOURCE
from shared.ipcontext.networks import MICROSOFT, PUBLIC, network_label
from shared.ipcontext.sources import MmdbSource, Source, embedded_source
from shared.model.scope import parse_address

IP_COLUMNS: tuple[str, ...] = ("ClientCountry", "ClientASN", "ClientOrg", "ClientNetwork")
_LOOKED_UP = frozenset({PUBLIC, MICROSOFT})  # private, reserved ... addresses are in no database


@dataclass(frozen=True)
class IpFacts:
    country: str = ""
    asn: str = ""
    org: str = ""
    network: str = ""

    def columns(self) -> dict[str, str]:
        return {
            "ClientCountry": self.country,
            "ClientASN": self.asn,
            "ClientOrg": self.org,
            "ClientNetwork": self.network,
        }


class IpContext:
    """Looks addresses up in `sources`, first answer per field wins (the user's files before the
    embedded data). Answers are cached: a report names few distinct addresses."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = tuple(sources)
        self.facts = functools.lru_cache(maxsize=65_536)(self._facts)

    def _facts(self, text: str) -> IpFacts:
        network = network_label(text)
        address = parse_address(text)
        if address is None or network not in _LOOKED_UP:
            return IpFacts(network=network)
        country = asn = org = ""
        for source in self.sources:
            answer = source.answer(address)
            country = country or answer.country
            if not asn and answer.asn:  # the organisation goes with the AS number it names
                asn, org = answer.asn, answer.org
        return IpFacts(country=country, asn=asn, org=org, network=network)

    def vintage(self) -> list[dict[str, Any]]:
        """The data behind the columns, for a report's evidence section: every source with its
        build date and licence, and the Microsoft 365 range list with its date."""
        described = [source.info.as_dict() for source in self.sources]
        described.append(
            {
                "name": "Microsoft 365 worldwide endpoints (ClientNetwork microsoft)",
                "path": RANGES_SOURCE,
                "built": RANGES_AS_OF,
                "licence": "published by Microsoft, transcribed in shared/ipcontext/microsoft.py",
            }
        )
        return described


@functools.lru_cache(maxsize=8)
def open_context(database_paths: tuple[Path, ...] = ()) -> IpContext:
    """The context for a report: the user's `.mmdb` files (IP_DATABASE_PATH), in order, then the
    embedded DB-IP Lite country data. Opened once per process and set of paths."""
    return IpContext([*(MmdbSource(path) for path in database_paths), embedded_source()])


def ip_data_vintage(database_paths: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """What `open_context(database_paths)` looks addresses up in, and how old it is."""
    return open_context(database_paths).vintage()

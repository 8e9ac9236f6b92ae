"""What kind of network an address is in, from the address alone: no database.

`ClientNetwork` values, first match wins:
- `loopback`: 127.0.0.0/8, ::1 (RFC 1122, RFC 4291);
- `link-local`: 169.254.0.0/16, fe80::/10 (RFC 3927, RFC 4291);
- `private`: RFC 1918, fc00::/7 (RFC 4193), 100.64.0.0/10 shared address space (RFC 6598);
- `reserved`: any other address the IANA special-purpose registries mark not globally reachable
  (documentation, benchmarking, multicast, unspecified, 240.0.0.0/4 ...), as Python's `ipaddress`
  has them (https://docs.python.org/3/library/ipaddress.html#ipaddress.IPv4Address.is_global);
- `microsoft`: a Microsoft 365 service range (`shared/ipcontext/microsoft.py`);
- `public`: everything else;
- `""`: not an address (the record gave none, or something else).

An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is labelled as its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from shared.ipcontext.microsoft import MICROSOFT_365_RANGES
from shared.model.scope import Address, parse_address

LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
PRIVATE = "private"
RESERVED = "reserved"
MICROSOFT = "microsoft"
PUBLIC = "public"

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


_MICROSOFT: dict[int, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = {
    version: tuple(
        network
        for network in (ipaddress.ip_network(text) for text, _ in MICROSOFT_365_RANGES)
        if network.version == version
    )
    for version in (4, 6)
}
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


def is_microsoft(address: Address) -> bool:
    return any(address in network for network in _MICROSOFT[address.version])


def _is_private(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv4Address):
        return address in _SHARED_ADDRESS_SPACE or any(address in network for network in _RFC1918)
    return address in _UNIQUE_LOCAL


def _kind(address: Address) -> str:
    if address.is_loopback:
        return LOOPBACK
    if address.is_link_local:
        return LINK_LOCAL
    if _is_private(address):
        return PRIVATE
    if address.is_multicast or address.is_reserved or not address.is_global:
        return RESERVED
    if is_microsoft(address):
        return MICROSOFT
    return PUBLIC


@lru_cache(maxsize=65_536)
def network_label(text: str) -> str:
    """The `ClientNetwork` of the address `text` names (see the module docstring)."""
    address = parse_address(text)
    return "" if address is None else _kind(address)

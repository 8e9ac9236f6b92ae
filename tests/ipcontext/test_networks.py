"""shared/ipcontext/networks.py: the ClientNetwork label from the address alone."""

from __future__ import annotations

import ipaddress

import pytest

from shared.ipcontext.microsoft import MICROSOFT_365_RANGES
from shared.ipcontext.networks import network_label

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),  # RFC 1918
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),  # RFC 6598 shared address space (carrier-grade NAT)
        ("fd12:3456::1", "private"),  # RFC 4193 unique local
        ("::ffff:192.168.1.1", "private"),  # IPv4-mapped: labelled as the IPv4 address
        ("192.0.2.5", "reserved"),  # RFC 5737 documentation
        ("198.51.100.7", "reserved"),
        ("2001:db8::1", "reserved"),  # RFC 3849 documentation
        ("224.0.0.1", "reserved"),  # multicast
        ("ff02::1", "reserved"),
        ("240.0.0.1", "reserved"),  # RFC 1112 reserved
        ("0.0.0.0", "reserved"),  # noqa: S104 (an address to label, not to bind)
        ("::", "reserved"),
        # Microsoft 365 worldwide endpoints: Exchange Online (40.96.0.0/13, 2603:1036::/36), Entra ID
        # sign-in (20.190.128.0/18), Teams (52.112.0.0/14):
        # https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges
        ("40.97.10.1", "microsoft"),
        ("2603:1036:302::5", "microsoft"),
        ("20.190.130.4", "microsoft"),
        ("52.113.1.1", "microsoft"),
        ("::ffff:40.97.10.1", "microsoft"),
        ("8.8.8.8", "public"),
        ("185.220.101.45", "public"),
        ("2001:4860:4860::8888", "public"),
        # An Azure virtual machine address (Azure's 20.0.0.0/11 block outside the Microsoft 365
        # ranges) is anyone's: public, not microsoft.
        ("20.10.0.1", "public"),
        ("", ""),
        ("not an address", ""),
        ("185.220.101.45:50100", ""),  # the parser strips ports; a raw one is not an address
    ],
)
def test_each_kind_of_address_gets_its_label(address: str, label: str) -> None:
    assert network_label(address) == label


def test_the_microsoft_365_ranges_are_public_networks_with_a_service_area() -> None:
    seen = set()
    for text, area in MICROSOFT_365_RANGES:
        network = ipaddress.ip_network(text)  # strict: a host bit set would raise
        assert network.is_global, text
        assert area, text
        assert text not in seen, f"{text} listed twice"
        seen.add(text)
        assert network_label(str(network.network_address)) == "microsoft"
        assert network_label(str(network.broadcast_address)) == "microsoft"

"""Microsoft 365 service ranges: an address in one is Microsoft's own infrastructure (an Exchange
Online front end, a sync or indexing service), not a client the mailbox owner or an intruder runs.

Transcribed from the Microsoft 365 worldwide endpoints, "Microsoft 365 URLs and IP address ranges"
(https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges), whose tables are
generated from https://endpoints.office.com/endpoints/worldwide: every range of the Exchange Online,
SharePoint Online and OneDrive, Skype for Business Online and Teams, and Microsoft 365 Common
(Entra ID sign-in, Office Online, the compliance portals) rows, as listed in July 2026.
Deliberately not Azure's "Azure IP Ranges and Service Tags": anyone can rent an Azure virtual
machine, so an Azure address says nothing about who used it and is labelled `public`.
"""

from __future__ import annotations

RANGES_AS_OF = "2026-07"
RANGES_SOURCE = "https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges"

# (network, service area of the endpoints list)
MICROSOFT_365_RANGES: tuple[tuple[str, str], ...] = (
    *(
        (network, "Exchange Online")
        for network in (
            "13.107.6.152/31",
            "13.107.18.10/31",
            "13.107.128.0/22",
            "23.103.160.0/20",
            "40.92.0.0/15",
            "40.96.0.0/13",
            "40.104.0.0/15",
            "40.107.0.0/16",
            "52.96.0.0/14",
            "52.100.0.0/14",
            "52.238.78.88/32",
            "104.47.0.0/17",
            "131.253.33.215/32",
            "132.245.0.0/16",
            "150.171.32.0/22",
            "204.79.197.215/32",
            "2603:1006::/40",
            "2603:1016::/36",
            "2603:1026::/36",
            "2603:1036::/36",
            "2603:1046::/36",
            "2603:1056::/36",
            "2620:1ec:4::152/127",
            "2620:1ec:c::10/127",
            "2620:1ec:d::10/127",
            "2620:1ec:8f0::/46",
            "2620:1ec:900::/46",
            "2620:1ec:a92::152/127",
            "2a01:111:f400::/48",
            "2a01:111:f403::/48",
        )
    ),
    *(
        (network, "SharePoint Online and OneDrive")
        for network in (
            "13.107.136.0/22",
            "40.108.128.0/17",
            "52.104.0.0/14",
            "104.146.128.0/17",
            "150.171.40.0/22",
            "2603:1061:1300::/40",
            "2620:1ec:8f8::/46",
            "2620:1ec:908::/46",
            "2a01:111:f402::/48",
        )
    ),
    *(
        (network, "Teams")
        for network in (
            "13.107.64.0/18",
            "52.112.0.0/14",
            "52.120.0.0/14",
            "52.122.0.0/15",
            "52.238.119.141/32",
            "52.244.160.207/32",
            "2603:1027::/48",
            "2603:1037::/48",
            "2603:1047::/48",
            "2603:1057::/48",
            "2603:1063::/38",
            "2620:1ec:6::/48",
            "2620:1ec:40::/42",
        )
    ),
    *(
        (network, "Microsoft 365 Common")
        for network in (
            "13.107.6.171/32",
            "13.107.18.15/32",
            "13.107.140.6/32",
            "20.20.32.0/19",
            "20.190.128.0/18",
            "20.231.128.0/19",
            "40.126.0.0/18",
            "52.108.0.0/14",
            "52.244.37.168/32",
            "2603:1006:1400::/40",
            "2603:1006:2000::/48",
            "2603:1007:200::/48",
            "2603:1016:1400::/48",
            "2603:1016:2400::/40",
            "2603:1017::/48",
            "2603:1026:2400::/40",
            "2603:1026:3000::/48",
            "2603:1027:1::/48",
            "2603:1036:2400::/40",
            "2603:1036:3000::/48",
            "2603:1037:1::/48",
            "2603:1046:1400::/40",
            "2603:1046:2000::/48",
            "2603:1047:1::/48",
            "2603:1056:1400::/40",
            "2603:1056:2000::/48",
            "2603:1057:2::/48",
        )
    ),
)

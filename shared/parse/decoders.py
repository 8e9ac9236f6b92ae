"""Decoding tables and cleaners for MailItemsAccessed fields (docs/architecture.md#the-normalized-event).

Sources: Office 365 Management Activity API schema, "Enum: LogonType" and the mailbox audit
fields (ClientInfoString, ClientIPAddress, AppId/ClientAppId); see
docs/mailitemsaccessed.md#record-fields-the-normalizer-reads.
"""

from __future__ import annotations

import contextlib
import ipaddress

# Schema "Enum: LogonType" (Edm.Int32).
LOGON_TYPES: dict[int, str] = {
    0: "Owner",
    1: "Admin",
    2: "Delegated",
    3: "Transport",
    4: "SystemService",
    5: "BestAccess",
    6: "DelegatedAdmin",
}

# ClientInfoString to client family. Exchange writes the protocol it served first, as
# `Client=<name>`; what follows is, for EWS, ActiveSync and OWA, the caller's own User-Agent, so
# the leading segment alone decides and attacker-chosen text later in the string never does.
# Real shapes, each with its public source: simulator/fixtures/client_info_strings.json.
PROTOCOL_FAMILIES: dict[str, str] = {
    "msexchangerpc": "OutlookDesktop",
    "owa": "OWA",
    "webservices": "EWS",
    "rest": "RESTGraph",
    "outlookservice": "OutlookMobile",
    "activesync": "ActiveSync",
}

# POP and IMAP share one client name; the Protocol segment says which
# (`Client=POP3/IMAP4;Protocol=IMAP4`). Without it the protocol is not known: Other.
POP_IMAP_CLIENT = "pop3/imap4"
POP_IMAP_PROTOCOLS: dict[str, str] = {"imap4": "IMAP", "pop3": "POP"}

# Outlook for iOS and Android reach the mailbox through Microsoft's Outlook service over REST
# (`Client=REST;Client=OutlookService;Outlook-Android`): Microsoft's service, not the device,
# writes these tokens, so they refine REST and OutlookService only.
OUTLOOK_MOBILE_TOKENS: tuple[str, ...] = ("outlook-ios", "outlook-android", "outlookmobile")
OUTLOOK_MOBILE_CARRIERS = frozenset({"rest", "outlookservice"})

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# Display names of well-known first-party application IDs (Entra ID "Microsoft first-party apps"
# list and the Graph service principal names). Unknown IDs stay unnamed unless the record itself
# names them (AppAccessContext.ClientAppName).
FIRST_PARTY_APPS: dict[str, str] = {
    MICROSOFT_GRAPH_APP_ID: "Microsoft Graph",
    "00000002-0000-0ff1-ce00-000000000000": "Office 365 Exchange Online",
    "00000003-0000-0ff1-ce00-000000000000": "Office 365 SharePoint Online",
    "00000002-0000-0000-c000-000000000000": "Windows Azure Active Directory",
    "00000006-0000-0ff1-ce00-000000000000": "Microsoft Office 365 Portal",
    "d3590ed6-52b3-4102-aeff-aad2292ab01c": "Microsoft Office",
    "5d661950-3475-41cd-a2c3-d671a3162bc1": "Microsoft Outlook",
    "27922004-5251-4030-b22d-91ecd9a37ea4": "Outlook Mobile",
    "9199bf20-a13f-4107-85dc-02114787ef48": "One Outlook Web",
    "1fec8e78-bce4-4aaf-ab1b-5451cc387264": "Microsoft Teams",
    "5e3ce6c0-2b1f-4285-8d4b-75ee78787346": "Microsoft Teams Web Client",
    "4765445b-32c6-49b0-83e6-1d93765276ca": "OfficeHome",
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
    "14d82eec-204b-4c2f-b7e8-296a70dab67e": "Microsoft Graph Command Line Tools",
    "de8bc8b5-d9f9-48b1-a8ad-b748da725064": "Graph Explorer",
    "fb78d390-0c51-40cd-8e17-fdbfab77341b": "Microsoft Exchange REST API Based Powershell",
    "a0c73c16-a7e3-4564-9a95-2bdf47383716": "Microsoft Exchange Online Remote PowerShell",
    "29d9ed98-a469-4536-ade2-f981bc1d605e": "Microsoft Authentication Broker",
    "c5393580-f805-4401-95e8-94b7a6ef2fc2": "Office 365 Management APIs",
    "797f4846-ba00-4fd7-ba43-dac1f8f63013": "Windows Azure Service Management API",
}


def logon_type(value: object) -> str:
    """Schema LogonType code as its name; `Unknown(n)` for other codes, empty when absent."""
    if value is None or value == "" or isinstance(value, bool):
        return ""
    if isinstance(value, str) and value.strip().removeprefix("-").isdecimal():
        with contextlib.suppress(ValueError):  # more digits than int() accepts: stays text
            value = int(value.strip())
    if isinstance(value, int):
        return LOGON_TYPES.get(value, f"Unknown({value})")
    if isinstance(value, str):
        # Some exports already carry the name ("Owner", "Delegate").
        by_name = {name.lower(): name for name in LOGON_TYPES.values()}
        by_name["delegate"] = "Delegated"
        return by_name.get(value.strip().lower(), f"Unknown({value.strip()})")
    return f"Unknown({value})"


def client_family(client_info: str) -> str:
    """Decode ClientInfoString into one client family by its leading `Client=` segment.

    Unknown when empty; Other when the string does not start with a client name we decode.
    """
    segments = [segment.strip().lower() for segment in client_info.split(";")]
    if not any(segments):
        return "Unknown"
    client = segments[0].removeprefix("client=") if segments[0].startswith("client=") else ""
    tail = segments[1:]
    if client == POP_IMAP_CLIENT:
        protocols = (seg.removeprefix("protocol=") for seg in tail if seg.startswith("protocol="))
        return POP_IMAP_PROTOCOLS.get(next(protocols, ""), "Other")
    if client in OUTLOOK_MOBILE_CARRIERS and any(seg.startswith(OUTLOOK_MOBILE_TOKENS) for seg in tail):
        return "OutlookMobile"
    return PROTOCOL_FAMILIES.get(client, "Other")


def app_name(app_id: str, client_app_id: str, client_app_name: str = "") -> str:
    """Name of the application that read mail: ClientAppId first (the original caller), then AppId.

    An unknown ClientAppId behind Microsoft Graph is the classic third-party mail reader, so it is
    named as such instead of being hidden behind "Microsoft Graph".
    """
    client = client_app_id.strip().lower()
    app = app_id.strip().lower()
    if client in FIRST_PARTY_APPS:
        return FIRST_PARTY_APPS[client]
    if client_app_name.strip():
        return client_app_name.strip()
    if client and client != app and app in FIRST_PARTY_APPS:
        return f"Unknown app via {FIRST_PARTY_APPS[app]}"
    return FIRST_PARTY_APPS.get(app, "")


def client_ip(value: str) -> str:
    """ClientIPAddress without port, brackets or the IPv4-mapped `::ffff:` prefix."""
    text = value.strip()
    if not text:
        return ""
    if text.startswith("["):  # [IPv6]:port or [IPv6]
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # IPv4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def lower_if_upn(value: str) -> str:
    """UPNs are case-insensitive; lower-case them. SIDs, GUIDs and service names stay as given."""
    text = value.strip()
    return text.lower() if "@" in text else text


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return False

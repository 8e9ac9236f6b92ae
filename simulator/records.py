"""Exchange mailbox audit records, shaped like the Management Activity API serves them.

Pure: every random choice comes from the `random.Random` passed in. Field names, order and client
strings follow `samples/generate_sample.py` and docs/mailitemsaccessed.md#record-fields-the-normalizer-reads:
PascalCase, zone-less `CreationTime`, `OperationProperties` in varying order, `FolderItems` with
and without `Subject`, IP addresses with ports, brackets and `::ffff:` prefixes.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Record = dict[str, Any]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
OUTLOOK_MOBILE_APP_ID = "27922004-5251-4030-b22d-91ecd9a37ea4"
OUTLOOK_DESKTOP = "Client=MSExchangeRPC"
OWA = "Client=OWA;Action=ViaProxy"
OUTLOOK_IOS = "Client=OutlookService;Outlook-iOS/2.0;"
GRAPH_REST = "Client=REST;Client=RESTSystem;;"
EWS = "Client=WebServices;Microsoft Office/16.0;ExchangeServicesClient/15.0"
# Shapes with a public copy in simulator/fixtures/client_info_strings.json (their sources there).
IMAP = "Client=POP3/IMAP4;Protocol=IMAP4"
OUTLOOK_ANDROID = "Client=Rest;Client=OutlookService;Outlook-Android"
OWA_BROWSER = (
    "Client=OWA;Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/98.0.4758.82 Safari/537.36+Preload+Preload;"
)

OWNER, ADMIN, DELEGATED = 0, 1, 2
MAIL_ITEMS_ACCESSED_TYPE = 50  # ExchangeItemAggregated
EXCHANGE_ITEM, EXCHANGE_ITEM_GROUP = 2, 3

SUBJECTS = (
    "Q4 board pack - draft 3",
    "Re: Acquisition of Fabrikam - term sheet",
    "Payroll changes effective December",
    '=HYPERLINK("http://evil.example/x","Invoice")',
    "Your Azure subscription invoice",
    "Team offsite agenda",
    "Re: Wire transfer approval 250,000 EUR",
    "Customer list export (confidential)",
    "Lunch on Friday?",
    "Security incident follow-up",
    "Contrat de confidentialité \u2013 signé",
    "顧客リスト 2026",
    "Weekly status",
    "Re: Re: Budget 2027",
    "Invitation: Architecture review",
    "FW: Supplier bank details changed",
    "Out of office",
    "Expense report approved",
)
FOLDER_PATHS = ("\\Inbox", "\\Sent Items", "\\Archive", "\\Drafts", "\\Inbox\\Projects")


def guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def exchange_id(rng: random.Random, prefix: str = "LgAAAAD") -> str:
    return prefix + format(rng.getrandbits(128), "032x")


def token_id(rng: random.Random) -> str:
    """The 22-character base64url shape of AppAccessContext.UniqueTokenId."""
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode().rstrip("=")


def sid(rng: random.Random) -> str:
    parts = [str(rng.randint(10**8, 4 * 10**9)) for _ in range(3)]
    return f"S-1-5-21-{'-'.join(parts)}-{rng.randint(1100, 99999)}"


def creation_time(when: datetime) -> str:
    """CreationTime as the API writes it: UTC, seconds, no zone suffix."""
    return when.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Person:
    upn: str
    name: str
    sid: str
    puid: str  # UserKey

    @classmethod
    def create(cls, rng: random.Random, upn: str, name: str) -> Person:
        return cls(upn=upn, name=name, sid=sid(rng), puid="1003" + format(rng.getrandbits(48), "012X"))


@dataclass(frozen=True)
class Message:
    internet_message_id: str
    item_id: str
    immutable_id: str
    subject: str
    size: int


@dataclass(frozen=True)
class Folder:
    path: str
    folder_id: str
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Mailbox:
    owner: Person
    guid: str
    server: str
    folders: Mapping[str, Folder] = field(hash=False)

    @classmethod
    def create(cls, rng: random.Random, owner: Person, messages_per_folder: int = 40) -> Mailbox:
        server_name = f"PH0PR11MB{rng.randint(1000, 9999)}"
        folders: dict[str, Folder] = {}
        for path in FOLDER_PATHS:
            count = messages_per_folder * (3 if path == "\\Inbox" else 1)
            messages = tuple(_message(rng, server_name) for _ in range(count))
            folders[path] = Folder(path, exchange_id(rng, "LgAAAAB"), messages)
        return cls(owner, guid(rng), f"{server_name} (15.20.8158.017)\r\n", folders)

    @property
    def upn(self) -> str:
        return self.owner.upn


def _message(rng: random.Random, server: str) -> Message:
    serial = rng.getrandbits(64)
    return Message(
        internet_message_id=message_id(serial, rng.randint(1, 99999), server),
        item_id=exchange_id(rng),
        immutable_id=exchange_id(rng, "LgAAAAAI"),
        subject=rng.choice(SUBJECTS),
        size=rng.randint(4_000, 900_000),
    )


def message_id(serial: int, number: int, server: str) -> str:
    """An InternetMessageId. About 1 in 8 (chosen from bits already drawn) are external-mail style,
    with '+', '=' and '/' that a Graph $filter must URL-encode
    (docs/mailitemsaccessed.md#microsoft-graph-message-lookup)."""
    if serial % 8 == 0:
        return f"<CA+{serial:016x}=x/{number}@mail.gmail.com>"
    return f"<{serial:016x}.{number}@{server}.namprd11.prod.outlook.com>"


@dataclass(frozen=True)
class MessageMeta:
    """What Graph and message trace know about a message (simulator.tenant derives it by hashing the
    InternetMessageId, without drawing from the tenant's RNG)."""

    internet_message_id: str
    subject: str
    sender: str  # an email address
    received: datetime  # aware UTC, whole seconds
    size: int
    folder_path: str
    purged: bool  # soft/hard deleted: Graph no longer finds it, message trace still does
    copies: int  # 1, or 2 when a second copy (own id, own parentFolderId) sits in Deleted Items
    sender_name: str = ""


@dataclass(frozen=True)
class Access:
    """The context of a mailbox access: who, into which mailbox, from where, with what."""

    user: Person
    mailbox: Mailbox
    logon_type: int
    ip: str
    client_info: str
    session_id: str
    aad_session_id: str
    app_id: str = ""
    client_app_id: str = ""

    @property
    def user_type(self) -> int:
        return 2 if self.logon_type == ADMIN else 0  # 2 = Admin in the UserType enum


FolderAccess = tuple[Folder, Sequence[Message]]


class RecordFactory:
    """Builds records for one tenant; every call draws from the generator's RNG."""

    def __init__(self, rng: random.Random, tenant_id: str, organization: str) -> None:
        self._rng = rng
        self._tenant_id = tenant_id
        self._organization = organization

    def _common(self, when: datetime, operation: str, record_type: int, access: Access) -> Record:
        rng = self._rng
        return {
            "CreationTime": creation_time(when),
            "Id": guid(rng),
            "Operation": operation,
            "OrganizationId": self._tenant_id,
            "RecordType": record_type,
            "ResultStatus": "Succeeded",
            "UserKey": access.user.puid,
            "UserType": access.user_type,
            "Version": 1,
            "Workload": "Exchange",
            "ClientIPAddress": access.ip,
            "UserId": access.user.upn,
            "AppId": access.app_id,
            "ClientAppId": access.client_app_id,
            "ClientInfoString": access.client_info,
            "ExternalAccess": False,
            "InternalLogonType": access.logon_type,
            "LogonType": access.logon_type,
            "LogonUserSid": access.user.sid,
            "MailboxGuid": access.mailbox.guid,
            "MailboxOwnerSid": access.mailbox.owner.sid,
            "MailboxOwnerUPN": access.mailbox.upn,
        }

    def _tail(self, record: Record, access: Access) -> None:
        record["OrganizationName"] = self._organization
        record["OriginatingServer"] = access.mailbox.server
        record["SessionId"] = access.session_id
        context: Record = {"AADSessionId": access.aad_session_id, "UniqueTokenId": token_id(self._rng)}
        if access.client_app_id:
            context["ClientAppId"] = access.client_app_id
        record["AppAccessContext"] = context

    def _operation_properties(self, access_type: str, throttled: bool) -> list[Record]:
        properties = [{"Name": "MailAccessType", "Value": access_type}]
        if throttled or self._rng.random() < 0.85:  # the pair is sometimes absent when False
            properties.append({"Name": "IsThrottled", "Value": "True" if throttled else "False"})
        if self._rng.random() < 0.5:  # not guaranteed: docs/mailitemsaccessed.md#operationproperties
            properties.reverse()
        return properties

    def _folder_items(self, messages: Sequence[Message], with_subjects: bool) -> list[Record]:
        items = []
        for message in messages:
            item: Record = {"InternetMessageId": message.internet_message_id, "Id": message.item_id}
            if self._rng.random() < 0.5:
                item["ImmutableId"] = message.immutable_id
            item["SizeInBytes"] = message.size
            if with_subjects:
                item["Subject"] = message.subject
            items.append(item)
        return items

    def mail_items_accessed(
        self,
        when: datetime,
        access: Access,
        access_type: str,
        folders: Sequence[FolderAccess],
        *,
        throttled: bool = False,
        with_subjects: bool = True,
        older_sync_shape: bool = False,
    ) -> Record:
        """A MailItemsAccessed record: Bind lists the messages, Sync names the folder(s)."""
        record_type = EXCHANGE_ITEM if older_sync_shape else MAIL_ITEMS_ACCESSED_TYPE
        record = self._common(when, "MailItemsAccessed", record_type, access)
        record["OperationProperties"] = self._operation_properties(access_type, throttled)
        self._tail(record, access)
        if older_sync_shape:  # Sync seen through the ExchangeItem shape (Item.ParentFolder)
            folder = folders[0][0]
            parent = {"Id": folder.folder_id, "Path": folder.path, "Name": folder.path.rsplit("\\", 1)[-1]}
            record["Item"] = {"Id": exchange_id(self._rng), "ParentFolder": parent}
            return record
        record["Folders"] = [
            {
                "Id": folder.folder_id,
                "Path": folder.path,
                "FolderItems": self._folder_items(items, with_subjects),
            }
            for folder, items in folders
        ]
        record["OperationCount"] = sum(len(items) for _, items in folders) or 1
        return record

    def mailbox_operation(
        self, when: datetime, access: Access, operation: str, folder: Folder, message: Message
    ) -> Record:
        """Another Exchange mailbox action: single item (type 2) or item group (type 3) shape."""
        parent = {"Id": folder.folder_id, "Path": folder.path}
        item: Record = {
            "Id": message.item_id,
            "InternetMessageId": message.internet_message_id,
            "ParentFolder": {**parent, "Name": folder.path.rsplit("\\", 1)[-1]},
            "SizeInBytes": message.size,
            "Subject": message.subject,
        }
        if operation in ("MoveToDeletedItems", "SoftDelete", "HardDelete", "Move"):
            record = self._common(when, operation, EXCHANGE_ITEM_GROUP, access)
            record["AffectedItems"] = [item]
            record["CrossMailboxOperation"] = False
            record["Folder"] = parent
            if operation in ("MoveToDeletedItems", "Move"):
                destination = "\\Deleted Items" if operation == "MoveToDeletedItems" else "\\Archive"
                record["DestFolder"] = {"Id": exchange_id(self._rng, "LgAAAAB"), "Path": destination}
        else:
            record = self._common(when, operation, EXCHANGE_ITEM, access)
            if operation != "MailboxLogin":
                record["Item"] = item
            if operation == "Update":
                record["ModifiedProperties"] = ["IsRead"] if self._rng.random() < 0.7 else ["Categories"]
        self._tail(record, access)
        return record

"""Deterministic, realistic synthetic audit data for the benchmarks (same tenant and style as
samples/generate_sample.py): Management API records for the parser, AccessEvents for storage."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.model.event import AccessEvent, MessageRef

TENANT = "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14"
GRAPH = "00000003-0000-0000-c000-000000000000"
OUTLOOK_MOBILE = "27922004-5251-4030-b22d-91ecd9a37ea4"
UNKNOWN_APP = "6a1b9f3e-2c4d-4e5f-8a7b-9c0d1e2f3a4b"
MAILBOXES = (
    "alice@contoso.com",
    "bob@contoso.com",
    "finance@contoso.com",
    "dave@contoso.com",
    "carol@contoso.com",
)
# (ClientInfoString, AppId, ClientAppId)
CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("Client=MSExchangeRPC", "", ""),
    ("Client=OWA;Action=ViaProxy", "", ""),
    ("Client=OutlookService;Outlook-iOS/2.0;", OUTLOOK_MOBILE, OUTLOOK_MOBILE),
    ("Client=REST;Client=RESTSystem;;", GRAPH, UNKNOWN_APP),
    ("Client=WebServices;Microsoft Office/16.0;ExchangeServicesClient/15.0", "", ""),
)
IP_POOL_SIZE = 500  # distinct client addresses in one blob (offices, homes, carriers, attackers)
MESSAGE_POOL_SIZE = 2_000
FOLDERS = ("\\Inbox", "\\Sent Items", "\\Archive", "\\Inbox\\Projects", "\\Deleted Items")
SUBJECTS = (
    "Q4 board pack - draft 3",
    "Re: Acquisition of Fabrikam - term sheet",
    "Payroll changes effective December",
    "Your Azure subscription invoice",
    "Team offsite agenda",
    "Re: Wire transfer approval 250,000 EUR",
    "Customer list export (confidential)",
    "Security incident follow-up",
    "Contrat de confidentialit\u00e9 \u2013 sign\u00e9",
    "顧客リスト 2026",
)
OTHER_OPERATIONS = ("MailboxLogin", "Send", "Update", "MoveToDeletedItems", "SoftDelete")
START = datetime(2026, 10, 1, tzinfo=UTC)
# Share of each kind of record in a blob.
BIND_SHARE = 0.8
SYNC_SHARE = 0.1  # the rest are other Exchange operations


class RecordFactory:
    """Audit records as the Management Activity API delivers them: mostly Bind with several
    folder items (most with subjects), some Sync (both shapes), some other Exchange operations."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.message_ids = [self._message_id(n) for n in range(MESSAGE_POOL_SIZE)]
        self.client_ips = [self._client_ip() for _ in range(IP_POOL_SIZE)]

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def item_id(self) -> str:
        return "LgAAAAD" + self.guid().replace("-", "")[:40]

    def _message_id(self, n: int) -> str:
        return f"<{self.rng.getrandbits(64):016x}.{n}@PH0PR11MB{n % 9000:04d}.namprd11.prod.outlook.com>"

    def _client_ip(self) -> str:
        """The shapes ClientIPAddress takes: IPv4, IPv4:port, [IPv6]:port, IPv6, ::ffff:IPv4."""
        v4 = ".".join(str(self.rng.randint(1, 254)) for _ in range(4))
        v6 = "2001:db8:" + ":".join(f"{self.rng.getrandbits(16):x}" for _ in range(3)) + "::5"
        shape = self.rng.random()
        if shape < 0.5:
            return v4
        if shape < 0.7:
            return f"{v4}:{self.rng.randint(1024, 65535)}"
        if shape < 0.8:
            return f"[{v6}]:443"
        if shape < 0.9:
            return v6
        return f"::ffff:{v4}"

    def _folder_item(self) -> dict[str, object]:
        item: dict[str, object] = {
            "InternetMessageId": self.rng.choice(self.message_ids),
            "Id": self.item_id(),
            "SizeInBytes": self.rng.randint(4_000, 900_000),
        }
        if self.rng.random() < 0.85:
            item["Subject"] = self.rng.choice(SUBJECTS)
        return item

    def _folder(self, path: str, with_items: bool) -> dict[str, Any]:
        folder: dict[str, Any] = {"Id": self.item_id(), "Path": path}
        if with_items:
            folder["FolderItems"] = [self._folder_item() for _ in range(self.rng.randint(1, 4))]
        return folder

    def _base(self, when: datetime, operation: str, mailbox: str) -> dict[str, object]:
        return {
            "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"),
            "Id": self.guid(),
            "Operation": operation,
            "OrganizationId": TENANT,
            "RecordType": 50,
            "ResultStatus": "Succeeded",
            "UserId": mailbox,
            "Workload": "Exchange",
            "ClientIPAddress": self.rng.choice(self.client_ips),
            "MailboxOwnerUPN": mailbox,
        }

    def mail_items_accessed(self, when: datetime, access: str) -> dict[str, object]:
        mailbox = self.rng.choice(MAILBOXES)
        delegated = self.rng.random() < 0.2
        client_info, app_id, client_app_id = self.rng.choice(CLIENTS)
        properties = [
            {"Name": "MailAccessType", "Value": access},
            {"Name": "IsThrottled", "Value": "True" if self.rng.random() < 0.01 else "False"},
        ]
        record = self._base(when, "MailItemsAccessed", mailbox)
        record.update(
            {
                "UserKey": "1003" + format(self.rng.getrandbits(48), "012X"),
                "UserType": 0,
                "Version": 1,
                "UserId": self.rng.choice(MAILBOXES) if delegated else mailbox,
                "AppId": app_id,
                "ClientAppId": client_app_id,
                "ClientInfoString": client_info,
                "ExternalAccess": False,
                "InternalLogonType": 0,
                "LogonType": 2 if delegated else 0,
                "LogonUserSid": f"S-1-5-21-{self.rng.randint(10**8, 10**9)}",
                "MailboxGuid": self.guid(),
                "MailboxOwnerSid": f"S-1-5-21-{self.rng.randint(10**8, 10**9)}",
                # The order of OperationProperties is not guaranteed.
                "OperationProperties": properties if self.rng.random() < 0.5 else properties[::-1],
                "OrganizationName": "contoso.onmicrosoft.com",
                "OriginatingServer": f"PH0PR11MB{self.rng.randint(1000, 9999)} (15.20.8158.017)\r\n",
                "SessionId": self.guid(),
                "AppAccessContext": {"AADSessionId": self.guid(), "UniqueTokenId": self.guid()[:22]},
            }
        )
        if access == "Sync" and self.rng.random() < 0.5:  # the older ExchangeItem shape
            path = self.rng.choice(FOLDERS)
            record["RecordType"] = 2
            parent = {"Id": self.item_id(), "Path": path, "Name": path.strip("\\")}
            record["Item"] = {"Id": self.item_id(), "ParentFolder": parent}
            return record
        paths = self.rng.sample(FOLDERS, 1 if self.rng.random() < 0.8 else 2)
        folders = [self._folder(path, with_items=access == "Bind") for path in paths]
        record["Folders"] = folders
        record["OperationCount"] = sum(len(folder.get("FolderItems", [])) for folder in folders) or 1
        return record

    def other_operation(self, when: datetime) -> dict[str, object]:
        return self._base(when, self.rng.choice(OTHER_OPERATIONS), self.rng.choice(MAILBOXES))

    def records(self, count: int) -> list[dict[str, object]]:
        """A blob's worth of records, 7 s apart."""
        out: list[dict[str, object]] = []
        for index in range(count):
            when = START + timedelta(seconds=7 * index)
            roll = self.rng.random()
            if roll < BIND_SHARE:
                out.append(self.mail_items_accessed(when, "Bind"))
            elif roll < BIND_SHARE + SYNC_SHARE:
                out.append(self.mail_items_accessed(when, "Sync"))
            else:
                out.append(self.other_operation(when))
        return out


def mailbox_events(mailbox: str, count: int, seed: int) -> Iterator[AccessEvent]:
    """Events of one mailbox, 20 s apart, one message each (small rows for the large report)."""
    factory = RecordFactory(seed)
    rng = factory.rng
    for index in range(count):
        client_info, app_id, client_app_id = rng.choice(CLIENTS)
        folder = rng.choice(FOLDERS).lstrip("\\")
        item = MessageRef(rng.choice(factory.message_ids), folder, rng.choice(SUBJECTS), 12_345)
        yield AccessEvent(
            timestamp=START + timedelta(seconds=20 * index),
            mailbox=mailbox,
            user=mailbox,
            logon_type="Owner",
            access="Bind",
            throttled=False,
            folders=(folder,),
            folder_ids=(factory.item_id(),),
            operation_count=1,
            client_ip=rng.choice(factory.client_ips).split("]")[0].lstrip("["),
            client_info=client_info,
            client_family="OutlookDesktop",
            app_id=app_id,
            client_app_id=client_app_id,
            app_name="",
            session_id=factory.guid(),
            aad_session_id=factory.guid(),
            external_access=False,
            originating_server="PH0PR11MB1234 (15.20.8158.017)",
            record_id=factory.guid(),
            items=(item,),
        )

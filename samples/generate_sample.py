"""Write samples/contoso-purview-export.csv: a realistic Purview audit search export (CSV, UTF-8
with BOM, one AuditData JSON per row) for the demo and tests. Deterministic: run it again and the
file is byte-for-byte the same.

The story (tenant contoso.com, 16-20 Nov 2026, all times UTC):
- alice@contoso.com reads her mail on Outlook desktop and OWA at the office (203.0.113.10) and on
  Outlook for iOS; her delegate bob@contoso.com reads her Inbox from his desktop.
- On 18 Nov an attacker with Alice's token reads her mail from 185.220.101.45 through Microsoft
  Graph with an unknown app (Bind, dozens of messages), then syncs her Inbox with a desktop
  client (older Item.ParentFolder shape).
- admin@contoso.com opens dave@contoso.com's mailbox through EWS (LogonType Admin).
- finance@contoso.com, a busy shared mailbox, is throttled (IsThrottled=True).
- Other Exchange operations are mixed in, and one record appears twice, as in real exports.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from shared.parse.readers import PURVIEW_COLUMNS

OUT = Path(__file__).with_name("contoso-purview-export.csv")
TENANT = "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14"
GRAPH = "00000003-0000-0000-c000-000000000000"
OUTLOOK_MOBILE = "27922004-5251-4030-b22d-91ecd9a37ea4"
ATTACKER_APP = "6a1b9f3e-2c4d-4e5f-8a7b-9c0d1e2f3a4b"
OFFICE_IP = "203.0.113.10"
ATTACKER_IP = "185.220.101.45"
SUBJECTS = [
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
    "Contrat de confidentialité – signé",  # noqa: RUF001 - real subjects carry typographic dashes
    "顧客リスト 2026",
]

rng = random.Random(20261120)


def guid() -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def message_id(n: int) -> str:
    return f"<{rng.getrandbits(64):016x}.{n}@PH0PR11MB{n % 9000:04d}.namprd11.prod.outlook.com>"


MESSAGES = [message_id(n) for n in range(400)]
rows: list[dict[str, object]] = []


def folder_items(ids: list[str], with_subjects: bool) -> list[dict[str, object]]:
    items = []
    for mid in ids:
        item: dict[str, object] = {
            "InternetMessageId": mid,
            "Id": "LgAAAAD" + guid().replace("-", "")[:40],
            "SizeInBytes": rng.randint(4_000, 900_000),
        }
        if with_subjects:
            item["Subject"] = SUBJECTS[MESSAGES.index(mid) % len(SUBJECTS)]
        items.append(item)
    return items


def mia(
    when: datetime,
    mailbox: str,
    user: str,
    logon: int,
    access: str,
    ip: str,
    client: str,
    session: str,
    folders: list[tuple[str, list[str]]] | None = None,
    app_id: str = "",
    client_app_id: str = "",
    throttled: bool = False,
    with_subjects: bool = True,
    older_sync_shape: bool = False,
) -> dict[str, object]:
    record: dict[str, object] = {
        "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "Id": guid(),
        "Operation": "MailItemsAccessed",
        "OrganizationId": TENANT,
        "RecordType": 2 if older_sync_shape else 50,
        "ResultStatus": "Succeeded",
        "UserKey": "1003" + format(rng.getrandbits(48), "012X"),
        "UserType": 2 if logon == 1 else 0,
        "Version": 1,
        "Workload": "Exchange",
        "ClientIPAddress": ip,
        "UserId": user,
        "AppId": app_id,
        "ClientAppId": client_app_id,
        "ClientInfoString": client,
        "ExternalAccess": False,
        "InternalLogonType": 0,
        "LogonType": logon,
        "LogonUserSid": "S-1-5-21-" + str(rng.randint(10**8, 10**9)),
        "MailboxGuid": guid(),
        "MailboxOwnerSid": "S-1-5-21-" + str(rng.randint(10**8, 10**9)),
        "MailboxOwnerUPN": mailbox,
        "OperationProperties": [
            {"Name": "MailAccessType", "Value": access},
            {"Name": "IsThrottled", "Value": "True" if throttled else "False"},
        ],
        "OrganizationName": "contoso.onmicrosoft.com",
        "OriginatingServer": f"PH0PR11MB{rng.randint(1000, 9999)} (15.20.8158.017)\r\n",
        "SessionId": session,
        "AppAccessContext": {"AADSessionId": guid(), "UniqueTokenId": guid()[:22]},
    }
    if rng.random() < 0.5:  # the order of OperationProperties is not guaranteed
        record["OperationProperties"] = list(reversed(record["OperationProperties"]))  # type: ignore[call-overload]
    if older_sync_shape:
        path = folders[0][0] if folders else "\\Inbox"
        record["Item"] = {
            "Id": "LgAAAAD" + guid().replace("-", "")[:40],
            "ParentFolder": {
                "Id": "LgAAAAB" + guid().replace("-", "")[:40],
                "Path": path,
                "Name": path.strip("\\"),
            },
        }
    else:
        record["Folders"] = [
            {
                "Id": "LgAAAAB" + guid().replace("-", "")[:40],
                "Path": path,
                "FolderItems": folder_items(ids, with_subjects),
            }
            for path, ids in (folders or [])
        ]
        record["OperationCount"] = sum(len(ids) for _, ids in (folders or [])) or 1
    return record


def other(when: datetime, operation: str, user: str) -> dict[str, object]:
    return {
        "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "Id": guid(),
        "Operation": operation,
        "OrganizationId": TENANT,
        "RecordType": 2,
        "UserId": user,
        "Workload": "Exchange",
        "ClientIPAddress": OFFICE_IP,
        "MailboxOwnerUPN": user,
    }


def add(record: dict[str, object]) -> None:
    rows.append(record)


start = datetime(2026, 11, 16, 7, 0, 0)
owner_desktop = "Client=MSExchangeRPC"
owner_owa = "Client=OWA;Action=ViaProxy"
owner_ios = "Client=OutlookService;Outlook-iOS/2.0;"
alice_sessions = {name: guid() for name in ("desktop", "owa", "ios")}
inbox = MESSAGES[:120]

# Alice, 4 working days, three clients.
for day in range(5):
    for hour in (8, 10, 13, 16):
        when = start + timedelta(days=day, hours=hour - 7, minutes=rng.randint(0, 50))
        ids = rng.sample(inbox, rng.randint(1, 4))
        add(
            mia(
                when,
                "alice@contoso.com",
                "alice@contoso.com",
                0,
                "Bind",
                OFFICE_IP,
                owner_desktop,
                alice_sessions["desktop"],
                [("\\Inbox", ids)],
            )
        )
    when = start + timedelta(days=day, hours=5, minutes=rng.randint(0, 50))
    add(
        mia(
            when,
            "alice@contoso.com",
            "alice@contoso.com",
            0,
            "Bind",
            OFFICE_IP,
            owner_owa,
            alice_sessions["owa"],
            [("\\Inbox", rng.sample(inbox, 2)), ("\\Sent Items", [MESSAGES[300]])],
        )
    )
    when = start + timedelta(days=day, hours=12, minutes=rng.randint(0, 50))
    add(
        mia(
            when,
            "alice@contoso.com",
            "alice@contoso.com",
            0,
            "Bind",
            "[2001:db8:10::5]:443",
            owner_ios,
            alice_sessions["ios"],
            [("\\Inbox", rng.sample(inbox, 3))],
            app_id=OUTLOOK_MOBILE,
            client_app_id=OUTLOOK_MOBILE,
            with_subjects=False,
        )
    )
    add(other(start + timedelta(days=day, hours=1), "MailboxLogin", "alice@contoso.com"))
    add(other(start + timedelta(days=day, hours=2), "Send", "alice@contoso.com"))

# Bob, Alice's delegate.
bob_session = guid()
for day in range(4):
    when = start + timedelta(days=day, hours=2, minutes=rng.randint(0, 50))
    add(
        mia(
            when,
            "alice@contoso.com",
            "bob@contoso.com",
            2,
            "Bind",
            "::ffff:203.0.113.22",
            owner_desktop,
            bob_session,
            [("\\Inbox", rng.sample(inbox, 2))],
        )
    )

# The attacker: Graph with an unknown app, then a desktop sync of the Inbox.
attacker_session = guid()
attack = datetime(2026, 11, 18, 2, 14, 0)
for burst in range(8):
    when = attack + timedelta(minutes=2 * burst, seconds=rng.randint(0, 59))
    ids = MESSAGES[120 + burst * 8 : 128 + burst * 8]
    add(
        mia(
            when,
            "alice@contoso.com",
            "alice@contoso.com",
            0,
            "Bind",
            f"{ATTACKER_IP}:{50100 + burst}",
            "Client=REST;Client=RESTSystem;;",
            attacker_session,
            [("\\Inbox", ids), ("\\Archive", [MESSAGES[200 + burst]])],
            app_id=GRAPH,
            client_app_id=ATTACKER_APP,
            with_subjects=burst % 2 == 0,
        )
    )
add(
    mia(
        attack + timedelta(minutes=21),
        "alice@contoso.com",
        "alice@contoso.com",
        0,
        "Sync",
        ATTACKER_IP,
        owner_desktop,
        attacker_session,
        [("\\Inbox", [])],
        older_sync_shape=True,
    )
)
rows.append(dict(rows[-3]))  # the same record exported twice

# An administrator in Dave's mailbox through EWS.
add(
    mia(
        datetime(2026, 11, 17, 15, 3, 11),
        "dave@contoso.com",
        "admin@contoso.com",
        1,
        "Bind",
        "198.51.100.7",
        "Client=WebServices;Microsoft Office/16.0;ExchangeServicesClient/15.0",
        guid(),
        [("\\Inbox", MESSAGES[330:335])],
    )
)

# finance@contoso.com: a shared mailbox read by many; throttled on 19 Nov.
for n in range(12):
    reader = f"user{n % 4}@contoso.com"
    add(
        mia(
            datetime(2026, 11, 19, 9, 0, 0) + timedelta(minutes=5 * n),
            "finance@contoso.com",
            reader,
            2,
            "Bind",
            OFFICE_IP,
            owner_desktop,
            guid(),
            [("\\Inbox", rng.sample(MESSAGES[340:400], 3))],
            throttled=n == 11,
        )
    )


def write() -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(PURVIEW_COLUMNS)
    ordered = sorted(rows, key=lambda r: str(r["CreationTime"]), reverse=True)  # Purview: newest first
    for record in ordered:
        writer.writerow(
            [
                record["Id"],
                str(record["CreationTime"]) + ".0000000Z",
                record["RecordType"],
                record["Operation"],
                record["UserId"],
                json.dumps(record, ensure_ascii=False),
                "",
                "",
            ]
        )
    OUT.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))


if __name__ == "__main__":
    write()
    print(f"wrote {OUT} ({len(rows)} rows)")

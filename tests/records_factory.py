"""Plain-dict builders for MailItemsAccessed audit records, shaped like real AuditData.

The defaults describe one ordinary Bind record: alice@contoso.com reading two messages in her
Inbox with Outlook desktop from the office. Tests override only what they are about.
"""

from __future__ import annotations

from typing import Any

from shared.model.event import AccessEvent
from shared.parse.normalize import normalize_record

TENANT = "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14"
GRAPH = "00000003-0000-0000-c000-000000000000"
OUTLOOK_MOBILE = "27922004-5251-4030-b22d-91ecd9a37ea4"
UNKNOWN_APP = "6a1b9f3e-2c4d-4e5f-8a7b-9c0d1e2f3a4b"
RECORD_ID = "5f1c2a7e-0b1d-4c55-9d0e-6a3f2b8c9d10"
SESSION_ID = "2b3830cf-e2b4-47be-93dc-085aa4a3907b"
AAD_SESSION_ID = "736db8e0-9704-42f2-843f-83c340f7f9fa"
MAILBOX_GUID = "0dcd61a6-c882-4a30-9d46-507794a00f39"
INBOX_ID = "LgAAAABd749d1b46af646a0a3bc660a22b63bcd"
SENT_ID = "LgAAAABd749d1b46af646a0a3bc660a22b6aaaa"
MID_1 = "<8c0a70a7a84567f9.13@PH0PR11MB0013.namprd11.prod.outlook.com>"
MID_2 = "<060bed79214119cf.50@PH0PR11MB0050.namprd11.prod.outlook.com>"
MID_3 = "<4fee8d493ce468a1.106@PH0PR11MB0106.namprd11.prod.outlook.com>"

ABSENT: Any = object()  # pass as a field value to remove that field from the record


def folder_item(message_id: str, *, subject: str | None = None, size: int = 48_213) -> dict[str, Any]:
    item: dict[str, Any] = {
        "InternetMessageId": message_id,
        "Id": "LgAAAADdd3eb828939446e4a6d18be9dede02da",
        "SizeInBytes": size,
    }
    if subject is not None:
        item["Subject"] = subject
    return item


def folder(path: str, *items: dict[str, Any], folder_id: str = INBOX_ID) -> dict[str, Any]:
    return {"Id": folder_id, "Path": path, "FolderItems": list(items)}


def operation_properties(access: str = "Bind", throttled: str | None = "False") -> list[dict[str, str]]:
    pairs = [{"Name": "MailAccessType", "Value": access}]
    if throttled is not None:
        pairs.append({"Name": "IsThrottled", "Value": throttled})
    return pairs


def mail_items_accessed(**fields: Any) -> dict[str, Any]:
    """A MailItemsAccessed record; keyword arguments replace fields (ABSENT removes one)."""
    record: dict[str, Any] = {
        "CreationTime": "2026-11-18T09:15:42",
        "Id": RECORD_ID,
        "Operation": "MailItemsAccessed",
        "OrganizationId": TENANT,
        "RecordType": 50,
        "ResultStatus": "Succeeded",
        "UserKey": "1003F777396F1BDA",
        "UserType": 0,
        "Version": 1,
        "Workload": "Exchange",
        "ClientIPAddress": "203.0.113.10",
        "UserId": "alice@contoso.com",
        "AppId": "",
        "ClientAppId": "",
        "ClientInfoString": "Client=MSExchangeRPC",
        "ExternalAccess": False,
        "InternalLogonType": 0,
        "LogonType": 0,
        "LogonUserSid": "S-1-5-21-545102221",
        "MailboxGuid": MAILBOX_GUID,
        "MailboxOwnerSid": "S-1-5-21-607181913",
        "MailboxOwnerUPN": "alice@contoso.com",
        "OperationProperties": operation_properties(),
        "OrganizationName": "contoso.onmicrosoft.com",
        "OriginatingServer": "PH0PR11MB6049 (15.20.8158.017)\r\n",
        "SessionId": SESSION_ID,
        "AppAccessContext": {"AADSessionId": AAD_SESSION_ID, "UniqueTokenId": "15f9e55f-db70-4423"},
        "Folders": [folder("\\Inbox", folder_item(MID_1), folder_item(MID_2))],
        "OperationCount": 2,
    }
    for name, value in fields.items():
        if value is ABSENT:
            record.pop(name, None)
        else:
            record[name] = value
    return record


def other_operation(operation: str = "MailboxLogin") -> dict[str, Any]:
    return {
        "CreationTime": "2026-11-18T09:10:00",
        "Id": "9d0e6a3f-2b8c-4d10-8c55-5f1c2a7e0b1d",
        "Operation": operation,
        "RecordType": 2,
        "Workload": "Exchange",
        "UserId": "alice@contoso.com",
        "MailboxOwnerUPN": "alice@contoso.com",
    }


def graph_record(audit_data: Any) -> dict[str, Any]:
    """A Microsoft Graph auditLogRecord (security/auditLog/queries/{id}/records) around AuditData."""
    return {
        "id": "e2b4c3a0-47be-93dc-085a-a4a3907b2b38",
        "createdDateTime": "2026-11-18T09:15:42Z",
        "auditLogRecordType": "exchangeItemAggregated",
        "operation": "mailitemsaccessed",
        "organizationId": TENANT,
        "userType": "regular",
        "userId": "alice@contoso.com",
        "service": "Exchange",
        "objectId": "",
        "userPrincipalName": "alice@contoso.com",
        "clientIp": "203.0.113.10",
        "administrativeUnits": [],
        "auditData": audit_data,
    }


def event(**fields: Any) -> AccessEvent:
    """The normalized event of `mail_items_accessed(**fields)`; fails the test if there is none."""
    result = normalize_record(mail_items_accessed(**fields))
    assert result is not None
    return result


def row(**fields: Any) -> dict[str, Any]:
    return event(**fields).row()


# Column layouts of the two CSV exports (a Purview audit search, Search-UnifiedAuditLog | Export-Csv).
EXPORT_CSV_TYPE_LINE = "#TYPE Deserialized.Microsoft.Exchange.Management.SystemConfigurationTasks.AuditRecord"
EXPORT_CSV_COLUMNS = (
    "RunspaceId",
    "RecordType",
    "CreationDate",
    "UserIds",
    "Operations",
    "AuditData",
    "ResultIndex",
    "ResultCount",
    "Identity",
    "IsValid",
    "ObjectState",
)

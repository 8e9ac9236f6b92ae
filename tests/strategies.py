"""Hypothesis strategies for MailItemsAccessed audit records shaped like real ones, and for
serializing them into every export format `shared.readers` accepts.

A drawn `FuzzInput` holds distinct records (MailItemsAccessed and a few other operations), the
export files they are written to (records may repeat, in one file or across files) and, for each
record, what it must produce, computed here from the drawn values and never by the code under
test: its mailbox key, its Id, its messages (InternetMessageId and whether a subject is given),
whether it is throttled and which folders a Sync record names.

Shapes follow the Management Activity API schema (PascalCase AuditData, zone-less CreationTime,
OperationProperties Name/Value pairs in any order, Folders[].FolderItems[], the older
Item.ParentFolder shape for Sync), the Purview audit search CSV export, Export-Csv files of
Search-UnifiedAuditLog and Graph audit-query records (`auditData`).
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from shared.parse.readers import PURVIEW_COLUMNS
from tests.records_factory import EXPORT_CSV_COLUMNS, EXPORT_CSV_TYPE_LINE

Json = dict[str, Any]

# The report range of a run: records fall on the three days before today (UTC).
TODAY = datetime.now(UTC).date()
FIRST_DAY = TODAY - timedelta(days=3)
BASE_TIME = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
SPAN_SECONDS = 3 * 24 * 3600 - 1

# Reader formats, with the variants each one takes.
MANAGEMENT_API = "management-api"  # a JSON array of records
GRAPH_PAGE = "graph-page"  # one {"value": [...]} response page (one line or pretty-printed)
GRAPH_ARRAY = "graph-array"  # a JSON array of Graph auditLogRecords
GRAPH_PAGE_LINES = "graph-page-lines"  # response pages saved one a line
JSON_LINES = "jsonl"  # one classic record a line
GRAPH_LINES = "graph-jsonl"  # one Graph auditLogRecord a line
PURVIEW_CSV = "purview-csv"  # Purview audit search export: UTF-8 with BOM
EXPORT_CSV = "export-csv"  # Search-UnifiedAuditLog | Export-Csv: #TYPE line, UTF-8 or UTF-16
FILE_FORMATS = (
    MANAGEMENT_API,
    GRAPH_PAGE,
    GRAPH_ARRAY,
    GRAPH_PAGE_LINES,
    JSON_LINES,
    GRAPH_LINES,
    PURVIEW_CSV,
    EXPORT_CSV,
)

SERVICE_ACCOUNT = "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
OUTLOOK_MOBILE_APP_ID = "27922004-5251-4030-b22d-91ecd9a37ea4"
CLIENT_STRINGS = (
    "Client=MSExchangeRPC",
    "Client=OWA;Action=ViaProxy",
    "Client=OutlookService;Outlook-iOS/2.0;",
    "Client=REST;Client=RESTSystem;;",
    "Client=WebServices;Microsoft Office/16.0;ExchangeServicesClient/15.0",
    "Client=POP3/IMAP4;Protocol=IMAP4",
    "Client=ActiveSync;UserAgent=Apple-iPhone",
    "=cmd|' /C calc'!A0",
    "\x1b]52;c;ZXZpbA==\x07",
    "",
)
CLIENT_IPS = (
    "203.0.113.10",
    "185.220.101.45:51234",
    "[2001:db8:10::5]:443",
    "::ffff:198.51.100.7",
    "2001:db8::1",
    "",
    "not an address",
)
OTHER_OPERATIONS = ("MailboxLogin", "Send", "SoftDelete", "Update", "MoveToDeletedItems", "FolderBind")

# Text an attacker can put in a subject (or a folder name, a client string) and that has broken
# spreadsheets, terminals and JSON encoders before.
ODD_TEXT = (
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/x","Invoice")',
    "+SUM(1,2)",
    "-2+3",
    "@SUM(A1:A2)",
    "\tleading tab",
    "<script>alert(1)</script>",
    "\u202eexe.fdp",  # right-to-left override
    "שלום, \u05e2\u05d5\u05dc\u05dd",  # Hebrew (RTL)
    "مرحبا بالعالم",  # Arabic (RTL)
    "e\u0301\u0302\u0303\u0304 combining",
    "Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358a\u0359\u035a\u035b\u035c\u035d\u035elgo",
    "😀🔥👩‍👩‍👧‍👦 emoji",
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: writes the clipboard
    "\x1b[2K\x1b[1A",  # erase line, cursor up
    "\x00nul\x01\x7f\x9f",
    "line\r\nbreak\rcarriage",
    "separators \u2028 \u2029 \x85 \x1c\x1d\x1e",
    "\ufeffBOM inside",
    "\ud800 lone high surrogate",
    "lone low surrogate \udfff",
    "pair split \ud83d",
    "quotes \" ' ; , \\ /",
    "Contrat de confidentialité \u2013 signé",
    "顧客リスト 2026",
    "auditData",
    '"auditData"',
    "#TYPE not a type line",
)

_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)


def _clean(text: str) -> bool:
    """No leading/trailing whitespace: readers trim values, so such text would not round-trip."""
    return bool(text) and text == text.strip()


def as_reported(text: str) -> str:
    """Text as every report must show it: a lone surrogate (not valid Unicode) as U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)


def with_lone_surrogate(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Text with one lone surrogate inside: serialized, it becomes an escape such as "\\ud800"."""
    return st.builds(lambda head, s, tail: head + s + tail, text, _SURROGATES, text)


def weighted(*branches: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen with the given weights; shrinks toward the first."""
    total = sum(weight for weight, _ in branches)

    @st.composite
    def choose(draw: st.DrawFn) -> Any:
        pick = draw(st.integers(0, total - 1))
        for weight, strategy in branches:
            if pick < weight:
                return draw(strategy)
            pick -= weight
        raise AssertionError("unreachable")

    return choose()


@functools.cache
def long_text(low: int, high: int, alphabet: str = "aé日😀") -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, st.sampled_from(alphabet), st.integers(low, high))


@functools.cache
def free_text(max_size: int = 60, long: bool = True) -> st.SearchStrategy[str]:
    """Subjects, folder names, client strings: anything, odd Unicode and lone surrogates included;
    now and then thousands of characters."""
    return weighted(
        (15, st.sampled_from(ODD_TEXT)),
        (20, st.text(max_size=max_size)),
        (4, with_lone_surrogate(st.text(max_size=10))),
        (1 if long else 0, long_text(1000, 20000)),
    )


@functools.cache
def guids() -> st.SearchStrategy[str]:
    return st.uuids().map(str)


# Ids that tools which rewrite exports produce, and the characters Table keys forbid.
ODD_IDS = (
    "id with spaces",
    "é-accented-ïd",
    "a/b",
    "a\\b",
    "a#b",
    "a?b=c&d",
    "100%",
    "%2F%00",
    "日本語のID",
    "😀",
    "-1",
    "=1+1",
    "@handle",
    "'quoted'",
    '"double"',
    "tab\tinside",
    "nul\x00inside",
    "del\x7finside",
    "\u202eright-to-left",
)


@functools.cache
def record_ids() -> st.SearchStrategy[str]:
    return weighted(
        (10, guids()),
        (2, guids().map(str.upper)),
        (6, st.sampled_from(ODD_IDS)),
        (6, st.text(min_size=1, max_size=40).filter(_clean)),
        (1, long_text(300, 1200, "xé/")),
    )


_UPN_LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._'!#^~+-]{0,19}", fullmatch=True)
_UPN_DOMAIN = st.from_regex(r"[a-z0-9][a-z0-9-]{0,11}\.(com|example|onmicrosoft\.com)", fullmatch=True)


@dataclass(frozen=True)
class Mailbox:
    """A mailbox as records name it: by UPN, or (GUID-only records) by MailboxGuid alone."""

    upn: str | None
    guid: str

    @property
    def key(self) -> str:
        """What the mailbox is reported by: the UPN, else the GUID, lower-cased."""
        return (self.upn or self.guid).lower()


@functools.cache
def mailboxes() -> st.SearchStrategy[Mailbox]:
    upns = st.builds(lambda local, domain: f"{local}@{domain}", _UPN_LOCAL, _UPN_DOMAIN)
    return st.builds(Mailbox, upn=st.one_of(upns, upns, st.none()), guid=guids())


def _case_variant(value: str, style: int) -> str:
    return (value, value.upper(), value.title())[style]


@functools.cache
def message_ids() -> st.SearchStrategy[str]:
    """InternetMessageIds: Exchange and Gmail shapes, odd characters, very long ones."""
    local = weighted(
        (8, st.from_regex(r"[0-9a-f]{16}\.[0-9]{1,5}", fullmatch=True)),
        (3, st.from_regex(r"CA\+[0-9a-f]{16}=x/[0-9]{1,3}", fullmatch=True)),
        (5, st.text(min_size=1, max_size=30)),
        (4, st.sampled_from(ODD_IDS)),
        (1, long_text(1000, 3000, "x")),
    )
    domain = st.sampled_from(
        ("PH0PR11MB0013.namprd11.prod.outlook.com", "mail.gmail.com", "contoso.com", "例え.jp", "x")
    )
    return st.builds(lambda lo, do: f"<{lo}@{do}>", local, domain)


@functools.cache
def sizes() -> st.SearchStrategy[object]:
    """SizeInBytes: ordinary, beyond Int32, up to 2**40 and beyond 64 bits, as text, or absent."""
    return weighted(
        (10, st.integers(0, 2_000_000)),
        (4, st.integers(2**31 - 2, 2**40)),
        (2, st.sampled_from([3_000_000_000, 2**63 - 1, 2**64 + 1, 2**70, -1])),
        (1, st.integers(0, 10**12).map(str)),
        (1, st.none()),
        (2, st.just(MISSING)),
    )


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a field the record leaves out


@dataclass(frozen=True)
class Message:
    """One FolderItem as drawn: what the record names and must be reported."""

    internet_message_id: str
    subject: str | None  # None: the item carries no Subject
    size: object  # what SizeInBytes holds, or MISSING

    @property
    def has_subject(self) -> bool:
        return self.subject is not None and bool(self.subject.strip())

    def item(self, item_id: str) -> Json:
        item: Json = {"InternetMessageId": self.internet_message_id, "Id": item_id}
        if self.size is not MISSING:
            item["SizeInBytes"] = self.size
        if self.subject is not None:
            item["Subject"] = self.subject
        return item


@dataclass(frozen=True)
class Folder:
    path: str  # as the record writes it, with the leading backslash
    folder_id: str
    messages: tuple[Message, ...]

    @property
    def shown(self) -> str:
        """The folder as reports show it: no leading backslash, lone surrogates as U+FFFD."""
        return as_reported(self.path.lstrip("\\"))


FOLDER_PATHS = (
    "\\Inbox",
    "\\Sent Items",
    "\\Archive",
    "\\Inbox\\Projects",
    "\\Boîte de réception",
    "\\受信トレイ",
    "\\=cmd|' /C calc'!A0",
    "\\-2+3",
)


@functools.cache
def folder_paths() -> st.SearchStrategy[str]:
    """`\\` and a name; the name never starts with a backslash nor has surrounding whitespace."""
    names = st.one_of(st.sampled_from(ODD_TEXT), st.text(min_size=1, max_size=30))
    odd = names.filter(lambda name: _clean(name) and not name.startswith("\\"))
    return st.one_of(st.sampled_from(FOLDER_PATHS), odd.map(lambda name: "\\" + name))


_HEX_32 = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
_BULK_PREFIX = st.one_of(st.from_regex(r"[0-9a-f]{8,40}", fullmatch=True), st.text(min_size=1, max_size=40))


@functools.cache
def _messages(pool: tuple[str, ...]) -> st.SearchStrategy[Message]:
    ids = st.one_of(st.sampled_from(pool), message_ids()) if pool else message_ids()
    return st.builds(Message, ids, st.one_of(st.none(), free_text()), sizes())


def bulk_messages(prefix: str, count: int, subject: str | None, size: int) -> tuple[Message, ...]:
    """A Bind of thousands of messages, drawn cheaply: numbered ids around one drawn prefix."""
    domain = "PH0PR11MB0013.namprd11.prod.outlook.com"
    return tuple(Message(f"<{prefix}.{n}@{domain}>", subject, size) for n in range(count))


@st.composite
def folders(draw: st.DrawFn, pool: tuple[str, ...], *, with_items: bool, bulk: bool = False) -> Folder:
    path = draw(folder_paths())
    folder_id = "LgAAAAB" + draw(_HEX_32)
    if not with_items:
        return Folder(path, folder_id, ())
    if bulk:  # a Bind of hundreds or thousands of messages
        prefix = draw(_BULK_PREFIX)
        subject = draw(st.one_of(st.none(), free_text(max_size=40, long=False)))
        count = draw(st.integers(100, 4000))
        return Folder(path, folder_id, bulk_messages(prefix, count, subject, draw(st.integers(0, 2**40))))
    return Folder(path, folder_id, tuple(draw(st.lists(_messages(pool), max_size=6))))


@dataclass(frozen=True)
class AuditRecord:
    """One drawn audit record and what it must produce."""

    data: Json  # the AuditData, as JSON would hold it (strings may hold lone surrogates)
    record_id: str
    mailbox: str  # the mailbox key it belongs to
    user: str
    creation_time: str
    mail_items_accessed: bool
    access: str = ""  # Bind or Sync
    throttled: bool = False
    messages: tuple[Message, ...] = ()
    synced_folders: tuple[str, ...] = ()  # Sync: the folders as reports show them

    @property
    def message_ids(self) -> list[str]:
        """Distinct InternetMessageIds in record order."""
        return list(dict.fromkeys(m.internet_message_id for m in self.messages))

    def __repr__(self) -> str:  # what Hypothesis prints: the record as it goes into the files
        return f"AuditRecord({_summarized(self.data)!r})"


def _summarized(value: Any) -> Any:
    """Long lists (a bulk Bind's FolderItems) shortened to their first items and a count."""
    if isinstance(value, dict):
        return {key: _summarized(inner) for key, inner in value.items()}
    if isinstance(value, list):
        if len(value) > 20:
            return [*value[:3], f"... {len(value) - 3} more like these"]
        return [_summarized(inner) for inner in value]
    if isinstance(value, str) and len(value) > 200:
        return f"{value[:40]}... ({len(value)} characters)"
    return value


def _creation_time(offset: int, style: int) -> str:
    moment = BASE_TIME + timedelta(seconds=offset)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return (text, text + "Z", text + ".0000000Z", text + "+00:00")[style]


def _operation_properties(access: str, throttled: bool, flag_style: int, reverse: bool) -> list[Json]:
    properties: list[Json] = [{"Name": "MailAccessType", "Value": access}]
    if throttled or flag_style:  # the IsThrottled pair is sometimes absent when False
        properties.append({"Name": "IsThrottled", "Value": "True" if throttled else "False"})
    return properties[::-1] if reverse else properties


def _lower_keys(value: Any) -> Any:
    """Some SIEM exports lower-case every key."""
    if isinstance(value, dict):
        return {key.lower(): _lower_keys(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_lower_keys(inner) for inner in value]
    return value


@st.composite
def audit_records(
    draw: st.DrawFn,
    boxes: Sequence[Mailbox],
    pool: tuple[str, ...],
    actors: Sequence[str],
    bulk: bool = False,
) -> AuditRecord:
    """A MailItemsAccessed record (Bind, Sync, throttled) or, now and then, another operation.
    `bulk`: a Bind record naming hundreds or thousands of messages."""
    box = draw(st.sampled_from(boxes))
    record_id = draw(record_ids())
    user = draw(st.sampled_from([*(b.upn for b in boxes if b.upn), *actors]))
    when = _creation_time(draw(st.integers(0, SPAN_SECONDS)), draw(st.integers(0, 3)))
    data: Json = {
        "CreationTime": when,
        "Id": record_id,
        "Operation": "MailItemsAccessed",
        "OrganizationId": "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14",
        "RecordType": 50,
        "ResultStatus": "Succeeded",
        "UserKey": "1003F777396F1BDA",
        "UserType": 0,
        "Version": 1,
        "Workload": "Exchange",
        "ClientIPAddress": draw(st.sampled_from(CLIENT_IPS)),
        "UserId": user,
        "AppId": draw(st.sampled_from(["", GRAPH_APP_ID, OUTLOOK_MOBILE_APP_ID, "not-a-guid"])),
        "ClientAppId": draw(
            st.sampled_from(["", OUTLOOK_MOBILE_APP_ID, "9e4b2a1c-0000-4000-8000-000000000001"])
        ),
        "ClientInfoString": draw(st.one_of(st.sampled_from(CLIENT_STRINGS), free_text(max_size=40))),
        "ExternalAccess": draw(st.booleans()),
        "InternalLogonType": 0,
        "LogonType": draw(st.one_of(st.integers(0, 6), st.sampled_from(["Owner", "2", 99, None]))),
        "MailboxGuid": _case_variant(box.guid, draw(st.integers(0, 1))),
    }
    if box.upn:
        data["MailboxOwnerUPN"] = _case_variant(box.upn, draw(st.integers(0, 2)))
    elif draw(st.booleans()):
        data["MailboxOwnerUPN"] = ""
    other = not bulk and draw(st.integers(0, 7)) == 7
    operation = draw(st.sampled_from(OTHER_OPERATIONS)) if other else "MailItemsAccessed"
    data["Operation"] = operation if draw(st.integers(0, 9)) else operation.lower()
    data["OriginatingServer"] = "PH0PR11MB6049 (15.20.8158.017)\r\n"
    data["SessionId"] = draw(st.one_of(guids(), st.just(""), st.sampled_from(ODD_IDS)))
    data["AppAccessContext"] = {"AADSessionId": draw(guids()), "UniqueTokenId": "15f9e55f-db70-4423-a1a"}
    mia = operation == "MailItemsAccessed"
    if not mia:
        message = draw(_messages(pool))
        data["Item"] = {
            **message.item("LgAAAAD0"),
            "ParentFolder": {"Id": "LgAAAAB1", "Path": "\\Inbox", "Name": "Inbox"},
        }
        return AuditRecord(
            _maybe_lower(draw, data), record_id, box.key, user, when, mail_items_accessed=False
        )
    sync = not bulk and draw(st.integers(0, 3)) == 3
    throttled = not sync and draw(st.integers(0, 5)) == 5
    access = "Sync" if sync else "Bind"
    properties = _operation_properties(access, throttled, draw(st.integers(0, 5)), draw(st.booleans()))
    data["OperationProperties"] = properties
    if sync and draw(st.booleans()):  # Sync seen through the older ExchangeItem shape
        path = draw(folder_paths())
        data["RecordType"] = 2
        data["Item"] = {"Id": "LgAAAAD1", "ParentFolder": {"Id": "LgAAAAB2", "Path": path}}
        shown = as_reported(path.strip().lstrip("\\"))
        return AuditRecord(
            _maybe_lower(draw, data), record_id, box.key, user, when, True, access, throttled, (), (shown,)
        )
    drawn = draw(st.lists(folders(pool, with_items=not sync), min_size=1 if sync else 0, max_size=3))
    if bulk:
        drawn.append(draw(folders(pool, with_items=True, bulk=True)))
    data["Folders"] = [
        {
            "Id": folder.folder_id,
            "Path": folder.path,
            "FolderItems": [m.item(f"LgAAAAD{n}") for n, m in enumerate(folder.messages)],
        }
        for folder in drawn
    ]
    messages = tuple(m for folder in drawn for m in folder.messages)
    data["OperationCount"] = draw(
        st.one_of(st.just(max(1, len(messages))), st.sampled_from([None, 0, 2**31, 2**40, "7"]))
    )
    synced = tuple(folder.shown for folder in drawn) if sync else ()
    return AuditRecord(
        _maybe_lower(draw, data), record_id, box.key, user, when, True, access, throttled, messages, synced
    )


def _maybe_lower(draw: st.DrawFn, data: Json) -> Json:
    return _lower_keys(data) if draw(st.integers(0, 14)) == 14 else data


def record_series(template: AuditRecord, count: int) -> list[AuditRecord]:
    """`count` records like `template`, a second apart, with Ids derived from its Id: enough for a
    mailbox's events view to run over a report page."""
    series = []
    start = datetime.fromisoformat(template.creation_time.removesuffix("Z").split(".")[0]).replace(tzinfo=UTC)
    for n in range(count):
        record_id = f"{template.record_id} {n}"
        when = (
            min(start, BASE_TIME + timedelta(seconds=SPAN_SECONDS - count)) + timedelta(seconds=n)
        ).strftime("%Y-%m-%dT%H:%M:%S")
        data = {**template.data}
        id_key = "Id" if "Id" in data else "id"
        time_key = "CreationTime" if "CreationTime" in data else "creationtime"
        data[id_key] = record_id
        data[time_key] = when
        series.append(
            AuditRecord(
                data,
                record_id,
                template.mailbox,
                template.user,
                when,
                template.mail_items_accessed,
                template.access,
                template.throttled,
                template.messages,
                template.synced_folders,
            )
        )
    return series


# ---------------------------------------------------------------------------------------------
# Serialization: the JSON text is written here, so lone surrogates reach the bytes as escapes.

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(value: object, *, ascii_only: bool, indent: int | None = None) -> str:
    """JSON as an export tool writes it. Non-ASCII raw (UTF-8) or as \\u escapes; a lone surrogate,
    which no Unicode encoding can carry, always as its \\u escape (valid JSON text)."""
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    if ascii_only:
        return text
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def graph_record(record: AuditRecord, audit_data_as_text: bool, ascii_only: bool) -> Json:
    """A Graph security auditLogRecord wrapping the classic AuditData."""
    return {
        "@odata.type": "#microsoft.graph.security.auditLogRecord",
        "id": record.record_id,
        "createdDateTime": record.creation_time,
        "auditLogRecordType": "exchangeItemAggregated",
        "operation": "mailItemsAccessed",
        "organizationId": "b7e1c3a0-4d2f-4e8a-9c61-0f5a2d7e9b14",
        "userPrincipalName": record.user,
        "auditData": json_text(record.data, ascii_only=ascii_only) if audit_data_as_text else record.data,
    }


@dataclass(frozen=True)
class ExportFile:
    """One export file: its format, its records (in order, repeats allowed) and how it is written."""

    fmt: str
    records: tuple[AuditRecord, ...]
    ascii_only: bool = False
    pretty: bool = False
    audit_data_as_text: bool = False
    crlf: bool = False
    utf16: bool = False
    type_line: bool = True
    page_size: int = 2
    import_with_cli: bool = False

    def to_bytes(self) -> bytes:
        text = self._text()
        if self.fmt == PURVIEW_CSV:
            return codecs.BOM_UTF8 + text.encode("utf-8")
        if self.fmt == EXPORT_CSV and self.utf16:
            return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
        return text.encode("utf-8")

    def _lines(self, values: Iterable[object]) -> str:
        end = "\r\n" if self.crlf else "\n"
        return "".join(json_text(value, ascii_only=self.ascii_only) + end for value in values)

    def _graph(self) -> list[Json]:
        return [graph_record(r, self.audit_data_as_text, self.ascii_only) for r in self.records]

    def _pages(self) -> list[Json]:
        records = self._graph()
        size = max(1, self.page_size)
        return [
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#records",
                "value": records[i : i + size],
            }
            for i in range(0, len(records), size)
        ]

    def _text(self) -> str:
        indent = 2 if self.pretty else None
        if self.fmt == MANAGEMENT_API:
            return json_text([r.data for r in self.records], ascii_only=self.ascii_only, indent=indent)
        if self.fmt == GRAPH_ARRAY:
            return json_text(self._graph(), ascii_only=self.ascii_only, indent=indent)
        if self.fmt == GRAPH_PAGE:
            page = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#records",
                "@odata.nextLink": "https://graph.microsoft.com/v1.0/security/auditLog/queries/q/records?$skiptoken=x",
                "value": self._graph(),
            }
            return json_text(page, ascii_only=self.ascii_only, indent=indent)
        if self.fmt == GRAPH_PAGE_LINES:
            return self._lines(self._pages())
        if self.fmt == JSON_LINES:
            return self._lines(r.data for r in self.records)
        if self.fmt == GRAPH_LINES:
            return self._lines(self._graph())
        if self.fmt == PURVIEW_CSV:
            return self._csv(PURVIEW_COLUMNS, self._purview_row, type_line=False)
        if self.fmt == EXPORT_CSV:
            return self._csv(EXPORT_CSV_COLUMNS, self._export_row, type_line=self.type_line)
        raise ValueError(f"unknown export format {self.fmt!r}")

    def _csv(self, columns: tuple[str, ...], row: Any, *, type_line: bool) -> str:
        out = io.StringIO()
        if type_line:
            out.write(EXPORT_CSV_TYPE_LINE + "\r\n")
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(columns)
        for index, record in enumerate(self.records):
            writer.writerow(row(index, record))
        return out.getvalue()

    def _audit_data_cell(self, record: AuditRecord) -> str:
        return json_text(record.data, ascii_only=self.ascii_only)

    def _purview_row(self, index: int, record: AuditRecord) -> list[str]:
        operation = "MailItemsAccessed" if record.mail_items_accessed else "MailboxLogin"
        return [
            _csv_safe(record.record_id),
            record.creation_time[:19] + ".0000000Z",
            "50",
            operation,
            _csv_safe(record.user),
            self._audit_data_cell(record),
            "",
            "",
        ]

    def _export_row(self, index: int, record: AuditRecord) -> list[str]:
        return [
            "8d1e2f3a-0000-4000-8000-000000000000",
            "ExchangeItemAggregated",
            record.creation_time[:19].replace("T", " "),
            _csv_safe(record.user),
            "MailItemsAccessed" if record.mail_items_accessed else "MailboxLogin",
            self._audit_data_cell(record),
            str(index + 1),
            str(len(self.records)),
            f"audit-record-{index}",
            "True",
            "Unchanged",
        ]


def _csv_safe(value: str) -> str:
    """Columns beside AuditData hold the same values; a lone surrogate cannot be written to a
    file there, so it is replaced as an exporting tool's encoder would."""
    return _LONE_SURROGATE.sub("\ufffd", value)


@dataclass(frozen=True)
class FuzzInput:
    """Distinct records, the mailboxes they belong to, and the export files they are written to."""

    mailboxes: tuple[Mailbox, ...]
    records: tuple[AuditRecord, ...] = field(repr=False)
    files: tuple[ExportFile, ...]

    @property
    def accessed(self) -> list[AuditRecord]:
        """The MailItemsAccessed records, each distinct record once."""
        return [record for record in self.records if record.mail_items_accessed]

    def of(self, mailbox: str) -> list[AuditRecord]:
        return [record for record in self.accessed if record.mailbox == mailbox]


ACTORS = (
    SERVICE_ACCOUNT,
    "S-1-5-21-545102221-607181913-892598749-1105",
    "mallory@evil.example",
    "Admin@Contoso.onmicrosoft.com",
    "",
    "ünïcödé user",
)


def _file(fmt: str, records: Sequence[AuditRecord]) -> st.SearchStrategy[ExportFile]:
    return st.builds(
        ExportFile,
        fmt=st.just(fmt),
        records=st.just(tuple(records)),
        ascii_only=st.booleans(),
        pretty=st.booleans(),
        audit_data_as_text=st.booleans(),
        crlf=st.booleans(),
        utf16=st.booleans(),
        type_line=st.booleans(),
        page_size=st.integers(1, 4),
        import_with_cli=st.integers(0, 3).map(lambda n: n == 3),
    )


@st.composite
def fuzz_inputs(draw: st.DrawFn, max_records: int = 10) -> FuzzInput:
    """Records of one to three mailboxes written to one to three files of random formats, some
    records twice (same Id, same content) in one file or across files."""
    boxes = draw(st.lists(mailboxes(), min_size=1, max_size=3, unique_by=lambda b: b.key))
    pool = tuple(draw(st.lists(message_ids(), min_size=1, max_size=6, unique=True)))
    bulk = draw(st.integers(0, 9)) == 9  # rare: one record naming thousands of messages
    records = draw(
        st.lists(
            audit_records(boxes, pool, ACTORS),
            min_size=0 if bulk else 1,
            max_size=max_records,
            unique_by=lambda r: r.record_id,
        )
    )
    if bulk:
        taken = {r.record_id for r in records}
        big = draw(audit_records(boxes, pool, ACTORS, bulk=True).filter(lambda r: r.record_id not in taken))
        records.insert(0, big)
    small = [r for r in records if len(r.messages) <= 20]
    if small and draw(st.integers(0, 7)) == 7:  # rare: one mailbox over a report page of records
        series = record_series(small[0], draw(st.integers(100, 130)))
        taken = {r.record_id for r in records}
        records += [r for r in series if r.record_id not in taken]
    file_count = draw(st.integers(1, min(3, len(FILE_FORMATS))))
    placed: list[list[AuditRecord]] = [[] for _ in range(file_count)]
    for record in records:
        placed[draw(st.integers(0, file_count - 1))].append(record)
    for record in draw(st.lists(st.sampled_from(records), max_size=4)):  # the same record again
        placed[draw(st.integers(0, file_count - 1))].append(record)
    formats = draw(st.permutations(FILE_FORMATS))  # several files: several formats
    files = []
    for contents, fmt in zip(placed, formats[:file_count], strict=True):
        if contents:
            files.append(draw(_file(fmt, draw(st.permutations(contents)))))
    return FuzzInput(tuple(boxes), tuple(records), tuple(files))

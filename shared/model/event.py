"""The normalized MailItemsAccessed event: one row per audit record, with the messages it names and
where it was read from (docs/architecture.md#the-normalized-event). Pure: no I/O."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import MISSING, dataclass, field, fields, make_dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from shared.model.times import iso_z

# Fields a source may have no room for: Sentinel's OfficeActivity table has no OperationCount
# column (https://learn.microsoft.com/azure/azure-monitor/reference/tables/officeactivity), so its
# copy of a record carries None there, while the Management API's carries the count.
SPARSE_FIELDS: tuple[str, ...] = ("operation_count",)
# `Repaired` paths saying the source had already cut the record's messages off (a depth-truncated
# PowerShell export, shared/parse/powershell.py): that copy has no messages to compare.
CUT_MESSAGES = re.compile(r"^(?:Folders\[\d+\]\.FolderItems|Item\.InternetMessageId)$", re.IGNORECASE)

# Column order shared by CSV headers, JSON keys and the HTML report.
EVENT_COLUMNS: tuple[str, ...] = (
    "TimeStamp",
    "Mailbox",
    "User",
    "LogonType",
    "Access",
    "Throttled",
    "Folders",
    "FolderIds",
    "OperationCount",
    "MessageCount",
    "ClientIP",
    "ClientInfo",
    "ClientFamily",
    "AppId",
    "ClientAppId",
    "AppName",
    "SessionId",
    "AADSessionId",
    "ExternalAccess",
    "OriginatingServer",
    "RecordId",
    "Messages",
    "Repaired",
    "Conflict",
    # Provenance, always last: where the row came from.
    "SourceBlob",
    "SourceSha256",
    "SourceIndex",
)
PROVENANCE_COLUMNS: tuple[str, ...] = ("SourceBlob", "SourceSha256", "SourceIndex")


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One accessed message as the record names it."""

    internet_message_id: str
    folder: str
    subject: str = ""
    size_in_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One normalized MailItemsAccessed record."""

    timestamp: datetime
    mailbox: str
    user: str
    logon_type: str
    access: str
    throttled: bool
    folders: tuple[str, ...]
    folder_ids: tuple[str, ...]
    operation_count: int | None
    client_ip: str
    client_info: str
    client_family: str
    app_id: str
    client_app_id: str
    app_name: str
    session_id: str
    aad_session_id: str
    external_access: bool
    originating_server: str
    record_id: str
    items: tuple[MessageRef, ...] = ()
    # JSON paths of source values that could not be kept as they were (shared/parse/text.py).
    repaired: tuple[str, ...] = ()
    # Another copy of this record Id, with different content, was seen and kept aside.
    conflict: bool = False
    # Provenance: the raw blob (or file) the record was read from, its SHA-256 (of the
    # uncompressed bytes) and the record's 0-based position among the records a reader finds in it.
    source_blob: str = ""
    source_sha256: str = ""
    source_index: int | None = None

    def content_sha256(self) -> str:
        """SHA-256 of what the record says, to tell a repeated record from a different one with
        the same Id. Provenance, the conflict mark and our own decodings (ClientFamily, AppName,
        which later versions may decode better) are left out."""
        facts = self._content_facts()
        facts[0] = iso_z(self.timestamp)
        return hashlib.sha256(orjson.dumps(facts)).hexdigest()

    def content_digest(self) -> bytes:
        """128 bits of SHA-256 over the facts content_sha256 hashes, but with the time written by
        orjson rather than strftime (half the cost), with its microseconds: to tell, within one
        run, a repeated record from a different copy, never stored. Equal digests mean equal facts
        (short of a 128-bit collision); copies whose digests differ go on to `agrees_with`."""
        return hashlib.sha256(orjson.dumps(self._content_facts())).digest()[:16]

    def _content_facts(self) -> list[Any]:
        return [
            self.timestamp,
            self.mailbox,
            self.user,
            self.logon_type,
            self.access,
            self.throttled,
            self.folders,
            self.folder_ids,
            self.operation_count,
            self.client_ip,
            self.client_info,
            self.app_id,
            self.client_app_id,
            self.session_id,
            self.aad_session_id,
            self.external_access,
            self.originating_server,
            self.record_id,
            [[i.internet_message_id, i.folder, i.subject, i.size_in_bytes] for i in self.items],
            self.repaired,
        ]

    def agrees_with(self, other: AccessEvent) -> bool:
        """The same content, or the same once what one copy's source has no room for is taken
        from the other: a field (SPARSE_FIELDS), or the messages a depth-truncated PowerShell
        export cut off (CUT_MESSAGES in `repaired`). Such a copy says less, not something else."""
        if self.content_sha256() == other.content_sha256():
            return True
        mine, theirs = self._filled_from(other), other._filled_from(self)
        if mine is self and theirs is other:
            return False
        return mine.content_sha256() == theirs.content_sha256()

    def _filled_from(self, other: AccessEvent) -> AccessEvent:
        fill: dict[str, Any] = {
            name: getattr(other, name) for name in SPARSE_FIELDS if getattr(self, name) is None
        }
        cut = {path for path in self.repaired if CUT_MESSAGES.match(path)}
        if cut and not self.items and set(self.repaired) - cut <= set(other.repaired):
            fill["items"], fill["repaired"] = other.items, other.repaired
        return replace(self, **fill) if fill else self

    def provenance(self) -> dict[str, Any]:
        """The provenance columns: where the record was read from."""
        return {
            "SourceBlob": self.source_blob,
            "SourceSha256": self.source_sha256,
            "SourceIndex": self.source_index,
        }

    @property
    def app(self) -> str:
        """The app a report names for the record: its display name, else ClientAppId, else AppId."""
        return self.app_name or self.client_app_id or self.app_id

    @property
    def message_ids(self) -> list[str]:
        """Distinct InternetMessageIds in record order."""
        return list(dict.fromkeys(item.internet_message_id for item in self.items))

    def row(self) -> dict[str, Any]:
        """The event columns, typed: booleans as bool, counts as int or None."""
        subjects: dict[str, str] = {}
        for item in self.items:
            if not subjects.get(item.internet_message_id):
                subjects[item.internet_message_id] = item.subject
        messages = "; ".join(f"{mid} ({subj})" if subj else mid for mid, subj in subjects.items())
        return {
            "TimeStamp": iso_z(self.timestamp),
            "Mailbox": self.mailbox,
            "User": self.user,
            "LogonType": self.logon_type,
            "Access": self.access,
            "Throttled": self.throttled,
            "Folders": "; ".join(self.folders),
            "FolderIds": "; ".join(self.folder_ids),
            "OperationCount": self.operation_count,
            "MessageCount": len(subjects),
            "ClientIP": self.client_ip,
            "ClientInfo": self.client_info,
            "ClientFamily": self.client_family,
            "AppId": self.app_id,
            "ClientAppId": self.client_app_id,
            "AppName": self.app_name,
            "SessionId": self.session_id,
            "AADSessionId": self.aad_session_id,
            "ExternalAccess": self.external_access,
            "OriginatingServer": self.originating_server,
            "RecordId": self.record_id,
            "Messages": messages,
            "Repaired": "; ".join(self.repaired),
            "Conflict": self.conflict,
            **self.provenance(),
        }


# Building many events fast (the normalizer makes one per audit record): a frozen dataclass's
# __init__ stores each field through object.__setattr__
# (https://docs.python.org/3/library/dataclasses.html#frozen-instances), about 5 µs for an
# AccessEvent's 26 fields. A draft is an unfrozen slots dataclass with the same fields in the same
# order, so the same memory layout: its __init__ stores fields directly, and `sealed` then makes it
# the frozen class (https://docs.python.org/3/reference/datamodel.html#object.__class__ allows the
# assignment between classes of one layout). What comes out is an ordinary AccessEvent or
# MessageRef, immutable as any other; a draft is never handed out unsealed.
_Frozen = TypeVar("_Frozen", "AccessEvent", MessageRef)


def _draft_class(frozen: type[Any]) -> type[Any]:
    spec = [
        (f.name, f.type) if f.default is MISSING else (f.name, f.type, field(default=f.default))
        for f in fields(frozen)
    ]
    draft: type[Any] = make_dataclass(f"{frozen.__name__}Draft", spec, slots=True)
    if draft.__slots__ != frozen.__slots__:  # the layouts must match for `sealed`
        raise TypeError(f"{draft.__name__} does not have the slots of {frozen.__name__}")
    return draft


if TYPE_CHECKING:  # to the type checker a draft takes exactly the arguments of its frozen class
    AccessEventDraft = AccessEvent
    MessageRefDraft = MessageRef
else:
    AccessEventDraft = _draft_class(AccessEvent)
    MessageRefDraft = _draft_class(MessageRef)
_SEALED_AS: dict[type[Any], type[Any]] = {AccessEventDraft: AccessEvent, MessageRefDraft: MessageRef}


def sealed(draft: _Frozen) -> _Frozen:
    """The draft (AccessEventDraft or MessageRefDraft), filled, turned into its frozen class."""
    try:
        frozen = _SEALED_AS[type(draft)]
    except KeyError:
        raise TypeError(f"not a draft: {type(draft).__name__}") from None
    object.__setattr__(draft, "__class__", frozen)
    return draft


def message_refs(fields: Iterable[tuple[Any, ...]]) -> tuple[MessageRef, ...]:
    """MessageRefs from their fields in order (as `sealed` makes them, without its lookup: many
    are rebuilt at once when a report reads its spilled events back)."""
    refs: list[MessageRef] = []
    for values in fields:
        draft = MessageRefDraft(*values)
        draft.__class__ = MessageRef  # a draft of MessageRef's layout: see `sealed`
        refs.append(draft)
    return tuple(refs)

"""Normalize MailItemsAccessed audit records into one clean event each (docs/mailitemsaccessed.md).

Pure logic: no I/O. Input is a decoded JSON value (whatever a reader produced); output is an
`AccessEvent`, `None` for a record of another operation, or `MalformedRecord` for one that cannot
be read. Nothing here may crash on arbitrary JSON (property-tested with Hypothesis).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from shared.model.event import AccessEvent, AccessEventDraft, MessageRef, MessageRefDraft, sealed
from shared.model.times import utc_timestamp
from shared.parse import decoders
from shared.parse.text import INT64_MAX, INT64_MIN, fits_int64

log = logging.getLogger(__name__)

OPERATION = "mailitemsaccessed"


class MalformedRecord(ValueError):
    """The record is MailItemsAccessed (or cannot even tell) but cannot be turned into a row."""


@dataclass
class ParseStats:
    """What happened to the records of one source: nothing is dropped without being counted."""

    records: int = 0
    events: int = 0
    other_operations: int = 0
    malformed: int = 0
    malformed_positions: list[str] = field(default_factory=list)
    # Events whose record lost nested values to ConvertTo-Json's depth (shared/parse/powershell.py)
    truncated: int = 0

    def absorb(self, other: ParseStats) -> None:
        """Add what happened to another source's records (a later part of the same files)."""
        self.records += other.records
        self.events += other.events
        self.other_operations += other.other_operations
        self.malformed += other.malformed
        self.malformed_positions.extend(other.malformed_positions)
        self.truncated += other.truncated

    def as_dict(self) -> dict[str, int]:
        counts = {
            "records": self.records,
            "events": self.events,
            "other_operations": self.other_operations,
            "malformed": self.malformed,
        }
        if self.truncated:  # only depth-truncated PowerShell exports have any
            counts["truncated"] = self.truncated
        return counts


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as a reader found it: its position in the source and its decoded value, or why not."""

    position: str
    value: object = None
    error: str = ""
    repaired: tuple[str, ...] = ()  # JSON paths whose text the reader repaired (shared/parse/text.py)
    lost: tuple[str, ...] = ()  # JSON paths the source had already cut off (shared/parse/powershell.py)


# key -> key.strip().lower(): exports repeat a few dozen distinct keys millions of times, and a
# dict lookup is cheaper than strip + lower. Bounded; beyond the bound keys are folded each time.
_FOLDED_KEYS: dict[str, str] = {}
_FOLDED_KEYS_MAX = 4096


def _fold(obj: object) -> dict[str, Any]:
    """Keys trimmed and lower-cased: exports carry stray whitespace and inconsistent casing."""
    if type(obj) is dict:  # what JSON decodes to; avoids the slower ABC check on the hot path
        try:
            return {_FOLDED_KEYS[key]: value for key, value in obj.items()}
        except KeyError:  # a key not seen yet (or not a string): the general path below
            pass
    elif not isinstance(obj, Mapping):
        return {}
    folded: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(key, str):
            name = _FOLDED_KEYS.get(key)
            if name is None:
                name = key.strip().lower()
                if type(key) is str and len(_FOLDED_KEYS) < _FOLDED_KEYS_MAX:
                    _FOLDED_KEYS[key] = name
            folded[name] = value
    return folded


# Every key the normalizer reads, at any depth (record, folder, folder item, ExchangeItem and its
# ParentFolder, AppAccessContext, OperationProperties pair), spelled as the Management Activity API
# spells it. The rule for reading a key is `_fold`'s: trimmed and lower-cased, and of several keys
# that fold alike the last wins. `_fields` keeps that rule while reading by these spellings.
KEYS: tuple[str, ...] = (
    "AADSessionId",
    "AppAccessContext",
    "AppId",
    "ClientAppId",
    "ClientAppName",
    "ClientIP",
    "ClientIPAddress",
    "ClientInfoString",
    "CreationTime",
    "ExternalAccess",
    "FolderItems",
    "Folders",
    "Id",
    "InternetMessageId",
    "Item",
    "LogonType",
    "MailboxGuid",
    "MailboxOwnerUPN",
    "Name",
    "Operation",
    "OperationCount",
    "OperationProperties",
    "OriginatingServer",
    "ParentFolder",
    "Path",
    "SessionId",
    "SizeInBytes",
    "Subject",
    "UserId",
    "Value",
)
_KEY_OF_FOLDED = {key.lower(): key for key in KEYS}
# Keys under which `_fields` may read a dict as it is: the KEYS themselves, and keys learnt to fold
# to a name the normalizer never reads (so they cannot stand for one of KEYS). Bounded like
# _FOLDED_KEYS; a key beyond the bound is checked each time it is met.
_PLAIN_KEYS: set[str] = set(KEYS)
_PLAIN_KEYS_MAX = 4096
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


def _fields(obj: object) -> Mapping[str, Any]:
    """An object's fields, to be read by the spellings in KEYS with exactly `_fold`'s rule.

    The common case costs one set comparison: a dict whose every key is in _PLAIN_KEYS holds each
    of KEYS under its own spelling or not at all (any other spelling of it, " clientip " beside
    "ClientIP", would not be a plain key), so reading it as it is reads what folding would. Any
    other mapping is folded and each folded name of KEYS spelled back (`_respelled`)."""
    if type(obj) is dict:
        if obj.keys() <= _PLAIN_KEYS or _learn_plain_keys(obj):
            return obj
        return _respelled(obj)
    if obj is not None and isinstance(obj, Mapping):  # None (an absent field) spares the ABC check
        return _respelled(obj)
    return _NO_FIELDS


def _learn_plain_keys(obj: dict[Any, Any]) -> bool:
    """Whether every key of obj is plain, remembering the new ones that are."""
    for key in obj:
        if key in _PLAIN_KEYS:
            continue
        if type(key) is not str:  # folding drops what is not text: left to `_respelled`
            return False
        folded = _FOLDED_KEYS.get(key)
        if folded is None:
            folded = key.strip().lower()
        if folded in _KEY_OF_FOLDED:  # another spelling of one of KEYS
            return False
        if len(_PLAIN_KEYS) < _PLAIN_KEYS_MAX:
            _PLAIN_KEYS.add(key)
    return True


def _respelled(obj: object) -> dict[str, Any]:
    """`_fold(obj)` with the names of KEYS spelled as in KEYS. No key is lost or merged: the
    spelling back is one to one, and every one of KEYS has an upper-case letter, which no folded
    key has (str.lower never yields A-Z; tests/parse/test_normalize.py checks every code point)."""
    return {_KEY_OF_FOLDED.get(name, name): value for name, value in _fold(obj).items()}


def _text(value: object) -> str:
    if type(value) is str:  # nearly always: the rest of the checks are for the odd record
        return value.strip()
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | float):
        return str(value)
    return ""


def _count(value: object) -> int | None:
    if type(value) is int:  # nearly always (bool, an int subclass, is not)
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal():
        with contextlib.suppress(ValueError):  # more digits than int() accepts
            return int(value.strip())
    return None


def _int64(value: object, repaired: list[str], *path: object) -> int | None:
    """A count or size as a 64-bit integer; one beyond that range is left out and its path (the
    concatenated `path` parts, joined only then) named in `repaired` (no table column or JSON
    consumer holds it; the raw blob does)."""
    number = _count(value)
    if number is not None and not fits_int64(number):
        repaired.append("".join(map(str, path)))
        return None
    return number


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _operation_properties(value: object) -> dict[str, str]:
    """Name/Value pairs in any order or case (some Sentinel queries wrongly index position [1])."""
    properties: dict[str, str] = {}
    for pair in _list(value):
        fields = _fields(pair)
        name = _text(fields.get("Name")).lower()
        if name and name not in properties:
            properties[name] = _text(fields.get("Value"))
    return properties


def _access_type(raw: str) -> str:
    lowered = raw.lower()
    if lowered == "bind":
        return "Bind"
    if lowered == "sync":
        return "Sync"
    return raw


def _folder_path(folder: Mapping[str, Any]) -> str:
    path = _text(folder.get("Path")) or _text(folder.get("Name"))
    return path.lstrip("\\")


def _add_items(
    items: list[MessageRef], folder_path: str, raw_items: object, repaired: list[str], *where: object
) -> None:
    """Append the messages of `raw_items` (the items at JSON path `where`) to `items`."""
    for index, raw_item in enumerate(_list(raw_items)):
        item = _fields(raw_item)
        message_id = _text(item.get("InternetMessageId"))
        if message_id:
            subject = _text(item.get("Subject"))
            size = item.get("SizeInBytes")
            if type(size) is not int or not INT64_MIN <= size <= INT64_MAX:  # else _int64 is size
                size = _int64(size, repaired, *where, "[", index, "].SizeInBytes")
            items.append(sealed(MessageRefDraft(message_id, folder_path, subject, size)))


def _folders_and_items(
    record: Mapping[str, Any], repaired: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[MessageRef, ...]]:
    paths: list[str] = []
    ids: list[str] = []
    items: list[MessageRef] = []
    for number, raw_folder in enumerate(_list(record.get("Folders"))):
        folder = _fields(raw_folder)
        path = _folder_path(folder)
        if path:
            paths.append(path)
        folder_id = _text(folder.get("Id"))
        if folder_id:
            ids.append(folder_id)
        _add_items(items, path, folder.get("FolderItems"), repaired, "Folders[", number, "].FolderItems")
    # The older ExchangeItem shape: one Item with its ParentFolder (Sync records parsed this way).
    item = _fields(record.get("Item"))
    if item:
        parent = _fields(item.get("ParentFolder"))
        path = _folder_path(parent)
        if path and path not in paths:
            paths.append(path)
        parent_id = _text(parent.get("Id"))
        if parent_id and parent_id not in ids:
            ids.append(parent_id)
        _add_items(items, path, [item], repaired, "Item")
    return tuple(paths), tuple(ids), tuple(items)


def _record_id(record: Mapping[str, Any], raw: object) -> str:
    record_id = _text(record.get("Id"))
    if record_id:
        return record_id
    # No Id: key on the content itself, with sorted keys so field order cannot change it.
    try:
        canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        try:
            canonical = repr(sorted(_fold(raw).items(), key=lambda pair: pair[0])).encode()
        except RecursionError:
            raise MalformedRecord("the record has no Id and nests too deeply to identify") from None
    digest = hashlib.sha256(canonical).hexdigest()
    return f"sha256-{digest}"


# The decoders are pure and see few distinct values in an export (a handful of ClientInfoStrings,
# applications and logon types across thousands of records): bounded caches. decoders.client_ip
# parses with ipaddress (microseconds a call); one export holds a few hundred distinct addresses.
_client_ip = functools.lru_cache(maxsize=4096)(decoders.client_ip)
_client_family = functools.lru_cache(maxsize=1024)(decoders.client_family)
_app_name = functools.lru_cache(maxsize=1024)(decoders.app_name)
_logon_type_code = functools.lru_cache(maxsize=256)(decoders.logon_type)


def _logon_type(value: object) -> str:
    # Only ints and strings are cached: True == 1 and 1.0 == 1 would share a cache entry with 1,
    # and lists and objects cannot be keys.
    if type(value) is int or type(value) is str:
        return _logon_type_code(value)
    return decoders.logon_type(value)


def normalize_record(
    raw: object,
    repaired: tuple[str, ...] = (),
    source_blob: str = "",
    source_sha256: str = "",
    source_index: int | None = None,
) -> AccessEvent | None:
    """One audit record to one row; None for other operations; MalformedRecord if unreadable.
    `repaired` names what the reader repaired; the source_* arguments are the row's provenance."""
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise MalformedRecord(f"expected a JSON object, got {type(raw).__name__}")
    record = _fields(raw)
    if _text(record.get("Operation")).lower() != OPERATION:
        return None
    creation_time = _text(record.get("CreationTime"))
    timestamp = utc_timestamp(creation_time)
    if timestamp is None:
        raise MalformedRecord(f"CreationTime {creation_time[:40]!r} is not a timestamp")
    mailbox = (_text(record.get("MailboxOwnerUPN")) or _text(record.get("MailboxGuid"))).lower()
    if not mailbox:
        raise MalformedRecord("neither MailboxOwnerUPN nor MailboxGuid is present")
    properties = _operation_properties(record.get("OperationProperties"))
    context = _fields(record.get("AppAccessContext"))
    app_id = _text(record.get("AppId"))
    client_app_id = _text(record.get("ClientAppId")) or _text(context.get("ClientAppId"))
    client_info = _text(record.get("ClientInfoString"))
    fixes = list(repaired)
    folders, folder_ids, items = _folders_and_items(record, fixes)
    operation_count = _int64(record.get("OperationCount"), fixes, "OperationCount")
    event = AccessEventDraft(
        timestamp=timestamp,
        mailbox=mailbox,
        user=decoders.lower_if_upn(_text(record.get("UserId"))),
        logon_type=_logon_type(record.get("LogonType")),
        access=_access_type(properties.get("mailaccesstype", "")),
        throttled=decoders.as_bool(properties.get("isthrottled", "")),
        folders=folders,
        folder_ids=folder_ids,
        operation_count=operation_count,
        client_ip=_client_ip(_text(record.get("ClientIPAddress")) or _text(record.get("ClientIP"))),
        client_info=client_info,
        client_family=_client_family(client_info),
        app_id=app_id,
        client_app_id=client_app_id,
        app_name=_app_name(app_id, client_app_id, _text(context.get("ClientAppName"))),
        session_id=_text(record.get("SessionId")),
        aad_session_id=_text(context.get("AADSessionId")),
        external_access=decoders.as_bool(record.get("ExternalAccess")),
        originating_server=_text(record.get("OriginatingServer")),
        record_id=_record_id(record, raw),
        items=items,
        repaired=tuple(fixes),
        source_blob=source_blob,
        source_sha256=source_sha256,
        source_index=source_index,
    )
    return sealed(event)


def normalize_records(
    records: Iterable[RawRecord],
    source: str,
    stats: ParseStats | None = None,
    sha256: str = "",
    first_index: int = 0,
) -> Iterator[AccessEvent]:
    """Normalize a source's records, counting and logging the unreadable ones and going on. Each
    event's provenance is `source`, `sha256` (of its bytes) and the record's 0-based position in
    the source (`first_index` is the position of the first record given: a piece's records)."""
    stats = stats if stats is not None else ParseStats()
    for index, raw in enumerate(records, start=first_index):
        stats.records += 1
        try:
            if raw.error:
                raise MalformedRecord(raw.error)
            event = normalize_record(raw.value, raw.repaired + raw.lost, source, sha256, index)
        except RecursionError:  # nesting deeper than the normalizer (or the Id fallback) can walk
            stats.malformed += 1
            stats.malformed_positions.append(raw.position)
            log.warning("malformed record in %s at %s: nested too deeply", source, raw.position)
            continue
        except MalformedRecord as problem:
            stats.malformed += 1
            stats.malformed_positions.append(raw.position)
            log.warning("malformed record in %s at %s: %s", source, raw.position, problem)
            continue
        if event is None:
            stats.other_operations += 1
            continue
        stats.events += 1
        if raw.lost:
            stats.truncated += 1
        yield event

"""The normalizer as it was before its per-record path was made cheap (commit ae771fb), kept verbatim as
the reference the property tests in tests/parse/test_normalize.py hold the fast one to: the same
event, field for field, or the same MalformedRecord, for every input. Only the imports differ:
`utc_timestamp` (since given a fast path in shared/model/times.py) is copied here as it was, and
the decoders, whose functions did not change, are the package's own, uncached."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shared.model.event import AccessEvent, MessageRef
from shared.parse import decoders
from shared.parse.normalize import MalformedRecord
from shared.parse.text import fits_int64

_client_ip = functools.lru_cache(maxsize=4096)(decoders.client_ip)

OPERATION = "mailitemsaccessed"

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:?\d{2})?$"
)


def utc_timestamp(value: str) -> datetime | None:
    """Parse an audit time such as CreationTime: zone-less means UTC; fractions and offsets accepted.
    None if unreadable (a record is never rejected by an exception from here)."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, _fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None
        offset_minutes = sign * (hours * 60 + minutes)
        try:
            moment = moment - timedelta(minutes=offset_minutes)
        except OverflowError:
            return None
    return moment.replace(tzinfo=UTC)


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


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | float):
        return str(value)
    return ""


def _count(value: object) -> int | None:
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


def _int64(value: object, path: str, repaired: list[str]) -> int | None:
    """A count or size as a 64-bit integer; one beyond that range is left out and its path
    named in `repaired` (no table column or JSON consumer holds it; the raw blob does)."""
    number = _count(value)
    if number is not None and not fits_int64(number):
        repaired.append(path)
        return None
    return number


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _operation_properties(value: object) -> dict[str, str]:
    """Name/Value pairs in any order or case (some Sentinel queries wrongly index position [1])."""
    properties: dict[str, str] = {}
    for pair in _list(value):
        folded = _fold(pair)
        name = _text(folded.get("name")).lower()
        if name and name not in properties:
            properties[name] = _text(folded.get("value"))
    return properties


def _access_type(raw: str) -> str:
    lowered = raw.lower()
    if lowered == "bind":
        return "Bind"
    if lowered == "sync":
        return "Sync"
    return raw


def _folder_path(folder: Mapping[str, Any]) -> str:
    path = _text(folder.get("path")) or _text(folder.get("name"))
    return path.lstrip("\\")


def _items_of(folder_path: str, items: object, where: str, repaired: list[str]) -> Iterator[MessageRef]:
    for index, raw_item in enumerate(_list(items)):
        item = _fold(raw_item)
        message_id = _text(item.get("internetmessageid"))
        if message_id:
            yield MessageRef(
                internet_message_id=message_id,
                folder=folder_path,
                subject=_text(item.get("subject")),
                size_in_bytes=_int64(item.get("sizeinbytes"), f"{where}[{index}].SizeInBytes", repaired),
            )


def _folders_and_items(
    record: Mapping[str, Any], repaired: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[MessageRef, ...]]:
    paths: list[str] = []
    ids: list[str] = []
    items: list[MessageRef] = []
    for number, raw_folder in enumerate(_list(record.get("folders"))):
        folder = _fold(raw_folder)
        path = _folder_path(folder)
        if path:
            paths.append(path)
        folder_id = _text(folder.get("id"))
        if folder_id:
            ids.append(folder_id)
        items.extend(_items_of(path, folder.get("folderitems"), f"Folders[{number}].FolderItems", repaired))
    # The older ExchangeItem shape: one Item with its ParentFolder (Sync records parsed this way).
    item = _fold(record.get("item"))
    if item:
        parent = _fold(item.get("parentfolder"))
        path = _folder_path(parent)
        if path and path not in paths:
            paths.append(path)
        parent_id = _text(parent.get("id"))
        if parent_id and parent_id not in ids:
            ids.append(parent_id)
        items.extend(_items_of(path, [item], "Item", repaired))
    return tuple(paths), tuple(ids), tuple(items)


def _record_id(record: Mapping[str, Any], raw: object) -> str:
    record_id = _text(record.get("id"))
    if record_id:
        return record_id
    # No Id: key on the content itself, with sorted keys so field order cannot change it.
    try:
        canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        try:
            canonical = repr(sorted(record.items(), key=lambda pair: pair[0])).encode()
        except RecursionError:
            raise MalformedRecord("the record has no Id and nests too deeply to identify") from None
    digest = hashlib.sha256(canonical).hexdigest()
    return f"sha256-{digest}"


def normalize_record(
    raw: object,
    repaired: tuple[str, ...] = (),
    source_blob: str = "",
    source_sha256: str = "",
    source_index: int | None = None,
) -> AccessEvent | None:
    """One audit record to one row; None for other operations; MalformedRecord if unreadable.
    `repaired` names what the reader repaired; the source_* arguments are the row's provenance."""
    if not isinstance(raw, Mapping):
        raise MalformedRecord(f"expected a JSON object, got {type(raw).__name__}")
    record = _fold(raw)
    if _text(record.get("operation")).lower() != OPERATION:
        return None
    creation_time = _text(record.get("creationtime"))
    timestamp = utc_timestamp(creation_time)
    if timestamp is None:
        raise MalformedRecord(f"CreationTime {creation_time[:40]!r} is not a timestamp")
    mailbox = (_text(record.get("mailboxownerupn")) or _text(record.get("mailboxguid"))).lower()
    if not mailbox:
        raise MalformedRecord("neither MailboxOwnerUPN nor MailboxGuid is present")
    properties = _operation_properties(record.get("operationproperties"))
    context = _fold(record.get("appaccesscontext"))
    app_id = _text(record.get("appid"))
    client_app_id = _text(record.get("clientappid")) or _text(context.get("clientappid"))
    client_info = _text(record.get("clientinfostring"))
    fixes = list(repaired)
    folders, folder_ids, items = _folders_and_items(record, fixes)
    operation_count = _int64(record.get("operationcount"), "OperationCount", fixes)
    return AccessEvent(
        timestamp=timestamp,
        mailbox=mailbox,
        user=decoders.lower_if_upn(_text(record.get("userid"))),
        logon_type=decoders.logon_type(record.get("logontype")),
        access=_access_type(properties.get("mailaccesstype", "")),
        throttled=decoders.as_bool(properties.get("isthrottled", "")),
        folders=folders,
        folder_ids=folder_ids,
        operation_count=operation_count,
        client_ip=_client_ip(_text(record.get("clientipaddress")) or _text(record.get("clientip"))),
        client_info=client_info,
        client_family=decoders.client_family(client_info),
        app_id=app_id,
        client_app_id=client_app_id,
        app_name=decoders.app_name(app_id, client_app_id, _text(context.get("clientappname"))),
        session_id=_text(record.get("sessionid")),
        aad_session_id=_text(context.get("aadsessionid")),
        external_access=decoders.as_bool(record.get("externalaccess")),
        originating_server=_text(record.get("originatingserver")),
        record_id=_record_id(record, raw),
        items=items,
        repaired=tuple(fixes),
        source_blob=source_blob,
        source_sha256=source_sha256,
        source_index=source_index,
    )

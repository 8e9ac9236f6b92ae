"""AuditData records that went through PowerShell's `ConvertTo-Json` at its default depth.

`Search-UnifiedAuditLog` returns AuditData as a JSON string, which `ConvertTo-Json` keeps whole.
A script that parses it first (`$_.AuditData | ConvertFrom-Json`) and then writes the objects with
`ConvertTo-Json` loses everything nested deeper than `-Depth` (default 2: "Specifies how many
levels of contained objects are included in the JSON representation",
https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertto-json#-depth).
Past the depth PowerShell writes an object's string form instead of the object:

- an object is `@{Name=MailAccessType; Value=Bind}`: its properties, in order, as `Key=value`
  joined by `; `, every value itself in string form;
- an array inside such an object is `System.Object[]`: its elements are gone;
- an array past the depth is its elements' string forms joined by spaces: `@{...} @{...}`.

Piping the records writes the array as level 0, a record as 1, `OperationProperties` and
`Folders` as 2, so each access-type pair and each folder becomes such a string and each folder's
`FolderItems` becomes `System.Object[]`: the access type, the folder paths and ids, and every
top-level field survive; the message identifiers do not. This module reads the strings back
into objects and names, as JSON paths, what was lost. Message fields are never read from a
string form: their text is attacker-controlled (a subject may hold `; InternetMessageId=...`)
and the form cannot tell a separator from a value, so they are named as lost instead.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRUNCATED_ARRAY = "System.Object[]"
REEXPORT_ADVICE = (
    "message identifiers were lost: this file was written by ConvertTo-Json at its default depth "
    "(2), which replaced nested values with '@{...}' and 'System.Object[]'; access type, folders "
    "and record fields were recovered. Re-export with ConvertTo-Json -Depth 10, or keep AuditData "
    "as the JSON string Search-UnifiedAuditLog returns"
)

# A nested AuditData field holding a string form where a full export has an object or an array.
_NESTED_FIELDS = "OperationProperties|Folders|FolderItems|AppAccessContext|Item|ParentFolder"
_SHAPE = re.compile(rf'"(?:{_NESTED_FIELDS})"\s*:\s*(?:\[\s*)?"(?:@\{{|System\.Object\[\])', re.IGNORECASE)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_MESSAGE_FIELDS = frozenset({"internetmessageid", "subject", "sizeinbytes"})
# The properties of the objects whose text holds names a user chose (folder paths): only these
# separate fields (Management Activity API schema, ExchangeMailbox folders and name/value pairs).
_FOLDER_KEYS = frozenset({"id", "path", "folderitems"})
_PAIR_KEYS = frozenset({"name", "value"})


def is_depth_truncated(text: str) -> bool:
    """Whether JSON text holds a nested AuditData field in PowerShell's string form."""
    return _SHAPE.search(text) is not None


def is_string_form(value: object) -> bool:
    return isinstance(value, str) and (
        value.strip() == TRUNCATED_ARRAY or (value.lstrip().startswith("@{") and value.rstrip().endswith("}"))
    )


def _closing(text: str, start: int) -> int | None:
    """The index of the `}` closing the object whose body starts at `start`."""
    depth = 0
    index = start
    while index < len(text):
        if text.startswith("@{", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return None


def _is_key(body: str, index: int, keys: frozenset[str] | None) -> bool:
    match = _KEY.match(body, index)
    return match is not None and (keys is None or match.group()[:-1].lower() in keys)


def _fields(body: str, keys: frozenset[str] | None) -> dict[str, str] | None:
    """`Key=value; Key=value` as a dict; None if it does not read as one. Only `; ` before one of
    `keys` (lower case; any name when None) separates fields: a folder named `a; Q4=b` stays
    whole. A repeated key means a value held `; Key=` and the split cannot be trusted."""
    if not body:
        return {}
    if not _is_key(body, 0, keys):
        return None
    starts = [0]
    depth = 0
    for index in range(len(body)):
        if body.startswith("@{", index):
            depth += 1
        elif body[index] == "}" and depth:
            depth -= 1
        elif depth == 0 and body.startswith("; ", index) and _is_key(body, index + 2, keys):
            starts.append(index + 2)
    fields: dict[str, str] = {}
    for number, start in enumerate(starts):
        end = starts[number + 1] - 2 if number + 1 < len(starts) else len(body)
        key, _, value = body[start:end].partition("=")
        if key in fields:
            return None
        fields[key] = value
    return fields


def parse_string_form(text: str, keys: frozenset[str] | None = None) -> list[dict[str, str]] | None:
    """`@{A=1; B=x}`, or several joined by spaces (an array past the depth), as dicts of text;
    None if the text is not in that form. `keys`: see _fields."""
    text = text.strip()
    objects: list[dict[str, str]] = []
    position = 0
    while position < len(text):
        end = _closing(text, position + 2) if text.startswith("@{", position) else None
        fields = _fields(text[position + 2 : end], keys) if end is not None else None
        if end is None or fields is None:
            break
        objects.append(fields)
        position = end + 1
        while position < len(text) and text[position] == " ":
            position += 1
    else:
        return objects or None
    # A value holding `}` ends the scan early: the whole text as one object is the other reading.
    if text.startswith("@{") and text.endswith("}"):
        whole = _fields(text[2:-1], keys)
        return [whole] if whole is not None else None
    return None


@dataclass(frozen=True, slots=True)
class Recovered:
    record: dict[str, Any]
    lost: tuple[str, ...]  # JSON paths whose values ConvertTo-Json cut off


def _objects(value: object, path: str, lost: list[str], keys: frozenset[str]) -> list[Any]:
    """An array field's elements as objects: a string form read back, what cannot be named lost."""
    if isinstance(value, str):
        parsed = None if value.strip() == TRUNCATED_ARRAY else parse_string_form(value, keys)
        if parsed is None:
            lost.append(path)
            return []
        return list(parsed)
    if not isinstance(value, list):
        return [] if value is None else [value]
    elements: list[Any] = []
    for index, element in enumerate(value):
        if isinstance(element, str) and is_string_form(element):
            parsed = parse_string_form(element, keys)
            if parsed is None:
                lost.append(f"{path}[{index}]")
            else:
                elements.extend(parsed)
        else:
            elements.append(element)
    return elements


def _object(value: object, path: str, lost: list[str], keys: frozenset[str] | None = None) -> object:
    if not is_string_form(value):
        return value
    parsed = parse_string_form(str(value), keys)
    if parsed is None or len(parsed) != 1:
        lost.append(path)
        return None
    return parsed[0]


def _folder(folder: object, path: str, lost: list[str]) -> object:
    if not isinstance(folder, Mapping):
        return folder
    kept: dict[str, Any] = {}
    for key, value in folder.items():
        if isinstance(key, str) and key.strip().lower() == "folderitems" and isinstance(value, str):
            lost.append(f"{path}.{key}")  # System.Object[], or items as text: not read (see above)
            continue
        kept[key] = value
    return kept


def _item(value: object, path: str, lost: list[str]) -> object:
    """The older single-Item shape: its ParentFolder is kept; the message itself is read only from
    a real object, never from a string form."""
    from_text = is_string_form(value)
    item = _object(value, path, lost)
    if not isinstance(item, Mapping):
        return item
    kept: dict[str, Any] = {}
    for key, inner in item.items():
        folded = key.strip().lower() if isinstance(key, str) else ""
        if from_text and folded in _MESSAGE_FIELDS:
            continue
        parent = folded == "parentfolder"
        kept[key] = _object(inner, f"{path}.{key}", lost, _FOLDER_KEYS) if parent else inner
    if from_text and any(str(key).strip().lower() in _MESSAGE_FIELDS for key in item):
        lost.append(f"{path}.InternetMessageId")
    return kept


def recover_record(record: Mapping[str, Any]) -> Recovered:
    """The record with its nested fields read back from their string forms, and what was lost."""
    out: dict[str, Any] = {}
    lost: list[str] = []
    for key, value in record.items():
        folded = key.strip().lower() if isinstance(key, str) else ""
        if folded == "operationproperties":
            out[key] = _objects(value, key, lost, _PAIR_KEYS)
        elif folded == "folders":
            folders = _objects(value, key, lost, _FOLDER_KEYS)
            out[key] = [_folder(folder, f"{key}[{index}]", lost) for index, folder in enumerate(folders)]
        elif folded == "appaccesscontext":
            out[key] = _object(value, key, lost)
        elif folded == "item":
            out[key] = _item(value, key, lost)
        else:
            if is_string_form(value):
                lost.append(str(key))  # another nested field cut off: kept as the text it became
            out[key] = value
    return Recovered(out, tuple(lost))

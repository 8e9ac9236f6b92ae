"""How text that is not valid Unicode, and numbers no column can hold, are represented: decided
once, where a reader hands a record over, so every table, view and renderer sees the same values.

- A lone UTF-16 surrogate (a JSON escape such as `"\\ud800"`, which .NET writes when it cuts a string
  inside a pair) and a byte that is not UTF-8 (kept by `surrogateescape` while decoding) become
  U+FFFD REPLACEMENT CHARACTER.
- An integer beyond the signed 64-bit range (the widest Table Storage and JSON consumers hold) is
  left out of the row.

Each change names its place in the record (a JSON path such as `Folders[0].FolderItems[2].Subject`)
in the row's `Repaired` list; the raw blob keeps the original bytes.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def repair_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (valid pairs never reach Python as
    surrogates: the JSON decoders combine them)."""
    return _SURROGATE.sub(REPLACEMENT, text)


def fits_int64(value: int) -> bool:
    return INT64_MIN <= value <= INT64_MAX


def _path(parent: str, key: object) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    name = repair_text(str(key))
    return f"{parent}.{name}" if parent else name


def repair_value(value: Any, repaired: list[str], path: str = "") -> Any:
    """A decoded JSON value with its invalid text repaired; each repaired path appended to
    `repaired`. Values that need nothing are returned as they are (no copy)."""
    if isinstance(value, str):
        if has_surrogates(value):
            repaired.append(path or "(value)")
            return repair_text(value)
        return value
    if isinstance(value, list):
        changed = False
        items = []
        for index, item in enumerate(value):
            fixed = repair_value(item, repaired, _path(path, index))
            changed = changed or fixed is not item
            items.append(fixed)
        return items if changed else value
    if isinstance(value, dict):
        changed = False
        fixed_dict: dict[Any, Any] = {}
        for key, item in value.items():
            fixed_key = repair_text(key) if isinstance(key, str) and has_surrogates(key) else key
            if fixed_key is not key:
                repaired.append(_path(path, key) + " (name)")
            fixed = repair_value(item, repaired, _path(path, fixed_key))
            changed = changed or fixed is not item or fixed_key is not key
            fixed_dict[fixed_key] = fixed
        return fixed_dict if changed else value
    return value

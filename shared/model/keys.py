"""Table keys, the one way: any string made a valid PartitionKey or RowKey, and times that sort.

Keys forbid `/ \\ # ?` and control characters (Azure Table service data model:
https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model),
and InternetMessageIds, UPNs of guests and content ids can hold any of them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from shared.model.times import as_utc

MAX_KEY_CHARS = 400

# Characters forbidden in PartitionKey/RowKey, plus '%' so the encoding is reversible.
_KEY_UNSAFE = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")
_TIME_KEY = "%m%dT%H%M%S"


def encode_key(value: str) -> str:
    """A Table key for any string: forbidden characters percent-encoded, long values hashed."""
    encoded = _KEY_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)
    if len(encoded) > MAX_KEY_CHARS:
        digest = hashlib.sha256(value.encode()).hexdigest()
        encoded = f"{encoded[:100]}~{digest}"
    return encoded


def time_key(moment: datetime) -> str:
    """yyyymmddThhmmss in UTC, so keys sort by time."""
    utc = as_utc(moment)
    # Year zero-padded by hand: strftime leaves years before 1000 short, which breaks ordering.
    return f"{utc.year:04d}{utc.strftime(_TIME_KEY)}"

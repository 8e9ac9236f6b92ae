"""Request text every endpoint reads the same way: the error that names a bad parameter, ISO 8601
dates and date-times in UTC, and the shapes of a user principal name and of a GUID (each to be
used with `fullmatch`: `$` alone lets a trailing newline through)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from shared.model.times import as_utc

EARLIEST = datetime(2015, 1, 1, tzinfo=UTC)  # before any unified audit log existed
DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# What an ISO 8601 date or date-time may contain: fromisoformat alone also takes any character
# between date and time ("2026-11-20%00", a NUL).
_ISO_TEXT = re.compile(r"[0-9:.,+\-TZtz ]+")
MAX_PARAM_CHARS = 64
UPN = re.compile(r"[A-Za-z0-9._'!#^~+\-]{1,64}@[A-Za-z0-9.\-]{1,253}")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class RequestError(ValueError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_time(name: str, raw: str, *, end_of_day: bool) -> datetime:
    """ISO date or date-time, UTC when no zone is given. A date as `to` means the whole day."""
    if len(raw) > MAX_PARAM_CHARS:
        raise RequestError(400, f"invalid_{name}", f"'{name}' is longer than {MAX_PARAM_CHARS} characters")
    try:
        if not _ISO_TEXT.fullmatch(raw):
            raise ValueError(raw)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        shown = raw.encode("unicode_escape").decode()
        raise RequestError(
            400,
            f"invalid_{name}",
            f"'{name}' must be an ISO 8601 date or date-time in UTC (2026-11-20 or "
            f"2026-11-20T08:00:00Z); got '{shown}'",
        ) from None
    moment = as_utc(moment)
    if end_of_day and DATE_TEXT.match(raw):
        moment += timedelta(days=1)
    return moment


def parse_end(raw: str) -> datetime:
    """The exclusive end a `to` value means: a date includes that whole day, a date-time that
    second."""
    end = parse_time("to", raw, end_of_day=True)
    return end if DATE_TEXT.match(raw) else end + timedelta(seconds=1)
